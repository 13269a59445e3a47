#include "train/ab_compare.hpp"

#include "data/dataset.hpp"
#include "experiment/experiment_data.hpp"
#include "experiment/loader.hpp"
#include "model/model.hpp"
#include "train/evaluate.hpp"
#include "train/trainer.hpp"
#include "util/atomic_file.hpp"
#include "util/system_info.hpp"

#include <mixlab/testing.hpp>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace mixlab {
namespace {

struct Swap {
  std::string plugin, a, b;
};

Swap parse_swap(const std::string& text) {
  auto eq = text.find('='), colon = text.find(':');
  if (eq == std::string::npos || colon == std::string::npos || colon < eq || eq == 0 || colon == eq + 1 ||
      colon + 1 == text.size())
    throw std::runtime_error("--swap expects plugin=implA:implB (e.g. attention=reference:flash), got \"" + text + "\"");
  return {text.substr(0, eq), text.substr(eq + 1, colon - eq - 1), text.substr(colon + 1)};
}

// The config with every use of the plugin pinned to `impl`; counts the uses.
ExperimentConfig with_impl(ExperimentConfig c, const Swap& s, const std::string& impl, int& uses) {
  auto pin = [&](PluginChoice& choice) {
    if (choice.plugin == s.plugin) choice.impl = impl, ++uses;
  };
  auto pin_layer = [&](LayerTemplate& t) {
    pin(t.mixer), pin(t.ffn);
    if (t.streams)
      for (auto& s : t.streams->streams) pin(s.mixer);
  };
  for (auto& [name, t] : c.model.templates) pin_layer(t);
  for (auto& [i, t] : c.model.overrides) pin_layer(t);
  return c;
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.detach().to(torch::kFloat64) - b.detach().to(torch::kFloat64)).abs().max().item<double>();
}

// The gradients of one layer's parameters, flattened (or of the embeddings/head for layer -1).
torch::Tensor layer_grads(const Model& m, int64_t layer) {
  std::string prefix = layer < 0 ? "" : "layers." + std::to_string(layer) + ".";
  std::vector<torch::Tensor> parts;
  for (const auto& p : m.parameters()) {
    bool in_layer = layer < 0 ? p.name.rfind("layers.", 0) != 0 : p.name.rfind(prefix, 0) == 0;
    if (in_layer && p.tensor.grad().defined()) parts.push_back(p.tensor.grad().flatten());
  }
  return parts.empty() ? torch::zeros({1}) : torch::cat(parts);
}

std::string fmt(double v) {
  std::ostringstream s;
  s << std::setprecision(3) << v;
  return s.str();
}

}  // namespace

int run_ab(const AbOptions& o) {
  Swap swap = parse_swap(o.swap);
  ExperimentConfig base = load_experiment(o.experiment, o.overrides);
  int uses_a = 0, uses_b = 0;
  ExperimentConfig ca = with_impl(base, swap, swap.a, uses_a), cb = with_impl(base, swap, swap.b, uses_b);
  if (uses_a == 0) throw std::runtime_error("the experiment uses no plugin named \"" + swap.plugin + "\"");
  Registry registry = experiment_registry(base);
  for (const auto* c : {&ca, &cb}) {
    auto problems = check_plugins(*c, registry);
    if (!problems.empty()) throw ExperimentError(problems);
  }
  set_threads(base);
  auto dataset = open_dataset(base);
  const int64_t vocab = dataset->tokenizer().vocab_size();
  Model a(ca, registry, vocab, torch::kCPU), b(cb, registry, vocab, torch::kCPU);

  // One parameter layout, or an error listing what differs.
  std::vector<std::string> differences;
  std::map<std::string, torch::Tensor> b_params;
  for (const auto& p : b.parameters()) b_params[p.name] = p.tensor;
  for (const auto& p : a.parameters()) {
    auto it = b_params.find(p.name);
    if (it == b_params.end()) differences.push_back(p.name + " only in " + swap.a);
    else if (it->second.sizes() != p.tensor.sizes())
      differences.push_back(p.name + " is " + c10::str(p.tensor.sizes()) + " in " + swap.a + " but " +
                            c10::str(it->second.sizes()) + " in " + swap.b);
    b_params.erase(p.name);
  }
  for (const auto& [name, t] : b_params) differences.push_back(name + " only in " + swap.b);
  if (!differences.empty()) {
    std::string list;
    for (const auto& d : differences) list += "\n  " + d;
    throw std::runtime_error(swap.plugin + ": " + swap.a + " and " + swap.b + " do not share a parameter layout:" + list);
  }
  auto dtype = o.dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < a.parameters().size(); ++i) {
      a.parameters()[i].tensor.set_data(a.parameters()[i].tensor.to(dtype));
      b.parameters()[i].tensor.set_data(a.parameters()[i].tensor.detach().clone());
    }
  }
  std::cout << "A/B: " << swap.plugin << " " << swap.a << " (A) vs " << swap.b << " (B), " << uses_a
            << " template slot(s), identical weights, " << o.dtype << "\n";

  // Numerics on one batch: per layer outputs, logits, per layer gradients.
  auto batch = dataset->next_train(base.training.batch_size, base.data.seq_len);
  auto run = [&](Model& m, std::vector<torch::Tensor>& outs) {
    for (const auto& p : m.parameters()) p.tensor.mutable_grad() = torch::Tensor();
    auto r = m.forward(batch.inputs, false, 0, &outs);
    auto [sum, count] = token_loss_sum(r.logits, batch.targets);
    ((sum / static_cast<double>(count)) + r.aux_loss).backward();
    return r.logits.detach();
  };
  std::vector<torch::Tensor> outs_a, outs_b;
  auto logits_a = run(a, outs_a), logits_b = run(b, outs_b);
  nlohmann::json report{{"swap", o.swap}, {"dtype", o.dtype}, {"tolerance", o.tolerance}, {"layers", nlohmann::json::array()}};
  bool ok = true;
  std::cout << "\n" << std::left << std::setw(8) << "layer" << std::setw(14) << "out max|d|" << std::setw(14) << "out relRMS"
            << std::setw(14) << "grad max|d|" << std::setw(14) << "grad relRMS" << "\n";
  for (size_t i = 0; i <= outs_a.size(); ++i) {
    bool is_logits = i == outs_a.size();
    auto oa = is_logits ? logits_a : outs_a[i], ob = is_logits ? logits_b : outs_b[i];
    auto ga = layer_grads(a, is_logits ? -1 : static_cast<int64_t>(i)), gb = layer_grads(b, is_logits ? -1 : static_cast<int64_t>(i));
    double out_rel = testing::relative_rms(ob, oa), grad_rel = testing::relative_rms(gb, ga);
    ok = ok && out_rel <= o.tolerance && grad_rel <= o.tolerance;
    std::string name = is_logits ? "logits" : std::to_string(i);
    std::cout << std::left << std::setw(8) << name << std::setw(14) << fmt(max_abs(ob, oa)) << std::setw(14) << fmt(out_rel)
              << std::setw(14) << fmt(max_abs(gb, ga)) << std::setw(14) << fmt(grad_rel)
              << (out_rel <= o.tolerance && grad_rel <= o.tolerance ? "" : "  > tolerance") << "\n";
    report["layers"].push_back({{"layer", name}, {"output_max_abs", max_abs(ob, oa)}, {"output_rel_rms", out_rel},
                                {"grad_max_abs", max_abs(gb, ga)}, {"grad_rel_rms", grad_rel}});
  }

  // Speed and memory: interleaved rounds, medians.
  std::vector<double> fa, fb, ba, bb, ma, mb;
  auto time_one = [&](Model& m, std::vector<double>& fwd, std::vector<double>& bwd, std::vector<double>& mem) {
    for (const auto& p : m.parameters()) p.tensor.mutable_grad() = torch::Tensor();
    double base_rss = current_rss_mib();
    reset_peak_rss();
    auto t0 = std::chrono::steady_clock::now();
    auto r = m.forward(batch.inputs, false, 0);
    auto [sum, count] = token_loss_sum(r.logits, batch.targets);
    auto loss = sum / static_cast<double>(count) + r.aux_loss;
    auto t1 = std::chrono::steady_clock::now();
    loss.backward();
    auto t2 = std::chrono::steady_clock::now();
    fwd.push_back(std::chrono::duration<double>(t1 - t0).count());
    bwd.push_back(std::chrono::duration<double>(t2 - t1).count());
    mem.push_back(std::max(0.0, peak_rss_mib() - base_rss));
  };
  std::vector<double> warm;
  time_one(a, warm, warm, warm), time_one(b, warm, warm, warm);
  for (int64_t r = 0; r < o.repeats; ++r) time_one(a, fa, ba, ma), time_one(b, fb, bb, mb);
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  std::cout << "\n" << std::left << std::setw(12) << "" << std::setw(16) << "forward (ms)" << std::setw(16) << "backward (ms)"
            << "peak extra memory (MiB)\n";
  std::cout << std::setw(12) << ("A " + swap.a) << std::setw(16) << fmt(1e3 * median(fa)) << std::setw(16) << fmt(1e3 * median(ba))
            << fmt(median(ma)) << "\n";
  std::cout << std::setw(12) << ("B " + swap.b) << std::setw(16) << fmt(1e3 * median(fb)) << std::setw(16) << fmt(1e3 * median(bb))
            << fmt(median(mb)) << "\n";
  std::cout << std::setw(12) << "B / A" << std::setw(16) << fmt(median(fb) / median(fa)) << std::setw(16)
            << fmt(median(bb) / median(ba)) << "(medians of " << o.repeats << " interleaved rounds)\n";
  report["speed"] = {{"a", {{"forward_s", median(fa)}, {"backward_s", median(ba)}, {"peak_extra_mib", median(ma)}}},
                     {"b", {{"forward_s", median(fb)}, {"backward_s", median(bb)}, {"peak_extra_mib", median(mb)}}}};

  if (o.train_steps > 0) {
    // Two copies from the same initialisation, the same batches, the same schedule.
    auto adam = [&](Model& m) {
      std::vector<torch::Tensor> ps;
      for (const auto& p : m.parameters()) ps.push_back(p.tensor);
      return torch::optim::AdamW(ps, torch::optim::AdamWOptions(base.optimizer.lr)
                                         .betas({base.optimizer.betas[0], base.optimizer.betas[1]})
                                         .eps(base.optimizer.eps)
                                         .weight_decay(base.optimizer.weight_decay));
    };
    auto oa = adam(a), ob = adam(b);
    nlohmann::json curve = nlohmann::json::array();
    std::cout << "\nstep   loss A       loss B       |A - B|\n";
    for (int64_t step = 1; step <= o.train_steps; ++step) {
      auto tb = dataset->next_train(base.training.batch_size, base.data.seq_len);
      double la = 0, lb = 0;
      for (auto [m, opt, l] : {std::tuple{&a, &oa, &la}, std::tuple{&b, &ob, &lb}}) {
        opt->zero_grad();
        auto r = m->forward(tb.inputs, true, static_cast<uint64_t>(step));
        auto [sum, count] = token_loss_sum(r.logits, tb.targets);
        auto loss = sum / static_cast<double>(count);
        (loss + r.aux_loss).backward();
        opt->step();
        *l = loss.item<double>();
      }
      curve.push_back({{"step", step}, {"loss_a", la}, {"loss_b", lb}});
      if (step % std::max<int64_t>(1, o.train_steps / 10) == 0 || step == o.train_steps)
        std::cout << std::left << std::setw(7) << step << std::setw(13) << fmt(la) << std::setw(13) << fmt(lb)
                  << fmt(std::abs(la - lb)) << "\n";
    }
    report["training"] = curve;
  }
  report["within_tolerance"] = ok;
  std::cout << "\n" << (ok ? "A and B agree within " : "A and B DIFFER beyond ") << o.tolerance << " (relative RMS)\n";
  if (o.output) write_file_atomic(*o.output, report.dump(2));
  return ok ? 0 : 1;
}

}  // namespace mixlab
