#include "util/error_message.hpp"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <new>
#include <stdexcept>

namespace mixlab {

std::string error_message(const std::exception& error, const std::string& doing) {
  const std::string hint = "; reduce the sizes (batch, sequence, width, layers or counts) or free memory";
  if (const auto* e = dynamic_cast<const c10::OutOfMemoryError*>(&error))
    return "out of memory while running " + doing + ": " + e->what_without_backtrace() + hint;
  if (dynamic_cast<const std::bad_alloc*>(&error))
    return "out of memory while running " + doing + " (an allocation failed)" + hint;
  if (dynamic_cast<const std::length_error*>(&error))
    return "a size too large to allocate while running " + doing + hint;
  if (const auto* e = dynamic_cast<const c10::Error*>(&error)) return e->what_without_backtrace();
  if (const auto* e = dynamic_cast<const std::filesystem::filesystem_error*>(&error)) {
    std::string paths = e->path1().string();
    if (!e->path2().empty()) paths += " -> " + e->path2().string();
    return (paths.empty() ? doing : paths) + ": " + e->code().message();
  }
  if (dynamic_cast<const nlohmann::json::exception*>(&error)) {
    std::string text = error.what();  // "[json.exception.parse_error.101] parse error at ..."
    auto tag_end = text.find("] ");
    return "malformed JSON while running " + doing + ": " + (tag_end == std::string::npos ? text : text.substr(tag_end + 2));
  }
  return error.what();
}

}  // namespace mixlab
