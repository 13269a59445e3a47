// Logging facade over spdlog. spdlog is compiled against Debian's fmt, while
// LibTorch's headers ship another fmt; translation units that include torch
// therefore log through these functions, and only log.cpp sees spdlog.
#pragma once

#include <string>

namespace mixlab::log {

enum class Level { Debug, Info, Warn, Error };

void set_level(Level level);
// Also write every message to `file` (appending).
void add_file_sink(const std::string& file);
// In a multi-process run: prefix every line with "rank N".
void set_rank(int rank);
void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace mixlab::log
