// Fuzz target: config.json bytes through nlohmann's parser, then tune::parse_model_config and
// the layer's GEMM and attention shapes. Bad input must end in tune::Error, nothing else.
#include <nlohmann/json.hpp>

#include "tune/error.hpp"
#include "tune/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    try {
        tune::ModelShape m = tune::parse_model_config(j);
        tune::layer_gemms(m, {1, 16, 512}, tune::DType::f32);
        tune::layer_attention(m, {1, 16, 512}, 4096);
        tune::describe(m);
    } catch (const tune::Error&) {
    }
    return 0;
}
