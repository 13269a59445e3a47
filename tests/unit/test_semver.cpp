#include "runtime/semver.hpp"

#include <doctest/doctest.h>

using mixlab::satisfies;
using mixlab::Version;

TEST_CASE("semver: parse and order") {
  CHECK(Version::parse("1.2.3").has_value());
  CHECK_FALSE(Version::parse("1.2").has_value());
  CHECK_FALSE(Version::parse("v1.2.3").has_value());
  CHECK(compare(*Version::parse("1.2.3-rc1"), *Version::parse("1.2.3")) < 0);
  CHECK(compare(*Version::parse("1.10.0"), *Version::parse("1.9.9")) > 0);
}

TEST_CASE("semver: requirements") {
  auto v = *Version::parse("1.4.2");
  CHECK(satisfies(v, ""));
  CHECK(satisfies(v, "*"));
  CHECK(satisfies(v, "^1.2"));
  CHECK_FALSE(satisfies(v, "^2.0"));
  CHECK(satisfies(v, "~1.4"));
  CHECK_FALSE(satisfies(v, "~1.3"));
  CHECK(satisfies(v, "1.4.2"));
  CHECK(satisfies(v, "=1.4"));
  CHECK_FALSE(satisfies(v, "1.4.3"));
  CHECK(satisfies(v, ">=1.1, <1.5"));
  CHECK_FALSE(satisfies(v, ">=1.1, <1.4"));
  CHECK_THROWS_AS(satisfies(v, "^one"), std::invalid_argument);
}
