// NvrtcCompiler: the KernelCompiler for CUDA: NVRTC (loaded at run time) compiles one kernel
// instance to a cubin for a real arch (sm_80, sm_90a); no driver or device needed.
#pragma once

#include "tune/runtime_compile.hpp"

namespace tune::cuda {

class NvrtcCompiler final : public KernelCompiler {
public:
    // Throws tune::Error("NVRTC not available: ...") when libnvrtc cannot be loaded.
    NvrtcCompiler();
    std::string version() const override { return version_; }
    CompileResult compile(const CompileRequest& request) const override;

private:
    std::string version_;
};

// Whether NVRTC can be loaded here (the reason in *why when not).
bool nvrtc_available(std::string* why = nullptr);

}  // namespace tune::cuda
