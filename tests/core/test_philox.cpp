// Tests of core/philox.hpp: the Random123 known answers, the (seed, stream, counter)
// packing, RandomStream bookkeeping, the word-to-(0,1) conversions, and the statistics of
// the uniform and normal fills built on them.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "forgery/backend/reference.hpp"
#include "forgery/core/philox.hpp"

namespace {

using forgery::index_t;
using forgery::PhiloxBlock;
using forgery::PhiloxKey;

constexpr bool same_block(const PhiloxBlock& a, const PhiloxBlock& b) {
  return a.w[0] == b.w[0] && a.w[1] == b.w[1] && a.w[2] == b.w[2] && a.w[3] == b.w[3];
}

// The three published Philox4x32-10 known-answer vectors (Random123, kat_vectors).
struct Kat {
  PhiloxBlock ctr;
  PhiloxKey key;
  PhiloxBlock expected;
};
constexpr Kat kats[] = {
    {{{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u}},
     {{0x00000000u, 0x00000000u}},
     {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
    {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
     {{0xffffffffu, 0xffffffffu}},
     {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
    {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
     {{0xa4093822u, 0x299f31d0u}},
     {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
};

// Usable in constant evaluation (e.g. to derive compile-time constants from a seed).
static_assert(same_block(forgery::philox4x32_10(kats[2].ctr, kats[2].key), kats[2].expected),
              "philox4x32_10 must be constexpr and match the pi-digits known-answer vector");

constexpr std::uint32_t lo32(std::uint64_t x) { return static_cast<std::uint32_t>(x); }
constexpr std::uint32_t hi32(std::uint64_t x) { return static_cast<std::uint32_t>(x >> 32); }

} // namespace

TEST_CASE("philox4x32_10 matches the Random123 known-answer vectors") {
  for (const Kat& kat : kats) {
    const PhiloxBlock got = forgery::philox4x32_10(kat.ctr, kat.key);
    CAPTURE(kat.ctr.w[0]);
    for (int i = 0; i < 4; ++i) CHECK(got.w[i] == kat.expected.w[i]);
  }
}

TEST_CASE("philox_block packs seed into the key, counter into words 0-1 and stream into words 2-3") {
  SUBCASE("published vectors through the packed entry point") {
    CHECK(same_block(forgery::philox_block(0, 0, 0), kats[0].expected));
    CHECK(same_block(forgery::philox_block(~0ull, ~0ull, ~0ull), kats[1].expected));
    // ctr = 243f6a88 85a308d3 13198a2e 03707344, key = a4093822 299f31d0.
    CHECK(same_block(forgery::philox_block(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull),
                     kats[2].expected));
  }
  SUBCASE("every half of every argument lands in its own word") {
    const std::uint64_t seed = 0x0123456789abcdefull, stream = 0xfedcba9876543210ull, counter = 0x1122334455667788ull;
    const PhiloxBlock expected = forgery::philox4x32_10(
        PhiloxBlock{{lo32(counter), hi32(counter), lo32(stream), hi32(stream)}}, PhiloxKey{{lo32(seed), hi32(seed)}});
    CHECK(same_block(forgery::philox_block(seed, stream, counter), expected));
    // Swapping roles must change the block (guards against a packing that ignores a half).
    CHECK_FALSE(same_block(forgery::philox_block(seed, counter, stream), expected));
    CHECK_FALSE(same_block(forgery::philox_block(seed ^ (1ull << 40), stream, counter), expected));
    CHECK_FALSE(same_block(forgery::philox_block(seed, stream ^ (1ull << 40), counter), expected));
    CHECK_FALSE(same_block(forgery::philox_block(seed, stream, counter ^ (1ull << 40)), expected));
  }
}

TEST_CASE("RandomStream::take reserves consecutive block ranges") {
  forgery::RandomStream rng{42, 7, 0};
  CHECK(rng.take(3) == 0);
  CHECK(rng.counter == 3);
  CHECK(rng.take(5) == 3);
  CHECK(rng.counter == 8);
  CHECK(rng.take(0) == 8);
  CHECK(rng.counter == 8);
  CHECK(rng.seed == 42);
  CHECK(rng.stream == 7);
  static_assert([] {
    forgery::RandomStream r{1, 2, 10};
    return r.take(4) == 10 && r.counter == 14;
  }());
}

TEST_CASE("RandomStream::substream is deterministic and distinct ids give distinct streams") {
  const forgery::RandomStream parent{1234, 5, 99};
  const forgery::RandomStream a = parent.substream(3);
  CHECK(a == parent.substream(3));
  CHECK(a.seed == parent.seed);
  CHECK(a.counter == 0);
  CHECK(a.stream != parent.stream);
  CHECK(parent == forgery::RandomStream{1234, 5, 99});
  // The parent's counter is a position, not an identity: it does not change the child.
  CHECK(a == forgery::RandomStream{1234, 5, 0}.substream(3));

  std::set<std::uint64_t> streams;
  for (std::uint64_t id = 0; id < 1000; ++id) streams.insert(parent.substream(id).stream);
  streams.insert(parent.stream);
  CHECK(streams.size() == 1001);

  // The same id under another parent stream or another seed is another stream.
  CHECK(parent.substream(3).stream != forgery::RandomStream{1234, 6, 0}.substream(3).stream);
  CHECK(parent.substream(3).stream != forgery::RandomStream{1235, 5, 0}.substream(3).stream);
  // And its blocks differ from the parent's.
  CHECK_FALSE(
      same_block(forgery::philox_block(a.seed, a.stream, 0), forgery::philox_block(parent.seed, parent.stream, 0)));
}

TEST_CASE("uniform_open_f and uniform_open_d map every word strictly inside (0, 1)") {
  const float f_lo = forgery::uniform_open_f(0u), f_hi = forgery::uniform_open_f(0xffffffffu);
  CHECK(f_lo > 0.0f);
  CHECK(f_hi < 1.0f);
  // Centred cells: the extreme values mirror each other, so the mean is exactly 1/2.
  CHECK(f_lo + f_hi == 1.0f);
  CHECK(forgery::uniform_open_f(0x80000000u) > 0.5f);
  CHECK(forgery::uniform_open_f(0x7fffffffu) < 0.5f);

  const double d_lo = forgery::uniform_open_d(0u, 0u), d_hi = forgery::uniform_open_d(0xffffffffu, 0xffffffffu);
  CHECK(d_lo > 0.0);
  CHECK(d_hi < 1.0);
  CHECK(d_lo + d_hi == 1.0);
  // The second word contributes the low bits: it must move the value, by less than the first.
  CHECK(forgery::uniform_open_d(0u, 0xffffffffu) > d_lo);
  CHECK(forgery::uniform_open_d(0u, 0xffffffffu) < forgery::uniform_open_d(1u << 6, 0u));
  CHECK(forgery::uniform_open_d(0x80000000u, 0u) > 0.5);
  CHECK(forgery::uniform_open_d(0x7fffffffu, 0xffffffffu) < 0.5);
  // Double resolution: far finer than float's.
  CHECK(d_lo < 1e-15);

  const PhiloxBlock ones{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}};
  const PhiloxBlock zeros{{0u, 0u, 0u, 0u}};
  for (int lane = 0; lane < 4; ++lane) {
    CHECK(forgery::uniform_from_block<float>(ones, lane) < 1.0f);
    CHECK(forgery::uniform_from_block<float>(zeros, lane) > 0.0f);
  }
  for (int lane = 0; lane < 2; ++lane) {
    CHECK(forgery::uniform_from_block<double>(ones, lane) < 1.0);
    CHECK(forgery::uniform_from_block<double>(zeros, lane) > 0.0);
  }
}

TEST_CASE("uniform_from_block uses one word per float and a word pair per double") {
  const PhiloxBlock b = forgery::philox_block(7, 8, 9);
  for (int lane = 0; lane < 4; ++lane)
    CHECK(forgery::uniform_from_block<float>(b, lane) == forgery::uniform_open_f(b.w[lane]));
  for (int lane = 0; lane < 2; ++lane)
    CHECK(forgery::uniform_from_block<double>(b, lane) == forgery::uniform_open_d(b.w[2 * lane], b.w[2 * lane + 1]));
  CHECK(forgery::values_per_block<float> == 4);
  CHECK(forgery::values_per_block<double> == 2);
}

TEST_CASE_TEMPLATE("normal_from_block is a Box-Muller pair, finite at the extreme words", S, float, double) {
  constexpr int per = static_cast<int>(forgery::values_per_block<S>);
  for (std::uint64_t c = 0; c < 64; ++c) {
    const PhiloxBlock b = forgery::philox_block(11, 12, c);
    for (int pair = 0; pair < per / 2; ++pair) {
      const S z0 = forgery::normal_from_block<S>(b, 2 * pair), z1 = forgery::normal_from_block<S>(b, 2 * pair + 1);
      const S u1 = forgery::uniform_from_block<S>(b, per == 4 ? 2 * pair : 0);
      // cos^2 + sin^2 = 1: the pair's squared radius is -2 log u1.
      const double r2 = -2.0 * std::log(static_cast<double>(u1));
      CHECK(static_cast<double>(z0) * z0 + static_cast<double>(z1) * z1 ==
            doctest::Approx(r2).epsilon(sizeof(S) == 4 ? 1e-5 : 1e-12));
      CHECK(z0 != z1);
    }
  }
  const PhiloxBlock ones{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}};
  const PhiloxBlock zeros{{0u, 0u, 0u, 0u}};
  for (int lane = 0; lane < per; ++lane) {
    CHECK(std::isfinite(forgery::normal_from_block<S>(ones, lane)));
    CHECK(std::isfinite(forgery::normal_from_block<S>(zeros, lane)));
  }
}

namespace {

struct Moments {
  double mean = 0, variance = 0;
};

template <class S>
Moments moments(const std::vector<S>& x, index_t begin = 0, index_t step = 1) {
  double sum = 0, sum2 = 0;
  index_t count = 0;
  for (index_t i = begin; i < static_cast<index_t>(x.size()); i += step, ++count) sum += static_cast<double>(x[i]);
  const double mean = sum / static_cast<double>(count);
  for (index_t i = begin; i < static_cast<index_t>(x.size()); i += step) {
    const double d = static_cast<double>(x[i]) - mean;
    sum2 += d * d;
  }
  return {mean, sum2 / static_cast<double>(count - 1)};
}

} // namespace

// Each statistic is checked against its sampling distribution: |estimate - truth| < 5
// standard errors. The seed is fixed, so this is deterministic; 5 SE keeps a correct
// generator well inside (two-sided p ~ 6e-7) while a biased one fails.
TEST_CASE_TEMPLATE("fill_uniform: mean, variance and histogram of 200k samples", S, float, double) {
  constexpr index_t n = 200000;
  const double lo = -1.0, hi = 3.0, w = hi - lo;
  std::vector<S> x(n);
  forgery::RandomStream rng{2024, 1, 0};
  forgery::backend::Reference<S>::fill_uniform(n, x.data(), rng, S(lo), S(hi));

  for (const S v : x) {
    if (!(v >= S(lo) && v <= S(hi))) {
      FAIL("uniform value " << v << " outside [" << lo << ", " << hi << "]");
      break;
    }
  }
  const Moments m = moments(x);
  const double var = w * w / 12.0;
  // SE of the mean: sqrt(var / n). SE of the sample variance: sqrt((mu4 - var^2) / n) with
  // mu4 = w^4 / 80 for a uniform, so mu4 - var^2 = w^4 / 180.
  CHECK(std::abs(m.mean - (lo + hi) / 2) < 5 * std::sqrt(var / n));
  CHECK(std::abs(m.variance - var) < 5 * w * w / std::sqrt(180.0 * n));

  // 16 equal bins: each count is Binomial(n, 1/16).
  constexpr int bins = 16;
  std::vector<index_t> hist(bins, 0);
  for (const S v : x) ++hist[std::min(bins - 1, static_cast<int>((static_cast<double>(v) - lo) / w * bins))];
  const double expected = static_cast<double>(n) / bins, se = std::sqrt(n * (1.0 / bins) * (1 - 1.0 / bins));
  for (int b = 0; b < bins; ++b) {
    CAPTURE(b);
    CHECK(std::abs(static_cast<double>(hist[b]) - expected) < 5 * se);
  }

  // Neighbouring values are uncorrelated: the lag-1 sample correlation has SE 1/sqrt(n).
  double cov = 0;
  for (index_t i = 0; i + 1 < n; ++i) cov += (x[i] - m.mean) * (x[i + 1] - m.mean);
  CHECK(std::abs(cov / (n - 1) / m.variance) < 5 / std::sqrt(static_cast<double>(n)));
}

TEST_CASE_TEMPLATE("fill_normal: mean, variance and 1-sigma fraction of 200k samples", S, float, double) {
  constexpr index_t n = 200000;
  const double mu = 0.5, sigma = 2.0;
  std::vector<S> x(n);
  forgery::RandomStream rng{2024, 2, 0};
  forgery::backend::Reference<S>::fill_normal(n, x.data(), rng, S(mu), S(sigma));

  for (const S v : x) {
    if (!std::isfinite(v)) {
      FAIL("non-finite normal value " << v);
      break;
    }
  }
  // SE of the mean: sigma / sqrt(n); SE of the sample variance: sigma^2 sqrt(2 / n).
  const Moments m = moments(x);
  CHECK(std::abs(m.mean - mu) < 5 * sigma / std::sqrt(static_cast<double>(n)));
  CHECK(std::abs(m.variance - sigma * sigma) < 5 * sigma * sigma * std::sqrt(2.0 / n));
  // The cosine and sine halves of each Box-Muller pair are each N(mu, sigma^2).
  for (index_t parity = 0; parity < 2; ++parity) {
    CAPTURE(parity);
    const Moments h = moments(x, parity, 2);
    const double half = static_cast<double>(n) / 2;
    CHECK(std::abs(h.mean - mu) < 5 * sigma / std::sqrt(half));
    CHECK(std::abs(h.variance - sigma * sigma) < 5 * sigma * sigma * std::sqrt(2.0 / half));
  }

  // P(|z| < 1) = erf(1/sqrt 2) = 0.682689...; the count is Binomial(n, p).
  const double p = std::erf(1.0 / std::sqrt(2.0));
  index_t inside = 0;
  for (const S v : x) inside += std::abs((static_cast<double>(v) - mu) / sigma) < 1.0 ? 1 : 0;
  CHECK(std::abs(static_cast<double>(inside) / n - p) < 5 * std::sqrt(p * (1 - p) / n));
  // Tails: P(|z| > 3) = 0.0026998; a generator that cannot reach 3 sigma fails.
  const double p3 = std::erfc(3.0 / std::sqrt(2.0));
  index_t beyond3 = 0;
  for (const S v : x) beyond3 += std::abs((static_cast<double>(v) - mu) / sigma) > 3.0 ? 1 : 0;
  CHECK(std::abs(static_cast<double>(beyond3) / n - p3) < 5 * std::sqrt(p3 * (1 - p3) / n));

  // The two values of a pair are independent: their correlation has SE 1/sqrt(n/2).
  double cov = 0;
  for (index_t i = 0; i + 1 < n; i += 2) cov += (x[i] - m.mean) * (x[i + 1] - m.mean);
  CHECK(std::abs(cov / (n / 2) / m.variance) < 5 / std::sqrt(n / 2.0));
}
