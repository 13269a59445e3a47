#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "data/error.hpp"
#include "data/token_shard.hpp"
#include "test_data_helpers.hpp"

using namespace mixlab::data;

namespace {

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

int32_t header_slot(const std::string& bytes, size_t slot) {
  int32_t value = 0;
  std::memcpy(&value, bytes.data() + 4 * slot, 4);
  return value;
}

}  // namespace

TEST_CASE("data: token shards round-trip in every dtype") {
  testing::ScratchDir scratch;
  const std::vector<std::pair<ShardDtype, uint32_t>> cases = {
      {ShardDtype::UInt8, 255}, {ShardDtype::UInt16, 65535}, {ShardDtype::UInt32, 4'000'000'000u}};
  for (const auto& [dtype, largest] : cases) {
    const std::vector<uint32_t> values = {0, 1, largest, 7, largest - 1};
    const auto path = scratch.path() / "shard.bin";
    write_shard(path, dtype, values, "tok:test");
    const MappedShard shard = MappedShard::open(path, "tok:test", dtype);
    REQUIRE(shard.size() == static_cast<int64_t>(values.size()));
    CHECK(shard.dtype() == dtype);
    CHECK(shard.label() == "tok:test");
    for (size_t i = 0; i < values.size(); ++i) CHECK(shard[static_cast<int64_t>(i)] == values[i]);
  }
  CHECK(token_dtype(256) == ShardDtype::UInt16);
  CHECK(token_dtype(65536) == ShardDtype::UInt16);
  CHECK(token_dtype(65537) == ShardDtype::UInt32);
}

TEST_CASE("data: uint16 shards carry the llm.c header") {
  testing::ScratchDir scratch;
  const auto path = scratch.path() / "train.bin";
  write_shard(path, ShardDtype::UInt16, {5, 6, 7}, "byte");
  const std::string bytes = read_bytes(path);
  CHECK(bytes.size() == 1024 + 3 * 2);
  CHECK(header_slot(bytes, 0) == 20240520);  // llm.c magic
  CHECK(header_slot(bytes, 1) == 1);         // llm.c version (uint16)
  CHECK(header_slot(bytes, 2) == 3);         // llm.c token count
  uint16_t first = 0;
  std::memcpy(&first, bytes.data() + 1024, 2);
  CHECK(first == 5);
}

TEST_CASE("data: corrupt or mismatched shards are reported") {
  testing::ScratchDir scratch;
  const auto path = scratch.path() / "train.bin";
  write_shard(path, ShardDtype::UInt16, {1, 2, 3, 4}, "byte");

  CHECK_THROWS_WITH_AS(MappedShard::open(path, "sentencepiece:bpe:512:abc"), doctest::Contains("made with 'byte'"),
                       DataError);
  CHECK_THROWS_WITH_AS(MappedShard::open(path, "byte", ShardDtype::UInt32), doctest::Contains("holds uint16"),
                       DataError);
  CHECK_THROWS_WITH_AS(MappedShard::open(scratch.path() / "missing.bin"), doctest::Contains("cannot open"), DataError);
  CHECK_THROWS_AS(write_shard(path, ShardDtype::UInt8, {256}, "byte"), DataError);

  const std::string bytes = read_bytes(path);
  scratch.write("truncated.bin", bytes.substr(0, bytes.size() - 1));
  CHECK_THROWS_WITH_AS(MappedShard::open(scratch.path() / "truncated.bin"), doctest::Contains("truncated"), DataError);
  scratch.write("short.bin", bytes.substr(0, 100));
  CHECK_THROWS_WITH_AS(MappedShard::open(scratch.path() / "short.bin"), doctest::Contains("header"), DataError);
  std::string bad_magic = bytes;
  bad_magic[0] = 'x';
  scratch.write("magic.bin", bad_magic);
  CHECK_THROWS_WITH_AS(MappedShard::open(scratch.path() / "magic.bin"), doctest::Contains("bad magic"), DataError);
}
