#include "data/sentencepiece_model.hpp"

#include <cstring>
#include <string_view>

#include "data/error.hpp"

namespace mixlab::data {
namespace {

// One protobuf message: a sequence of (field number, wire type, value) records.
class WireReader {
 public:
  WireReader(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  bool done() const { return at_ == bytes_.size(); }

  // The next record's field number; its value is read by one of the calls below.
  uint32_t next() {
    uint64_t key = varint();
    wire_ = static_cast<int>(key & 7);
    return static_cast<uint32_t>(key >> 3);
  }
  uint64_t integer() {
    expect(0);
    return varint();
  }
  float fixed32() {
    expect(5);
    need(4);
    float v;
    std::memcpy(&v, bytes_.data() + at_, 4);  // little-endian, as the hosts we build for
    at_ += 4;
    return v;
  }
  std::string_view bytes() {
    expect(2);
    uint64_t n = varint();
    need(n);
    auto v = bytes_.substr(at_, n);
    at_ += n;
    return v;
  }
  void skip() {
    switch (wire_) {
      case 0: varint(); break;
      case 1: need(8), at_ += 8; break;
      case 2: bytes(); break;
      case 5: need(4), at_ += 4; break;
      default: fail("wire type " + std::to_string(wire_));
    }
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      auto b = static_cast<uint8_t>(bytes_[at_++]);
      v |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
    fail("a varint longer than 10 bytes");
  }
  void need(uint64_t n) {
    if (n > bytes_.size() - at_) fail("a record running past the end");
  }
  void expect(int wire) {
    if (wire_ != wire) fail("wire type " + std::to_string(wire_) + " where " + std::to_string(wire) + " belongs");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(source_ + ": not a SentencePiece model (" + what + " at byte " + std::to_string(at_) + ")");
  }

  std::string_view bytes_;
  const std::string& source_;
  size_t at_ = 0;
  int wire_ = 0;
};

SentencePieceModel::Piece read_piece(std::string_view bytes, const std::string& source) {
  SentencePieceModel::Piece p;
  WireReader r(bytes, source);
  while (!r.done()) {
    switch (r.next()) {
      case 1: p.text = r.bytes(); break;
      case 2: p.score = r.fixed32(); break;
      case 3: p.type = static_cast<SentencePieceModel::PieceType>(r.integer()); break;
      default: r.skip();
    }
  }
  return p;
}

void read_trainer_spec(std::string_view bytes, const std::string& source, SentencePieceModel& m) {
  static const char* kTypes[] = {"", "unigram", "bpe", "word", "char"};
  WireReader r(bytes, source);
  while (!r.done()) {
    switch (r.next()) {
      case 3: {
        uint64_t t = r.integer();
        m.model_type = t >= 1 && t <= 4 ? kTypes[t] : "type " + std::to_string(t);
        break;
      }
      case 24: m.treat_whitespace_as_suffix = r.integer() != 0; break;
      case 35: m.byte_fallback = r.integer() != 0; break;
      case 40: m.unk_id = static_cast<int32_t>(r.integer()); break;
      case 41: m.bos_id = static_cast<int32_t>(r.integer()); break;
      case 42: m.eos_id = static_cast<int32_t>(r.integer()); break;
      case 43: m.pad_id = static_cast<int32_t>(r.integer()); break;
      default: r.skip();
    }
  }
}

void read_normalizer_spec(std::string_view bytes, const std::string& source, SentencePieceModel& m) {
  WireReader r(bytes, source);
  while (!r.done()) {
    switch (r.next()) {
      case 1: m.normalizer = r.bytes(); break;
      case 2: m.has_charsmap = !r.bytes().empty(); break;
      case 3: m.add_dummy_prefix = r.integer() != 0; break;
      case 4: m.remove_extra_whitespaces = r.integer() != 0; break;
      case 5: m.escape_whitespaces = r.integer() != 0; break;
      default: r.skip();
    }
  }
}

}  // namespace

SentencePieceModel parse_sentencepiece_model(const std::string& serialized, const std::string& source) {
  SentencePieceModel m;
  WireReader r(serialized, source);
  while (!r.done()) {
    switch (r.next()) {
      case 1: m.pieces.push_back(read_piece(r.bytes(), source)); break;
      case 2: read_trainer_spec(r.bytes(), source, m); break;
      case 3: read_normalizer_spec(r.bytes(), source, m); break;
      default: r.skip();
    }
  }
  if (m.pieces.empty()) throw DataError(source + ": not a SentencePiece model (no pieces)");
  return m;
}

}  // namespace mixlab::data
