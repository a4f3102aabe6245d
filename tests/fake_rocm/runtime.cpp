// Stand-in HIP runtime for the loader's tests (test_hip_loader.cpp): every runtime symbol
// libtune loads, so that which library was opened, and what it reports, can be checked on a
// machine without that ROCm release. Nothing here touches a device: besides the version and
// device queries, each call fails with hipErrorNotSupported.
extern "C" {

namespace {
constexpr int kSuccess = 0, kNotSupported = 801;
}

int hipInit(unsigned) { return kSuccess; }
int hipGetDeviceCount(int* n) { return *n = 1, kSuccess; }
int hipDriverGetVersion(int* v) { return *v = FAKE_HIP_VERSION, kSuccess; }
int hipRuntimeGetVersion(int* v) { return *v = FAKE_HIP_VERSION, kSuccess; }
const char* hipGetErrorName(int) { return "hipErrorNotSupported"; }

#define FAKE_UNSUPPORTED(name) \
    int name() { return kNotSupported; }
FAKE_UNSUPPORTED(hipSetDevice) FAKE_UNSUPPORTED(hipMalloc) FAKE_UNSUPPORTED(hipFree) FAKE_UNSUPPORTED(hipMemcpyHtoD)
FAKE_UNSUPPORTED(hipMemcpyDtoH) FAKE_UNSUPPORTED(hipMemsetD32Async) FAKE_UNSUPPORTED(hipMemsetD8Async)
FAKE_UNSUPPORTED(hipModuleLoadData) FAKE_UNSUPPORTED(hipModuleUnload) FAKE_UNSUPPORTED(hipModuleGetFunction)
FAKE_UNSUPPORTED(hipModuleLaunchKernel) FAKE_UNSUPPORTED(hipEventCreate) FAKE_UNSUPPORTED(hipEventDestroy)
FAKE_UNSUPPORTED(hipEventRecord) FAKE_UNSUPPORTED(hipEventSynchronize) FAKE_UNSUPPORTED(hipEventElapsedTime)
FAKE_UNSUPPORTED(hipStreamCreate) FAKE_UNSUPPORTED(hipStreamDestroy) FAKE_UNSUPPORTED(hipStreamSynchronize)

}  // extern "C"
