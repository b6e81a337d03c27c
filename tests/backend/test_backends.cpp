// Tests of the backend op set: each fast backend against backend::Reference (the oracle),
// bitwise agreement of the Philox fills across backends, and backend::Cpu's bitwise
// determinism across OpenMP thread counts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "forgery/backend/cpu.hpp"
#include "forgery/backend/reference.hpp"
#include "forgery/core/concepts.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fg = forgery;

static_assert(fg::Backend<fg::backend::Cpu<float>>);
static_assert(fg::Backend<fg::backend::Cpu<double>>);
static_assert(fg::Backend<fg::backend::Reference<float>>);
static_assert(fg::Backend<fg::backend::Reference<double>>);
static_assert(!fg::Backend<int>);
static_assert(!fg::Backend<fg::HostBuffer<float>>);

// The backends checked against the oracle, over both scalar types and both GEMM providers
// (Cpu<double> takes Eigen's GEMM whatever the provider).
#define FORGERY_TEST_FAST_BACKENDS                                                                                     \
  fg::backend::Cpu<float>, fg::backend::Cpu<double>, fg::backend::Cpu<float, fg::backend::EigenGemm>

namespace {

using fg::index_t;
using fg::backend::Trans;

template <class S>
constexpr S eps = std::numeric_limits<S>::epsilon();

template <class S>
std::vector<S> random_values(index_t n, std::uint64_t stream, S lo = S(-1), S hi = S(1)) {
  std::vector<S> v(static_cast<std::size_t>(n));
  fg::RandomStream rng{0x5eed, stream, 0};
  fg::backend::Reference<S>::fill_uniform(n, v.data(), rng, lo, hi);
  return v;
}

template <class S>
bool same_bits(const std::vector<S>& a, const std::vector<S>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(S)) == 0;
}

const char* trans_name(Trans t) { return t == Trans::no ? "N" : "T"; }

constexpr Trans transposes[] = {Trans::no, Trans::yes};

struct GemmShape {
  index_t m, n, k;
};

struct Scaling {
  double alpha, beta;
  bool nan_c; // C holds NaN garbage (only with beta == 0: it must be ignored)
};

// Runs C = alpha op(A) op(B) + beta C on backend B and on the oracle and compares every
// entry of C. Two correct results differ by at most 2 gamma_{k+2} (|alpha| |A||B| + |beta||C|)
// entrywise (Higham, Thm 3.5 and the scaling); |A||B| is bounded in turn by
// max_p |op(A)_ip| sum_p |op(B)_pj|, which costs O((m + n) k) instead of a second product.
// The bound is rigorous yet ~1e-4 relative for float: an indexing or blocking error is off
// by O(1) of that magnitude. The rows of C between m and ldc must not be touched.
template <class B>
void check_gemm(Trans ta, Trans tb, GemmShape shape, Scaling scaling, index_t pad) {
  using S = typename B::scalar;
  using R = fg::backend::Reference<S>;
  // Plain copies, not a structured binding: doctest's message lambdas capture them, which
  // clang accepts for bindings only from clang 16.
  const index_t m = shape.m, n = shape.n, k = shape.k;
  const S alpha = static_cast<S>(scaling.alpha), beta = static_cast<S>(scaling.beta);
  const index_t a_rows = ta == Trans::no ? m : k, a_cols = ta == Trans::no ? k : m;
  const index_t b_rows = tb == Trans::no ? k : n, b_cols = tb == Trans::no ? n : k;
  const index_t lda = std::max<index_t>(1, a_rows + pad), ldb = std::max<index_t>(1, b_rows + pad), ldc = m + pad;

  const std::vector<S> a = random_values<S>(lda * a_cols, 1), b = random_values<S>(ldb * b_cols, 2);
  const std::vector<S> c0 = scaling.nan_c
                                ? std::vector<S>(static_cast<std::size_t>(ldc * n), std::numeric_limits<S>::quiet_NaN())
                                : random_values<S>(ldc * n, 3);
  std::vector<S> c_fast = c0, c_ref = c0;
  B::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_fast.data(), ldc);
  R::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_ref.data(), ldc);
  std::vector<S> a_row_max(static_cast<std::size_t>(m), S(0)), b_col_sum(static_cast<std::size_t>(n), S(0));
  for (index_t i = 0; i < m; ++i)
    for (index_t p = 0; p < k; ++p) {
      const S av = std::abs(a[static_cast<std::size_t>(ta == Trans::no ? p * lda + i : i * lda + p)]);
      a_row_max[static_cast<std::size_t>(i)] = std::max(a_row_max[static_cast<std::size_t>(i)], av);
    }
  for (index_t j = 0; j < n; ++j)
    for (index_t p = 0; p < k; ++p)
      b_col_sum[static_cast<std::size_t>(j)] +=
          std::abs(b[static_cast<std::size_t>(tb == Trans::no ? j * ldb + p : p * ldb + j)]);
  std::vector<S> magnitude(c0.size(), S(0));
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < m; ++i) {
      const std::size_t at = static_cast<std::size_t>(j * ldc + i);
      // Computed in S: its own rounding (relative k eps) is far inside the slack of the max.
      magnitude[at] =
          std::abs(alpha) * a_row_max[static_cast<std::size_t>(i)] * b_col_sum[static_cast<std::size_t>(j)] +
          (beta == S(0) ? S(0) : std::abs(beta) * std::abs(c0[at]));
    }

  const S tol = S(2) * static_cast<S>(k + 2) * eps<S>;
  index_t bad = 0, bad_i = -1, bad_j = -1;
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < ldc; ++i) {
      const std::size_t at = static_cast<std::size_t>(j * ldc + i);
      const bool ok = i < m ? std::abs(c_fast[at] - c_ref[at]) <= tol * magnitude[at]
                            : std::memcmp(&c_fast[at], &c0[at], sizeof(S)) == 0;
      if (!ok && bad++ == 0) bad_i = i, bad_j = j;
    }
  const std::size_t first = bad > 0 ? static_cast<std::size_t>(bad_j * ldc + bad_i) : 0;
  CHECK_MESSAGE(bad == 0, B::name, " gemm ", trans_name(ta), trans_name(tb), " m=", m, " n=", n, " k=", k,
                " alpha=", scaling.alpha, " beta=", scaling.beta, " pad=", pad, ": ", bad, " bad entries, first (",
                bad_i, ", ", bad_j, ") fast=", c_fast[first], " ref=", c_ref[first], " tol=", tol * magnitude[first]);
}

} // namespace

TEST_CASE_TEMPLATE("gemm matches the reference for small and edge shapes", B, FORGERY_TEST_FAST_BACKENDS) {
  const GemmShape shapes[] = {{1, 1, 1},    {2, 3, 4},   {7, 5, 3},  {4, 5, 0},
                              {13, 17, 19}, {33, 1, 65}, {1, 40, 7}, {24, 8, 9}};
  const Scaling scalings[] = {{1, 0, true},      {0.5, 0, true},      {2, 0, false},
                              {-1.25, 1, false}, {0.75, -0.5, false}, {0, 0.5, false}};
  for (const GemmShape& shape : shapes)
    for (const Trans ta : transposes)
      for (const Trans tb : transposes)
        for (const Scaling& scaling : scalings)
          for (const index_t pad : {0, 3}) check_gemm<B>(ta, tb, shape, scaling, pad);
}

TEST_CASE_TEMPLATE("gemm matches the reference on shapes that take the tiled parallel path", B,
                   FORGERY_TEST_FAST_BACKENDS) {
  // m n k >= 2^18: Cpu cuts these into tiles run in parallel; 97 x 61 x 45 is just past the
  // threshold with ragged edge tiles, k = 1500 is past Eigen's k-blocking, and 2 x 17000 x 3
  // scales C (beta != 1) in an OpenMP loop.
  const GemmShape shapes[] = {{300, 200, 150}, {784, 64, 256}, {97, 61, 45}, {40, 36, 1500}, {2, 17000, 3}};
  const Scaling scalings[] = {{1, 0, true}, {-0.5, 1.5, false}};
  int run = 0;
  for (const GemmShape& shape : shapes)
    for (const Trans ta : transposes)
      for (const Trans tb : transposes) {
        check_gemm<B>(ta, tb, shape, scalings[run % 2], run % 3 == 0 ? 5 : 0);
        ++run;
      }
}

TEST_CASE("Cpu<float> gemm: a single contiguous row of C has the bits of the same row with a gap") {
  // ldc = 1 takes the transposed path (C^T = op(B)^T op(A)^T), ldc = 2 the direct one; each
  // output is the same FMA chain either way.
  using C = fg::backend::Cpu<float>;
  for (const index_t n : {2, 13, 64, 517})
    for (const index_t k : {1, 7, 256, 300})
      for (const Trans ta : transposes)
        for (const Trans tb : transposes)
          for (const float beta : {0.0f, 1.0f, -0.5f}) {
            CAPTURE(n);
            CAPTURE(k);
            const index_t lda = ta == Trans::no ? 1 : k, ldb = tb == Trans::no ? k : n;
            const std::vector<float> a = random_values<float>(k, 80), b = random_values<float>(k * n, 81);
            const std::vector<float> c0 = random_values<float>(2 * n, 82);
            std::vector<float> row(static_cast<std::size_t>(n)), gapped = c0;
            for (index_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] = c0[static_cast<std::size_t>(2 * j)];
            C::gemm(ta, tb, 1, n, k, 0.75f, a.data(), lda, b.data(), ldb, beta, row.data(), 1);
            C::gemm(ta, tb, 1, n, k, 0.75f, a.data(), lda, b.data(), ldb, beta, gapped.data(), 2);
            std::vector<float> every_other(static_cast<std::size_t>(n));
            for (index_t j = 0; j < n; ++j)
              every_other[static_cast<std::size_t>(j)] = gapped[static_cast<std::size_t>(2 * j)];
            CHECK(same_bits(row, every_other));
          }
}

TEST_CASE("Cpu<float> gemm: few rows against a large op(B) have the bits of the transposed product") {
  // m = 40 (or 37) rows against n k >= 2^20 with 4 m <= n runs as C^T = op(B)^T op(A)^T,
  // with C stored by rows; the explicit transpose D = op(B)^T op(A)^T (n x m, a small
  // op(B)) runs the direct way. Each output is the same FMA chain either way, so C = D^T
  // bit for bit, for every transpose, beta (0 ignores C's NaNs) and a C with a gap.
  using C = fg::backend::Cpu<float>;
  const auto flip = [](Trans t) { return t == Trans::no ? Trans::yes : Trans::no; };
  for (const index_t m : {40, 37})
    for (const Trans ta : transposes)
      for (const Trans tb : transposes)
        for (const float beta : {0.0f, -0.5f}) {
          const index_t n = 1030, k = 1025, ldc = m + 3;
          CAPTURE(m);
          CAPTURE(trans_name(ta));
          CAPTURE(trans_name(tb));
          CAPTURE(beta);
          const index_t lda = ta == Trans::no ? m : k, ldb = tb == Trans::no ? k : n;
          const std::vector<float> a = random_values<float>(lda * (ta == Trans::no ? k : m), 90);
          const std::vector<float> b = random_values<float>(ldb * (tb == Trans::no ? n : k), 91);
          std::vector<float> c = random_values<float>(ldc * n, 92), d(static_cast<std::size_t>(n * m));
          if (beta == 0.0f)
            for (index_t j = 0; j < n; ++j)
              for (index_t i = 0; i < m; ++i)
                c[static_cast<std::size_t>(i + j * ldc)] = std::numeric_limits<float>::quiet_NaN();
          for (index_t j = 0; j < n; ++j)
            for (index_t i = 0; i < m; ++i)
              d[static_cast<std::size_t>(j + i * n)] = c[static_cast<std::size_t>(i + j * ldc)];
          const std::vector<float> before = c;
          C::gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
          C::gemm(flip(tb), flip(ta), n, m, k, 0.75f, b.data(), ldb, a.data(), lda, beta, d.data(), n);
          bool same = true, gap_kept = true;
          for (index_t j = 0; j < n; ++j) {
            for (index_t i = 0; i < m; ++i) {
              const float x = c[static_cast<std::size_t>(i + j * ldc)], y = d[static_cast<std::size_t>(j + i * n)];
              same = same && std::memcmp(&x, &y, sizeof(float)) == 0 && !std::isnan(x);
            }
            for (index_t i = m; i < ldc; ++i)
              gap_kept = gap_kept && std::memcmp(&c[static_cast<std::size_t>(i + j * ldc)],
                                                 &before[static_cast<std::size_t>(i + j * ldc)], sizeof(float)) == 0;
          }
          CHECK(same);
          CHECK(gap_kept);
        }
}

namespace {

// Selects a NativeGemm kernel for the scope, restoring the CPU's best however the test ends.
class GemmIsaGuard {
public:
  explicit GemmIsaGuard(fg::backend::GemmIsa isa) : chosen_(fg::backend::NativeGemm::use(isa)) {}
  GemmIsaGuard(const GemmIsaGuard&) = delete;
  GemmIsaGuard& operator=(const GemmIsaGuard&) = delete;
  ~GemmIsaGuard() { fg::backend::NativeGemm::use(fg::backend::GemmIsa::avx512); }
  fg::backend::GemmIsa chosen() const { return chosen_; }

private:
  fg::backend::GemmIsa chosen_;
};

const char* isa_name(fg::backend::GemmIsa isa) {
  switch (isa) {
  case fg::backend::GemmIsa::avx512:
    return "avx512";
  case fg::backend::GemmIsa::avx2:
    return "avx2";
  default:
    return "none (Eigen)";
  }
}

} // namespace

TEST_CASE("NativeGemm: each of the CPU's kernels matches the reference, and all give the same bits") {
  using fg::backend::GemmIsa;
  using C = fg::backend::Cpu<float>;
  // Ragged edges in m (not a multiple of 16 or 32) and n (not of 6 or 12), several k-blocks
  // (k > 256, unequal split), single-task and tiled shapes, a GEMV-like n = 1, and single
  // rows m = 1 (ldc = m = 1: computed as their transposes, a column), one tile with many
  // k-blocks (run in parallel, then added in order), and few rows against a large op(B)
  // (computed as the transpose, C stored by rows).
  const GemmShape shapes[] = {{1, 1, 1},    {31, 13, 7},     {33, 25, 300},  {17, 7, 513},
                              {97, 61, 45}, {300, 200, 150}, {784, 64, 256}, {5, 1, 1000},
                              {1, 40, 300}, {1, 517, 64},    {64, 16, 3000}, {40, 1030, 1025}};
  const Scaling scalings[] = {{1, 0, true}, {-0.5, 1.5, false}, {2, 1, false}};
  std::vector<std::vector<float>> results[3];
  for (const GemmIsa isa : {GemmIsa::avx512, GemmIsa::avx2, GemmIsa::none}) {
    const GemmIsaGuard guard(isa);
    if (guard.chosen() != isa) {
      MESSAGE("this CPU has no ", isa_name(isa), " kernel; it is not tested here");
      continue;
    }
    CAPTURE(isa_name(isa));
    CHECK(fg::backend::NativeGemm::isa() == isa);
    int run = 0;
    for (const GemmShape& s : shapes)
      for (const Trans ta : transposes)
        for (const Trans tb : transposes) {
          const Scaling& scaling = scalings[run++ % 3];
          check_gemm<C>(ta, tb, s, scaling, run % 2 == 0 ? 3 : 0);
          const index_t lda = (ta == Trans::no ? s.m : s.k) + 1, ldb = (tb == Trans::no ? s.k : s.n) + 1, ldc = s.m;
          const std::vector<float> a = random_values<float>(lda * (ta == Trans::no ? s.k : s.m), 70);
          const std::vector<float> b = random_values<float>(ldb * (tb == Trans::no ? s.n : s.k), 71);
          std::vector<float> c = random_values<float>(ldc * s.n, 72);
          C::gemm(ta, tb, s.m, s.n, s.k, float(scaling.alpha), a.data(), lda, b.data(), ldb, float(scaling.beta),
                  c.data(), ldc);
          results[static_cast<int>(isa)].push_back(std::move(c));
        }
  }
  // The packed kernels (AVX-512 and AVX2) compute each output by the same operations.
  const auto& avx512 = results[static_cast<int>(GemmIsa::avx512)];
  const auto& avx2 = results[static_cast<int>(GemmIsa::avx2)];
  if (!avx512.empty() && !avx2.empty()) {
    REQUIRE(avx512.size() == avx2.size());
    for (std::size_t i = 0; i < avx512.size(); ++i) {
      CAPTURE(i);
      CHECK(same_bits(avx512[i], avx2[i]));
    }
  }
}

TEST_CASE_TEMPLATE("elementwise ops match the reference and stay inside their range", B, FORGERY_TEST_FAST_BACKENDS) {
  using S = typename B::scalar;
  using R = fg::backend::Reference<S>;
  constexpr index_t guard = 16;
  const S sentinel = S(12345);
  // 50000 >= Cpu::parallel_threshold: the OpenMP loop runs.
  for (const index_t n : {1, 7, 1000, 50000}) {
    CAPTURE(n);
    const std::vector<S> x = random_values<S>(n, 10);
    std::vector<S> y0 = random_values<S>(n + guard, 11);
    std::fill(y0.end() - guard, y0.end(), sentinel);
    auto guard_intact = [&](const std::vector<S>& v) {
      return std::all_of(v.end() - guard, v.end(), [&](S s) { return s == sentinel; });
    };

    std::vector<S> fast = y0, ref = y0;
    B::fill(n, fast.data(), S(-3.5));
    R::fill(n, ref.data(), S(-3.5));
    CHECK(same_bits(fast, ref));
    CHECK(fast[0] == S(-3.5));
    CHECK(guard_intact(fast));

    fast = y0, ref = y0;
    B::copy(n, x.data(), fast.data());
    R::copy(n, x.data(), ref.data());
    CHECK(same_bits(fast, ref));
    CHECK(std::equal(x.begin(), x.end(), fast.begin()));
    CHECK(guard_intact(fast));

    // Scaling by a power of two is exact, so the result is bitwise whatever the compiler
    // contracts into an FMA.
    fast = y0, ref = y0;
    B::axpy(n, S(-2), x.data(), fast.data());
    R::axpy(n, S(-2), x.data(), ref.data());
    CHECK(same_bits(fast, ref));
    CHECK(fast[n - 1] == S(-2) * x[static_cast<std::size_t>(n - 1)] + y0[static_cast<std::size_t>(n - 1)]);
    CHECK(guard_intact(fast));

    // A general a: one or two roundings (FMA or not) either side.
    fast = y0, ref = y0;
    B::axpy(n, S(0.3), x.data(), fast.data());
    R::axpy(n, S(0.3), x.data(), ref.data());
    index_t bad = 0;
    for (index_t i = 0; i < n; ++i) {
      const std::size_t at = static_cast<std::size_t>(i);
      bad += std::abs(fast[at] - ref[at]) <= 4 * eps<S> * (std::abs(S(0.3) * x[at]) + std::abs(y0[at])) ? 0 : 1;
    }
    CHECK(bad == 0);
    CHECK(guard_intact(fast));

    fast = y0, ref = y0;
    B::scale(n, S(0.3), fast.data());
    R::scale(n, S(0.3), ref.data());
    CHECK(same_bits(fast, ref));
    CHECK(fast[0] == S(0.3) * y0[0]);
    CHECK(guard_intact(fast));
  }
}

TEST_CASE_TEMPLATE("add_column_vector adds the bias to every column", B, FORGERY_TEST_FAST_BACKENDS) {
  using S = typename B::scalar;
  using R = fg::backend::Reference<S>;
  // (3, 20000): enough columns for Cpu's OpenMP loop.
  const std::pair<index_t, index_t> shapes[] = {{1, 1}, {5, 7}, {64, 33}, {3, 20000}};
  for (const auto& shape : shapes) {
    const index_t rows = shape.first, cols = shape.second;
    CAPTURE(rows);
    CAPTURE(cols);
    const std::vector<S> bias = random_values<S>(rows, 20);
    const std::vector<S> y0 = random_values<S>(rows * cols, 21);
    std::vector<S> fast = y0, ref = y0;
    B::add_column_vector(rows, cols, bias.data(), fast.data());
    R::add_column_vector(rows, cols, bias.data(), ref.data());
    CHECK(same_bits(fast, ref));
    const index_t r = rows - 1, c = cols - 1;
    const std::size_t at = static_cast<std::size_t>(c * rows + r);
    CHECK(fast[at] == y0[at] + bias[static_cast<std::size_t>(r)]);
  }
}

// row_sums and col_sums fix the summation order in the shared kernel, so the backends must
// agree bitwise; beta is 0, 1 or 0.5, for which beta * out is exact (no FMA ambiguity).
TEST_CASE_TEMPLATE("row_sums and col_sums match the reference bitwise", B, FORGERY_TEST_FAST_BACKENDS) {
  using S = typename B::scalar;
  using R = fg::backend::Reference<S>;
  struct Shape {
    index_t rows, cols, pad;
  };
  // (20000, 5): Cpu parallelises row_sums over rows; (5, 20000): col_sums over columns.
  const Shape shapes[] = {{1, 1, 0}, {5, 7, 2}, {40, 3, 0}, {20000, 5, 3}, {5, 20000, 2}};
  for (const Shape& s : shapes) {
    const index_t lda = s.rows + s.pad;
    const std::vector<S> a = random_values<S>(lda * s.cols, 30);
    for (const double beta_d : {0.0, 1.0, 0.5}) {
      const S beta = static_cast<S>(beta_d);
      CAPTURE(s.rows);
      CAPTURE(s.cols);
      CAPTURE(beta_d);
      // Beta 0 must ignore NaN garbage in out.
      const auto start = [&](index_t len, std::uint64_t stream) {
        return beta == S(0) ? std::vector<S>(static_cast<std::size_t>(len), std::numeric_limits<S>::quiet_NaN())
                            : random_values<S>(len, stream);
      };

      const std::vector<S> r0 = start(s.rows, 31);
      std::vector<S> fast = r0, ref = r0;
      B::row_sums(s.rows, s.cols, a.data(), lda, beta, fast.data());
      R::row_sums(s.rows, s.cols, a.data(), lda, beta, ref.data());
      CHECK(same_bits(fast, ref));
      // An independent check of one entry in double: the last row.
      double expected = beta == S(0) ? 0.0 : static_cast<double>(beta) * r0.back();
      for (index_t j = 0; j < s.cols; ++j) expected += a[static_cast<std::size_t>(j * lda + s.rows - 1)];
      CHECK(fast.back() == doctest::Approx(expected).epsilon(s.cols * 4 * eps<S>));

      const std::vector<S> c0 = start(s.cols, 32);
      fast = c0, ref = c0;
      B::col_sums(s.rows, s.cols, a.data(), lda, beta, fast.data());
      R::col_sums(s.rows, s.cols, a.data(), lda, beta, ref.data());
      CHECK(same_bits(fast, ref));
      expected = beta == S(0) ? 0.0 : static_cast<double>(beta) * c0.back();
      for (index_t i = 0; i < s.rows; ++i) expected += a[static_cast<std::size_t>((s.cols - 1) * lda + i)];
      CHECK(fast.back() == doctest::Approx(expected).epsilon(s.rows * 4 * eps<S>));
    }
  }
}

TEST_CASE_TEMPLATE("sum and dot are exact where every partial sum is representable", B, FORGERY_TEST_FAST_BACKENDS) {
  using S = typename B::scalar;
  using R = fg::backend::Reference<S>;
  // Small integers of non-zero mean: every partial sum stays below 2^24 in magnitude, so
  // both backends must return the exact value whatever their order, and a chunk dropped or
  // summed twice changes the result.
  // 1100000 > 256 chunks of 4096: Cpu's heap-allocated partials.
  for (const index_t n : {0, 1, 7, 4095, 4096, 4097, 100000, 1100000}) {
    CAPTURE(n);
    std::vector<S> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
    std::int64_t exact_sum = 0, exact_dot = 0;
    for (index_t i = 0; i < n; ++i) {
      const std::int64_t xi = (i * 7919) % 11 - 3, yi = (i * 104729) % 4 - 1; // in [-3, 7] and [-1, 2]
      x[static_cast<std::size_t>(i)] = static_cast<S>(xi);
      y[static_cast<std::size_t>(i)] = static_cast<S>(yi);
      exact_sum += xi;
      exact_dot += xi * yi;
    }
    CHECK(B::sum(n, x.data()) == static_cast<S>(exact_sum));
    CHECK(R::sum(n, x.data()) == static_cast<S>(exact_sum));
    CHECK(B::dot(n, x.data(), y.data()) == static_cast<S>(exact_dot));
    CHECK(R::dot(n, x.data(), y.data()) == static_cast<S>(exact_dot));
  }
}

TEST_CASE_TEMPLATE("sum and dot of random values agree with the reference", B, FORGERY_TEST_FAST_BACKENDS) {
  using S = typename B::scalar;
  using R = fg::backend::Reference<S>;
  for (const index_t n : {3, 5000, 100000}) {
    CAPTURE(n);
    // Positive values, so that an error in the chunking is not hidden by cancellation.
    const std::vector<S> x = random_values<S>(n, 40, S(0.5), S(1.5)), y = random_values<S>(n, 41);
    long double exact_sum = 0, exact_dot = 0, abs_dot = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      exact_sum += x[i];
      exact_dot += static_cast<long double>(x[i]) * y[i];
      abs_dot += std::abs(static_cast<long double>(x[i]) * y[i]);
    }
    // Rigorous bounds: Cpu sums chunks of 4096 then the chunk sums; the oracle sums in order.
    const long double chunks = static_cast<long double>((n + 4095) / 4096);
    const long double fast_gamma = (std::min<long double>(static_cast<long double>(n), 4096) + chunks + 1) * eps<S>;
    const long double ref_gamma = static_cast<long double>(n + 1) * eps<S>;
    const S fast_sum = B::sum(n, x.data()), ref_sum = R::sum(n, x.data());
    const S fast_dot = B::dot(n, x.data(), y.data()), ref_dot = R::dot(n, x.data(), y.data());
    CHECK(std::abs(fast_sum - exact_sum) <= fast_gamma * exact_sum);
    CHECK(std::abs(ref_sum - exact_sum) <= ref_gamma * exact_sum);
    CHECK(std::abs(static_cast<long double>(fast_sum) - ref_sum) <= (fast_gamma + ref_gamma) * exact_sum);
    CHECK(std::abs(fast_dot - exact_dot) <= fast_gamma * abs_dot);
    CHECK(std::abs(ref_dot - exact_dot) <= ref_gamma * abs_dot);
    CHECK(std::abs(static_cast<long double>(fast_dot) - ref_dot) <= (fast_gamma + ref_gamma) * abs_dot);
  }
}

namespace {

// The value of element i of a fill is a function of (seed, stream, counter) alone.
template <class S>
S expected_uniform(const fg::RandomStream& at, index_t i) {
  constexpr index_t per = fg::values_per_block<S>;
  const fg::PhiloxBlock b = fg::philox_block(at.seed, at.stream, at.counter + static_cast<std::uint64_t>(i / per));
  return fg::uniform_from_block<S>(b, static_cast<int>(i % per));
}
template <class S>
S expected_normal(const fg::RandomStream& at, index_t i) {
  constexpr index_t per = fg::values_per_block<S>;
  const fg::PhiloxBlock b = fg::philox_block(at.seed, at.stream, at.counter + static_cast<std::uint64_t>(i / per));
  return fg::normal_from_block<S>(b, static_cast<int>(i % per));
}

} // namespace

TEST_CASE_TEMPLATE("fill_uniform and fill_normal are bitwise identical to the reference", B,
                   FORGERY_TEST_FAST_BACKENDS) {
  using S = typename B::scalar;
  using R = fg::backend::Reference<S>;
  constexpr index_t per = fg::values_per_block<S>;
  constexpr index_t guard = 8;
  const S sentinel = S(777);
  // 100003 values: enough blocks for Cpu's OpenMP loop, and a partial last block.
  for (const index_t n : {0, 1, 2, 3, 4, 5, 7, 9, 1000, 100003}) {
    CAPTURE(n);
    const std::uint64_t blocks = static_cast<std::uint64_t>((n + per - 1) / per);
    const fg::RandomStream start{0xC0FFEE, 17, 5};
    for (const bool normal : {false, true}) {
      CAPTURE(normal);
      fg::RandomStream fast_rng = start, ref_rng = start;
      std::vector<S> fast(static_cast<std::size_t>(n + guard), sentinel), ref = fast;
      if (normal) {
        B::fill_normal(n, fast.data(), fast_rng, S(0), S(1));
        R::fill_normal(n, ref.data(), ref_rng, S(0), S(1));
      } else {
        B::fill_uniform(n, fast.data(), fast_rng, S(0), S(1));
        R::fill_uniform(n, ref.data(), ref_rng, S(0), S(1));
      }
      CHECK(same_bits(fast, ref));
      CHECK(fast_rng.counter == start.counter + blocks);
      CHECK(ref_rng.counter == start.counter + blocks);
      CHECK(fast_rng.seed == start.seed);
      CHECK(fast_rng.stream == start.stream);
      CHECK(std::all_of(fast.end() - guard, fast.end(), [&](S s) { return s == sentinel; }));
      // Spot checks against the definition, first and last values included.
      for (const index_t i : {index_t{0}, n / 2, n - 1}) {
        if (i < 0 || i >= n) continue;
        const S expected = normal ? expected_normal<S>(start, i) : expected_uniform<S>(start, i);
        CHECK(fast[static_cast<std::size_t>(i)] == expected);
      }
    }
  }
  // The affine maps: lo + (hi - lo) u and mean + stddev z, identical on both backends too.
  const index_t n = 4099;
  fg::RandomStream f1{3, 4, 0}, r1 = f1;
  std::vector<S> fast(n), ref(n);
  B::fill_uniform(n, fast.data(), f1, S(-2), S(3));
  R::fill_uniform(n, ref.data(), r1, S(-2), S(3));
  CHECK(same_bits(fast, ref));
  CHECK(std::all_of(fast.begin(), fast.end(), [](S v) { return v >= S(-2) && v <= S(3); }));
  B::fill_normal(n, fast.data(), f1, S(10), S(0.25));
  R::fill_normal(n, ref.data(), r1, S(10), S(0.25));
  CHECK(same_bits(fast, ref));
  CHECK(std::all_of(fast.begin(), fast.end(), [](S v) { return std::abs(v - S(10)) < S(0.25) * S(10); }));
}

TEST_CASE_TEMPLATE("consecutive fills draw from disjoint counters", B, FORGERY_TEST_FAST_BACKENDS) {
  using S = typename B::scalar;
  constexpr index_t per = fg::values_per_block<S>;
  for (const index_t n1 : {index_t{1}, per, per + 1, 3 * per}) {
    CAPTURE(n1);
    const index_t n2 = 2 * per + 1;
    for (const bool normal : {false, true}) {
      CAPTURE(normal);
      auto draw = [normal](index_t n, S* x, fg::RandomStream& rng) {
        if (normal)
          B::fill_normal(n, x, rng, S(0), S(1));
        else
          B::fill_uniform(n, x, rng, S(0), S(1));
      };
      fg::RandomStream rng{99, 1, 0};
      std::vector<S> first(static_cast<std::size_t>(n1)), second(static_cast<std::size_t>(n2));
      draw(n1, first.data(), rng);
      draw(n2, second.data(), rng);
      // The second draw starts at the first unused block: the rest of a partly used block is
      // discarded, never handed out twice.
      const index_t used = (n1 + per - 1) / per;
      fg::RandomStream resumed{99, 1, static_cast<std::uint64_t>(used)};
      std::vector<S> again(static_cast<std::size_t>(n2));
      draw(n2, again.data(), resumed);
      CHECK(same_bits(second, again));
      CHECK(rng.counter == static_cast<std::uint64_t>(used + (n2 + per - 1) / per));
      const std::set<S> seen(first.begin(), first.end());
      CHECK(std::none_of(second.begin(), second.end(), [&](S v) { return seen.count(v) > 0; }));
      // When the first draw fills whole blocks, the two draws are one draw cut in two.
      if (n1 % per == 0) {
        fg::RandomStream whole{99, 1, 0};
        std::vector<S> both(static_cast<std::size_t>(n1 + n2));
        draw(n1 + n2, both.data(), whole);
        CHECK(std::equal(first.begin(), first.end(), both.begin()));
        CHECK(std::equal(second.begin(), second.end(), both.begin() + n1));
      }
    }
  }
}

#if defined(_OPENMP)

namespace {

// Restores the OpenMP thread count however the test ends.
class ThreadCountGuard {
public:
  ThreadCountGuard() = default;
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;
  ~ThreadCountGuard() { omp_set_num_threads(saved_); }

private:
  int saved_ = omp_get_max_threads();
};

// Every Cpu op whose result could depend on how work is split, on sizes that run in parallel.
template <class S>
std::vector<std::pair<std::string, std::vector<S>>> cpu_outputs() {
  using C = fg::backend::Cpu<S>;
  std::vector<std::pair<std::string, std::vector<S>>> out;
  // k = 1500 is past Eigen's k-blocking, so each output is summed in several k-blocks;
  // 64 x 16 x 3000 is one tile whose k-blocks NativeGemm runs in parallel, and 40 x 1030 x
  // 1025 runs as its transpose with C stored by rows.
  const GemmShape shapes[] = {{300, 200, 150}, {97, 61, 45}, {40, 36, 1500}, {64, 16, 3000}, {40, 1030, 1025}};
  for (const GemmShape& s : shapes)
    for (const Trans ta : transposes)
      for (const Trans tb : transposes) {
        const index_t lda = (ta == Trans::no ? s.m : s.k) + 1, ldb = (tb == Trans::no ? s.k : s.n) + 2, ldc = s.m + 3;
        const std::vector<S> a = random_values<S>(lda * (ta == Trans::no ? s.k : s.m), 50);
        const std::vector<S> b = random_values<S>(ldb * (tb == Trans::no ? s.n : s.k), 51);
        std::vector<S> c = random_values<S>(ldc * s.n, 52);
        C::gemm(ta, tb, s.m, s.n, s.k, S(0.7), a.data(), lda, b.data(), ldb, S(-0.3), c.data(), ldc);
        out.emplace_back(std::string("gemm ") + trans_name(ta) + trans_name(tb) + " m=" + std::to_string(s.m),
                         std::move(c));
      }
  const index_t n = 300001;
  const std::vector<S> x = random_values<S>(n, 53), y = random_values<S>(n, 54);
  out.emplace_back("sum", std::vector<S>{C::sum(n, x.data())});
  out.emplace_back("dot", std::vector<S>{C::dot(n, x.data(), y.data())});

  std::vector<S> rows(20000, S(1)), cols(20000, S(1));
  C::row_sums(20000, 15, x.data(), 20000, S(0.5), rows.data());
  C::col_sums(15, 20000, x.data(), 15, S(1), cols.data());
  out.emplace_back("row_sums", std::move(rows));
  out.emplace_back("col_sums", std::move(cols));

  std::vector<S> u(static_cast<std::size_t>(n)), z(static_cast<std::size_t>(n));
  fg::RandomStream rng{8, 9, 10};
  C::fill_uniform(n, u.data(), rng, S(-1), S(1));
  C::fill_normal(n, z.data(), rng, S(0), S(1));
  out.emplace_back("fill_uniform", std::move(u));
  out.emplace_back("fill_normal", std::move(z));
  return out;
}

} // namespace

TEST_CASE_TEMPLATE("Cpu results are bitwise identical for 1, 2 and 3 threads", S, float, double) {
  const ThreadCountGuard restore;
  omp_set_num_threads(1);
  REQUIRE(omp_get_max_threads() == 1);
  const auto serial = cpu_outputs<S>();
  for (const int threads : {2, 3}) {
    CAPTURE(threads);
    omp_set_num_threads(threads);
    REQUIRE(omp_get_max_threads() == threads);
    // The parallel path really runs on several threads (unless OMP_THREAD_LIMIT forbids it).
    if (omp_get_thread_limit() >= threads) {
      std::vector<int> owner(fg::backend::Cpu<S>::parallel_threshold, -1);
      fg::backend::Cpu<S>::for_each(static_cast<index_t>(owner.size()),
                                    [&owner](index_t i) { owner[static_cast<std::size_t>(i)] = omp_get_thread_num(); });
      CHECK(std::set<int>(owner.begin(), owner.end()).size() == static_cast<std::size_t>(threads));
    }
    const auto parallel = cpu_outputs<S>();
    REQUIRE(parallel.size() == serial.size());
    for (std::size_t i = 0; i < serial.size(); ++i) {
      CAPTURE(serial[i].first);
      CHECK(same_bits(serial[i].second, parallel[i].second));
    }
  }
}

TEST_CASE("the thread-count test restores the OpenMP setting") {
  const int before = omp_get_max_threads();
  {
    const ThreadCountGuard restore;
    omp_set_num_threads(before + 1);
  }
  CHECK(omp_get_max_threads() == before);
}

#endif

TEST_CASE_TEMPLATE("Cpu sum and dot do not depend on the address of their operands", S, float, double) {
  // The same values at every offset modulo a cache line: the summation grouping must depend
  // on n only, or results would change with where an allocator put a buffer.
  const index_t n = 70001;
  const std::vector<S> x = random_values<S>(n, 61), y = random_values<S>(n, 62);
  std::vector<S> xs(n + 16), ys(n + 16);
  std::vector<S> sums, dots;
  for (index_t off = 0; off < 16; ++off) {
    std::copy(x.begin(), x.end(), xs.begin() + off);
    std::copy(y.begin(), y.end(), ys.begin() + off);
    sums.push_back(fg::backend::Cpu<S>::sum(n, xs.data() + off));
    dots.push_back(fg::backend::Cpu<S>::dot(n, xs.data() + off, ys.data() + off));
  }
  for (std::size_t i = 1; i < sums.size(); ++i) {
    CHECK(same_bits(std::vector<S>{sums[i]}, std::vector<S>{sums[0]}));
    CHECK(same_bits(std::vector<S>{dots[i]}, std::vector<S>{dots[0]}));
  }
  double ref = 0;
  for (S v : x) ref += static_cast<double>(v);
  CHECK(static_cast<double>(sums[0]) == doctest::Approx(ref).epsilon(sizeof(S) == 4 ? 1e-4 : 1e-12));
}
