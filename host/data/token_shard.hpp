// Token shards: the llm.c `.bin` layout, extended, memory-mapped for reading.
//
// A 1024-byte header of 256 little-endian int32 slots, then the values:
//   [0] magic    20240520 uint16 tokens | 20240801 uint32 tokens (both llm.c's) | 20261122 uint8 (classes)
//   [1] version  1 (uint16, llm.c GPT-2) | 7 (uint32, llm.c llama 3) | 1 (uint8)
//   [2] count    number of values, if it fits in int32 (llm.c reads this), else -1
//   [3] 0x424C584D ("MXLB"), marks the mixlab fields below
//   [4] mixlab shard version (1)   [5] bytes per value   [6],[7] count as int64 (low, high)
//   [8] length of the label in bytes; the label (the tokenizer id) is bytes 64..1023
// so llm.c's loaders read our uint16/uint32 token shards as they are.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mixlab::data {

enum class ShardDtype { UInt8 = 1, UInt16 = 2, UInt32 = 4 };

// The narrowest token dtype for ids below `vocab_size`.
ShardDtype token_dtype(int64_t vocab_size);

// Writes atomically (temporary file + rename). Throws DataError when a value
// does not fit the dtype.
void write_shard(const std::filesystem::path& path, ShardDtype dtype, const std::vector<uint32_t>& values,
                 const std::string& label);

class MappedShard {
 public:
  // Maps the file and validates its header against the file size and, when not
  // empty, the expected label and dtype. Throws DataError saying what is wrong.
  static MappedShard open(const std::filesystem::path& path, const std::string& expected_label = "",
                          ShardDtype expected_dtype = ShardDtype{});
  MappedShard() = default;
  MappedShard(MappedShard&& other) noexcept;
  MappedShard& operator=(MappedShard&& other) noexcept;
  MappedShard(const MappedShard&) = delete;
  MappedShard& operator=(const MappedShard&) = delete;
  ~MappedShard();

  int64_t size() const { return count_; }
  ShardDtype dtype() const { return dtype_; }
  const std::string& label() const { return label_; }
  uint32_t operator[](int64_t index) const {
    switch (dtype_) {
      case ShardDtype::UInt8: return values_[index];
      case ShardDtype::UInt16: return reinterpret_cast<const uint16_t*>(values_)[index];
      case ShardDtype::UInt32: return reinterpret_cast<const uint32_t*>(values_)[index];
    }
    return 0;
  }

 private:
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  const uint8_t* values_ = nullptr;
  int64_t count_ = 0;
  ShardDtype dtype_ = ShardDtype::UInt16;
  std::string label_;
};

}  // namespace mixlab::data
