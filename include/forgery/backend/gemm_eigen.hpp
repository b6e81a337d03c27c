// backend::EigenGemm: the portable GEMM provider of the CPU backend. The product is cut into
// tiles whose shape depends only on the problem size, each tile run by Eigen's
// single-threaded kernel with per-thread packing buffers: results are bitwise identical for
// any thread count and a steady-state call allocates nothing.
#pragma once

#include <Eigen/Core>
#include <algorithm>

#include "forgery/backend/op_set.hpp"
#include "forgery/backend/parallel.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/config.hpp"

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

/// C = beta * C on an m x n column-major block (beta == 0 writes zeros without reading C).
template <class S>
void scale_block(index_t m, index_t n, S beta, S* c, index_t ldc) {
  if (beta == S(1)) return;
  parallel::for_each(n, [=](index_t j) {
    S* col = c + j * ldc;
    for (index_t i = 0; i < m; ++i) col[i] = beta == S(0) ? S(0) : beta * col[i];
  });
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

template <class S, int LhsOrder, int RhsOrder>
void eigen_gemm(index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b, index_t ldb, S* c,
                index_t ldc) {
  constexpr auto round_up = [](index_t x, index_t to) { return (x + to - 1) / to * to; };
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
    eigen_gemm_tile<S, LhsOrder, RhsOrder>(mi, nj, k, alpha, at, lda, bt, ldb, c + j0 * ldc + i0, ldc, kc, mc_t, nc_t);
  };
  parallel::for_each(tiles_m * tiles_n, tile, 2);
}

} // namespace detail

/// GEMM provider: Eigen's kernels, for every scalar type and CPU (the portable fallback).
struct EigenGemm {
  static constexpr const char* name = "eigen";

  /// C = alpha * op(A) * op(B) + beta * C (column-major, BLAS conventions).
  template <class S>
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    if (m <= 0 || n <= 0) return;
    detail::scale_block(m, n, beta, c, ldc);
    if (k <= 0 || alpha == S(0)) return;
    constexpr int col = Eigen::ColMajor, row = Eigen::RowMajor;
    if (ta == Trans::no && tb == Trans::no)
      detail::eigen_gemm<S, col, col>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else if (ta == Trans::no)
      detail::eigen_gemm<S, col, row>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else if (tb == Trans::no)
      detail::eigen_gemm<S, row, col>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else
      detail::eigen_gemm<S, row, row>(m, n, k, alpha, a, lda, b, ldb, c, ldc);
  }
};

} // namespace forgery::backend
