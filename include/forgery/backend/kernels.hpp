// Kernel bodies shared by every backend: functors called once per index, written once and
// launched by the OpenMP loop (backend::Cpu), a plain loop (backend::Reference) or a CUDA
// grid (backend::Cuda). Each is a small aggregate of pointers and scalars.
#pragma once

#include <cstdint>

#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"

namespace forgery::kernels {

/// x[i] = value.
template <class S>
struct Fill {
  S* x;
  S value;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { x[i] = value; }
};

/// dst[i] = src[i].
template <class S>
struct Copy {
  const S* src;
  S* dst;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { dst[i] = src[i]; }
};

/// y[i] = a * x[i] + y[i].
template <class S>
struct Axpy {
  S a;
  const S* x;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { y[i] = a * x[i] + y[i]; }
};

/// y[i] = a * y[i].
template <class S>
struct Scale {
  S a;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { y[i] = a * y[i]; }
};

/// Column j of the features x batch matrix y gets the vector b added (a bias), one index per column.
template <class S>
struct AddColumnVector {
  const S* b;
  S* y;
  index_t rows;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    S* col = y + j * rows;
    for (index_t r = 0; r < rows; ++r) col[r] += b[r];
  }
};

/// out[r] = beta * out[r] + sum_j a(r, j): one index per row, summed in column order.
template <class S>
struct RowSums {
  const S* a;
  index_t rows, cols, lda;
  S beta;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t r) const {
    S acc = S(0);
    for (index_t j = 0; j < cols; ++j) acc += a[j * lda + r];
    out[r] = (beta == S(0) ? S(0) : beta * out[r]) + acc;
  }
};

/// out[j] = beta * out[j] + sum_r a(r, j): one index per column, summed in row order.
template <class S>
struct ColSums {
  const S* a;
  index_t rows, lda;
  S beta;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    S acc = S(0);
    const S* col = a + j * lda;
    for (index_t r = 0; r < rows; ++r) acc += col[r];
    out[j] = (beta == S(0) ? S(0) : beta * out[j]) + acc;
  }
};

/// Uniform values in (lo, hi), one Philox block per index.
template <class S>
struct UniformFill {
  S* x;
  index_t n;
  std::uint64_t seed, stream, counter;
  S lo, span;
  FORGERY_HOST_DEVICE void operator()(index_t block) const {
    const PhiloxBlock b = philox_block(seed, stream, counter + static_cast<std::uint64_t>(block));
    constexpr index_t per = values_per_block<S>;
    for (index_t l = 0; l < per; ++l) {
      const index_t i = block * per + l;
      if (i < n) x[i] = lo + span * uniform_from_block<S>(b, static_cast<int>(l));
    }
  }
};

/// Normal values with the given mean and standard deviation, one Philox block per index.
template <class S>
struct NormalFill {
  S* x;
  index_t n;
  std::uint64_t seed, stream, counter;
  S mean, stddev;
  FORGERY_HOST_DEVICE void operator()(index_t block) const {
    const PhiloxBlock b = philox_block(seed, stream, counter + static_cast<std::uint64_t>(block));
    constexpr index_t per = values_per_block<S>;
    for (index_t l = 0; l < per; ++l) {
      const index_t i = block * per + l;
      if (i < n) x[i] = mean + stddev * normal_from_block<S>(b, static_cast<int>(l));
    }
  }
};

} // namespace forgery::kernels
