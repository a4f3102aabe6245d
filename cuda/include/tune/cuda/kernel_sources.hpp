// The CUDA kernel sources (templates/gemm/cuda/*.cu, *.cuh, *.h), embedded into the library
// at build time so NVRTC compiles exactly the code the template versions were hashed from.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tune::cuda {

// (file name, text) of every embedded file, in a stable order.
const std::vector<std::pair<std::string, std::string>>& kernel_sources();
// The text of one file; throws tune::Error naming it when absent.
const std::string& kernel_source(const std::string& name);
// Every embedded header (*.cuh, *.h): what a program may include by name.
std::vector<std::pair<std::string, std::string>> kernel_headers();

}  // namespace tune::cuda
