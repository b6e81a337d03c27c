// The CPU backends' one thread pool: OpenMP's. Every parallel loop of forgery goes through
// these two functions, so nothing nests or competes with a second pool.
#pragma once

#include "forgery/core/config.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace forgery::backend::parallel {

/// Below this many elements an elementwise loop runs on the calling thread: a fork costs more.
inline constexpr index_t elementwise_threshold = 1 << 14;

/// The fewest indices worth a fork when each index does about `work` elements of work (a
/// row, a plane, a channel): a loop of n indices runs in parallel when n * work reaches the
/// elementwise threshold, and n >= 2.
constexpr index_t min_parallel_indices(index_t work) {
  const index_t w = work > 1 ? work : 1;
  const index_t n = (elementwise_threshold + w - 1) / w;
  return n > 2 ? n : 2;
}

/// A kernel that can also run a contiguous range of its indices in one call, f.range(lo,
/// hi) doing exactly what f(lo), ..., f(hi - 1) would: host loops then pay its index
/// decomposition (divisions, per-column setup) once per range instead of once per index.
/// Device backends keep calling f(i).
template <class F>
concept RangeKernel = requires(const F& f, index_t i) {
  f.range(i, i);
};

/// f(i) for i < n, statically scheduled over OpenMP's threads when n reaches `min_parallel`,
/// on the calling thread otherwise or inside a parallel region (no nesting). A RangeKernel
/// gets one range per thread, the same contiguous share a static schedule gives.
template <class F>
void for_each(index_t n, F f, index_t min_parallel = elementwise_threshold) {
#if defined(_OPENMP)
  if (n >= min_parallel && n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      // Each thread's own copy: stores through the functor's pointers cannot alias a
      // thread-private object, so its members stay in registers and the loop vectorises
      // (the shared f would be reloaded after every store of a matching type).
      const F local = f;
      if constexpr (RangeKernel<F>) {
        const auto team = static_cast<index_t>(omp_get_num_threads());
        const auto me = static_cast<index_t>(omp_get_thread_num());
        local.range(n * me / team, n * (me + 1) / team);
      } else {
#pragma omp for schedule(static)
        for (index_t i = 0; i < n; ++i) local(i);
      }
    }
    return;
  }
#endif
  if constexpr (RangeKernel<F>)
    f.range(0, n);
  else
    for (index_t i = 0; i < n; ++i) f(i);
}

} // namespace forgery::backend::parallel
