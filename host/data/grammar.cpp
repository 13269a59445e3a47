#include "data/grammar.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "data/rng.hpp"

namespace mixlab::data {

namespace {

enum Class : uint8_t {
  kSpace,
  kPunctuation,
  kDeterminer,
  kAdjective,
  kNoun,
  kSubjectPronoun,
  kObjectPronoun,
  kVerbInfinitive,
  kVerbPresent,
  kVerbPast,
  kVerb3rdPerson,
  kModal,
  kAuxiliary,
  kNegation,
  kPreposition,
  kConjunction,
  kAdverb,
};

struct Noun {
  std::string_view singular, plural;
};
// The first kAnimateNouns can be subjects.
constexpr std::array<Noun, 40> kNouns = {{
    {"dog", "dogs"},         {"cat", "cats"},         {"bird", "birds"},       {"child", "children"},
    {"teacher", "teachers"}, {"farmer", "farmers"},   {"king", "kings"},       {"queen", "queens"},
    {"student", "students"}, {"horse", "horses"},     {"fox", "foxes"},        {"baby", "babies"},
    {"man", "men"},          {"woman", "women"},      {"friend", "friends"},   {"doctor", "doctors"},
    {"mouse", "mice"},       {"wolf", "wolves"},      {"sheep", "sheep"},      {"owl", "owls"},
    {"river", "rivers"},     {"tree", "trees"},       {"house", "houses"},     {"city", "cities"},
    {"garden", "gardens"},   {"book", "books"},       {"letter", "letters"},   {"apple", "apples"},
    {"song", "songs"},       {"ship", "ships"},       {"stone", "stones"},     {"box", "boxes"},
    {"door", "doors"},       {"window", "windows"},   {"ball", "balls"},       {"cake", "cakes"},
    {"key", "keys"},         {"map", "maps"},         {"road", "roads"},       {"island", "islands"},
}};
constexpr size_t kAnimateNouns = 20;

constexpr std::array<std::string_view, 22> kAdjectives = {
    "big",   "small", "old",    "young",  "red",   "green", "happy",   "sad",   "quiet", "loud",  "little",
    "brave", "clever", "tired", "angry", "bright", "dark",  "heavy", "soft", "ancient", "empty", "open"};

struct Verb {
  std::string_view infinitive, third_person, past;
};
constexpr std::array<Verb, 30> kVerbs = {{
    {"see", "sees", "saw"},           {"find", "finds", "found"},       {"take", "takes", "took"},
    {"give", "gives", "gave"},        {"like", "likes", "liked"},       {"watch", "watches", "watched"},
    {"help", "helps", "helped"},      {"carry", "carries", "carried"},  {"follow", "follows", "followed"},
    {"know", "knows", "knew"},        {"hold", "holds", "held"},        {"keep", "keeps", "kept"},
    {"bring", "brings", "brought"},   {"catch", "catches", "caught"},   {"chase", "chases", "chased"},
    {"love", "loves", "loved"},       {"build", "builds", "built"},     {"draw", "draws", "drew"},
    {"hide", "hides", "hid"},         {"push", "pushes", "pushed"},     {"open", "opens", "opened"},
    {"visit", "visits", "visited"},   {"teach", "teaches", "taught"},   {"want", "wants", "wanted"},
    {"write", "writes", "wrote"},     {"read", "reads", "read"},        {"buy", "buys", "bought"},
    {"call", "calls", "called"},      {"meet", "meets", "met"},         {"leave", "leaves", "left"},
}};

struct Pronoun {
  std::string_view subject, object;
  bool third_singular;
};
constexpr std::array<Pronoun, 7> kPronouns = {{
    {"I", "me", false},
    {"you", "you", false},
    {"he", "him", true},
    {"she", "her", true},
    {"it", "it", true},
    {"we", "us", false},
    {"they", "them", false},
}};

constexpr std::array<std::string_view, 10> kSingularDeterminers = {"the", "a",  "this", "that",  "every",
                                                                     "my",  "his", "her",  "our", "their"};
constexpr std::array<std::string_view, 10> kPluralDeterminers = {"the", "some", "these", "those", "many",
                                                                   "my",  "our",  "their", "two",   "three"};
constexpr std::array<std::string_view, 12> kPrepositions = {"in",   "on",   "under", "near",   "behind", "with",
                                                              "from", "into", "over",  "across", "beside", "without"};
constexpr std::array<std::string_view, 5> kConjunctions = {"and", "but", "because", "while", "so"};
constexpr std::array<std::string_view, 8> kAdverbs = {"quickly", "slowly", "often", "again",
                                                        "quietly", "today",  "together", "gladly"};
constexpr std::array<std::string_view, 7> kModals = {"will", "can", "must", "should", "may", "could", "would"};

template <typename T, size_t N>
const T& pick(Rng& rng, const std::array<T, N>& items) {
  return items[rng.below(N)];
}

bool chance(Rng& rng, double p) { return rng.uniform() < p; }

// Appends words with their classes, a space before every word but the first
// and no space before punctuation.
class SentenceBuilder {
 public:
  void word(std::string_view text, Class word_class) {
    if (!sentence_.text.empty()) append(" ", kSpace);
    append(text, word_class);
  }
  void words(const SentenceBuilder& other) {
    if (!sentence_.text.empty()) append(" ", kSpace);
    sentence_.text += other.sentence_.text;
    sentence_.byte_classes.insert(sentence_.byte_classes.end(), other.sentence_.byte_classes.begin(),
                                  other.sentence_.byte_classes.end());
  }
  void punctuation(std::string_view mark) { append(mark, kPunctuation); }
  ClassedText finish() {
    sentence_.text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence_.text[0])));
    return std::move(sentence_);
  }

 private:
  void append(std::string_view text, Class word_class) {
    sentence_.text += text;
    sentence_.byte_classes.insert(sentence_.byte_classes.end(), text.size(), word_class);
  }
  ClassedText sentence_;
};

enum class Tense { Present, Past, Modal, NegatedPast, NegatedPresent };

class SentenceGenerator {
 public:
  explicit SentenceGenerator(Rng& rng) : rng_(rng) {}

  ClassedText sentence() {
    SentenceBuilder out;
    const double kind = rng_.uniform();
    if (kind < 0.12) {
      question(out);
    } else {
      clause(out);
      if (kind < 0.32) {
        const std::string_view conjunction = pick(rng_, kConjunctions);
        if (conjunction == "but" || conjunction == "so") out.punctuation(",");
        out.word(conjunction, kConjunction);
        clause(out);
      }
      out.punctuation(kind > 0.95 ? "!" : ".");
    }
    return out.finish();
  }

 private:
  // Returns whether the subject is third person singular.
  bool subject(SentenceBuilder& out) {
    if (chance(rng_, 0.4)) {
      const Pronoun& pronoun = pick(rng_, kPronouns);
      out.word(pronoun.subject, kSubjectPronoun);
      return pronoun.third_singular;
    }
    const bool singular = chance(rng_, 0.6);
    noun_phrase(out, singular, kAnimateNouns);
    return singular;
  }

  void object(SentenceBuilder& out) {
    if (chance(rng_, 0.3)) {
      out.word(pick(rng_, kPronouns).object, kObjectPronoun);
    } else {
      noun_phrase(out, chance(rng_, 0.6), kNouns.size());
    }
  }

  void noun_phrase(SentenceBuilder& out, bool singular, size_t noun_count) {
    const Noun& noun = kNouns[rng_.below(noun_count)];
    std::string_view determiner = singular ? pick(rng_, kSingularDeterminers) : pick(rng_, kPluralDeterminers);
    std::array<std::string_view, 2> adjectives{};
    size_t adjective_count = chance(rng_, 0.4) ? (chance(rng_, 0.25) ? 2 : 1) : 0;
    for (size_t i = 0; i < adjective_count; ++i) adjectives[i] = pick(rng_, kAdjectives);
    if (adjective_count == 2 && adjectives[0] == adjectives[1]) adjective_count = 1;
    const std::string_view next = adjective_count > 0 ? adjectives[0] : (singular ? noun.singular : noun.plural);
    if (determiner == "a" && std::string_view("aeiou").find(next[0]) != std::string_view::npos) determiner = "an";
    out.word(determiner, kDeterminer);
    for (size_t i = 0; i < adjective_count; ++i) out.word(adjectives[i], kAdjective);
    out.word(singular ? noun.singular : noun.plural, kNoun);
  }

  void clause(SentenceBuilder& out) {
    const bool third_singular = subject(out);
    const Verb& verb = pick(rng_, kVerbs);
    switch (static_cast<Tense>(rng_.below(5))) {
      case Tense::Present:
        out.word(third_singular ? verb.third_person : verb.infinitive, third_singular ? kVerb3rdPerson : kVerbPresent);
        break;
      case Tense::Past:
        out.word(verb.past, kVerbPast);
        break;
      case Tense::Modal:
        out.word(pick(rng_, kModals), kModal);
        out.word(verb.infinitive, kVerbInfinitive);
        break;
      case Tense::NegatedPast:
        out.word("did", kAuxiliary);
        out.word("not", kNegation);
        out.word(verb.infinitive, kVerbInfinitive);
        break;
      case Tense::NegatedPresent:
        out.word(third_singular ? "does" : "do", kAuxiliary);
        out.word("not", kNegation);
        out.word(verb.infinitive, kVerbInfinitive);
        break;
    }
    object(out);
    if (chance(rng_, 0.4)) {
      out.word(pick(rng_, kPrepositions), kPreposition);
      noun_phrase(out, chance(rng_, 0.6), kNouns.size());
    }
    if (chance(rng_, 0.2)) out.word(pick(rng_, kAdverbs), kAdverb);
  }

  // "Does the old king know her?": the subject is built first because it
  // decides between "does" and "do", then placed after the auxiliary.
  void question(SentenceBuilder& out) {
    SentenceBuilder subject_words;
    const bool third_singular = subject(subject_words);
    const double kind = rng_.uniform();
    if (kind < 0.4) {
      out.word("did", kAuxiliary);
    } else if (kind < 0.7) {
      out.word(third_singular ? "does" : "do", kAuxiliary);
    } else {
      out.word(pick(rng_, kModals), kModal);
    }
    out.words(subject_words);
    out.word(pick(rng_, kVerbs).infinitive, kVerbInfinitive);
    object(out);
    out.punctuation("?");
  }

  Rng& rng_;
};

}  // namespace

const std::vector<std::string>& grammar_class_names() {
  static const std::vector<std::string> names = {
      "space",          "punctuation",     "determiner",    "adjective",    "noun",      "subject-pronoun",
      "object-pronoun", "verb-infinitive", "verb-present",  "verb-past",    "verb-3rd-person", "modal",
      "auxiliary",      "negation",        "preposition",   "conjunction",  "adverb"};
  return names;
}

GrammarCorpus generate_grammar(uint64_t seed, int64_t sentences, double val_fraction) {
  const int64_t val_sentences = std::max<int64_t>(1, std::llround(val_fraction * static_cast<double>(sentences)));
  const int64_t train_sentences = sentences - val_sentences;
  GrammarCorpus corpus;
  std::unordered_set<std::string> train_set;
  auto append = [](ClassedText& split, const ClassedText& sentence) {
    split.text += sentence.text;
    split.text += '\n';
    split.byte_classes.insert(split.byte_classes.end(), sentence.byte_classes.begin(), sentence.byte_classes.end());
    split.byte_classes.push_back(kSpace);
  };
  Rng train_rng({seed, 0x6772616d6d6172ull, 0});  // "grammar", split 0
  for (int64_t i = 0; i < train_sentences; ++i) {
    ClassedText sentence = SentenceGenerator(train_rng).sentence();
    append(corpus.train, sentence);
    train_set.insert(std::move(sentence.text));
  }
  Rng val_rng({seed, 0x6772616d6d6172ull, 1});
  for (int64_t i = 0; i < val_sentences;) {
    ClassedText sentence = SentenceGenerator(val_rng).sentence();
    if (train_set.count(sentence.text) != 0) continue;  // keep validation unseen
    append(corpus.val, sentence);
    ++i;
  }
  return corpus;
}

}  // namespace mixlab::data
