// AC-GAN's auxiliary classifier term (Odena et al. 2017) as a composable objective part:
// the critic also predicts the class of real and generated samples, and the generator is
// rewarded when its samples are classified as the class it was asked for.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/loss/cross_entropy.hpp"

namespace forgery {

namespace loss {

/// The AC-GAN classification term. The critic ends with Dense<1 + Classes>: row 0 is the
/// adversarial logit the loss reads, rows 1..Classes are class logits. The critic minimises
/// weight * (CE(real) + CE(fake)) (fake: when `on_fake`, as in the paper), the generator
/// weight * CE(fake), with the labels the generator was given.
/// \tparam Classes number of classes; the generator must condition on as many.
template <index_t Classes>
struct AuxClassifier {
  static_assert(Classes >= 2, "fg::loss::AuxClassifier<Classes>: needs at least 2 classes.");
  static constexpr index_t head_outputs = Classes;
  static constexpr const char* name = "aux_classifier";

  struct Config {
    double weight = 1.0; ///< weight of the classification terms
    bool on_fake = true; ///< whether the critic also learns to classify generated samples
  };

  AuxClassifier() = default;
  explicit AuxClassifier(const Config& c) : config_(c) {
    if (!(std::isfinite(c.weight) && c.weight >= 0))
      throw config_error("AuxClassifier.weight", std::to_string(c.weight), "a finite value >= 0");
  }
  [[nodiscard]] const Config& config() const noexcept { return config_; }

  /// Critic term on the (1 + Classes) x 2n output of [real | fake]; adds its gradient into
  /// rows 1..Classes of `grad`. `work` holds 2n scalars.
  template <class B, class S>
  S critic(index_t n, const S* out, const std::int32_t* labels, S* grad, S* work) const {
    const S scale = static_cast<S>(config_.weight) / static_cast<S>(n);
    const index_t cols = config_.on_fake ? 2 * n : n;
    B::for_each(cols, kernels::SoftmaxCrossEntropy<S>{out, labels, grad, work, Classes, Classes + 1, 1, scale});
    return scale * B::sum(cols, work);
  }

  /// Generator term on the (1 + Classes) x n output of the fakes.
  template <class B, class S>
  S generator(index_t n, const S* out, const std::int32_t* labels, S* grad, S* work) const {
    const S scale = static_cast<S>(config_.weight) / static_cast<S>(n);
    B::for_each(n, kernels::SoftmaxCrossEntropy<S>{out, labels, grad, work, Classes, Classes + 1, 1, scale});
    return scale * B::sum(n, work);
  }

private:
  Config config_{};
};

} // namespace loss

} // namespace forgery
