// MAD's compression (Poli et al. 2024, sec. 3.1), written from the paper's
// definition: a random sequence ends with a compression token, and the whole
// sequence must be reconstructed from the model's output at that one token by
// a small MLP decoder (MAD's AutoEncoder backbone).
//   vocabulary  tokens [0, V - 1 - Vn), noise [V - 1 - Vn, V - 1), compression V - 1;
//   sequence    T - 1 uniform tokens, each replaced by a uniform noise token with
//               probability frac_noise, then the compression token;
//   targets     the input itself at every position (reconstruction, not shifted),
//               -100 at noise tokens.
// A causal language model sees each token when it predicts it, so the task
// measures compression only behind the autoencoder readout (model.readout =
// "autoencoder", model/readout.hpp); the loader refuses builtin:compression
// without it.
#include "data/error.hpp"
#include "data/probe_task.hpp"
#include "data/rng.hpp"

namespace mixlab::data {

namespace {

class Compression final : public ProbeTask {
 public:
  Compression(uint64_t seed, Options& options)
      : seed_(seed),
        vocab_size_(options.integer("vocab_size", 16, 3)),
        length_(options.integer("input_seq_len", 32, 2)),
        noise_vocab_(options.integer("noise_vocab_size", 0, 0)),
        frac_noise_(options.real("frac_noise", 0.0, 0.0, 0.95)),
        train_examples_(options.integer("train_examples", 12800, 1)),
        val_examples_(options.integer("val_examples", 1280, 1)) {
    if (vocab_size_ - 1 - noise_vocab_ < 1)
      throw DataError("builtin:compression: vocab_size (" + std::to_string(vocab_size_) +
                      ") must exceed noise_vocab_size + 1 (" + std::to_string(noise_vocab_ + 1) + ")");
    if (frac_noise_ > 0 && noise_vocab_ == 0)
      throw DataError("builtin:compression: frac_noise > 0 needs noise_vocab_size > 0");
  }

  std::string name() const override { return "compression"; }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t example_length() const override { return length_; }
  int64_t examples(Split split) const override { return split == Split::Train ? train_examples_ : val_examples_; }

  void generate(Split split, int64_t index, int64_t* inputs, int64_t* targets) const override {
    Rng rng({seed_, 0x636f6d7072657373ull /* "compress" */, static_cast<uint64_t>(split), static_cast<uint64_t>(index)});
    const int64_t symbols = vocab_size_ - 1 - noise_vocab_;
    for (int64_t t = 0; t + 1 < length_; ++t) {
      const bool noise = frac_noise_ > 0 && rng.uniform() < frac_noise_;
      inputs[t] = noise ? symbols + static_cast<int64_t>(rng.below(static_cast<uint64_t>(noise_vocab_)))
                        : static_cast<int64_t>(rng.below(static_cast<uint64_t>(symbols)));
      targets[t] = noise ? kIgnoreTarget : inputs[t];
    }
    inputs[length_ - 1] = vocab_size_ - 1;
    targets[length_ - 1] = vocab_size_ - 1;
  }

 private:
  uint64_t seed_;
  int64_t vocab_size_, length_, noise_vocab_;
  double frac_noise_;
  int64_t train_examples_, val_examples_;
};

}  // namespace

std::unique_ptr<ProbeTask> make_compression(uint64_t seed, Options& options) {
  return std::make_unique<Compression>(seed, options);
}

}  // namespace mixlab::data
