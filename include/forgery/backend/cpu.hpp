// backend::Cpu<S>: Eigen's GEMM kernel and OpenMP loops. GEMMs are cut into tiles whose
// shape depends only on the problem size, each tile run by Eigen's single-threaded kernel
// with per-thread packing buffers: results are bitwise identical for any thread count and
// a steady-state call allocates nothing.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <type_traits>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/config.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace forgery::backend {

namespace detail {

/// Eigen's level-3 blocking descriptor pointed at memory we own and keep.
template <class S>
class FixedBlocking : public Eigen::internal::level3_blocking<S, S> {
public:
  void set(index_t kc, index_t mc, index_t nc, S* a, S* b) {
    this->m_kc = kc;
    this->m_mc = mc;
    this->m_nc = nc;
    this->m_blockA = a;
    this->m_blockB = b;
  }
};

/// Per-thread packing space for GEMM tiles; grows, never shrinks.
template <class S>
inline HostBuffer<S>& gemm_workspace() {
  thread_local HostBuffer<S> space;
  return space;
}

/// One tile of C = alpha * op(A) op(B) + C through Eigen's sequential kernel.
template <class S, int LhsOrder, int RhsOrder>
void eigen_gemm_tile(index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b, index_t ldb, S* c,
                     index_t ldc, index_t kc, index_t mc, index_t nc) {
  HostBuffer<S>& space = gemm_workspace<S>();
  // Both packed blocks start on a 64-byte boundary (Eigen's kernels use aligned loads), and
  // Eigen's packing may touch up to one register block past a panel's end.
  constexpr index_t align = 64 / static_cast<index_t>(sizeof(S));
  const index_t a_size = (kc * mc + align - 1) / align * align;
  const index_t need = a_size + kc * nc + 64;
  if (space.size() < need) space.resize(need);
  FixedBlocking<S> blocking;
  blocking.set(kc, mc, nc, space.data(), space.data() + a_size);
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, S, LhsOrder, false, S, RhsOrder, false, Eigen::ColMajor,
                                                 1>::run(m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, blocking, nullptr);
}

} // namespace detail

/// \tparam S the scalar type, float or double.
template <class S>
struct Cpu : OpSet<Cpu<S>, S> {
  static_assert(std::is_floating_point_v<S>, "forgery::backend::Cpu<S>: S must be float or double.");
  using scalar = S;
  template <class T>
  using buffer = HostBuffer<T>;
  static constexpr bool host_memory = true;
  static constexpr const char* name = "cpu";

  /// Below this many elements a loop runs on the calling thread: a fork costs more.
  static constexpr index_t parallel_threshold = 1 << 14;

  template <class F>
  static void for_each(index_t n, F f) {
#if defined(_OPENMP)
    if (n >= parallel_threshold && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
      for (index_t i = 0; i < n; ++i) f(i);
      return;
    }
#endif
    for (index_t i = 0; i < n; ++i) f(i);
  }

  /// C = alpha * op(A) * op(B) + beta * C (column-major, BLAS conventions).
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (beta != S(1)) {
      for_each(n, [=](index_t j) {
        S* col = c + j * ldc;
        for (index_t i = 0; i < m; ++i) col[i] = beta == S(0) ? S(0) : beta * col[i];
      });
    }
    if (k <= 0 || alpha == S(0)) return;
    if (ta == Trans::no && tb == Trans::no)
      run<Eigen::ColMajor, Eigen::ColMajor>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else if (ta == Trans::no)
      run<Eigen::ColMajor, Eigen::RowMajor>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else if (tb == Trans::no)
      run<Eigen::RowMajor, Eigen::ColMajor>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else
      run<Eigen::RowMajor, Eigen::RowMajor>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
  }

  /// Sum of x[0..n): fixed-size chunks, each reduced in 16 interleaved lanes, then the
  /// chunk sums added in order. The grouping depends on n only, not on the thread count nor
  /// on the address of x (Eigen's reductions peel to an aligned start, so their grouping,
  /// and the last bits, change with the buffer's alignment).
  static S sum(index_t n, const S* x) {
    return chunked_reduce(
        n, [x](index_t lo, index_t len) { return lane_reduce(len, [x, lo](index_t i) { return x[lo + i]; }); });
  }
  static S dot(index_t n, const S* x, const S* y) {
    return chunked_reduce(n, [x, y](index_t lo, index_t len) {
      return lane_reduce(len, [x, y, lo](index_t i) { return x[lo + i] * y[lo + i]; });
    });
  }

private:
  static constexpr index_t reduce_chunk = 4096;

  // sum_i term(i) for i < len: lane k accumulates the terms i = k mod 16 (independent
  // accumulators, which the compiler vectorises without reassociating), then the lanes are
  // combined pairwise in a fixed order and the tail added.
  template <class Term>
  static S lane_reduce(index_t len, Term term) {
    constexpr index_t lanes = 16;
    S acc[lanes] = {};
    const index_t blocks = len / lanes;
    for (index_t b = 0; b < blocks; ++b)
      for (index_t k = 0; k < lanes; ++k) acc[k] += term(b * lanes + k);
    S tail = S(0);
    for (index_t i = blocks * lanes; i < len; ++i) tail += term(i);
    for (index_t w = lanes / 2; w > 0; w /= 2)
      for (index_t k = 0; k < w; ++k) acc[k] += acc[k + w];
    return acc[0] + tail;
  }

  // `chunk(lo, len)` reduces one chunk. Chunk boundaries depend only on n, and the partial
  // sums live in a grow-only per-thread buffer, so a steady-state call allocates nothing.
  template <class F>
  static S chunked_reduce(index_t n, F chunk) {
    if (n <= 0) return S(0);
    const index_t chunks = (n + reduce_chunk - 1) / reduce_chunk;
    if (chunks == 1) return chunk(0, n);
    thread_local HostBuffer<S> partials;
    if (partials.size() < chunks) partials.resize(chunks);
    S* const partial = partials.data();
    for_each_always(chunks, [=](index_t c) {
      const index_t lo = c * reduce_chunk;
      partial[c] = chunk(lo, std::min(reduce_chunk, n - lo));
    });
    S acc = S(0);
    for (index_t c = 0; c < chunks; ++c) acc += partial[c];
    return acc;
  }

  template <class F>
  static void for_each_always(index_t n, F f) {
#if defined(_OPENMP)
    if (n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
      for (index_t i = 0; i < n; ++i) f(i);
      return;
    }
#endif
    for (index_t i = 0; i < n; ++i) f(i);
  }

  template <int LhsOrder, int RhsOrder>
  static void run(index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b, index_t ldb, S* c,
                  index_t ldc) {
    // Blocking from the whole problem on one thread: the k-blocking, and so each output's
    // summation order, is then the same whichever thread runs a tile.
    index_t kc = k, mc = m, nc = n;
    Eigen::internal::computeProductBlockingSizes<S, S, 1>(kc, mc, nc, index_t{1});
    // Tiles: about 8 of them when the problem is large enough, shape fixed by (m, n, k).
    constexpr index_t min_flops_parallel = index_t{1} << 18;
    index_t tn = n, tm = m;
    if (m * n * k >= min_flops_parallel) {
      tn = std::max<index_t>(32, round_up((n + 7) / 8, 8));
      const index_t tiles_n = (n + tn - 1) / tn;
      const index_t want_m = std::max<index_t>(1, 8 / tiles_n);
      tm = std::max<index_t>(48, round_up((m + want_m - 1) / want_m, 24));
    }
    const index_t tiles_n = (n + tn - 1) / tn, tiles_m = (m + tm - 1) / tm;
    const index_t mc_t = std::min(mc, tm), nc_t = std::min(nc, tn);
    auto tile = [=](index_t t) {
      const index_t i0 = (t % tiles_m) * tm, j0 = (t / tiles_m) * tn;
      const index_t mi = std::min(tm, m - i0), nj = std::min(tn, n - j0);
      const S* at = LhsOrder == Eigen::ColMajor ? a + i0 : a + i0 * lda;
      const S* bt = RhsOrder == Eigen::ColMajor ? b + j0 * ldb : b + j0;
      detail::eigen_gemm_tile<S, LhsOrder, RhsOrder>(mi, nj, k, alpha, at, lda, bt, ldb, c + j0 * ldc + i0, ldc, kc,
                                                     mc_t, nc_t);
    };
    for_each_always(tiles_m * tiles_n, tile);
  }

  static constexpr index_t round_up(index_t x, index_t to) { return (x + to - 1) / to * to; }
};

} // namespace forgery::backend
