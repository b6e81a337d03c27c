// What the communicators (mpi.hpp, nccl.hpp) share and that needs neither MPI nor CUDA: the
// words naming an exchange in an error, and the comparison of every rank's configuration
// fingerprint (check_same).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"

namespace forgery::distributed {

/// FNV-1a of a configuration text: what the ranks exchange to compare their settings.
constexpr std::uint64_t fingerprint(std::string_view text) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

/// Throws config_error naming the first rank whose fingerprint (of `ranks`, gathered in rank
/// order) differs from rank 0's.
inline void require_same(std::string_view what, const std::uint64_t* all, index_t ranks) {
  for (index_t r = 1; r < ranks; ++r)
    if (all[r] != all[0])
      throw config_error(std::string(what), "rank " + std::to_string(r) + "'s differs from rank 0's",
                         "the same program, settings and types on every rank");
}

/// "the critic's shard exchange at step 12": where a failed exchange call was (built only
/// when one fails).
template <class B>
std::string exchange_name(const ShardExchange<B>& x) {
  return std::string(x.network == GradientsOf::critic ? "the critic's" : "the generator's") +
         " shard exchange at step " + std::to_string(x.step);
}

} // namespace forgery::distributed
