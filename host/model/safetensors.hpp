// The safetensors format (what Hugging Face and the Python `safetensors`
// package read): an 8-byte little-endian header length, a JSON header giving
// each tensor's dtype, shape and byte range (plus string metadata), then the
// raw little-endian bytes. Files are written atomically.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace mixlab {

struct SafetensorsFile {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
};

void save_safetensors(const std::filesystem::path& file, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Throws std::runtime_error naming the file (and the tensor) for a truncated or
// malformed file; the header is checked in full before anything is allocated
// (model/safetensors_header.hpp).
SafetensorsFile load_safetensors(const std::filesystem::path& file);

}  // namespace mixlab
