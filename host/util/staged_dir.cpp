#include "util/staged_dir.hpp"

#include <stdexcept>
#include <system_error>

namespace mixlab {

StagedDir::StagedDir(const std::filesystem::path& final_dir, const std::string& what) : final_(final_dir) {
  if (final_dir.empty()) throw std::runtime_error(what + ": the output folder is an empty path");
  tmp_ = final_dir;
  tmp_ += ".tmp";
  std::error_code ec;
  if (std::filesystem::exists(final_, ec))
    throw std::runtime_error(final_.string() + " exists; " + what + " writes a new folder");
  if (std::filesystem::exists(tmp_, ec))
    throw std::runtime_error(tmp_.string() + " exists (left by an interrupted " + what +
                             "?); remove it or choose another output folder");
  if (final_.has_parent_path()) std::filesystem::create_directories(final_.parent_path(), ec);
  if (!std::filesystem::create_directory(tmp_, ec) || ec)
    throw std::runtime_error(what + ": cannot create " + tmp_.string() + (ec ? " (" + ec.message() + ")" : ""));
}

StagedDir::~StagedDir() {
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_, ec);
}

void StagedDir::commit() {
  std::error_code ec;
  std::filesystem::rename(tmp_, final_, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp_.string() + " to " + final_.string() + " (" + ec.message() + ")");
  committed_ = true;
}

}  // namespace mixlab
