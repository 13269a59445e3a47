// Shared helpers for the benchmarks in bench/: interleaved median timing,
// peak resident memory of one measurement, and a plain table printer.
// Benchmarks report ratios measured side by side in one run; they never
// assert times (the machines are shared and noisy).
#pragma once

#include "util/system_info.hpp"

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace mixlab::bench {

// Parses the command line; on --help or a bad flag, prints and exits.
inline void parse_or_exit(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
}

// build/plugins, seen from build/bench/<this executable>.
inline std::filesystem::path default_plugin_dir() {
  return std::filesystem::canonical("/proc/self/exe").parent_path().parent_path() / "plugins";
}

inline torch::ScalarType dtype_named(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "float64") return torch::kFloat64;
  if (name == "bfloat16") return torch::kBFloat16;
  throw std::runtime_error("unknown dtype " + name + " (float32 | float64 | bfloat16)");
}

inline void sync(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Medians (seconds) of several candidates, timed in interleaved rounds so that
// a slow period of the machine hits all of them alike.
inline std::vector<double> interleaved_medians(const std::vector<std::function<void()>>& candidates, int rounds,
                                               torch::Device device = torch::kCPU) {
  for (const auto& c : candidates) c(), sync(device);  // warm-up
  std::vector<std::vector<double>> times(candidates.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < candidates.size(); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      candidates[i]();
      sync(device);
      times[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  std::vector<double> medians;
  for (auto& t : times) {
    std::nth_element(t.begin(), t.begin() + static_cast<long>(t.size() / 2), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

// Peak resident memory above the starting level while `fn` runs (MiB); Linux
// resets the high-water mark through clear_refs (util/system_info.hpp).
inline double peak_extra_mib(const std::function<void()>& fn) {
  double base = current_rss_mib();
  reset_peak_rss();
  fn();
  return std::max(0.0, peak_rss_mib() - base);
}

// A table printed as aligned text (and optionally as Markdown to a file).
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out = std::cout) const {
    std::vector<size_t> w(header_.size());
    for (size_t i = 0; i < header_.size(); ++i) w[i] = header_[i].size();
    for (const auto& r : rows_)
      for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
      for (size_t i = 0; i < r.size(); ++i) out << std::left << std::setw(static_cast<int>(w[i]) + 2) << r[i];
      out << "\n";
    };
    line(header_);
    for (const auto& r : rows_) line(r);
  }
  void write_markdown(const std::string& path) const {
    std::ofstream out(path);
    auto line = [&](const std::vector<std::string>& r) {
      out << "|";
      for (const auto& c : r) out << " " << c << " |";
      out << "\n";
    };
    line(header_);
    out << "|";
    for (size_t i = 0; i < header_.size(); ++i) out << "---|";
    out << "\n";
    for (const auto& r : rows_) line(r);
  }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

inline std::string fmt(double v, int precision = 3) {
  std::ostringstream s;
  s << std::setprecision(precision) << v;
  return s.str();
}

// The products of a Llama-style block's linear layers (bench_gemm_paths, bench_weight_gradient):
// d_model, the rows of every product, threads and timed rounds from the command line, and the
// layers themselves (q, k, v, o: d -> d; SwiGLU gate and up: d -> 3d; down: 3d -> d).
struct BlockProducts {
  int64_t d_model, tokens = 2048;
  int threads = 2, rounds = 7;
  struct Linear {
    std::string name;
    int64_t in, out, count;  // how many per block
  };

  void add_options(CLI::App& app) {
    app.add_option("--d-model", d_model, "width of the Llama-style block (SwiGLU hidden 3 x d_model)")
        ->check(CLI::PositiveNumber);
    app.add_option("--tokens", tokens, "rows of every product (batch x sequence)")->check(CLI::PositiveNumber);
    app.add_option("--threads", threads, "ATen threads")->check(CLI::PositiveNumber);
    app.add_option("--rounds", rounds, "timed rounds (the median is reported)")->check(CLI::PositiveNumber);
  }

  std::vector<Linear> linears() const {
    const int64_t d = d_model, h = 3 * d_model;
    return {{"q, k, v, o", d, d, 4}, {"gate, up", d, h, 2}, {"down", h, d, 1}};
  }
};

}  // namespace mixlab::bench
