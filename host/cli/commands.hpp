// The host's subcommands; each registers itself on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mixlab::cli {

// A command returns the process exit code.
using Action = std::function<int()>;

void add_plugins_command(CLI::App& app, Action& action);
void add_conformance_commands(CLI::App& app, Action& action);
void add_experiment_commands(CLI::App& app, Action& action);
void add_model_commands(CLI::App& app, Action& action);
void add_study_commands(CLI::App& app, Action& action);
void add_interop_commands(CLI::App& app, Action& action);

}  // namespace mixlab::cli
