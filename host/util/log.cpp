#include "util/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

namespace mixlab::log {

void set_level(Level level) {
  static const spdlog::level::level_enum map[] = {spdlog::level::debug, spdlog::level::info, spdlog::level::warn,
                                                  spdlog::level::err};
  spdlog::set_level(map[static_cast<int>(level)]);
}

namespace {
std::string g_pattern;  // empty: spdlog's default
}

void add_file_sink(const std::string& file) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file);
  if (!g_pattern.empty()) sink->set_pattern(g_pattern);
  spdlog::default_logger()->sinks().push_back(sink);
}

void set_rank(int rank) {
  g_pattern = "[%Y-%m-%d %H:%M:%S.%e] [rank " + std::to_string(rank) + "] [%^%l%$] %v";
  spdlog::set_pattern(g_pattern);
}

void debug(const std::string& message) { spdlog::debug("{}", message); }
void info(const std::string& message) { spdlog::info("{}", message); }
void warn(const std::string& message) { spdlog::warn("{}", message); }
void error(const std::string& message) { spdlog::error("{}", message); }

}  // namespace mixlab::log
