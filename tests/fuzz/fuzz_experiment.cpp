// libFuzzer target: experiment text -> parse_experiment. Every input must end
// in a config or an ExperimentError (positions and messages); any other
// exception, crash, hang or sanitizer report is a finding. A first line
// "#set KEY=VALUE" is also applied as a --set override.
#include "experiment/loader.hpp"

#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  if (text.rfind("#set ", 0) == 0) {
    auto nl = text.find('\n');
    overrides.emplace_back(text.substr(5, nl == std::string_view::npos ? std::string_view::npos : nl - 5));
  }
  try {
    mixlab::ExperimentConfig config = mixlab::parse_experiment(text, "fuzz.toml", overrides);
    (void)config.to_json();  // what run writes to the manifest
    (void)config.layers();
  } catch (const mixlab::ExperimentError& e) {
    if (e.diagnostics().empty()) __builtin_trap();  // an error must say what is wrong
  }
  return 0;
}
