// The services the host offers plugins (status objects, logging) and the
// conversion of a returned status into a C++ exception on the host side.
#pragma once

#include <mixlab/plugin.h>

#include <stdexcept>
#include <string>

struct mixlab_status {
  int32_t code;
  std::string message;
};

namespace mixlab {

// An error reported by a plugin (or by the host about a plugin).
class PluginError : public std::runtime_error {
 public:
  PluginError(int32_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int32_t code() const { return code_; }

 private:
  int32_t code_;
};

const char* code_name(int32_t code);

// The table handed to every plugin at the handshake.
const mixlab_host_api* host_api();

// Takes ownership of `status`; throws PluginError("<context>: <message>") when it is an error.
void check_status(mixlab_status* status, const std::string& context);

}  // namespace mixlab
