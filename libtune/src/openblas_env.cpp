#include "tune/openblas_env.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "tune/device.hpp"

extern "C" char* openblas_get_corename(void);

namespace tune {

std::string openblas_core() {
    const char* name = openblas_get_corename();
    return name ? name : "unknown";
}

void use_best_openblas_core(char** argv) {
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
    const std::string core = openblas_core();
    for (std::string_view good : {"SkylakeX", "Cooperlake", "SapphireRapids", "Haswell", "Zen"})
        if (core == good) return;
    const CpuIsa isa = detect_cpu_isa();
    const char* best = isa.avx512f ? "SKYLAKEX" : (isa.avx2 && isa.fma) ? "HASWELL" : nullptr;
    if (!best) return;
    setenv("OPENBLAS_CORETYPE", best, 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on with the generic core
}

}  // namespace tune
