// A new output folder written so that nobody ever sees it half-made, and so that
// nothing the user made is ever deleted: everything is written into DIR.tmp,
// which is renamed to DIR by commit(). An existing DIR or DIR.tmp, or an empty
// path, is refused before anything is created; if commit() is never reached,
// the destructor removes only the DIR.tmp this object created.
#pragma once

#include <filesystem>

namespace mixlab {

class StagedDir {
 public:
  // `what` names the command in messages, e.g. "compile".
  StagedDir(const std::filesystem::path& final_dir, const std::string& what);
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::filesystem::path& path() const { return tmp_; }  // where to write
  const std::filesystem::path& final_path() const { return final_; }
  void commit();  // renames DIR.tmp to DIR

 private:
  std::filesystem::path final_, tmp_;
  bool committed_ = false;
};

}  // namespace mixlab
