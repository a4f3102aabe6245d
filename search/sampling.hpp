// Shared by the strategies: draw configs not proposed before.
#pragma once

#include <algorithm>
#include <random>
#include <unordered_set>
#include <vector>

#include "tune/space.hpp"

namespace tune::search {

// Appends uniform samples of `space` whose hash is not in `seen` (and records them) until
// `out` holds n configs, or 200 draws in a row were repeats: the space is (nearly) used up.
// Where the constraints reject nearly every draw (Space::sample finds none), the unseen valid
// configs are enumerated (the first 65536) and drawn from instead.
inline void sample_unseen(const Space& space, std::mt19937_64& rng, std::unordered_set<std::uint64_t>& seen,
                          std::size_t n, std::vector<Config>& out) {
    for (int misses = 0; out.size() < n && misses < 200;) {
        auto c = space.sample(rng);
        if (!c) {
            std::vector<Config> rest;
            space.enumerate([&](const Config& valid) {
                if (!seen.contains(valid.hash())) rest.push_back(valid);
                return rest.size() < 65536;
            });
            std::shuffle(rest.begin(), rest.end(), rng);
            for (std::size_t i = 0; i < rest.size() && out.size() < n; ++i) {
                seen.insert(rest[i].hash());
                out.push_back(std::move(rest[i]));
            }
            return;
        }
        if (seen.insert(c->hash()).second) {
            out.push_back(std::move(*c));
            misses = 0;
        } else {
            ++misses;
        }
    }
}

}  // namespace tune::search
