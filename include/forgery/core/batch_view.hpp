// Non-owning views of a batch: a column-major features x batch matrix whose columns are
// samples (CHW inside a column), the memory of a row-major (N, C, H, W) tensor.
#pragma once

#include <Eigen/Core>
#include <type_traits>

#include "forgery/core/checked.hpp"
#include "forgery/core/config.hpp"

namespace forgery {

/// A contiguous features x batch view. `T` may be const-qualified for read-only views.
template <class T>
class BatchView {
public:
  using value_type = std::remove_const_t<T>;

  constexpr BatchView() = default;
  /// Throws size_error when features or batch is negative or features x batch does not fit
  /// in index_t: every index into the view is computed from that product.
  constexpr BatchView(T* data, index_t features, index_t batch) : data_(data), features_(features), batch_(batch) {
    checked_mul(features, batch, "BatchView features x batch");
  }
  /// A mutable view converts to a read-only one.
  template <class U>
  requires(std::is_const_v<T>&& std::is_same_v<std::remove_const_t<T>, U>) constexpr BatchView(
      BatchView<U> other) noexcept // NOLINT(google-explicit-constructor)
      : data_(other.data()), features_(other.features()), batch_(other.batch()) {}

  [[nodiscard]] constexpr T* data() const noexcept { return data_; }
  [[nodiscard]] constexpr index_t features() const noexcept { return features_; }
  [[nodiscard]] constexpr index_t batch() const noexcept { return batch_; }
  [[nodiscard]] constexpr index_t size() const noexcept { return features_ * batch_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return data_ == nullptr; }
  /// Element (feature f, sample n).
  [[nodiscard]] constexpr T& operator()(index_t f, index_t n) const noexcept { return data_[n * features_ + f]; }
  /// Pointer to sample n's contiguous values.
  [[nodiscard]] constexpr T* sample(index_t n) const noexcept { return data_ + n * features_; }

  /// The same memory as an Eigen matrix (host memory only).
  [[nodiscard]] auto matrix() const noexcept {
    using M = Eigen::Matrix<value_type, Eigen::Dynamic, Eigen::Dynamic>;
    if constexpr (std::is_const_v<T>)
      return Eigen::Map<const M>(data_, features_, batch_);
    else
      return Eigen::Map<M>(data_, features_, batch_);
  }

private:
  T* data_ = nullptr;
  index_t features_ = 0;
  index_t batch_ = 0;
};

template <class S>
using ConstBatchView = BatchView<const S>;

} // namespace forgery
