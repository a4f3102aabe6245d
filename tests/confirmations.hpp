// Test helper: one stored re-measurement of a finalist, as the Tuner's confirmation round
// records it (tune/confirmation.hpp).
#pragma once

#include <string>

#include "tune/confirmation.hpp"

namespace tune::testing {

inline Confirmation confirmation_of(const Problem& p, const std::string& device_id, const std::string& template_name,
                                    const std::string& version, const Config& config, const std::string& finalists,
                                    int round, double median_s) {
    Confirmation c;
    c.problem_key = shape_key(p);
    c.device_id = device_id;
    c.template_name = template_name;
    c.template_version = version;
    c.config_hash = config.hash_hex();
    c.finalists = finalists;
    c.round = round;
    c.stats.median_s = c.stats.min_s = c.stats.mean_s = median_s;
    c.stats.count = 5;
    return c;
}

}  // namespace tune::testing
