// Fuzz target: the row decoder's JSON layer. A Measurement (with its Problem, Config and
// TimingStats) from arbitrary JSON; what decodes must survive to_json -> from_json unchanged.
// (The SQLite column decoder in db/sqlite_rows.cpp reads a Statement and is covered by the
// corrupt-row tests; its problem and config columns go through these same from_json calls.)
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"
#include "tune/measurement.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    tune::Measurement m;
    try {
        m = j.get<tune::Measurement>();
    } catch (const tune::Error&) {
        return 0;
    }
    nlohmann::json again = m;
    auto back = again.get<tune::Measurement>();
    if (!(back.problem == m.problem) || !(back.config == m.config) || back.status != m.status ||
        !(back.stats == m.stats))
        std::abort();
    try {
        tune::Problem p = tune::parse_shape_key(tune::shape_key(m.problem));
        if (!(p == m.problem)) std::abort();
    } catch (const tune::Error&) {
        std::abort();  // every valid problem's key parses back
    }
    return 0;
}
