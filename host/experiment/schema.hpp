// The experiment schema: every scalar key with its type, default, allowed
// values and meaning, in one table. The loader parses through it, `host
// validate` checks against it, and `host schema` prints docs/experiments.md's
// key reference from it (a test keeps the doc in sync).
#pragma once

#include "experiment/config.hpp"

#include <toml++/toml.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

struct Field {
  std::string key;      // "training.steps"
  std::string type;     // "integer", "float", "string", "boolean", "list of floats", "list of strings"
  std::string allowed;  // "> 0", "cosine | linear | constant", ...
  std::string help;
  bool required = false;
  // Reads the node into the config; returns an error ("expected ..., got ...") or nothing.
  std::function<std::optional<std::string>(const toml::node&, ExperimentConfig&)> read;
  std::function<nlohmann::json(const ExperimentConfig&)> write;
};

const std::vector<Field>& schema_fields();
const Field* find_field(const std::string& key);

// Sections whose keys are free-form (handled by the loader, not the table).
bool is_free_form(const std::string& key);

// The key reference as Markdown (sections, keys, types, defaults, allowed values).
std::string schema_markdown();

}  // namespace mixlab
