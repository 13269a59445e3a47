// metrics.jsonl: one JSON object per logged step (lingua's convention, slash
// keys: train/loss, optim/lr, speed/tok_per_s, val/loss, ...). Lines are
// appended and flushed as they are written.
#pragma once

#include "util/atomic_file.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace mixlab {

class MetricsLog {
 public:
  // On resume, keeps only the lines up to `keep_until_step` (the checkpoint's step): the resumed
  // run writes the later ones again, and a torn last line (a kill mid-write) is dropped.
  MetricsLog(const std::filesystem::path& file, int64_t keep_until_step = -1) {
    if (keep_until_step >= 0 && std::filesystem::exists(file)) {
      std::ifstream in(file);
      std::string line, kept;
      while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", int64_t{0}) <= keep_until_step) kept += line + "\n";
      }
      write_file_atomic(file, kept);  // a kill here leaves the old file whole
    }
    out_.open(file, std::ios::app);
    if (!out_) throw std::runtime_error(file.string() + ": cannot open for writing");
  }
  void write(const nlohmann::json& j) {
    out_ << j.dump() << "\n";
    out_.flush();
    if (!out_) throw std::runtime_error("cannot write metrics.jsonl (disk full?)");
  }

 private:
  std::ofstream out_;
};

}  // namespace mixlab
