#include "runtime/host_api.hpp"

#include "util/log.hpp"

#include <memory>

namespace mixlab {
namespace {

mixlab_status* status_new(int32_t code, const char* message) {
  try {
    return new mixlab_status{code == MIXLAB_OK ? MIXLAB_INTERNAL : code, message ? message : ""};
  } catch (...) {
    static mixlab_status out_of_memory{MIXLAB_OUT_OF_MEMORY, "out of memory creating a status"};
    return &out_of_memory;  // never freed: check_status recognises it
  }
}

void log(int32_t level, const char* message) {
  const char* text = message ? message : "";
  switch (level) {
    case MIXLAB_LOG_DEBUG: log::debug(std::string("[plugin] ") + text); break;
    case MIXLAB_LOG_INFO: log::info(std::string("[plugin] ") + text); break;
    case MIXLAB_LOG_WARN: log::warn(std::string("[plugin] ") + text); break;
    default: log::error(std::string("[plugin] ") + text); break;
  }
}

const mixlab_host_api kHostApi{sizeof(mixlab_host_api), MIXLAB_ABI_MAJOR, MIXLAB_ABI_MINOR, &status_new, &log};

}  // namespace

const char* code_name(int32_t code) {
  switch (code) {
    case MIXLAB_OK: return "ok";
    case MIXLAB_INVALID_ARGUMENT: return "invalid argument";
    case MIXLAB_UNIMPLEMENTED: return "unimplemented";
    case MIXLAB_INTERNAL: return "internal error";
    case MIXLAB_OUT_OF_MEMORY: return "out of memory";
    default: return "unknown error";
  }
}

const mixlab_host_api* host_api() { return &kHostApi; }

void check_status(mixlab_status* status, const std::string& context) {
  if (!status) return;
  int32_t code = status->code;
  std::string message = status->message;
  if (status->code != MIXLAB_OUT_OF_MEMORY || status->message != "out of memory creating a status") delete status;
  throw PluginError(code, context + ": " + message);
}

}  // namespace mixlab
