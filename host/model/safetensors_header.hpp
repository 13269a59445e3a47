// The header of a safetensors file, checked without LibTorch (the fuzzer
// links it alone): an 8-byte little-endian length N, N bytes of JSON mapping
// each tensor name to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" map of strings), then the data section. Everything a reader
// will allocate or copy is checked here first: N within the file, every
// entry's keys and types, a known dtype, a shape whose byte size cannot
// overflow and equals its byte range, and byte ranges that tile the data
// section exactly (no gap, no overlap, nothing left over).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mixlab {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16", ... (safetensors_dtypes())
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

struct SafetensorsHeader {
  uint64_t data_start = 0;                // 8 + N: where the data section begins in the file
  std::vector<SafetensorsEntry> entries;  // in data order
  std::map<std::string, std::string> metadata;
};

// The dtypes this reader knows, with their size in bytes.
const std::vector<std::pair<std::string, size_t>>& safetensors_dtypes();

// The header length N from the file's first 8 bytes, checked against the file
// size and a 100 MB cap (the Python package's). Throws std::runtime_error
// "FILE: not a valid safetensors file: ...".
uint64_t safetensors_header_length(std::string_view first_bytes, uint64_t file_size, const std::string& file);

// Parses and checks the header; `prefix` holds at least the first 8 + N bytes
// of a file of `file_size` bytes. Throws std::runtime_error naming the file
// and, where it concerns one, the tensor.
SafetensorsHeader parse_safetensors_header(std::string_view prefix, uint64_t file_size, const std::string& file);

}  // namespace mixlab
