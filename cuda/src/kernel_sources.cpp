#include "tune/cuda/kernel_sources.hpp"

#include "tune/error.hpp"

namespace tune::cuda {

const std::string& kernel_source(const std::string& name) {
    for (const auto& [n, text] : kernel_sources())
        if (n == name) return text;
    throw Error("CUDA kernel source '" + name + "' is not embedded in this build");
}

std::vector<std::pair<std::string, std::string>> kernel_headers() {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [n, text] : kernel_sources())
        if (n.ends_with(".cuh") || n.ends_with(".h")) out.emplace_back(n, text);
    return out;
}

}  // namespace tune::cuda
