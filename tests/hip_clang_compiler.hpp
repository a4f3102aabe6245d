// HipClangCompiler: a KernelCompiler that compiles the HIP templates' requests offline with
// clang's AMDGPU backend (a clang-19 process per instance, no GPU and no hiprtc), for archs the
// installed hiprtc cannot target (gfx942 with ROCm 5.2). Its "binary" is the kernel's AMDGPU
// assembly: checkable (v_mfma ...), not loadable.
#pragma once

#include <filesystem>
#include <string>

#include "tune/runtime_compile.hpp"

namespace tune {

struct HipClangSetup {
    std::filesystem::path clang;        // clang-19 (or newer) with the AMDGPU target
    std::filesystem::path hip_include;  // the folder holding hip/hip_runtime.h (ROCm's headers)
    std::filesystem::path bitcode;      // ROCm's device libraries (ocml.bc, ockl.bc, oclc_*.bc)
};

class HipClangCompiler final : public KernelCompiler {
public:
    // Throws tune::Error naming the first of the three paths that is missing.
    explicit HipClangCompiler(HipClangSetup setup);
    std::string version() const override { return version_; }
    // Writes the program, its headers and a line that instantiates request.instance to a fresh
    // temporary folder, runs clang there and reads the assembly back. Fails with the log when
    // clang does, when the instance's kernel is not in the output, or when the code still
    // references a symbol it does not define (what linking a code object would reject).
    CompileResult compile(const CompileRequest& request) const override;

private:
    HipClangSetup setup_;
    std::string version_;
};

}  // namespace tune
