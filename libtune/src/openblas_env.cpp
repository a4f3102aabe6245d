#include "tune/openblas_env.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "tune/device.hpp"

extern "C" char* openblas_get_corename(void);

namespace tune {

std::string openblas_core() {
    const char* name = openblas_get_corename();
    return name ? name : "unknown";
}

void use_best_openblas_core(char** argv) {
    const std::string core = openblas_core();
    const CpuIsa isa = detect_cpu_isa();
    const bool avx512_core = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
    if (const char* pinned = std::getenv("OPENBLAS_CORETYPE")) {
        // Respected, but said: a baseline pinned below the CPU makes every ratio against it look better.
        if (isa.avx512f && !avx512_core)
            std::fprintf(stderr,
                         "note: OPENBLAS_CORETYPE=%s keeps OpenBLAS on its %s kernels although this CPU runs its "
                         "AVX-512 ones; speedups over OpenBLAS are overstated (unset OPENBLAS_CORETYPE to let it "
                         "choose)\n",
                         pinned, core.c_str());
        return;
    }
    // An AVX-512 CPU wants an AVX-512 core (on an AVX-512 EPYC the Haswell kernels ran sgemm at
    // half the speed of the Cooperlake ones: docs/performance.md); an AVX2 CPU, Haswell or Zen.
    if (avx512_core || (!isa.avx512f && (core == "Haswell" || core == "Zen"))) return;
    const char* best = isa.avx512f ? "SKYLAKEX" : (isa.avx2 && isa.fma) ? "HASWELL" : nullptr;
    if (!best) return;
    setenv("OPENBLAS_CORETYPE", best, 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on with the generic core
}

}  // namespace tune
