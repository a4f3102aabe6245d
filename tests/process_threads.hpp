// Threads of this process now (/proc/self/task): for tests that a call starts or ends threads.
#pragma once

#include <cstddef>
#include <filesystem>

namespace tune::testing {

inline std::size_t process_threads() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
}

}  // namespace tune::testing
