#include "model/safetensors_header.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace mixlab {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Python package's limit
constexpr size_t kMaxDims = 64;

class Invalid {
 public:
  explicit Invalid(std::string file) : file_(std::move(file)) {}
  std::runtime_error operator()(const std::string& why) const {
    return std::runtime_error(file_ + ": not a valid safetensors file: " + why);
  }
  std::runtime_error operator()(const std::string& tensor, const std::string& why) const {
    return (*this)("tensor \"" + tensor + "\": " + why);
  }

 private:
  std::string file_;
};

// A JSON value that is a non-negative integer.
bool is_count(const nlohmann::json& v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0); }

SafetensorsEntry read_entry(const std::string& name, const nlohmann::json& e, const Invalid& bad) {
  if (!e.is_object()) throw bad(name, "expected an object {dtype, shape, data_offsets}, got " + std::string(e.type_name()));
  for (const auto& [key, value] : e.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw bad(name, "unknown key \"" + key + "\" (expected dtype, shape, data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) throw bad(name, std::string("missing \"") + key + "\"");

  SafetensorsEntry out;
  out.name = name;
  if (!e["dtype"].is_string()) throw bad(name, "dtype must be a string");
  out.dtype = e["dtype"].get<std::string>();
  const auto& known = safetensors_dtypes();
  auto type = std::find_if(known.begin(), known.end(), [&](const auto& d) { return d.first == out.dtype; });
  if (type == known.end()) {
    std::string list;
    for (const auto& d : known) list += (list.empty() ? "" : ", ") + d.first;
    throw bad(name, "unsupported dtype \"" + out.dtype + "\" (supported: " + list + ")");
  }

  const auto& shape = e["shape"];
  if (!shape.is_array() || shape.size() > kMaxDims)
    throw bad(name, "shape must be a list of at most " + std::to_string(kMaxDims) + " non-negative integers");
  uint64_t bytes = type->second;
  bool overflow = false;
  for (const auto& d : shape) {
    if (!is_count(d)) throw bad(name, "shape " + shape.dump() + " must hold non-negative integers");
    uint64_t n = d.get<uint64_t>();
    if (n > static_cast<uint64_t>(INT64_MAX)) overflow = true;
    overflow = overflow || __builtin_mul_overflow(bytes, n, &bytes);
    out.shape.push_back(static_cast<int64_t>(n));
  }

  const auto& offsets = e["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !is_count(offsets[0]) || !is_count(offsets[1]))
    throw bad(name, "data_offsets must be [begin, end], two non-negative integers");
  out.begin = offsets[0].get<uint64_t>();
  out.end = offsets[1].get<uint64_t>();
  if (out.end < out.begin)
    throw bad(name, "data_offsets [" + std::to_string(out.begin) + ", " + std::to_string(out.end) + "] end before they begin");
  // Any shape whose size overflows 64 bits is larger than every byte range.
  if (overflow || bytes != out.end - out.begin)
    throw bad(name, "shape " + shape.dump() + " of " + out.dtype + " needs " +
                        (overflow ? std::string("more than 2^64") : std::to_string(bytes)) + " bytes, data_offsets [" +
                        std::to_string(out.begin) + ", " + std::to_string(out.end) + "] hold " +
                        std::to_string(out.end - out.begin));
  return out;
}

}  // namespace

const std::vector<std::pair<std::string, size_t>>& safetensors_dtypes() {
  static const std::vector<std::pair<std::string, size_t>> dtypes{
      {"F64", 8}, {"F32", 4}, {"BF16", 2}, {"F16", 2}, {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},  {"BOOL", 1}};
  return dtypes;
}

uint64_t safetensors_header_length(std::string_view first_bytes, uint64_t file_size, const std::string& file) {
  Invalid bad(file);
  if (file_size < 8 || first_bytes.size() < 8)
    throw bad("the file has " + std::to_string(file_size) + " bytes, fewer than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(first_bytes[i])) << (8 * i);
  if (n < 2 || n > file_size - 8)
    throw bad("header length " + std::to_string(n) + " does not fit a file of " + std::to_string(file_size) + " bytes");
  if (n > kMaxHeaderBytes)
    throw bad("header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes");
  return n;
}

SafetensorsHeader parse_safetensors_header(std::string_view prefix, uint64_t file_size, const std::string& file) {
  Invalid bad(file);
  const uint64_t n = safetensors_header_length(prefix, file_size, file);
  if (prefix.size() < 8 + n) throw bad("the header is cut short");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(prefix.substr(8, n));
  } catch (const nlohmann::json::exception&) {
    // The library's text would name a byte offset inside the header, not what is wrong with the file.
    throw bad("the " + std::to_string(n) + "-byte header is not valid JSON (a wrong header length, or a damaged file)");
  }
  if (!header.is_object()) throw bad("the header is JSON " + std::string(header.type_name()) + ", expected an object");

  SafetensorsHeader out;
  out.data_start = 8 + n;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) throw bad("__metadata__ must be an object of strings");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) throw bad("__metadata__ \"" + key + "\" must be a string, got " + text.type_name());
        out.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    out.entries.push_back(read_entry(name, value, bad));
  }
  // The byte ranges tile the data section: sorted, each starts where the last
  // ended, the last ends at the end of the file. A header length off by a byte
  // leaves a gap or an overhang here instead of shifting every tensor.
  std::sort(out.entries.begin(), out.entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_bytes = file_size - out.data_start;
  uint64_t at = 0;
  for (const auto& e : out.entries) {
    if (e.begin != at)
      throw bad(e.name, "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] " +
                            (e.begin < at ? "overlap the tensor before" : "leave a gap after the tensor before") +
                            " (expected to begin at " + std::to_string(at) + ")");
    if (e.end > data_bytes)
      throw bad(e.name, "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                            "] reach past the end of the file (data section of " + std::to_string(data_bytes) + " bytes)");
    at = e.end;
  }
  if (at != data_bytes)
    throw bad("the tensors cover " + std::to_string(at) + " bytes of a " + std::to_string(data_bytes) +
              "-byte data section (a wrong header length, or trailing bytes)");
  return out;
}

}  // namespace mixlab
