// mixlab/edit_distance.hpp -- Levenshtein distance, for "did you mean" on
// unknown keys (plugins' configs, the host's experiment files and data
// options). Standard C++ only, so code without LibTorch can use it.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace mixlab {

inline size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace mixlab
