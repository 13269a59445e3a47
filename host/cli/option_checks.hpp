// Checks of command-line values that CLI11 lacks: its Range lets NaN through
// (every comparison with NaN is false) and its ExistingFile accepts /dev/zero and FIFOs.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <filesystem>
#include <string>

namespace mixlab::cli {

// A finite number (not nan, inf or -inf); values that are not numbers are left to the conversion's message.
inline CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (CLI::detail::lexical_cast(text, value) && !std::isfinite(value))
          return "expected a finite number, got " + text;
        return "";
      },
      "FINITE");
}

// An existing regular file (or a link to one): reading a device or FIFO never ends or blocks.
inline CLI::Validator regular_file() {
  return CLI::Validator(
      [](std::string& path) -> std::string {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) return path + ": no such file";
        if (!std::filesystem::is_regular_file(path, ec)) return path + ": not a regular file";
        return "";
      },
      "FILE");
}

}  // namespace mixlab::cli
