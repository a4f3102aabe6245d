#include "tune/cuda/nvrtc.hpp"

#include <memory>
#include <vector>

#include "tune/cuda/api.hpp"
#include "tune/error.hpp"

namespace tune::cuda {

bool nvrtc_available(std::string* why) { return nvrtc_api(why) != nullptr; }

NvrtcCompiler::NvrtcCompiler() {
    std::string why;
    const NvrtcApi* api = nvrtc_api(&why);
    if (!api) throw Error("NVRTC not available: " + why);
    int major = 0, minor = 0;
    api->nvrtcVersion(&major, &minor);
    version_ = "nvrtc " + std::to_string(major) + "." + std::to_string(minor);
}

CompileResult NvrtcCompiler::compile(const CompileRequest& req) const {
    const NvrtcApi& api = *nvrtc_api();
    CompileResult result;
    auto fail = [&](const std::string& what, nvrtcResult r) {
        result.ok = false;
        result.log = what + ": " + api.nvrtcGetErrorString(r) + (result.log.empty() ? "" : "\n" + result.log);
        return result;
    };
    std::vector<const char*> header_texts, header_names;
    for (const auto& [name, text] : req.headers) {
        header_names.push_back(name.c_str());
        header_texts.push_back(text.c_str());
    }
    nvrtcProgram prog = nullptr;
    nvrtcResult r = api.nvrtcCreateProgram(&prog, req.source.c_str(), req.source_name.c_str(),
                                           static_cast<int>(header_texts.size()), header_texts.data(),
                                           header_names.data());
    if (r != NVRTC_SUCCESS) return fail("nvrtcCreateProgram", r);
    struct Destroy {
        const NvrtcApi& api;
        nvrtcProgram& p;
        ~Destroy() { api.nvrtcDestroyProgram(&p); }
    } destroy{api, prog};

    if (!req.instance.empty()) {
        r = api.nvrtcAddNameExpression(prog, req.instance.c_str());
        if (r != NVRTC_SUCCESS) return fail("nvrtcAddNameExpression " + req.instance, r);
    }
    std::vector<std::string> opts = {"-std=c++17", "-arch=" + req.arch, "--use_fast_math", "-default-device"};
    opts.insert(opts.end(), req.options.begin(), req.options.end());
    std::vector<const char*> opt_ptrs;
    for (const auto& o : opts) opt_ptrs.push_back(o.c_str());
    nvrtcResult compiled = api.nvrtcCompileProgram(prog, static_cast<int>(opt_ptrs.size()), opt_ptrs.data());

    std::size_t log_size = 0;
    if (api.nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
        std::string log(log_size, '\0');
        if (api.nvrtcGetProgramLog(prog, log.data()) == NVRTC_SUCCESS) {
            log.resize(log_size - 1);  // drop the terminating NUL
            result.log = std::move(log);
        }
    }
    if (compiled != NVRTC_SUCCESS) return fail("compile " + req.instance + " for " + req.arch, compiled);

    if (!req.instance.empty()) {
        const char* lowered = nullptr;
        r = api.nvrtcGetLoweredName(prog, req.instance.c_str(), &lowered);
        if (r != NVRTC_SUCCESS || !lowered) return fail("nvrtcGetLoweredName " + req.instance, r);
        result.entry = lowered;
    }
    std::size_t size = 0;
    r = api.nvrtcGetCUBINSize(prog, &size);
    if (r != NVRTC_SUCCESS) return fail("nvrtcGetCUBINSize", r);
    if (size == 0) {
        result.log = "no cubin produced (is '" + req.arch + "' a real arch, e.g. sm_80?)\n" + result.log;
        return result;
    }
    result.binary.resize(size);
    r = api.nvrtcGetCUBIN(prog, result.binary.data());
    if (r != NVRTC_SUCCESS) return fail("nvrtcGetCUBIN", r);
    result.ok = true;
    return result;
}

}  // namespace tune::cuda
