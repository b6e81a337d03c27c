// CriticBatch<B, Rows>: the buffers between a critic's output (Rows x cols, the adversarial
// logit in row 0, any classifier head's logits below it) and a loss that reads one logit per
// sample. The objective maps critic outputs to losses and output gradients through it.
#pragma once

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"

namespace forgery {

namespace kernels {
/// dst[j * dst_stride] = src[j * src_stride].
template <class S>
struct StridedCopy {
  const S* src;
  index_t src_stride;
  S* dst;
  index_t dst_stride;
  FORGERY_HOST_DEVICE void operator()(index_t j) const { dst[j * dst_stride] = src[j * src_stride]; }
};
} // namespace kernels

/// Workspace of one critic batch of at most 2n samples ([real | fake]) for a critic with
/// `Rows` outputs per sample. Sized once (resize), so no update allocates.
/// \tparam B backend policy.
/// \tparam Rows critic outputs per sample: 1 + the classifier head's outputs.
template <class B, index_t Rows>
class CriticBatch {
public:
  using S = typename B::scalar;
  static constexpr index_t rows = Rows;

  /// Sizes the buffers for a batch of n real and n fake samples.
  void resize(index_t n) {
    d_logits_.resize(2 * n);
    work_.resize(4 * n);
    if constexpr (Rows > 1) {
      logits_.resize(2 * n);
      out_grad_.resize(Rows * 2 * n);
    }
  }

  /// Row 0 of the critic's output `out` as a contiguous array of out.batch() logits (a
  /// one-row output already is).
  const S* logits(ConstBatchView<S> out) {
    if constexpr (Rows == 1) {
      return out.data();
    } else {
      B::for_each(out.batch(), kernels::StridedCopy<S>{out.data(), Rows, logits_.data(), 1});
      return logits_.data();
    }
  }

  /// The loss's gradient with respect to each logit of logits() (2n).
  [[nodiscard]] S* logit_grad() noexcept { return d_logits_.data(); }
  /// Loss workspace: 4n scalars (a loss and a head each take 2n).
  [[nodiscard]] S* work() noexcept { return work_.data(); }

  /// The gradient of the critic's whole output for `cols` samples: logit_grad() in row 0,
  /// zeros in the head rows for the heads to add into (a one-row output: logit_grad()).
  S* output_grad(index_t cols) {
    if constexpr (Rows == 1) {
      return d_logits_.data();
    } else {
      B::fill(Rows * cols, out_grad_.data(), S(0));
      B::for_each(cols, kernels::StridedCopy<S>{d_logits_.data(), 1, out_grad_.data(), Rows});
      return out_grad_.data();
    }
  }

private:
  typename B::template buffer<S> d_logits_, work_, logits_, out_grad_;
};

} // namespace forgery
