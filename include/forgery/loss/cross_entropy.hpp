// Softmax cross-entropy on class logits: the loss of the classifier that image metrics
// use (examples/fashion_classifier) and the kernel of AC-GAN's classifier term.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/layers/context.hpp"

namespace forgery {

namespace kernels {

/// Per column j of a matrix with `rows` rows per column: softmax cross-entropy of the
/// `classes` logits starting at row `first` against labels[j], written to ce[j], and
/// scale * (softmax - onehot) added into the same rows of `grad` (grad may be nullptr).
/// Log-sum-exp with the maximum subtracted: no overflow for any finite logits.
template <class S>
struct SoftmaxCrossEntropy {
  const S* out;
  const std::int32_t* labels;
  S* grad;
  S* ce;
  index_t classes, rows, first;
  S scale;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* z = out + j * rows + first;
    S m = z[0];
    for (index_t k = 1; k < classes; ++k) m = z[k] > m ? z[k] : m;
    S denom = S(0);
    for (index_t k = 0; k < classes; ++k) denom += std::exp(z[k] - m);
    const S log_denom = std::log(denom);
    const index_t y = labels[j];
    ce[j] = m + log_denom - z[y];
    if (grad == nullptr) return;
    S* g = grad + j * rows + first;
    for (index_t k = 0; k < classes; ++k) {
      const S p = std::exp(z[k] - m - log_denom);
      g[k] += scale * (p - (k == y ? S(1) : S(0)));
    }
  }
};

} // namespace kernels

namespace loss {

/// Mean softmax cross-entropy of `logits` (classes x n) against `labels` (n values in
/// [0, classes), checked on host backends); writes its gradient (with the 1/n) into `grad` (classes x n,
/// overwritten; nullptr: value only). `work` holds n scalars.
template <class B, class S>
S cross_entropy(ConstBatchView<S> logits, const std::int32_t* labels, std::type_identity_t<S>* grad,
                std::type_identity_t<S>* work) {
  const index_t classes = logits.features(), n = logits.batch();
  if (classes < 2 || n < 1)
    throw shape_error("loss::cross_entropy logits", "classes >= 2 and n >= 1",
                      std::to_string(classes) + " x " + std::to_string(n));
  // Labels in device memory (a device backend) are the caller's to check on the host.
  if constexpr (B::host_memory) detail::check_label_range(labels, n, classes, "loss::cross_entropy");
  const S scale = S(1) / static_cast<S>(n);
  if (grad != nullptr) B::fill(classes * n, grad, S(0));
  B::for_each(n, kernels::SoftmaxCrossEntropy<S>{logits.data(), labels, grad, work, classes, classes, 0, scale});
  return scale * B::sum(n, work);
}

} // namespace loss

} // namespace forgery
