// SHA-256 of files and strings (OpenSSL), as lowercase hex.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

std::string sha256_file(const std::filesystem::path& file);
std::string sha256_string(const std::string& data);

}  // namespace mixlab
