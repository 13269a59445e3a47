#include "runtime/semver.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

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

TEST_CASE("semver: numbers beyond an int and very long texts are malformed, not a crash") {
  CHECK_FALSE(Version::parse("1.99999999999.0").has_value());  // std::stoi would throw out_of_range
  CHECK_FALSE(Version::parse(std::string(100000, '1') + ".0.0").has_value());  // the regex would recurse that deep
  CHECK(Version::parse("999999999.0.0").has_value());
  CHECK(mixlab::check_requirement("^99999999999").find("malformed") != std::string::npos);
}
