#include "train/probe_plan.hpp"

#include <sstream>
#include <utility>

namespace mixlab {
namespace {

using Options = std::map<std::string, double>;

// The base options with `changes` applied.
Options with(Options base, const Options& changes) {
  for (const auto& [key, value] : changes) base[key] = value;
  return base;
}

// MAD's difficulty design: the baseline, then each knob moved alone through its values.
std::vector<ProbeLevel> vary(const Options& base, const std::vector<std::pair<std::string, std::vector<double>>>& knobs,
                             const std::map<std::string, std::string>& short_names) {
  std::vector<ProbeLevel> levels{{"base", base}};
  for (const auto& [key, values] : knobs)
    for (double value : values) {
      std::ostringstream label;
      label << short_names.at(key) << " " << value;
      levels.push_back({label.str(), with(base, {{key, value}})});
    }
  return levels;
}

const std::map<std::string, std::string> kShort = {{"vocab_size", "vocab"},
                                                   {"input_seq_len", "len"},
                                                   {"train_examples", "examples"},
                                                   {"frac_noise", "noise"},
                                                   {"num_tokens_to_copy", "copy"}};

// The MAD suite at the paper's settings (mad-lab configs/tasks/*.yml): 12,800 train and
// 1,280 test examples unless a level says otherwise. Compression is read out by MAD's
// autoencoder (model/readout.hpp).
std::vector<ProbeTaskPlan> mad_full() {
  const Options examples{{"train_examples", 12800}, {"val_examples", 1280}};
  const std::vector<double> fewer{6400, 3200, 1600, 800};
  return {
      {"recall", "builtin:recall",
       vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 128}}),
            {{"vocab_size", {32, 64, 128}}, {"input_seq_len", {256, 512, 1024}}, {"train_examples", fewer}}, kShort)},
      {"fuzzy_recall", "builtin:fuzzy_recall",
       vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 128}, {"k_motif_size", 3}, {"v_motif_size", 3}}),
            {{"vocab_size", {32, 64, 128}}, {"input_seq_len", {256, 512, 1024}}, {"train_examples", fewer}}, kShort)},
      {"noisy_recall", "builtin:noisy_recall",
       vary(with(examples, {{"vocab_size", 32}, {"noise_vocab_size", 16}, {"input_seq_len", 128}, {"frac_noise", 0.2}}),
            {{"vocab_size", {48, 80, 144}},
             {"input_seq_len", {256, 512, 1024}},
             {"train_examples", fewer},
             {"frac_noise", {0.4, 0.6, 0.8}}},
            kShort)},
      {"selective_copy", "builtin:copy",
       vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 256}, {"num_tokens_to_copy", 16}}),
            {{"vocab_size", {32, 64, 128}},
             {"input_seq_len", {512, 1024}},
             {"train_examples", fewer},
             {"num_tokens_to_copy", {32, 64, 96}}},
            kShort)},
      {"memorization", "builtin:memorization",
       vary({{"vocab_size", 256}, {"input_seq_len", 32}, {"train_examples", 256}, {"val_examples", 1280}},
            {{"vocab_size", {512, 1024, 2048, 4096, 8192}}}, kShort)},
      {.name = "compression",
       .source = "builtin:compression",
       .levels = vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 32}}),
                      {{"vocab_size", {32, 64, 128}}, {"input_seq_len", {64, 128, 256}}, {"train_examples", fewer}}, kShort),
       .readout = "autoencoder"},
  };
}

// The CPU default: the same tasks at shorter sequences (compression at MAD's own), the baseline
// and two harder levels each.
std::vector<ProbeTaskPlan> mad_cpu() {
  const Options examples{{"train_examples", 12800}, {"val_examples", 256}};
  return {
      {"recall", "builtin:recall",
       vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 64}}),
            {{"vocab_size", {32}}, {"input_seq_len", {128}}}, kShort)},
      {"fuzzy_recall", "builtin:fuzzy_recall",
       vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 64}, {"k_motif_size", 3}, {"v_motif_size", 3}}),
            {{"vocab_size", {32}}, {"input_seq_len", {128}}}, kShort)},
      {"noisy_recall", "builtin:noisy_recall",
       vary(with(examples, {{"vocab_size", 32}, {"noise_vocab_size", 16}, {"input_seq_len", 64}, {"frac_noise", 0.2}}),
            {{"frac_noise", {0.4, 0.6}}}, kShort)},
      {"selective_copy", "builtin:copy",
       vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 64}, {"num_tokens_to_copy", 8}}),
            {{"vocab_size", {32}}, {"num_tokens_to_copy", {16}}}, kShort)},
      {"memorization", "builtin:memorization",
       vary({{"vocab_size", 256}, {"input_seq_len", 32}, {"train_examples", 256}, {"val_examples", 256}},
            {{"vocab_size", {512, 1024}}}, kShort)},
      {.name = "compression",
       .source = "builtin:compression",
       .levels = vary(with(examples, {{"vocab_size", 16}, {"input_seq_len", 32}}),
                      {{"vocab_size", {32}}, {"input_seq_len", {64}}}, kShort),
       .readout = "autoencoder"},
  };
}

// zoology's MQAR sweep (Arora et al. 2023, fig. 2; zoology/experiments/paper_configs/
// iclr24_zoology_figure2): (T, K) in {(64, 4), (128, 8), (256, 16)}, gaps with power_a 0.01,
// zero fillers, blocks of the mixer alone (no FFN). `batch(T)` is the level's batch.
template <typename Batch>
std::vector<ProbeTaskPlan> mqar(int64_t vocab, int64_t train, int64_t val, Batch batch) {
  std::vector<ProbeLevel> levels;
  for (auto [length, pairs] : {std::pair{64, 4}, std::pair{128, 8}, std::pair{256, 16}})
    levels.push_back({"len " + std::to_string(length) + ", kv " + std::to_string(pairs),
                      {{"vocab_size", static_cast<double>(vocab)},
                       {"input_seq_len", length},
                       {"num_kv_pairs", pairs},
                       {"random_non_queries", 0},
                       {"train_examples", static_cast<double>(train)},
                       {"val_examples", static_cast<double>(val)}},
                      batch(length)});
  ProbeTaskPlan task{"mqar", "builtin:mqar", levels, true};
  task.mixer_only = true;
  return {task};
}

std::vector<ProbeTaskPlan> with_grid(std::vector<ProbeTaskPlan> tasks, const std::vector<double>& lrs,
                                     const std::vector<double>& weight_decays, int64_t epochs = 0) {
  for (auto& task : tasks) task.lrs = lrs, task.weight_decays = weight_decays, task.epochs = epochs;
  return tasks;
}

}  // namespace

int64_t ProbeScale::steps_for(const ProbeTaskPlan& task, const ProbeLevel& level) const {
  if (task.steps > 0) return task.steps;
  if (steps > 0) return steps;
  const auto examples = static_cast<int64_t>(level.options.at("train_examples"));
  const int64_t batch = batch_for(level);
  return task.epochs * ((examples + batch - 1) / batch);
}

ProbeScale probe_scale(bool full) {
  ProbeScale s;
  if (full) {
    // MAD (mad-lab benchmark.py, configs.py): width 128, 200 epochs of batch 128, lr x wd grid.
    s.name = "full";
    s.width = 128;
    s.batch_size = 128;
    s.mad = with_grid(mad_full(), {1e-4, 5e-4, 1e-3}, {0.0, 0.1}, 200);
    // zoology: d_model 64-512, lr logspace(-4, -2, 4), 100k train and 3k test examples of V = 8192,
    // batch 512 (T <= 128) and 256, 64 epochs (zoology stops early at 99% accuracy; we do not).
    // zoology's AdamW keeps torch's default weight decay, 0.01.
    s.mqar_widths = {64, 128, 256, 512};
    s.mqar = with_grid(mqar(8192, 100000, 3000, [](int64_t length) { return length <= 128 ? 512 : 256; }),
                       {1e-4, 4.64e-4, 2.15e-3, 1e-2}, {0.01}, 64);
    return s;
  }
  s.name = "cpu";
  // About 15 minutes for attention on 2 cores (measured, docs/probe.md): 36 cells of 600 steps x 16 sequences.
  s.width = 64;
  s.batch_size = 16;
  s.steps = 600;
  s.mad = with_grid(mad_cpu(), {1e-3, 4e-3}, {0.0});
  // MQAR at the CPU scale (docs/probe.md, docs/results.md#probes): zoology's attention leaves
  // the 25% plateau (a value of the context, guessed without the key) after about 400 steps of
  // 4,096 tokens (batch 64 at T 64); every level sees those tokens and scored positions per step.
  s.mqar_widths = {32, 64, 128};
  s.mqar = with_grid(mqar(512, 100000, 256, [](int64_t length) { return 64 * 64 / length; }), {1e-3, 3e-3}, {0.0});
  s.mqar[0].steps = 1000;
  return s;
}

}  // namespace mixlab
