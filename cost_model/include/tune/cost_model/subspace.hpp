// Sub-spaces: a template's space cut down to chosen knob values (to record a whole reduced
// space exhaustively), and a space rebuilt from recorded configs (to replay search offline).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "tune/space.hpp"

namespace tune::cost_model {

// The knobs of `full` with only the listed values kept ("mc=48,96 ukernel=avx512_8x32": knob
// names and values as in a config's text; unlisted knobs keep all values). Constraints are
// kept. A knob whose default was cut takes its first kept value. Throws tune::Error naming an
// unknown knob or a value the knob does not have.
std::shared_ptr<Space> restrict_space(const Space& full, std::string_view only);

// A space whose valid configs are exactly `recorded` (non-empty, same knob names in each):
// integer knobs become int sets, text knobs categoricals, and one constraint, "recorded",
// admits only the given configs. The default is `preferred` when recorded, else recorded[0].
std::shared_ptr<Space> recorded_space(const std::vector<Config>& recorded, const Config& preferred);

}  // namespace tune::cost_model
