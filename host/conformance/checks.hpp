// The conformance checks: the same suite for every plugin implementation,
// plus the library's own family checks (reported as "family:<name>").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mixlab::conformance {

// What is checked: one implementation of one plugin file, with a config.
struct Subject {
  std::filesystem::path file;
  std::string impl;
  std::string config_json = "{}";
  std::vector<std::string> dtypes{"float64", "float32"};
  uint64_t seed = 1234;
  int64_t d_model = 64;
  int64_t max_seq_len = 64;
  std::string device = "cpu";  // where tensors of the checks live: "cpu" or "cuda"
};

enum class Verdict { Pass, Fail, Skip };

struct Outcome {
  std::string check;
  Verdict verdict = Verdict::Fail;
  double error = 0.0;
  double tolerance = 0.0;
  std::string message;
  double seconds = 0.0;
};

const char* verdict_name(Verdict v);

// Names of the checks for `subject`: the generic ones, then "family:<name>"
// for each of the library's checks when `with_family` is set.
std::vector<std::string> check_names(const Subject& subject, bool with_family);

// Runs one check in this process (the runner calls it in a worker process).
Outcome run_check(const Subject& subject, const std::string& name);

}  // namespace mixlab::conformance
