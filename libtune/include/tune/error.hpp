// Error type thrown at libtune's API boundaries: the message names the field and the bad value.
#pragma once

#include <stdexcept>
#include <string>

namespace tune {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Throws Error(message) when `ok` is false. Keeps validation code one line per rule; the
// message is built even when ok, so hot paths throw directly instead.
inline void require(bool ok, const std::string& message) {
    if (!ok) throw Error(message);
}

}  // namespace tune
