// Probe tasks: synthetic sequence tasks scored by accuracy on their labelled
// positions (targets != -100). Their tokens are ids, not text. Every example
// is a pure function of (seed, split, index), so nothing is stored: the train
// set is `train_examples` fixed examples, validation another `val_examples`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/options.hpp"

namespace mixlab::data {

enum class Split { Train = 0, Val = 1 };

constexpr int64_t kIgnoreTarget = -100;

class ProbeTask {
 public:
  virtual ~ProbeTask() = default;
  virtual std::string name() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t example_length() const = 0;  // inputs and targets, already shifted
  virtual int64_t examples(Split split) const = 0;
  // Writes example `index` of `split`: example_length() inputs and targets.
  virtual void generate(Split split, int64_t index, int64_t* inputs, int64_t* targets) const = 0;
};

// Each reads its parameters from `options` (see docs/data.md for the keys and defaults).
std::unique_ptr<ProbeTask> make_mqar(uint64_t seed, Options& options);
std::unique_ptr<ProbeTask> make_selective_copy(uint64_t seed, Options& options);
// The MAD tasks (Poli et al. 2024); selective copying is make_selective_copy.
std::unique_ptr<ProbeTask> make_recall(uint64_t seed, Options& options);
std::unique_ptr<ProbeTask> make_noisy_recall(uint64_t seed, Options& options);
std::unique_ptr<ProbeTask> make_fuzzy_recall(uint64_t seed, Options& options);
std::unique_ptr<ProbeTask> make_memorization(uint64_t seed, Options& options);
// Needs the autoencoder readout (model/readout.hpp; the loader refuses it without).
std::unique_ptr<ProbeTask> make_compression(uint64_t seed, Options& options);

}  // namespace mixlab::data
