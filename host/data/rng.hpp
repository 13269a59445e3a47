// A small counter-based random generator (SplitMix64) with our own bounded and
// real draws, so that every corpus, window and example is the same on every
// platform and standard library (std::uniform_int_distribution is not).
#pragma once

#include <cstdint>
#include <initializer_list>

namespace mixlab::data {

class Rng {
 public:
  // The stream is a pure function of the keys, e.g. {seed, split, example index}.
  explicit Rng(std::initializer_list<uint64_t> keys) {
    for (uint64_t key : keys) state_ = mix(state_ ^ mix(key));
  }

  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix(state_);
  }
  // Uniform in [0, n), unbiased (rejection of the short last interval).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t state_ = 0x6D69786C61622121ull;  // "mixlab!!"
};

}  // namespace mixlab::data
