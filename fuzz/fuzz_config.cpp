// Fuzz target: the Config decoders. Text goes through Config::parse (and must round-trip via
// text()); the same bytes as JSON go through from_json. Bad input must end in tune::Error.
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tune/config.hpp"
#include "tune/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        tune::Config c = tune::Config::parse(text);
        if (!(tune::Config::parse(c.text()) == c)) std::abort();  // canonical text round-trips
        nlohmann::json j = c;
        if (!(j.get<tune::Config>() == c)) std::abort();
        if (j.get<tune::Config>().hash() != c.hash()) std::abort();
    } catch (const tune::Error&) {
    }
    auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    try {
        // Labels never read as numbers, so a JSON config's text parses back to the same config.
        auto c = j.get<tune::Config>();
        if (!(tune::Config::parse(c.text()) == c)) std::abort();
    } catch (const tune::Error&) {
    }
    return 0;
}
