// Writing files so that a reader never sees a half-written one: write to a
// temporary file in the same folder, flush it to disk, then rename it over the
// target. Errors (a full disk, a missing folder) throw with the path.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

}  // namespace mixlab
