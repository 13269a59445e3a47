// libFuzzer target: file bytes -> parse_safetensors_header. Every input must
// end in a header or a std::runtime_error naming the file; a header that is
// accepted must be safe to read: its byte ranges tile the data section and
// each equals its shape's size, so the reader allocates no more than the file.
#include "model/safetensors_header.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  mixlab::SafetensorsHeader header;
  try {
    header = mixlab::parse_safetensors_header(bytes, size, "fuzz.safetensors");
  } catch (const std::runtime_error& e) {
    if (std::string_view(e.what()).rfind("fuzz.safetensors: ", 0) != 0) __builtin_trap();
    return 0;
  }
  if (header.data_start < 8 || header.data_start > size) __builtin_trap();
  uint64_t at = 0;
  for (const auto& e : header.entries) {
    auto type = std::find_if(mixlab::safetensors_dtypes().begin(), mixlab::safetensors_dtypes().end(),
                             [&](const auto& d) { return d.first == e.dtype; });
    if (type == mixlab::safetensors_dtypes().end()) __builtin_trap();
    uint64_t bytes_needed = type->second;
    for (int64_t d : e.shape) {
      if (d < 0 || __builtin_mul_overflow(bytes_needed, static_cast<uint64_t>(d), &bytes_needed)) __builtin_trap();
    }
    if (e.begin != at || e.end < e.begin || bytes_needed != e.end - e.begin) __builtin_trap();
    at = e.end;
  }
  if (at != size - header.data_start) __builtin_trap();
  return 0;
}
