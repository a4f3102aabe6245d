// The stand-in runtime's hipGetDeviceProperties (ROCm 5's layout, the one these headers
// declare, which later runtimes keep under this name) describing an MI300X; after
// fake_hip_scramble_properties(1) it fills garbage instead, as a runtime with another layout
// would appear to.
#include <hip/hip_runtime_api.h>

#include <cstring>

namespace {
int scrambled = 0;
}

extern "C" void fake_hip_scramble_properties(int on) { scrambled = on; }

hipError_t hipGetDeviceProperties(hipDeviceProp_t* prop, int device) {
    if (device != 0) return hipErrorInvalidDevice;
    std::memset(prop, 0, sizeof *prop);
    if (scrambled) {
        std::memset(prop->name, 0x9c, sizeof prop->name);
        std::memcpy(prop->gcnArchName, "\x01\x02", 3);
        return hipSuccess;
    }
    std::strcpy(prop->name, "Fake Instinct MI300X");
    std::strcpy(prop->gcnArchName, "gfx942:sramecc+:xnack-");
    prop->multiProcessorCount = 304;
    prop->l2CacheSize = 4 << 20;
    prop->totalGlobalMem = std::size_t{192} << 30;
    prop->clockRate = 2100000;
    prop->memoryClockRate = 1300000;
    prop->sharedMemPerBlock = 65536;
    return hipSuccess;
}
