#include "util/error_message.hpp"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <new>
#include <stdexcept>

namespace mixlab {

namespace {

// A LibTorch message without its stack trace and without the "[enforce fail at
// file.cpp:127] err == 0. " that CAFFE_ENFORCE puts in front of it.
std::string torch_text(const c10::Error& e) {
  std::string text = e.what_without_backtrace();
  if (text.rfind("[enforce fail at ", 0) == 0) {
    auto condition_end = text.find(". ", text.find("] "));
    if (condition_end != std::string::npos) text = text.substr(condition_end + 2);
  }
  return text;
}

}  // namespace

std::string error_message(const std::exception& error, const std::string& doing) {
  const std::string hint = "; reduce the sizes (batch, sequence, width, layers or counts) or free memory";
  if (const auto* e = dynamic_cast<const c10::Error*>(&error)) {
    // The CPU allocator reports a failed allocation as a plain c10::Error.
    const std::string text = torch_text(*e);
    const bool oom = dynamic_cast<const c10::OutOfMemoryError*>(&error) ||
                     text.find("can't allocate memory") != std::string::npos;
    return oom ? "out of memory while running " + doing + ": " + text + hint : text;
  }
  if (dynamic_cast<const std::bad_alloc*>(&error))
    return "out of memory while running " + doing + " (an allocation failed)" + hint;
  if (dynamic_cast<const std::length_error*>(&error))
    return "a size too large to allocate while running " + doing + hint;
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
