// Writing files so that a reader never sees a half-written one: write to a
// temporary file in the same folder, flush it to disk, then rename it over the
// target. Errors (a full disk, a missing folder) throw with the path.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace mixlab {

// `before_rename` runs once the temporary file is complete (the crash tests kill the process there).
void write_file_atomic(const std::filesystem::path& path, const std::string& contents,
                       const std::function<void()>& before_rename = {});

}  // namespace mixlab
