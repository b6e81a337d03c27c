// Philox4x32-10 (Salmon et al., SC'11), the counter-based generator behind all of
// forgery's randomness, and the conversions from its words to uniform and normal values.
// A value depends only on (seed, stream, counter), never on thread count or call order.
#pragma once

#include <cmath>
#include <cstdint>

#include "forgery/core/config.hpp"
#include "forgery/core/normal_math.hpp"

namespace forgery {

/// Four 32-bit words: a Philox counter or output block.
struct PhiloxBlock {
  std::uint32_t w[4];
};

/// Two 32-bit words: a Philox key.
struct PhiloxKey {
  std::uint32_t k[2];
};

namespace detail {
FORGERY_HOST_DEVICE constexpr void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi,
                                                  std::uint32_t& lo) noexcept {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}
} // namespace detail

/// The Philox4x32 bijection with 10 rounds (the Random123 default).
FORGERY_HOST_DEVICE constexpr PhiloxBlock philox4x32_10(PhiloxBlock ctr, PhiloxKey key) noexcept {
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key.k[0] += w0;
      key.k[1] += w1;
    }
    std::uint32_t hi0 = 0, lo0 = 0, hi1 = 0, lo1 = 0;
    detail::philox_mulhilo(m0, ctr.w[0], hi0, lo0);
    detail::philox_mulhilo(m1, ctr.w[2], hi1, lo1);
    ctr = PhiloxBlock{{hi1 ^ ctr.w[1] ^ key.k[0], lo1, hi0 ^ ctr.w[3] ^ key.k[1], lo0}};
  }
  return ctr;
}

/// The block at position `counter` of stream `stream` under `seed`: the seed is the key,
/// the 64-bit counter and the 64-bit stream id fill the four counter words.
FORGERY_HOST_DEVICE constexpr PhiloxBlock philox_block(std::uint64_t seed, std::uint64_t stream,
                                                       std::uint64_t counter) noexcept {
  return philox4x32_10(PhiloxBlock{{static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32),
                                    static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}},
                       PhiloxKey{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}});
}

/// A position in the random sequence: (seed, stream) name a sequence, `counter` is the
/// next unused block. Every draw advances the counter by the blocks it used, so the
/// state is three integers, which is what a checkpoint stores.
struct RandomStream {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  std::uint64_t counter = 0;

  /// Reserves `blocks` blocks and returns the first one's counter.
  constexpr std::uint64_t take(std::uint64_t blocks) noexcept {
    const std::uint64_t first = counter;
    counter += blocks;
    return first;
  }
  /// An independent stream derived from this one (for a layer, a network, a purpose).
  [[nodiscard]] constexpr RandomStream substream(std::uint64_t id) const noexcept {
    // Derived ids are mixed through Philox itself so nearby ids give unrelated streams.
    const PhiloxBlock b = philox_block(seed ^ 0x5851F42D4C957F2Dull, stream, id);
    return RandomStream{seed, (static_cast<std::uint64_t>(b.w[0]) << 32) | b.w[1], 0};
  }
  friend constexpr bool operator==(const RandomStream&, const RandomStream&) = default;
};

/// How many values of scalar type S one Philox block yields (float: 4, double: 2).
template <class S>
inline constexpr index_t values_per_block = sizeof(S) == 4 ? 4 : 2;

/// Uniform value in the open interval (0, 1) from one word (23 bits, for float). One bit
/// less than the mantissa holds, so that `bits + 0.5` is exact: with 24 bits the top value
/// 2^24 - 0.5 rounds to 2^24 and the result is exactly 1.
FORGERY_HOST_DEVICE constexpr float uniform_open_f(std::uint32_t x) noexcept {
  return (static_cast<float>(x >> 9) + 0.5f) * 1.1920928955078125e-07f; // 2^-23
}
/// Uniform value in (0, 1) from two words (52 bits, for double; one bit less than the
/// mantissa for the same reason as uniform_open_f).
FORGERY_HOST_DEVICE constexpr double uniform_open_d(std::uint32_t a, std::uint32_t b) noexcept {
  const std::uint64_t bits = (static_cast<std::uint64_t>(a >> 6) << 26) | (b >> 6);
  return (static_cast<double>(bits) + 0.5) * 2.220446049250313080847263336181640625e-16; // 2^-52
}

/// The `lane`-th uniform (0,1) value of type S in a block.
template <class S>
FORGERY_HOST_DEVICE constexpr S uniform_from_block(const PhiloxBlock& b, int lane) noexcept {
  if constexpr (sizeof(S) == 4)
    return uniform_open_f(b.w[lane]);
  else
    return static_cast<S>(uniform_open_d(b.w[2 * lane], b.w[2 * lane + 1]));
}

/// A pair of independent standard normal values from uniforms u1 in (0, 1] and u2 in
/// [0, 1) (Box-Muller): z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), r = sqrt(-2 log u1). Float
/// uses forgery::math's branch-free log and sincos, so loops over pairs vectorise; double,
/// the precision of the gradient checks rather than of speed, uses std::log, cos and sin.
template <class S>
FORGERY_HOST_DEVICE inline void box_muller(S u1, S u2, S& z0, S& z1) noexcept {
  if constexpr (sizeof(S) == 4) {
    const float r = std::sqrt(-2.0f * math::log_unit(u1));
    float s, c;
    math::sincos_2pi(u2, s, c);
    z0 = r * c;
    z1 = r * s;
  } else {
    const S r = std::sqrt(S(-2) * std::log(u1));
    const S theta = S(6.283185307179586476925286766559) * u2;
    z0 = r * std::cos(theta);
    z1 = r * std::sin(theta);
  }
}

/// The `pair`-th Box-Muller pair of standard normal values of type S in a block: lanes
/// 2 pair (r cos theta) and 2 pair + 1 (r sin theta), from the uniforms of those lanes.
template <class S>
FORGERY_HOST_DEVICE void normal_pair_from_block(const PhiloxBlock& b, int pair, S& z0, S& z1) noexcept {
  box_muller<S>(uniform_from_block<S>(b, sizeof(S) == 4 ? 2 * pair : 0),
                uniform_from_block<S>(b, sizeof(S) == 4 ? 2 * pair + 1 : 1), z0, z1);
}

/// The `lane`-th standard normal value of type S in a block (Box-Muller on lane pairs).
template <class S>
FORGERY_HOST_DEVICE S normal_from_block(const PhiloxBlock& b, int lane) noexcept {
  S z0, z1;
  normal_pair_from_block<S>(b, lane / 2, z0, z1);
  return lane % 2 == 0 ? z0 : z1;
}

} // namespace forgery
