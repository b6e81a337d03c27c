// Checked size arithmetic: products of sizes that come from user settings (batch x
// features, elements x sizeof) are checked before they size a buffer, because a wrapped
// product allocates too little and the writes that follow corrupt memory.
#pragma once

#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"

namespace forgery {

/// Throws size_error naming `what` when `n` is negative; returns `n`.
constexpr index_t checked_size(index_t n, std::string_view what) {
  if (n < 0) throw size_error(std::string(what), std::to_string(n), "a size >= 0");
  return n;
}

/// `a * b` for sizes: throws size_error naming `what` (the setting the sizes come from, such
/// as "batch") when either is negative or the product exceeds the largest index_t.
constexpr index_t checked_mul(index_t a, index_t b, std::string_view what) {
  if (a < 0 || b < 0) throw size_error(std::string(what), std::to_string(a) + " x " + std::to_string(b), "sizes >= 0");
  constexpr index_t most = std::numeric_limits<index_t>::max();
  if (a != 0 && b > most / a)
    throw size_error(std::string(what), std::to_string(a) + " x " + std::to_string(b),
                     "a product of at most " + std::to_string(most) + " (the largest index_t)");
  return a * b;
}

/// `a * b * c`, each step checked as checked_mul(a, b, what).
constexpr index_t checked_mul(index_t a, index_t b, index_t c, std::string_view what) {
  return checked_mul(checked_mul(a, b, what), c, what);
}

/// An unsigned size (a container's size(), an xtensor extent) as index_t: throws size_error
/// naming `what` when it exceeds the largest index_t.
template <class U>
requires std::is_unsigned_v<U>
constexpr index_t checked_index(U n, std::string_view what) {
  if (n > static_cast<std::make_unsigned_t<index_t>>(std::numeric_limits<index_t>::max()))
    throw size_error(std::string(what), std::to_string(n), "a size of at most the largest index_t");
  return static_cast<index_t>(n);
}

} // namespace forgery
