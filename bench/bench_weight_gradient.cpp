// weight_gradient: the bfloat16 matrix products of a Llama-style block's linear
// layers (q, k, v, o: D -> D; SwiGLU gate and up: D -> 3D; down: 3D -> D), timed
// side by side: the forward product x·Wᵀ, the input gradient g·W, and the weight
// gradient gᵀ·x two ways — ATen's mm with its transposed first operand (what
// autograd calls) and training.fused's route (train/row_major_matmul.hpp: the
// operand copied to row-major, then a row-major product), with the copy alone.
// Before each timed product the caches are flushed by streaming 64 MiB, as in a
// training step, where the operands come from memory; the order of the products
// alternates from round to round. The question it answers
// (#18): how much of ATen's weight-gradient rate the row-major route recovers.
//
//   bench_weight_gradient [--d-model 1024] [--tokens 2048] [--threads 2] [--rounds 7]
#include "bench_util.hpp"
#include "train/row_major_matmul.hpp"

int main(int argc, char** argv) {
  mixlab::bench::BlockProducts block{1024};
  CLI::App app{"weight_gradient: bfloat16 linear products, ATen's transposed weight gradient and the row-major one"};
  block.add_options(app);
  mixlab::bench::parse_or_exit(app, argc, argv);
  at::set_num_threads(block.threads);
  torch::NoGradGuard no_grad;
  const int64_t tokens = block.tokens;
  const int rounds = block.rounds;
  auto flush = torch::zeros({64 << 20}, torch::kUInt8);
  std::cout << "weight_gradient: bfloat16, " << tokens << " tokens, d_model " << block.d_model << ", "
            << at::get_num_threads() << " thread(s), caches flushed before each product, median of " << rounds
            << " rounds in alternating order\n\n";
  mixlab::bench::Table table({"linear", "shape", "fwd", "dx", "dW ATen", "dW row-major", "copy ms",
                              "dW row-major / ATen rate"});
  double aten_step = 0, row_major_step = 0;
  for (const auto& l : block.linears()) {
    const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16);
    auto x = torch::randn({tokens, l.in}, bf16), w = torch::randn({l.out, l.in}, bf16);
    auto g = torch::randn({tokens, l.out}, bf16);
    const std::vector<std::function<void()>> products{
        [&] { at::mm(x, w.t()); },
        [&] { at::mm(g, w); },
        [&] { at::mm(g.t(), x); },
        [&] { mixlab::mm_row_major_operands(g.t(), x); },
        [&] { mixlab::row_major_copy(g.t()); }};
    std::vector<std::vector<double>> times(products.size());
    for (int r = -1; r < rounds; ++r)  // round -1 warms up; odd rounds run in reverse (no place is favoured)
      for (size_t k = 0; k < products.size(); ++k) {
        const size_t i = r % 2 ? products.size() - 1 - k : k;
        flush.add_(1);
        auto t0 = std::chrono::steady_clock::now();
        products[i]();
        if (r >= 0) times[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    std::vector<double> t;
    for (auto& s : times) {
      std::nth_element(s.begin(), s.begin() + static_cast<long>(s.size() / 2), s.end());
      t.push_back(s[s.size() / 2]);
    }
    const double flops = 2.0 * static_cast<double>(tokens * l.in * l.out);
    auto rate = [&](double s) { return mixlab::bench::fmt(flops / s / 1e9); };
    aten_step += static_cast<double>(l.count) * t[2];
    row_major_step += static_cast<double>(l.count) * t[3];
    table.add({l.name, std::to_string(l.in) + " -> " + std::to_string(l.out), rate(t[0]), rate(t[1]), rate(t[2]),
               rate(t[3]), mixlab::bench::fmt(t[4] * 1e3), mixlab::bench::fmt(t[2] / t[3])});
  }
  table.print();
  std::cout << "\nGFLOP/s per product; one block's weight gradients, ATen time / row-major time = "
            << mixlab::bench::fmt(aten_step / row_major_step) << "\n";
  return 0;
}
