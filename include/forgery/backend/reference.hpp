// backend::Reference<S>: naive single-threaded loops, obviously correct. The oracle that
// the fast backends are tested against; never used for speed.
#pragma once

#include <type_traits>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/config.hpp"

namespace forgery::backend {

/// \tparam S the scalar type, float or double.
template <class S>
struct Reference : OpSet<Reference<S>, S> {
  static_assert(std::is_floating_point_v<S>, "forgery::backend::Reference<S>: S must be float or double.");
  using scalar = S;
  /// Memory the backend computes on: host memory.
  template <class T>
  using buffer = HostBuffer<T>;
  static constexpr bool host_memory = true;
  static constexpr const char* name = "reference";

  /// f(i) for i < n, in order; `work` (elements per index, a scheduling hint for the
  /// parallel backends) is ignored.
  template <class F>
  static void for_each(index_t n, F f, index_t /*work*/ = 1) {
    for (index_t i = 0; i < n; ++i) f(i);
  }

  /// C = alpha * op(A) * op(B) + beta * C with C m x n, op(A) m x k, op(B) k x n; all
  /// column-major with leading dimensions lda, ldb, ldc. beta == 0 ignores C's old values.
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    for (index_t j = 0; j < n; ++j)
      for (index_t i = 0; i < m; ++i) {
        S acc = S(0);
        for (index_t p = 0; p < k; ++p) {
          const S av = ta == Trans::no ? a[p * lda + i] : a[i * lda + p];
          const S bv = tb == Trans::no ? b[j * ldb + p] : b[p * ldb + j];
          acc += av * bv;
        }
        S& out = c[j * ldc + i];
        out = alpha * acc + (beta == S(0) ? S(0) : beta * out);
      }
  }

  /// Sum of x[0..n) in index order.
  static S sum(index_t n, const S* x) {
    S acc = S(0);
    for (index_t i = 0; i < n; ++i) acc += x[i];
    return acc;
  }
  /// Dot product of x and y in index order.
  static S dot(index_t n, const S* x, const S* y) {
    S acc = S(0);
    for (index_t i = 0; i < n; ++i) acc += x[i] * y[i];
    return acc;
  }
};

} // namespace forgery::backend
