// The one error type of the data pipeline. Its messages are meant for the
// person who wrote the experiment: they say what was found and what was expected.
#pragma once

#include <stdexcept>

namespace mixlab::data {

class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mixlab::data
