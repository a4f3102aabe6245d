// Error type thrown at libtune's API boundaries: the message names the field and the bad value.
#pragma once

#include <stdexcept>
#include <string>

namespace tune {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An Error in the caller's arguments rather than in the library, a store or the machine (e.g.
// an output that overlaps an input); the C API reports it as TUNE_ERR_INVALID_ARGUMENT.
class InvalidArgument : public Error {
public:
    using Error::Error;
};

// An Error of a store itself: SQLite could not open, read or write it (locked, full disk,
// damaged file); the C API reports it as TUNE_ERR_DATABASE.
class DatabaseError : public Error {
public:
    using Error::Error;
};

// Throws Error(message) when `ok` is false. Keeps validation code one line per rule; the
// message is built even when ok, so hot paths throw directly instead.
inline void require(bool ok, const std::string& message) {
    if (!ok) throw Error(message);
}

}  // namespace tune
