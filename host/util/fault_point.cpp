#include "util/fault_point.hpp"

#include <array>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace mixlab {
namespace {

struct Target {
  std::string name;
  int64_t step = -1;
};

Target parse(const char* value) {
  const std::string text = value;
  const std::array<std::string_view, 4> known{kFaultMidStep, kFaultCheckpointWrite, kFaultCheckpointDone, kFaultFinalManifest};
  auto colon = text.rfind(':');
  Target t;
  if (colon != std::string::npos) {
    t.name = text.substr(0, colon);
    const std::string step = text.substr(colon + 1);
    bool digits = !step.empty() && step.size() < 19 && step.find_first_not_of("0123456789") == std::string::npos;
    if (digits) t.step = std::stoll(step);
  }
  bool named = false;
  for (auto k : known) named = named || t.name == k;
  if (!named || t.step < 0)
    throw std::runtime_error("MIXLAB_FAULT_POINT: expected NAME:STEP with NAME one of mid-step, checkpoint-write, "
                             "checkpoint-done, final-manifest and STEP a non-negative integer; got \"" + text + "\"");
  return t;
}

}  // namespace

void fault_point(std::string_view name, int64_t step) {
  static const char* value = std::getenv("MIXLAB_FAULT_POINT");
  if (!value || !*value) return;
  static const Target target = parse(value);
  if (target.name == name && target.step == step) std::raise(SIGKILL);
}

}  // namespace mixlab
