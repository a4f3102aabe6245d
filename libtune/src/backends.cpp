#include "tune/backends.hpp"

#include "tune/error.hpp"

#ifdef LIBTUNE_WITH_CUDA
#include "tune/cuda/accelerator.hpp"
#include "tune/cuda/runtime.hpp"
#endif
#ifdef LIBTUNE_WITH_HIP
#include "tune/hip/runtime.hpp"
#endif

namespace tune {

bool backend_built(Backend backend) {
    switch (backend) {
        case Backend::cpu: return true;
#ifdef LIBTUNE_WITH_CUDA
        case Backend::cuda: return true;
#endif
#ifdef LIBTUNE_WITH_HIP
        case Backend::hip: return true;
#endif
        default: return false;
    }
}

DeviceInfo detect_device(Backend backend) {
    switch (backend) {
        case Backend::cpu: return detect_cpu();
        case Backend::cuda:
#ifdef LIBTUNE_WITH_CUDA
            return cuda::shared_runtime()->device();
#else
            throw Error("no CUDA device: this build has no CUDA backend (configure with the CUDA toolkit installed, "
                        "-DLIBTUNE_WITH_CUDA=ON)");
#endif
        case Backend::hip:
#ifdef LIBTUNE_WITH_HIP
            return hip::shared_runtime()->device();
#else
            throw Error("no HIP device: this build has no HIP backend (configure with ROCm's headers installed, "
                        "-DLIBTUNE_WITH_HIP=ON)");
#endif
    }
    throw Error("unknown backend");
}

std::shared_ptr<Accelerator> make_accelerator(const DeviceInfo& device) {
    switch (device.backend) {
        case Backend::cpu: return nullptr;
        case Backend::cuda:
#ifdef LIBTUNE_WITH_CUDA
            return std::make_shared<cuda::CudaAccelerator>(cuda::shared_runtime());
#else
            break;
#endif
        case Backend::hip:
#ifdef LIBTUNE_WITH_HIP
            return std::make_shared<hip::HipAccelerator>(hip::shared_runtime());
#else
            break;
#endif
    }
    throw Error("no accelerator for backend " + std::string(to_string(device.backend)) + " in this build");
}

}  // namespace tune
