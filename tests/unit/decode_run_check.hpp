// A mixer plugin's end-to-end check: its small experiment trains a few steps and `host generate`
// continues a prompt through decode steps (the plugin's decode state, not a recomputation).
#pragma once

#include "host_test_helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>

namespace mixlab::test {

inline void check_trains_and_decodes(const std::string& experiment, const std::string& scratch_name) {
  auto out = scratch(scratch_name);
  auto run = host("run " + experiment + " --output-dir " + out.string() + cache_args() +
                  " --set training.steps=3 --set training.batch_size=2 --set validation.every=0"
                  " --set checkpoint.every=0 --set training.threads=1");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  auto m = read_json(out / "manifest.json");
  CHECK(m["status"] == "completed");
  CHECK(std::isfinite(m["results"]["final_train_loss"].get<double>()));
  auto gen = host("generate " + out.string() + " --prompt \"the cat\" --tokens 12 --temperature 0");
  INFO(gen.output);
  CHECK(gen.exit_code == 0);
  CHECK(gen.output.find("(decode steps)") != std::string::npos);
  CHECK(gen.output.find("the cat") != std::string::npos);
  std::filesystem::remove_all(out);
}

}  // namespace mixlab::test
