// backend::Cpu<S, Gemm>: OpenMP loops over the shared op set, and matrix products from a GEMM
// provider policy: NativeGemm (forgery's packed AVX-512/AVX2 kernels for float, chosen at
// run time; Eigen otherwise) by default, or EigenGemm. Both give results that are bitwise
// identical for any thread count and allocate nothing in a steady-state call.
#pragma once

#include <algorithm>
#include <type_traits>

#include "forgery/backend/gemm_eigen.hpp"
#include "forgery/backend/gemm_native.hpp"
#include "forgery/backend/op_set.hpp"
#include "forgery/backend/parallel.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/config.hpp"

namespace forgery::backend {

/// \tparam S the scalar type, float or double.
/// \tparam Gemm the GEMM provider: NativeGemm or EigenGemm (a type with a static
///   `gemm<S>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`).
template <class S, class Gemm = NativeGemm>
struct Cpu : OpSet<Cpu<S, Gemm>, S> {
  static_assert(std::is_floating_point_v<S>, "forgery::backend::Cpu<S>: S must be float or double.");
  using gemm_provider = Gemm;
  using scalar = S;
  template <class T>
  using buffer = HostBuffer<T>;
  static constexpr bool host_memory = true;
  static constexpr const char* name = "cpu";

  /// Below this many elements a loop runs on the calling thread: a fork costs more.
  static constexpr index_t parallel_threshold = parallel::elementwise_threshold;

  /// f(i) for i < n. `work` is about how many elements one index touches (1 for an
  /// elementwise loop; a row's length for a loop over rows): the loop forks over OpenMP's
  /// threads when n * work reaches parallel_threshold, so loops of few long rows run in
  /// parallel too. Every index is computed the same way whichever thread runs it.
  template <class F>
  static void for_each(index_t n, F f, index_t work = 1) {
    parallel::for_each(n, f, parallel::min_parallel_indices(work));
  }

  /// C = alpha * op(A) * op(B) + beta * C (column-major, BLAS conventions).
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    Gemm::template gemm<S>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
    parallel::for_each(n, f, 2);
  }
};

} // namespace forgery::backend
