// What a person reads when a command fails: the exception's message, with the
// wording of the libraries underneath replaced by what happened. Out of memory
// (c10::OutOfMemoryError, std::bad_alloc, a std::length_error from a huge
// resize) says what was being done; a file system error names its path; JSON
// errors lose their "[json.exception...]" tag; LibTorch errors lose their stack trace.
#pragma once

#include <exception>
#include <string>

namespace mixlab {

// `doing` says what was running, e.g. "host compile".
std::string error_message(const std::exception& error, const std::string& doing);

}  // namespace mixlab
