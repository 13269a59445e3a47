// matmul: the machine's measured matrix-multiply rate in one dtype at a thread
// count, the denominator of MFU (util/matmul_rate.hpp, the same measurement a
// `host run` manifest records). bench/bench_peer.py calls it once per round and
// dtype so both sides of its comparison are divided by a peak measured beside them.
//
//   bench_matmul [--dtype float32|bfloat16] [--threads N] [--n 1024] [--repeats 5] [--json]
#include "bench_util.hpp"

#include "util/matmul_rate.hpp"

#include <nlohmann/json.hpp>

int main(int argc, char** argv) {
  std::string dtype = "float32";
  int threads = 0, repeats = 5;
  int64_t n = 1024;
  bool json = false;
  CLI::App app{"matmul: measured n x n x n matmul GFLOP/s in one dtype"};
  app.add_option("--dtype", dtype, "float32 | bfloat16 | float64");
  app.add_option("--threads", threads, "ATen threads (0: LibTorch's default)")->check(CLI::NonNegativeNumber);
  app.add_option("--n", n, "matrix size")->check(CLI::PositiveNumber);
  app.add_option("--repeats", repeats, "timed runs (the median is reported)")->check(CLI::PositiveNumber);
  app.add_flag("--json", json, "print one JSON object instead of a line of text");
  mixlab::bench::parse_or_exit(app, argc, argv);
  try {
    auto type = mixlab::bench::dtype_named(dtype);
    if (threads > 0) at::set_num_threads(threads);
    double gflops = mixlab::measure_matmul_gflops(n, type, torch::kCPU, repeats);
    if (json)
      std::cout << nlohmann::json{{"dtype", dtype}, {"threads", at::get_num_threads()}, {"n", n}, {"gflops", gflops}}
                << "\n";
    else
      std::cout << "matmul " << n << "^3 " << dtype << ", " << at::get_num_threads() << " thread(s): " << gflops
                << " GFLOP/s\n";
  } catch (const std::exception& e) {
    std::cerr << "error: bench_matmul: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
