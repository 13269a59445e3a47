#include "util/human_units.hpp"

#include <iomanip>
#include <sstream>

namespace mixlab {

std::string human_count(double n) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(n >= 1e9 ? 2 : 1);
  if (n >= 1e9) s << n / 1e9 << "B";
  else if (n >= 1e6) s << n / 1e6 << "M";
  else if (n >= 1e3) s << n / 1e3 << "K";
  else s << std::setprecision(0) << n;
  return s.str();
}

std::string human_bytes(double n) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1);
  if (n >= 1e9) s << n / 1e9 << " GB";
  else if (n >= 1e6) s << n / 1e6 << " MB";
  else if (n >= 1e3) s << n / 1e3 << " KB";
  else s << std::setprecision(0) << n << " B";
  return s.str();
}

}  // namespace mixlab
