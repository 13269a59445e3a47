#include "model/safetensors.hpp"

#include "model/safetensors_header.hpp"
#include "util/atomic_file.hpp"

#include <nlohmann/json.hpp>

#include <fstream>

namespace mixlab {
namespace {

const std::vector<std::pair<torch::ScalarType, std::string>>& dtype_names() {
  static const std::vector<std::pair<torch::ScalarType, std::string>> names{
      {torch::kFloat64, "F64"}, {torch::kFloat32, "F32"}, {torch::kBFloat16, "BF16"}, {torch::kFloat16, "F16"},
      {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kInt16, "I16"},     {torch::kInt8, "I8"},
      {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"}};
  return names;
}

std::string dtype_name(torch::ScalarType t) {
  for (const auto& [type, name] : dtype_names())
    if (type == t) return name;
  throw std::runtime_error(std::string("safetensors: unsupported dtype ") + c10::toString(t));
}

}  // namespace

void save_safetensors(const std::filesystem::path& file, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    size_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& c : contiguous) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  write_file_atomic(file, out);
}

SafetensorsFile load_safetensors(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::ifstream in(file, std::ios::binary);
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(file, ec);
  if (!in || ec) throw std::runtime_error(name + ": cannot read");
  auto read = [&](char* out, uint64_t bytes) {
    if (!in.read(out, static_cast<std::streamsize>(bytes)))
      throw std::runtime_error(name + ": cannot read (the file changed or became unreadable while it was read)");
  };
  // Everything is checked before anything is allocated: the tensors take no
  // more memory than the file has bytes.
  std::string prefix(std::min<uint64_t>(size, 8), '\0');
  read(prefix.data(), prefix.size());
  const uint64_t n = safetensors_header_length(prefix, size, name);
  prefix.resize(8 + n);
  read(prefix.data() + 8, n);
  const SafetensorsHeader header = parse_safetensors_header(prefix, size, name);

  SafetensorsFile out;
  out.metadata = header.metadata;
  for (const auto& e : header.entries) {
    auto type = std::find_if(dtype_names().begin(), dtype_names().end(), [&](const auto& p) { return p.second == e.dtype; });
    if (type == dtype_names().end()) throw std::logic_error("safetensors: dtype " + e.dtype + " has no LibTorch type");
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(type->first));
    read(static_cast<char*>(t.data_ptr()), e.end - e.begin);
    out.tensors.emplace_back(e.name, t);
  }
  return out;
}

}  // namespace mixlab
