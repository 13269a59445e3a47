// `host conformance TARGET` and its worker process.
#include "cli/commands.hpp"
#include "conformance/runner.hpp"

#include <sstream>

namespace mixlab::cli {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

void add_conformance_commands(CLI::App& app, Action& action) {
  static conformance::RunnerOptions opts;
  static std::string impl, dtypes = "float64,float32", only, junit;
  auto* cmd = app.add_subcommand("conformance", "run the conformance suite against a plugin (name or .so path)");
  cmd->add_option("target", opts.target, "plugin name or path to a plugin file")->required();
  cmd->add_option("--impl", impl, "only this implementation");
  cmd->add_option("--dtype", dtypes, "comma-separated dtypes for shape and finiteness checks");
  cmd->add_option("--seed", opts.base.seed, "seed for inputs and parameters");
  cmd->add_option("--config", opts.base.config_json, "plugin config as JSON");
  cmd->add_option("--d-model", opts.base.d_model, "model width used by the checks");
  cmd->add_option("--max-seq-len", opts.base.max_seq_len, "maximum sequence length used by the checks");
  cmd->add_option("--device", opts.base.device, "where the checks' tensors live (the library's family checks run on cpu)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--timeout", opts.timeout_s, "seconds a single check may take before it is killed");
  cmd->add_option("--only", only, "comma-separated check names to run");
  cmd->add_option("--junit", junit, "write a JUnit XML report");
  cmd->callback([&] {
    action = [&] {
      if (!impl.empty()) opts.impl = impl;
      if (!junit.empty()) opts.junit = junit;
      opts.base.dtypes = split(dtypes);
      opts.only = split(only);
      return conformance::run_conformance(opts);
    };
  });

  static conformance::Subject subject;
  static std::string file, checks, worker_dtypes;
  auto* worker = app.add_subcommand("conformance-worker", "")->group("");  // internal: one worker process
  worker->add_option("--file", file)->required();
  worker->add_option("--impl", subject.impl)->required();
  worker->add_option("--config", subject.config_json);
  worker->add_option("--dtype", worker_dtypes);
  worker->add_option("--seed", subject.seed);
  worker->add_option("--d-model", subject.d_model);
  worker->add_option("--max-seq-len", subject.max_seq_len);
  worker->add_option("--device", subject.device);
  worker->add_option("--checks", checks)->required();
  worker->callback([&] {
    action = [&] {
      subject.file = file;
      subject.dtypes = split(worker_dtypes);
      return conformance::run_worker(subject, split(checks));
    };
  });
}

}  // namespace mixlab::cli
