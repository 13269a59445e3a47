// The host's subcommands; each registers itself on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mixlab::cli {

// Options every command shares.
struct Global {
  std::vector<std::string> plugin_paths;  // --plugin-path, added to the search path
};

// A command returns the process exit code.
using Action = std::function<int()>;

void add_plugins_command(CLI::App& app, const Global& global, Action& action);
void add_conformance_commands(CLI::App& app, const Global& global, Action& action);

}  // namespace mixlab::cli
