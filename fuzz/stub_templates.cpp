// libFuzzer builds link the core without the kernel templates (their intrinsics build with
// GCC only, and no fuzz target runs a kernel): these stand in for the template factories.
#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"

namespace tune {

std::unique_ptr<Template> make_cpu_gemm_template(const DeviceInfo&) {
    throw Error("fuzz build: kernel templates are not linked");
}
std::unique_ptr<Template> make_openblas_gemm_template(const DeviceInfo&) {
    throw Error("fuzz build: kernel templates are not linked");
}

}  // namespace tune
