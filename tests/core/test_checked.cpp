// Tests of core/checked.hpp: size products that would wrap are refused with an error that
// names the setting, and products that fit are exact.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "forgery/core/checked.hpp"

namespace {

using forgery::index_t;
constexpr index_t most = std::numeric_limits<index_t>::max();

std::string message_of(index_t a, index_t b, const char* what) {
  try {
    (void)forgery::checked_mul(a, b, what);
  } catch (const forgery::size_error& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("checked_mul: products that fit are exact") {
  CHECK(forgery::checked_mul(0, most, "batch") == 0);
  CHECK(forgery::checked_mul(most, 0, "batch") == 0);
  CHECK(forgery::checked_mul(1, most, "batch") == most);
  CHECK(forgery::checked_mul(784, 64, "batch") == 784 * 64);
  CHECK(forgery::checked_mul(most / 2, 2, "batch") == most - 1);
  CHECK(forgery::checked_mul(3, 5, 7, "batch") == 105);
  static_assert(forgery::checked_mul(6, 7, "constant") == 42, "usable in constant expressions");
}

TEST_CASE("checked_mul: a product past the largest index_t throws size_error naming the setting") {
  // 2^62 x 784 wraps to exactly 0 in 64 bits: the batch that once sized a buffer of 0 bytes.
  const index_t huge_batch = index_t{1} << 62;
  CHECK(static_cast<std::uint64_t>(huge_batch) * 784u == 0u);
  CHECK_THROWS_AS((void)forgery::checked_mul(784, huge_batch, "batch"), forgery::size_error);
  CHECK_THROWS_AS((void)forgery::checked_mul(most / 2 + 1, 2, "batch"), forgery::size_error);
  CHECK_THROWS_AS((void)forgery::checked_mul(index_t{1} << 32, index_t{1} << 31, "features"), forgery::size_error);
  CHECK_THROWS_AS((void)forgery::checked_mul(2, 3, most, "batch"), forgery::size_error);
  const std::string msg = message_of(784, huge_batch, "batch");
  CHECK(msg.find("'batch'") != std::string::npos);
  CHECK(msg.find("784 x 4611686018427387904") != std::string::npos);
  CHECK(msg.find("largest index_t") != std::string::npos);
}

TEST_CASE("checked_mul and checked_size: negative sizes throw; size_error is a config_error") {
  CHECK_THROWS_AS((void)forgery::checked_mul(-1, 4, "batch"), forgery::size_error);
  CHECK_THROWS_AS((void)forgery::checked_mul(4, -1, "batch"), forgery::size_error);
  CHECK_THROWS_AS((void)forgery::checked_size(-1, "batch"), forgery::config_error);
  CHECK(forgery::checked_size(0, "batch") == 0);
  CHECK(message_of(-3, 4, "steps").find("'steps'") != std::string::npos);
  try {
    (void)forgery::checked_mul(most, 2, "batch");
    FAIL("no exception");
  } catch (const forgery::config_error& e) {
    CHECK(e.field() == "batch");
  }
}

TEST_CASE("checked_index: unsigned sizes past the largest index_t throw") {
  CHECK(forgery::checked_index(std::size_t{12}, "extent") == 12);
  CHECK(forgery::checked_index(static_cast<std::uint64_t>(most), "extent") == most);
  CHECK_THROWS_AS((void)forgery::checked_index(static_cast<std::uint64_t>(most) + 1, "extent"), forgery::size_error);
  CHECK_THROWS_AS((void)forgery::checked_index(std::numeric_limits<std::size_t>::max(), "extent"), forgery::size_error);
}
