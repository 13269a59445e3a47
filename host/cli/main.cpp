// host: the mixlab command line.
#include "cli/commands.hpp"
#include "experiment/loader.hpp"
#include "util/allocator.hpp"
#include "util/error_message.hpp"

#include <c10/util/Logging.h>

#include <iostream>

int main(int argc, char** argv) {
  // A failed CAFFE_ENFORCE (e.g. the CPU allocator out of memory) must throw, to be
  // reported like any error; when this flag is set LibTorch aborts the process instead,
  // and in this binary it is found set before main runs.
  FLAGS_caffe2_use_fatal_for_enforce = false;
  mixlab::keep_freed_memory();  // each step's freed activations kept for the next (util/allocator.hpp)
  CLI::App app{"mixlab host: compose, train, evaluate and compare language-model architectures from plugins"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  std::vector<std::string> plugin_paths;
  app.add_option("--plugin-path", plugin_paths, "extra folder(s) to search for plugins")->type_name("DIR");
  mixlab::cli::Action action;
  mixlab::cli::add_experiment_commands(app, action);
  mixlab::cli::add_model_commands(app, action);
  mixlab::cli::add_study_commands(app, action);
  mixlab::cli::add_interop_commands(app, action);
  mixlab::cli::add_plugins_command(app, action);
  mixlab::cli::add_conformance_commands(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // --plugin-path folders join MIXLAB_PLUGIN_PATH, which every registry searches.
  if (!plugin_paths.empty()) {
    std::string env;
    for (const auto& p : plugin_paths) env += (env.empty() ? "" : ":") + p;
    if (const char* old = std::getenv("MIXLAB_PLUGIN_PATH")) env += std::string(":") + old;
    setenv("MIXLAB_PLUGIN_PATH", env.c_str(), 1);
  }
  const std::string command = "host " + app.get_subcommands().front()->get_name();
  try {
    return action();
  } catch (const mixlab::ExperimentError& e) {
    for (const auto& d : e.diagnostics()) std::cerr << d.str() << "\n";
    std::cerr << e.diagnostics().size() << " problem" << (e.diagnostics().size() == 1 ? "" : "s") << " found\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << mixlab::error_message(e, command) << std::endl;
    return 1;
  } catch (...) {
    std::cerr << "error: " << command << " failed with an exception that is not a std::exception" << std::endl;
    return 1;
  }
}
