// TensorDataset: an in-memory dataset held as an xtensor whose first axis is the sample
// ((N, F) or (N, C, H, W)), usable as a Trainer data source. Batches are drawn uniformly
// with replacement from the Philox stream, so a draw depends only on the stream position:
// nothing else needs saving to resume.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <xtensor/xtensor.hpp>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/checked.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"

namespace forgery::data {

namespace detail {

/// The values per sample of a (N, ...) shape: the product of the extents after the first,
/// with N times it, each step checked. A shape whose product wraps modulo 2^64 (xtensor's
/// size) would otherwise pass for a few samples of a few values. Throws size_error naming `who`.
template <class Shape>
index_t values_per_sample(const Shape& shape, const std::string& who) {
  index_t features = 1;
  for (std::size_t axis = 1; axis < shape.size(); ++axis)
    features = checked_mul(features, checked_index(shape[axis], who + " extent"), who + " values per sample");
  checked_mul(checked_index(shape[0], who + " samples"), features, who + " samples x values per sample");
  return features;
}

} // namespace detail

/// \tparam S the scalar type of the samples. \tparam Rank the tensor rank (2 for (N, F), 4
/// for (N, C, H, W)); each sample's values are contiguous, as a batch column expects.
template <class S, std::size_t Rank = 2>
class TensorDataset {
  static_assert(Rank >= 2, "fg::data::TensorDataset: the tensor needs a sample axis and at least one feature axis.");

public:
  using tensor_type = xt::xtensor<S, Rank>;

  /// Takes the samples (row-major, first axis = sample). Throws shape_error when empty,
  /// size_error when the product of the extents does not fit in index_t.
  explicit TensorDataset(tensor_type samples) : samples_(std::move(samples)) {
    features_ = detail::values_per_sample(samples_.shape(), "TensorDataset");
    if (samples_.shape()[0] == 0 || features_ == 0)
      throw shape_error("TensorDataset", "at least one sample with at least one value", "an empty tensor");
    if (samples_.shape()[0] >= (std::uint64_t{1} << 32))
      throw shape_error("TensorDataset", "fewer than 2^32 samples", std::to_string(samples_.shape()[0]) + " samples");
  }

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(samples_.shape()[0]); }
  [[nodiscard]] index_t features() const noexcept { return features_; }
  [[nodiscard]] const tensor_type& samples() const noexcept { return samples_; }

  /// All samples as a features x N view (the same memory).
  [[nodiscard]] ConstBatchView<S> view() const noexcept { return {samples_.data(), features_, size()}; }

  /// Philox blocks each sample takes (sample j uses the block at the stream's counter + j).
  static constexpr std::uint64_t blocks_per_sample = 1;

  /// Fills `out` (features x batch) with samples drawn uniformly with replacement; takes one
  /// Philox block per sample from `rng`.
  template <class T>
  void sample(RandomStream& rng, BatchView<T> out) const {
    if (out.features() != features_)
      throw shape_error("TensorDataset::sample", std::to_string(features_) + " features per sample",
                        std::to_string(out.features()));
    const std::uint64_t first = rng.take(static_cast<std::uint64_t>(out.batch()));
    const auto n = static_cast<std::uint64_t>(size());
    for (index_t j = 0; j < out.batch(); ++j) {
      const PhiloxBlock b = philox_block(rng.seed, rng.stream, first + static_cast<std::uint64_t>(j));
      // A 32-bit word reduced to [0, n) by a multiply-shift (Lemire): n < 2^32 is checked at
      // construction, and the bias is below n / 2^32.
      const auto index = static_cast<index_t>((static_cast<std::uint64_t>(b.w[0]) * n) >> 32);
      const S* src = samples_.data() + index * features_;
      T* dst = out.sample(j);
      for (index_t f = 0; f < features_; ++f) dst[f] = static_cast<T>(src[f]);
    }
  }

private:
  tensor_type samples_;
  index_t features_ = 0;
};

} // namespace forgery::data
