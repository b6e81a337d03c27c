// backend::Cuda op by op against backend::Cpu, for float and double: GEMM (every transpose
// pair, padded leading dimensions, beta == 0 over NaN), the elementwise ops, bias and
// row/column sums, the convolution moves, the Philox fills, sum and dot, the host
// transfers, DeviceBuffer's semantics and the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda_support.hpp"

namespace fg = forgery;

namespace sum_each_terms {

// sum_each's terms: x(o, n, k) and the pair (x, x^2), over an outputs x batch x inner array.
// Outside the anonymous namespace: nvcc cannot register kernels instantiated on its types.
template <class S>
struct Element {
  const S* x;
  fg::index_t batch, inner;
  FORGERY_HOST_DEVICE S operator()(fg::index_t o, fg::index_t n, fg::index_t k) const {
    return x[(o * batch + n) * inner + k];
  }
};
template <class S>
struct ElementAndSquare {
  Element<S> e;
  FORGERY_HOST_DEVICE fg::kernels::SumPair<S> operator()(fg::index_t o, fg::index_t n, fg::index_t k) const {
    const S v = e(o, n, k);
    return {v, v * v};
  }
};
template <class S>
struct StorePair {
  S* out;
  FORGERY_HOST_DEVICE void operator()(fg::index_t o, fg::kernels::SumPair<S> p) const {
    out[2 * o] = p.first;
    out[2 * o + 1] = p.second;
  }
};

} // namespace sum_each_terms

namespace {

using fg::ConvGeometry;
using fg::DeviceBuffer;
using fg::HostBuffer;
using fg::index_t;
using fg::backend::Trans;
using namespace fg::test;

template <class S>
using Gpu = fg::backend::Cuda<S>;
template <class S>
using Cpu = fg::backend::Cpu<S>;

static_assert(fg::Backend<Gpu<float>> && fg::Backend<Gpu<double>>);
static_assert(!Gpu<float>::host_memory);
static_assert(std::is_same_v<Gpu<double>::buffer<std::int32_t>, DeviceBuffer<std::int32_t>>);

/// n values uniform in (lo, hi) on the host, stream `stream`.
template <class S>
HostBuffer<S> uniform_host(index_t n, std::uint64_t stream, S lo = S(-1), S hi = S(1)) {
  HostBuffer<S> h(n);
  fg::RandomStream rng{0x5eed, stream, 0};
  Cpu<S>::fill_uniform(n, h.data(), rng, lo, hi);
  return h;
}

/// Small integers in [-8, 8]: sums of up to 2^18 of them, or of their products, are exact
/// in float and double.
template <class S>
HostBuffer<S> small_integers(index_t n, std::uint64_t seed) {
  HostBuffer<S> v(n);
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (index_t i = 0; i < n; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    v[i] = static_cast<S>(static_cast<int>((state >> 33) % 17) - 8);
  }
  return v;
}

/// Largest |a - b| / max(1, |b|) in units of S's epsilon.
template <class S>
double ulps(const HostBuffer<S>& a, const HostBuffer<S>& b) {
  return max_rel_diff(a.data(), b.data(), a.size()) / epsilon<S>;
}

// ---- gemm ------------------------------------------------------------------------------

struct GemmCase {
  index_t m, n, k;
};

// C = alpha op(A) op(B) + beta C on both backends. Both are within 2 (k + 2) eps
// (|alpha| |op(A)| |op(B)| + |beta| |C|) of the exact product entrywise (Higham, Thm 3.5), so
// they differ by at most twice that; the rows of C between m and ldc must stay untouched.
template <class S>
void check_gemm(Trans ta, Trans tb, GemmCase shape, double alpha_d, double beta_d, bool nan_c, index_t pad) {
  const index_t m = shape.m, n = shape.n, k = shape.k;
  const S alpha = static_cast<S>(alpha_d), beta = static_cast<S>(beta_d);
  const index_t a_rows = ta == Trans::no ? m : k, a_cols = ta == Trans::no ? k : m;
  const index_t b_rows = tb == Trans::no ? k : n, b_cols = tb == Trans::no ? n : k;
  const index_t lda = std::max<index_t>(1, a_rows + pad), ldb = std::max<index_t>(1, b_rows + pad), ldc = m + pad;
  const auto a = uniform_host<S>(lda * std::max<index_t>(a_cols, 1), 1);
  const auto b = uniform_host<S>(ldb * std::max<index_t>(b_cols, 1), 2);
  HostBuffer<S> c0 = uniform_host<S>(ldc * n, 3);
  if (nan_c)
    for (index_t i = 0; i < c0.size(); ++i) c0[i] = std::numeric_limits<S>::quiet_NaN();
  // Padding rows hold a marker both backends must leave alone.
  for (index_t j = 0; j < n; ++j)
    for (index_t i = m; i < ldc; ++i) c0[j * ldc + i] = S(42);

  HostBuffer<S> c_cpu = c0;
  Cpu<S>::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_cpu.data(), ldc);
  const auto da = upload(a), db = upload(b);
  auto dc = upload(c0);
  Gpu<S>::gemm(ta, tb, m, n, k, alpha, da.data(), lda, db.data(), ldb, beta, dc.data(), ldc);
  const auto c_gpu = download(dc);

  INFO("op(A) " << (ta == Trans::no ? "N" : "T") << ", op(B) " << (tb == Trans::no ? "N" : "T") << ", m=" << m
                << " n=" << n << " k=" << k << " pad=" << pad << " alpha=" << alpha_d << " beta=" << beta_d
                << (nan_c ? " (C is NaN)" : ""));
  const double tol = 4.0 * static_cast<double>(k + 2) * epsilon<S>;
  index_t bad = 0;
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < ldc; ++i) {
      const index_t at = j * ldc + i;
      if (i >= m) {
        bad += c_gpu[at] != S(42);
        continue;
      }
      double magnitude = nan_c || beta == S(0) ? 0.0 : std::abs(static_cast<double>(beta) * c0[at]);
      for (index_t p = 0; p < k; ++p) {
        const double av = a[ta == Trans::no ? p * lda + i : i * lda + p];
        const double bv = b[tb == Trans::no ? j * ldb + p : p * ldb + j];
        magnitude += std::abs(static_cast<double>(alpha) * av * bv);
      }
      const double diff = std::abs(static_cast<double>(c_gpu[at]) - static_cast<double>(c_cpu[at]));
      bad += !(diff <= tol * magnitude); // NaN fails
    }
  CHECK(bad == 0);
}

TEST_CASE_TEMPLATE("gemm matches Cpu for every transpose pair, padded leading dimensions and beta", S, float, double) {
  const GemmCase shapes[] = {{1, 1, 1}, {5, 3, 4}, {17, 33, 9}, {64, 48, 70}, {3, 7, 0}, {130, 70, 257}};
  struct Scaling {
    double alpha, beta;
    bool nan_c;
  };
  const Scaling scalings[] = {{1, 0, true}, {0.5, -1.5, false}, {-2, 1, false}, {0, 0.25, false}};
  for (const Trans ta : {Trans::no, Trans::yes})
    for (const Trans tb : {Trans::no, Trans::yes})
      for (const GemmCase& shape : shapes)
        for (const Scaling& s : scalings)
          for (const index_t pad : {index_t{0}, index_t{3}})
            check_gemm<S>(ta, tb, shape, s.alpha, s.beta, s.nan_c, pad);
}

TEST_CASE_TEMPLATE("gemm accepts any leading dimension of a single-column operand, as Cpu does", S, float, double) {
  // y = W x with x one column given ldb = 1 (BLAS wants ldb >= k; it is never used to address).
  const index_t m = 4, k = 3;
  const auto w = uniform_host<S>(m * k, 1), x = uniform_host<S>(k, 2);
  HostBuffer<S> y_cpu(m);
  Cpu<S>::gemm(Trans::no, Trans::no, m, 1, k, S(1), w.data(), m, x.data(), 1, S(0), y_cpu.data(), 1);
  const auto dw = upload(w), dx = upload(x);
  DeviceBuffer<S> dy(m);
  Gpu<S>::gemm(Trans::no, Trans::no, m, 1, k, S(1), dw.data(), m, dx.data(), 1, S(0), dy.data(), 1);
  CHECK(max_rel_diff(download(dy).data(), y_cpu.data(), m) < 16 * epsilon<S>);
}

TEST_CASE("gemm sizes beyond cuBLAS's int are a config_error, before any device work") {
  const index_t big = static_cast<index_t>(INT_MAX) + 1;
  CHECK_THROWS_AS(Gpu<float>::gemm(Trans::no, Trans::no, big, 1, 1, 1.f, nullptr, big, nullptr, 1, 0.f, nullptr, big),
                  fg::config_error);
}

// ---- elementwise, bias, sums -----------------------------------------------------------

TEST_CASE_TEMPLATE("fill, copy, scale and add_column_vector are bitwise Cpu's; axpy within one rounding", S, float,
                   double) {
  for (const index_t n : {index_t{1}, index_t{7}, index_t{1000}, index_t{70001}}) {
    INFO("n = " << n);
    const auto x = uniform_host<S>(n, 1), y = uniform_host<S>(n, 2);
    const auto dx = upload(x);

    HostBuffer<S> h = y;
    auto d = upload(y);
    Cpu<S>::fill(n, h.data(), S(0.375));
    Gpu<S>::fill(n, d.data(), S(0.375));
    CHECK(same_bits(download(d), h));

    Cpu<S>::copy(n, x.data(), h.data());
    Gpu<S>::copy(n, dx.data(), d.data());
    CHECK(same_bits(download(d), h));

    Cpu<S>::scale(n, S(-1.25), h.data());
    Gpu<S>::scale(n, S(-1.25), d.data());
    CHECK(same_bits(download(d), h));

    // a x + y: the device may fuse it (one rounding instead of two).
    h = y;
    d = upload(y);
    Cpu<S>::axpy(n, S(0.3), x.data(), h.data());
    Gpu<S>::axpy(n, S(0.3), dx.data(), d.data());
    CHECK(ulps(download(d), h) <= 2);
  }
  for (const auto& shape : {std::pair<index_t, index_t>{1, 1}, {5, 3}, {64, 300}}) {
    const index_t rows = shape.first, cols = shape.second;
    const auto b = uniform_host<S>(rows, 1), y = uniform_host<S>(rows * cols, 2);
    HostBuffer<S> h = y;
    auto d = upload(y);
    const auto db = upload(b);
    Cpu<S>::add_column_vector(rows, cols, b.data(), h.data());
    Gpu<S>::add_column_vector(rows, cols, db.data(), d.data());
    CHECK(same_bits(download(d), h));
  }
}

TEST_CASE_TEMPLATE("row_sums and col_sums match Cpu (bitwise with beta = 0)", S, float, double) {
  struct Case {
    index_t rows, cols, lda;
  };
  for (const Case c : {Case{1, 1, 1}, Case{5, 3, 5}, Case{7, 9, 10}, Case{100, 37, 103}}) {
    INFO("rows=" << c.rows << " cols=" << c.cols << " lda=" << c.lda);
    const auto a = uniform_host<S>(c.lda * c.cols, 1);
    const auto da = upload(a);
    for (const double beta : {0.0, 0.5}) {
      const auto r0 = uniform_host<S>(c.rows, 2), c0 = uniform_host<S>(c.cols, 3);
      HostBuffer<S> hr = r0, hc = c0;
      auto dr = upload(r0), dc = upload(c0);
      Cpu<S>::row_sums(c.rows, c.cols, a.data(), c.lda, static_cast<S>(beta), hr.data());
      Gpu<S>::row_sums(c.rows, c.cols, da.data(), c.lda, static_cast<S>(beta), dr.data());
      Cpu<S>::col_sums(c.rows, c.cols, a.data(), c.lda, static_cast<S>(beta), hc.data());
      Gpu<S>::col_sums(c.rows, c.cols, da.data(), c.lda, static_cast<S>(beta), dc.data());
      if (beta == 0) {
        CHECK(same_bits(download(dr), hr));
        CHECK(same_bits(download(dc), hc));
      } else { // beta out + sum: fused on the device
        CHECK(ulps(download(dr), hr) <= 2);
        CHECK(ulps(download(dc), hc) <= 2);
      }
    }
  }
}

// ---- convolution moves -------------------------------------------------------------------

ConvGeometry geometry(index_t c, index_t h, index_t w, index_t k, index_t s, index_t p) {
  const auto extent = [&](index_t in) { return (in + 2 * p - k) / s + 1; };
  return ConvGeometry{c, h, w, k, s, p, extent(h), extent(w)};
}

TEST_CASE_TEMPLATE("im2col, col2im, rows_to_images and images_to_rows are bitwise Cpu's; channel_sums within rounding",
                   S, float, double) {
  const ConvGeometry geometries[] = {geometry(1, 5, 5, 3, 1, 0), geometry(2, 5, 7, 3, 1, 1),
                                     geometry(3, 7, 6, 4, 2, 1), geometry(2, 6, 5, 3, 2, 2),
                                     geometry(3, 4, 5, 1, 1, 0), geometry(1, 8, 6, 4, 2, 2),
                                     geometry(2, 3, 4, 1, 2, 1), geometry(16, 16, 16, 4, 2, 1)};
  for (const ConvGeometry& g : geometries)
    for (const index_t batch : {index_t{1}, index_t{3}}) {
      INFO("C=" << g.channels << " H=" << g.height << " W=" << g.width << " K=" << g.kernel << " stride=" << g.stride
                << " pad=" << g.pad << " batch=" << batch);
      const index_t rows = batch * g.pixels(), ld = rows + 2;
      const auto x = uniform_host<S>(batch * g.image_size(), 1);
      const auto dx = upload(x);
      HostBuffer<S> cols(ld * g.columns());
      DeviceBuffer<S> dcols(ld * g.columns());
      Cpu<S>::im2col(g, batch, x.data(), cols.data(), ld);
      Gpu<S>::im2col(g, batch, dx.data(), dcols.data(), ld);
      CHECK(same_bits(download(dcols), cols));

      const auto bias = uniform_host<S>(g.channels, 2);
      const auto dbias = upload(bias);
      for (const bool with_bias : {false, true}) {
        HostBuffer<S> back(x.size());
        DeviceBuffer<S> dback(x.size());
        Cpu<S>::col2im(g, batch, cols.data(), ld, back.data(), with_bias ? bias.data() : nullptr);
        Gpu<S>::col2im(g, batch, dcols.data(), ld, dback.data(), with_bias ? dbias.data() : nullptr);
        CHECK(same_bits(download(dback), back));

        // The column matrix's first channels columns as GEMM rows -> images and back.
        const index_t channels = g.channels;
        HostBuffer<S> images(batch * channels * g.pixels());
        DeviceBuffer<S> dimages(images.size());
        Cpu<S>::rows_to_images(batch, channels, g.pixels(), cols.data(), ld, images.data(),
                               with_bias ? bias.data() : nullptr);
        Gpu<S>::rows_to_images(batch, channels, g.pixels(), dcols.data(), ld, dimages.data(),
                               with_bias ? dbias.data() : nullptr);
        CHECK(same_bits(download(dimages), images));

        HostBuffer<S> rows_back(ld * channels);
        DeviceBuffer<S> drows_back(rows_back.size());
        Cpu<S>::images_to_rows(batch, channels, g.pixels(), images.data(), rows_back.data(), ld);
        Gpu<S>::images_to_rows(batch, channels, g.pixels(), dimages.data(), drows_back.data(), ld);
        CHECK(same_bits(download(drows_back), rows_back));

        // The device splits each channel's sum over a block's threads (sum_each): another order.
        HostBuffer<S> sums = uniform_host<S>(channels, 3);
        auto dsums = upload(sums);
        Cpu<S>::channel_sums(batch, channels, g.pixels(), images.data(), S(0), sums.data());
        Gpu<S>::channel_sums(batch, channels, g.pixels(), dimages.data(), S(0), dsums.data());
        CHECK(max_rel_diff(download(dsums).data(), sums.data(), channels) < cuda_tolerance<S>());
      }
    }
}

TEST_CASE_TEMPLATE("sum_each: a block per output adds every term once, is repeatable, and finishes each output", S,
                   float, double) {
  // Terms from 1 (fewer than a block's threads) to 3 x 300007 (each thread adds many), and
  // more outputs than one block's turn: every output is written exactly once.
  const index_t shapes[][3] = {{1, 1, 1}, {3, 1, 5}, {7, 4, 49}, {2, 3, 300007}, {9000, 2, 3}};
  for (const auto& shape : shapes) {
    const index_t outputs = shape[0], batch = shape[1], inner = shape[2], n = outputs * batch * inner;
    INFO("outputs " << outputs << " batch " << batch << " inner " << inner);
    // Small integers: every partial sum is exact in float (at most 4 x 900021 < 2^24), so any
    // order of addition gives the same bits, and a term added twice or lost shows.
    auto x = uniform_host<S>(n, 11);
    for (index_t i = 0; i < n; ++i) x[i] = std::round(S(2) * x[i]);
    const auto dx = upload(x);
    HostBuffer<S> cpu(2 * outputs);
    DeviceBuffer<S> gpu(2 * outputs), again(2 * outputs);
    const sum_each_terms::Element<S> cpu_term{x.data(), batch, inner}, gpu_term{dx.data(), batch, inner};
    Cpu<S>::template sum_each<fg::kernels::SumPair<S>>(
        outputs, batch, inner, sum_each_terms::ElementAndSquare<S>{cpu_term}, sum_each_terms::StorePair<S>{cpu.data()});
    Gpu<S>::template sum_each<fg::kernels::SumPair<S>>(
        outputs, batch, inner, sum_each_terms::ElementAndSquare<S>{gpu_term}, sum_each_terms::StorePair<S>{gpu.data()});
    Gpu<S>::template sum_each<fg::kernels::SumPair<S>>(outputs, batch, inner,
                                                       sum_each_terms::ElementAndSquare<S>{gpu_term},
                                                       sum_each_terms::StorePair<S>{again.data()});
    const auto got = download(gpu);
    CHECK(same_bits(got, cpu));
    CHECK(same_bits(download(again), got));

    // ScaleAdd with beta 1 adds to what is there; beta 0 ignores it (NaN included).
    HostBuffer<S> base(outputs);
    for (index_t o = 0; o < outputs; ++o) base[o] = S(o % 5);
    auto dbase = upload(base);
    Gpu<S>::template sum_each<S>(outputs, batch, inner, gpu_term, fg::kernels::ScaleAdd<S>{S(1), dbase.data()});
    const auto added = download(dbase);
    HostBuffer<S> nan(outputs);
    for (index_t o = 0; o < outputs; ++o) nan[o] = std::numeric_limits<S>::quiet_NaN();
    auto dnan = upload(nan);
    Gpu<S>::template sum_each<S>(outputs, batch, inner, gpu_term, fg::kernels::ScaleAdd<S>{S(0), dnan.data()});
    const auto overwritten = download(dnan);
    for (index_t o = 0; o < outputs; ++o) {
      CHECK(static_cast<double>(added[o]) == doctest::Approx(static_cast<double>(base[o] + got[2 * o])).epsilon(1e-6));
      CHECK(overwritten[o] == got[2 * o]);
    }
  }
}

// ---- Philox fills ------------------------------------------------------------------------

TEST_CASE_TEMPLATE("fill_uniform is bitwise Cpu's and fill_normal within a few ulp; streams advance alike", S, float,
                   double) {
  for (const index_t n : {index_t{1}, index_t{3}, index_t{4}, index_t{5}, index_t{1001}, index_t{100003}}) {
    for (const auto& range : {std::pair<double, double>{0, 1}, {-0.3, 0.7}, {-2.5, 2.5}}) {
      const double lo = range.first, hi = range.second;
      INFO("n = " << n << ", (" << lo << ", " << hi << ")");
      fg::RandomStream rc{7, 3, 11}, rg = rc;
      HostBuffer<S> h(n);
      DeviceBuffer<S> d(n);
      Cpu<S>::fill_uniform(n, h.data(), rc, static_cast<S>(lo), static_cast<S>(hi));
      Gpu<S>::fill_uniform(n, d.data(), rg, static_cast<S>(lo), static_cast<S>(hi));
      CHECK(same_bits(download(d), h));
      CHECK(rc == rg);

      Cpu<S>::fill_normal(n, h.data(), rc, static_cast<S>(lo), static_cast<S>(hi));
      Gpu<S>::fill_normal(n, d.data(), rg, static_cast<S>(lo), static_cast<S>(hi));
      const auto dn = download(d);
      CHECK(max_rel_diff(dn.data(), h.data(), n) <= normal_tolerance<S>());
      CHECK(rc == rg);
    }
  }
}

// ---- reductions --------------------------------------------------------------------------

TEST_CASE_TEMPLATE("sum and dot are exact where every partial sum is representable, and repeatable", S, float, double) {
  for (const index_t n : {index_t{0}, index_t{1}, index_t{255}, index_t{257}, index_t{65537}, (index_t{1} << 18) + 3}) {
    INFO("n = " << n);
    const auto x = small_integers<S>(n + 1, 1), y = small_integers<S>(n + 1, 2);
    const auto dx = upload(x), dy = upload(y);
    // Offset by one element: no alignment assumptions.
    CHECK(Gpu<S>::sum(n, dx.data() + 1) == Cpu<S>::sum(n, x.data() + 1));
    CHECK(Gpu<S>::dot(n, dx.data() + 1, dy.data()) == Cpu<S>::dot(n, x.data() + 1, y.data()));
    const S once = Gpu<S>::sum(n, dx.data()), again = Gpu<S>::sum(n, dx.data());
    CHECK(same_bits(&once, &again, 1));
  }
}

TEST_CASE_TEMPLATE("sum and dot of random values agree with Cpu within their rounding", S, float, double) {
  for (const index_t n : {index_t{10}, index_t{4097}, index_t{300000}, index_t{3000017}}) {
    INFO("n = " << n);
    const auto x = uniform_host<S>(n, 1), y = uniform_host<S>(n, 2);
    const auto dx = upload(x), dy = upload(y);
    double abs_sum = 0, abs_dot = 0;
    for (index_t i = 0; i < n; ++i) {
      abs_sum += std::abs(static_cast<double>(x[i]));
      abs_dot += std::abs(static_cast<double>(x[i]) * y[i]);
    }
    // Each result is within (its summation depth) eps sum |terms| of the exact value: Cpu
    // sums 256 terms per lane, 4 lane levels and n / 4096 chunks; Cuda n / 65536 terms per
    // thread and two trees of 8 levels.
    const double depth = 300.0 + static_cast<double>(n) / 4096 + static_cast<double>(n) / 65536;
    CHECK(std::abs(static_cast<double>(Gpu<S>::sum(n, dx.data())) - Cpu<S>::sum(n, x.data())) <=
          depth * epsilon<S> * abs_sum);
    CHECK(std::abs(static_cast<double>(Gpu<S>::dot(n, dx.data(), dy.data())) - Cpu<S>::dot(n, x.data(), y.data())) <=
          depth * epsilon<S> * abs_dot);
  }
}

// ---- transfers and DeviceBuffer -----------------------------------------------------------

TEST_CASE("to_host and to_device copy any trivially copyable values; n = 0 does nothing") {
  std::vector<std::int32_t> labels = {3, -1, 7, 0, 2147483647};
  DeviceBuffer<std::int32_t> d(5);
  Gpu<double>::to_device(5, labels.data(), d.data());
  std::vector<std::int32_t> back(5, 0);
  Gpu<double>::to_host(5, d.data(), back.data());
  CHECK(back == labels);
  Gpu<double>::to_host(0, d.data(), static_cast<std::int32_t*>(nullptr));
  Gpu<double>::to_device(0, static_cast<const std::int32_t*>(nullptr), d.data());
}

TEST_CASE_TEMPLATE("DeviceBuffer: zero-filled, resize keeps values and only grows, copies are deep", T, float,
                   std::int32_t) {
  DeviceBuffer<T> empty;
  CHECK(empty.empty());
  CHECK(empty.data() == nullptr);
  CHECK(empty.capacity() == 0);

  DeviceBuffer<T> b(4);
  CHECK(b.size() == 4);
  CHECK(b.capacity() == 4);
  const auto zeros = download(b);
  for (index_t i = 0; i < 4; ++i) CHECK(zeros[i] == T(0));

  const T values[] = {T(1), T(2), T(3), T(4)};
  Gpu<float>::to_device(4, values, b.data());
  b.resize(9); // grows: old values kept, tail zero
  CHECK(b.size() == 9);
  CHECK(b.capacity() == 9);
  auto h = download(b);
  for (index_t i = 0; i < 9; ++i) CHECK(h[i] == (i < 4 ? values[i] : T(0)));

  const T* const storage = b.data();
  b.resize(2); // shrinks the size, not the allocation
  CHECK(b.size() == 2);
  CHECK(b.capacity() == 9);
  CHECK(b.data() == storage);
  b.resize(6); // within capacity: values past the old size are zero again
  CHECK(b.data() == storage);
  h = download(b);
  for (index_t i = 0; i < 6; ++i) CHECK(h[i] == (i < 2 ? values[i] : T(0)));

  DeviceBuffer<T> copy = b; // deep, device-to-device
  CHECK(copy.size() == 6);
  CHECK(copy.data() != b.data());
  const T seven = T(7);
  Gpu<float>::to_device(1, &seven, b.data());
  CHECK(download(copy)[0] == values[0]);
  CHECK(download(b)[0] == seven);

  DeviceBuffer<T> assigned;
  assigned = copy;
  CHECK(same_bits(download(assigned), download(copy)));
  assigned = assigned; // self-assignment through the copy-and-swap operator
  CHECK(assigned.size() == 6);

  const T* const moved_storage = copy.data();
  DeviceBuffer<T> moved = std::move(copy);
  CHECK(moved.data() == moved_storage);
  CHECK(copy.empty()); // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  CHECK(copy.data() == nullptr);

  moved.swap(b);
  CHECK(b.data() == moved_storage);
  CHECK(download(moved)[0] == seven);
}

TEST_CASE("a failing CUDA call throws cuda_error naming the call, and leaves no stale error behind") {
  bool thrown = false;
  try {
    DeviceBuffer<float> huge(index_t{1} << 50); // 4 PiB
  } catch (const fg::cuda_error& e) {
    thrown = true;
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("cudaMalloc") != std::string::npos);
    CHECK(what.find("cudaErrorMemoryAllocation") != std::string::npos);
    CHECK(what.find("cuda.hpp:") != std::string::npos);
    CHECK(e.call().find("cudaMalloc") != std::string::npos);
    const fg::error& base = e; // part of forgery's hierarchy
    CHECK(std::string(base.what()) == what);
  }
  CHECK(thrown);
  // The next launch's error check must not report the old failure.
  DeviceBuffer<float> small(8);
  CHECK_NOTHROW(Gpu<float>::fill(8, small.data(), 1.f));
  CHECK(Gpu<float>::sum(8, small.data()) == 8.f);
}

TEST_CASE("device_count and synchronize") {
  CHECK(Gpu<float>::device_count() >= 1);
  CHECK_NOTHROW(Gpu<float>::synchronize());
}

} // namespace
