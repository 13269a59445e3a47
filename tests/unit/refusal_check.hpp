// A bad experiment text and what its refusal must name: the field, its line and part of the
// message (docs/experiments.md, "Errors"). One loop for every test of a feature's bad configs.
#pragma once

#include "experiment/loader.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace mixlab::test {

struct RefusalCase {
  std::string text, field, message;
  int64_t line;
};

// parse_experiment refuses each text with a diagnostic on its field, at its line, saying its message.
inline void check_refusals(const std::vector<RefusalCase>& cases) {
  for (const auto& c : cases) {
    CAPTURE(c.field);
    CAPTURE(c.text);
    try {
      mixlab::parse_experiment(c.text, "x.toml");
      FAIL("accepted");
    } catch (const mixlab::ExperimentError& e) {
      const auto& d = e.diagnostics();
      auto it = std::find_if(d.begin(), d.end(), [&](const mixlab::Diagnostic& x) { return x.field == c.field; });
      REQUIRE_MESSAGE(it != d.end(), e.what());
      CHECK(it->pos.line == c.line);
      CHECK_MESSAGE(it->message.find(c.message) != std::string::npos, it->message);
    }
  }
}

}  // namespace mixlab::test
