// Run-time ISA check for the micro-kernels (the template offers only what the device has;
// this guards against a DeviceInfo describing another machine).
#include "ukernel.hpp"

namespace tune::cpu_gemm {

bool host_supports(Isa isa) {
    __builtin_cpu_init();
    switch (isa) {
        case Isa::avx2_fma: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::avx512f: return __builtin_cpu_supports("avx512f");
    }
    return false;
}

}  // namespace tune::cpu_gemm
