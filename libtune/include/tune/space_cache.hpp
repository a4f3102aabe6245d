// SpaceCache: a template's spaces by shape key, each built once and shared: templates whose
// space depends on the problem (GPU kernels sized by the shape) answer space() from it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "tune/problem.hpp"
#include "tune/space.hpp"

namespace tune {

class SpaceCache {
public:
    // The space of p's shape; `build()` makes it the first time (under the lock).
    template <class Build>
    std::shared_ptr<const Space> get(const Problem& p, Build&& build) const {
        std::lock_guard lock(mutex_);
        auto& slot = spaces_[shape_key(p)];
        if (!slot) slot = build();
        return slot;
    }

private:
    mutable std::mutex mutex_;
    mutable std::map<std::string, std::shared_ptr<const Space>> spaces_;
};

}  // namespace tune
