// gemm_paths: the float32 matrix products of one training step through two
// CPU GEMM libraries of the pinned LibTorch, side by side: MKL (what at::linear
// and at::mm call for float32, the path both mixlab and HF eager take) and
// oneDNN (at::mkldnn_linear, which needs its tensors converted to and from its
// own layout). For each linear layer of the d_model D Llama-style block
// (q, k, v, o: D -> D; SwiGLU gate and up: D -> 3D; down: 3D -> D) it times the
// forward product, the input gradient and the weight gradient, and reports
// GFLOP/s and oneDNN's time over MKL's per shape and for the whole step. The
// question it answers (#18): would routing float32 linears through oneDNN
// make the step faster on this CPU.
//
//   bench_gemm_paths [--d-model 512] [--tokens 2048] [--threads 2] [--rounds 7]
#include "bench_util.hpp"

int main(int argc, char** argv) {
  mixlab::bench::BlockProducts block{512};
  CLI::App app{"gemm_paths: float32 linear forward/backward through MKL and oneDNN"};
  block.add_options(app);
  mixlab::bench::parse_or_exit(app, argc, argv);
  if (!at::hasMKLDNN()) {
    std::cerr << "error: bench_gemm_paths: this LibTorch has no oneDNN (MKLDNN)\n";
    return 1;
  }
  at::set_num_threads(block.threads);
  torch::NoGradGuard no_grad;
  const int64_t tokens = block.tokens;
  const int rounds = block.rounds;
  std::cout << "gemm_paths: float32, " << tokens << " tokens, d_model " << block.d_model << ", "
            << at::get_num_threads() << " thread(s), median of " << rounds << " interleaved rounds\n\n";
  mixlab::bench::Table table({"linear", "shape", "MKL fwd", "MKL dx", "MKL dW", "oneDNN fwd", "oneDNN dx", "oneDNN dW",
                              "oneDNN / MKL time"});
  double mkl_step = 0, dnn_step = 0;
  for (const auto& l : block.linears()) {
    auto x = torch::randn({tokens, l.in}), w = torch::randn({l.out, l.in}), g = torch::randn({tokens, l.out});
    // MKL: y = x W^T, dx = g W, dW = g^T x.
    auto mkl_fwd = [&] { at::linear(x, w); };
    auto mkl_dx = [&] { at::mm(g, w); };
    auto mkl_dw = [&] { at::mm(g.t(), x); };
    // oneDNN: the same three as linears of its layout; the conversions are part of its cost.
    auto dnn_fwd = [&] { at::mkldnn_linear(x.to_mkldnn(), w).to_dense(); };
    auto dnn_dx = [&] { at::mkldnn_linear(g.to_mkldnn(), w.t().contiguous()).to_dense(); };
    auto dnn_dw = [&] { at::mkldnn_linear(g.t().contiguous().to_mkldnn(), x.t().contiguous()).to_dense(); };
    auto t = mixlab::bench::interleaved_medians({mkl_fwd, mkl_dx, mkl_dw, dnn_fwd, dnn_dx, dnn_dw}, rounds);
    const double flops = 2.0 * static_cast<double>(tokens * l.in * l.out);
    auto rate = [&](double s) { return mixlab::bench::fmt(flops / s / 1e9); };
    const double mkl = t[0] + t[1] + t[2], dnn = t[3] + t[4] + t[5];
    mkl_step += static_cast<double>(l.count) * mkl;
    dnn_step += static_cast<double>(l.count) * dnn;
    table.add({l.name, std::to_string(l.in) + " -> " + std::to_string(l.out), rate(t[0]), rate(t[1]), rate(t[2]),
               rate(t[3]), rate(t[4]), rate(t[5]), mixlab::bench::fmt(dnn / mkl)});
  }
  table.print();
  std::cout << "\nGFLOP/s per product; one block's linears, forward and backward: oneDNN / MKL time = "
            << mixlab::bench::fmt(dnn_step / mkl_step) << "\n";
  return 0;
}
