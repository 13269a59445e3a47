// builtin:grammar — a synthetic English-like corpus whose every byte carries
// the class of its word (determiner, noun, verb-past, ...), so that routing
// and errors can be analysed per token class. One sentence per line, with
// agreement (he sees / they see), tense (saw, will see, did not see),
// questions, coordination, prepositional phrases and a/an.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab::data {

// Index = class id; stored per byte and then per token.
const std::vector<std::string>& grammar_class_names();

struct ClassedText {
  std::string text;
  std::vector<uint8_t> byte_classes;  // one per byte of text
};

struct GrammarCorpus {
  ClassedText train;
  ClassedText val;  // no sentence of val appears in train
};

// `sentences` in all, the last round(val_fraction * sentences) of them (at
// least one) in validation, each split from its own random stream of `seed`.
GrammarCorpus generate_grammar(uint64_t seed, int64_t sentences, double val_fraction);

}  // namespace mixlab::data
