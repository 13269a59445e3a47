#include "model/safetensors.hpp"

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
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot read");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) { return std::runtime_error(file.string() + ": not a valid safetensors file: " + why); };
  if (data.size() < 8) throw bad("shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(data[i])) << (8 * i);
  if (n > data.size() - 8) throw bad("header length exceeds the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data.substr(8, n));
  } catch (const std::exception& e) {
    throw bad(std::string("header is not JSON: ") + e.what());
  }
  SafetensorsFile out;
  const size_t base = 8 + n;
  std::vector<std::pair<size_t, std::string>> order;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      for (auto m = it->begin(); m != it->end(); ++m) out.metadata[m.key()] = m->get<std::string>();
      continue;
    }
    order.emplace_back((*it)["data_offsets"][0].get<size_t>(), it.key());
  }
  std::sort(order.begin(), order.end());
  for (const auto& [start, name] : order) {
    const auto& e = header[name];
    std::string dt = e["dtype"];
    auto type = std::find_if(dtype_names().begin(), dtype_names().end(), [&](const auto& p) { return p.second == dt; });
    if (type == dtype_names().end()) throw bad("unsupported dtype " + dt + " of " + name);
    std::vector<int64_t> shape = e["shape"];
    size_t end = e["data_offsets"][1];
    auto t = torch::empty(shape, torch::TensorOptions().dtype(type->first));
    if (end < start || base + end > data.size() || end - start != t.numel() * t.element_size())
      throw bad("byte range of " + name + " does not match its shape or the file");
    std::memcpy(t.data_ptr(), data.data() + base + start, end - start);
    out.tensors.emplace_back(name, t);
  }
  return out;
}

}  // namespace mixlab
