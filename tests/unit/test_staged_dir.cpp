// StagedDir: a new output folder appears whole or not at all, and nothing the
// user made is ever removed.
#include "host_test_helpers.hpp"
#include "util/atomic_file.hpp"
#include "util/staged_dir.hpp"

#include <doctest/doctest.h>

#include <filesystem>

namespace fs = std::filesystem;
using mixlab::StagedDir;
using mixlab::test::scratch;

TEST_CASE("staged dir: appears only on commit, and is removed when abandoned") {
  auto root = scratch("staged-commit");
  fs::create_directories(root);
  {
    StagedDir out(root / "a", "test");
    mixlab::write_file_atomic(out.path() / "f.txt", "x");
    CHECK(fs::exists(root / "a.tmp" / "f.txt"));
    CHECK_FALSE(fs::exists(root / "a"));
    out.commit();
  }
  CHECK(fs::exists(root / "a" / "f.txt"));
  CHECK_FALSE(fs::exists(root / "a.tmp"));
  { StagedDir abandoned(root / "b", "test"); }
  CHECK_FALSE(fs::exists(root / "b"));
  CHECK_FALSE(fs::exists(root / "b.tmp"));
  fs::remove_all(root);
}

TEST_CASE("staged dir: refuses an empty path, an existing folder or an existing .tmp, and deletes neither") {
  auto root = scratch("staged-refuse");
  fs::create_directories(root);
  CHECK_THROWS_WITH(StagedDir("", "compile"), doctest::Contains("empty path"));
  fs::create_directories(root / "mine");
  mixlab::write_file_atomic(root / "mine" / "keep.txt", "user data");
  CHECK_THROWS_WITH(StagedDir(root / "mine", "compile"), doctest::Contains("exists"));
  fs::create_directories(root / "other.tmp");
  mixlab::write_file_atomic(root / "other.tmp" / "keep.txt", "user data");
  CHECK_THROWS_WITH(StagedDir(root / "other", "compile"), doctest::Contains("other.tmp exists"));
  CHECK(fs::exists(root / "mine" / "keep.txt"));
  CHECK(fs::exists(root / "other.tmp" / "keep.txt"));
  fs::remove_all(root);
}
