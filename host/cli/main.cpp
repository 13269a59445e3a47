// host: the mixlab command line.
#include "cli/commands.hpp"



#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"mixlab host: compose, train, evaluate and compare language-model architectures from plugins"};
  app.require_subcommand(1);
  mixlab::cli::Global global;
  app.add_option("--plugin-path", global.plugin_paths, "extra folder(s) to search for plugins")->type_name("DIR");
  mixlab::cli::Action action;
  mixlab::cli::add_plugins_command(app, global, action);
  mixlab::cli::add_conformance_commands(app, global, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
