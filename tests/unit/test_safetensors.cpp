// The safetensors reader checks the whole header against the file before it
// allocates: lengths, keys, dtypes, shapes whose size overflows, byte ranges
// that overlap, leave gaps or run past the end; every error names the file
// and the tensor.
#include "host_test_helpers.hpp"
#include "model/safetensors.hpp"
#include "model/safetensors_header.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace mixlab;

namespace {

// A safetensors file: the 8-byte length of `header` (or `claimed_length`), the header, `data_bytes` zero bytes.
std::string file_bytes(const std::string& header, size_t data_bytes, int64_t length_delta = 0) {
  uint64_t n = header.size() + length_delta;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

std::string parse_error(const std::string& bytes) {
  try {
    parse_safetensors_header(bytes, bytes.size(), "x.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: a well-formed header is parsed in data order") {
  auto bytes = file_bytes(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                          R"("a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"__metadata__":{"k":"v"}})",
                          16);
  auto h = parse_safetensors_header(bytes, bytes.size(), "x.safetensors");
  REQUIRE(h.entries.size() == 2);
  CHECK(h.entries[0].name == "a");
  CHECK(h.entries[1].name == "b");
  CHECK(h.entries[1].shape == std::vector<int64_t>{2});
  CHECK(h.metadata.at("k") == "v");
  CHECK(h.data_start == bytes.size() - 16);
}

TEST_CASE("safetensors: every malformed header is refused naming the file and the tensor") {
  const std::string t = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto has = [](const std::string& message, const std::string& part) {
    INFO(message);
    CHECK(message.rfind("x.safetensors: not a valid safetensors file: ", 0) == 0);
    CHECK(message.find(part) != std::string::npos);
  };
  has(parse_error("1234"), "fewer than the 8-byte header length");
  has(parse_error(file_bytes(t, 8, 1000)), "header length");              // beyond the file
  has(parse_error(file_bytes(t, 8, -1)), "not valid JSON");               // one byte short: cut JSON
  has(parse_error(file_bytes(t + " ", 8, -1)), "cover 8 bytes of a 9-byte data section");  // one short, padded
  has(parse_error(file_bytes(t, 8 + 1, 0)), "cover 8 bytes of a 9-byte data section");     // trailing byte
  has(parse_error(file_bytes("[1,2]", 0)), "expected an object");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[2]}})", 8)), "tensor \"t\": missing \"data_offsets\"");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8)), "unknown key \"x\"");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2)),
      "tensor \"t\": unsupported dtype \"F8_E4M3\"");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)), "non-negative");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)), "needs 12 bytes");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})", 8)),
      "more than 2^64");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)), "end before they begin");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("u":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12)),
      "tensor \"u\": data_offsets [4, 12] overlap the tensor before");
  has(parse_error(file_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)), "leave a gap");
  has(parse_error(file_bytes(t, 4)), "reach past the end of the file");
  has(parse_error(file_bytes(R"({"__metadata__":{"k":1}})", 0)), "__metadata__ \"k\" must be a string");
}

TEST_CASE("safetensors: a header claiming a 2^40-element tensor is refused before any allocation") {
  auto dir = test::scratch("safetensors-huge");
  std::filesystem::create_directories(dir);
  auto file = dir / "huge.safetensors";
  std::ofstream(file, std::ios::binary)
      << file_bytes(R"({"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}})", 16);
  try {
    load_safetensors(file);
    FAIL("accepted");
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    CHECK(msg.find(file.string()) != std::string::npos);
    CHECK(msg.find("tensor \"w\"") != std::string::npos);
    CHECK(msg.find("reach past the end of the file") != std::string::npos);
  }
  // A file written by the host still loads, also with an empty tensor.
  save_safetensors(dir / "ok.safetensors", {{"e", torch::zeros({0, 3})}, {"x", torch::arange(5)}});
  auto back = load_safetensors(dir / "ok.safetensors");
  REQUIRE(back.tensors.size() == 2);
  CHECK(torch::equal(back.tensors[1].second, torch::arange(5)));
}
