// Scores computed from a classifier's outputs on generated samples: the Inception score
// (Salimans et al., NeurIPS 2016) and class coverage, how mode collapse shows on images.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"

namespace forgery::metrics {

/// What inception_score() found.
struct InceptionScore {
  double mean = 0;    ///< mean over splits of exp(E_x KL(p(y|x) || p(y)))
  double stddev = 0;  ///< standard deviation over splits (divisor `splits`, as the reference code)
  index_t splits = 0; ///< splits the samples were cut into
};

/// When a class counts as covered by class_coverage().
struct ClassCoverageConfig {
  /// Least fraction of all samples a class must receive to count as covered (beyond one
  /// sample); 0 counts every class that is predicted at all.
  double min_fraction = 0;
};

/// What class_coverage() found: the histogram of predicted classes.
struct ClassCoverage {
  std::vector<index_t> counts; ///< samples per class (argmax of the logits, or the label)
  index_t classes = 0;         ///< classes of the classifier
  index_t samples = 0;         ///< samples evaluated
  index_t covered = 0;         ///< classes with count > 0 and count >= min_fraction * samples
  /// Largest over smallest count, over all classes: 1 for a perfectly balanced histogram,
  /// +infinity when some class is never predicted.
  double max_min_ratio = 0;
  /// Entropy of counts / samples divided by log(classes), in [0, 1]: 1 when balanced, 0 when
  /// every sample falls in one class (1 when there is a single class).
  double normalized_entropy = 0;
};

namespace detail {

/// Checks a classes x n logit matrix: at least one class and one sample, finite values.
template <class T>
void check_logits(const char* who, BatchView<T> logits) {
  if (logits.features() < 1)
    throw shape_error(std::string("metrics::") + who, "logits with at least 1 class (classes x samples)", "0 classes");
  if (logits.batch() < 1 || logits.data() == nullptr)
    throw config_error("logits", "0 samples", std::string("at least one sample for ") + who);
  for (index_t j = 0; j < logits.batch(); ++j)
    for (index_t c = 0; c < logits.features(); ++c)
      if (!std::isfinite(static_cast<double>(logits(c, j))))
        throw config_error("logits",
                           "a non-finite value at class " + std::to_string(c) + " of sample " + std::to_string(j),
                           "finite logits");
}

/// log softmax of sample j's logits into `out` (classes values), by log-sum-exp around the
/// largest logit, so no exponent overflows and the largest probability is never lost.
template <class T>
void log_softmax(BatchView<T> logits, index_t j, std::vector<double>& out) {
  const index_t k = logits.features();
  double top = -std::numeric_limits<double>::infinity();
  for (index_t c = 0; c < k; ++c) top = std::max(top, static_cast<double>(logits(c, j)));
  double sum = 0;
  for (index_t c = 0; c < k; ++c) sum += std::exp(static_cast<double>(logits(c, j)) - top);
  const double lse = top + std::log(sum);
  for (index_t c = 0; c < k; ++c) out[static_cast<std::size_t>(c)] = static_cast<double>(logits(c, j)) - lse;
}

/// The histogram's summary statistics, once `counts` and `samples` are filled in.
inline void summarize(ClassCoverage& r, const ClassCoverageConfig& cfg) {
  const auto [lo, hi] = std::minmax_element(r.counts.begin(), r.counts.end());
  r.max_min_ratio =
      *lo == 0 ? std::numeric_limits<double>::infinity() : static_cast<double>(*hi) / static_cast<double>(*lo);
  const double need = cfg.min_fraction * static_cast<double>(r.samples);
  double h = 0;
  for (const index_t c : r.counts) {
    if (c == 0) continue;
    if (static_cast<double>(c) >= need) ++r.covered;
    const double q = static_cast<double>(c) / static_cast<double>(r.samples);
    h -= q * std::log(q);
  }
  r.normalized_entropy = r.classes == 1 ? 1.0 : h / std::log(static_cast<double>(r.classes));
}

inline void check_min_fraction(const ClassCoverageConfig& cfg) {
  if (!(cfg.min_fraction >= 0.0 && cfg.min_fraction <= 1.0))
    throw config_error("ClassCoverageConfig.min_fraction", std::to_string(cfg.min_fraction), "a value in [0, 1]");
}

} // namespace detail

/// The Inception score of generated samples from a classifier's logits on them (classes x n,
/// host memory, any scalar type): exp(mean_i KL(p(y|x_i) || p(y))), with p(y|x_i) the softmax
/// of sample i's logits and p(y) the mean of p(y|x_i) over the split. It lies in
/// [1, classes]: `classes` for confident predictions spread evenly over the classes, 1 when
/// every sample gets the same prediction. As in the reference code, the samples are cut into
/// `splits` consecutive parts (part s holds samples [s n / splits, (s + 1) n / splits),
/// rounded down, so every sample is used), scored separately, and the mean and standard
/// deviation of the part scores are reported. The softmax is taken in double by
/// log-sum-exp; a probability that underflows to 0 contributes 0 to the divergence (its limit).
/// Single-threaded, fixed order.
/// Throws shape_error for 0 classes, config_error for no samples, non-finite logits, or
/// splits outside [1, n].
template <class T>
[[nodiscard]] InceptionScore inception_score(BatchView<T> logits, index_t splits = 1) {
  detail::check_logits("inception_score", logits);
  const index_t k = logits.features(), n = logits.batch();
  if (splits < 1 || splits > n)
    throw config_error("splits", std::to_string(splits), "a value in [1, " + std::to_string(n) + "] (the samples)");

  std::vector<double> logp(static_cast<std::size_t>(k)), marginal(static_cast<std::size_t>(k));
  std::vector<double> scores(static_cast<std::size_t>(splits));
  for (index_t s = 0; s < splits; ++s) {
    const index_t begin = s * n / splits, end = (s + 1) * n / splits;
    const auto count = static_cast<double>(end - begin);
    // Two passes over the split (the marginal, then the divergences), recomputing the
    // softmax rather than storing classes x n probabilities.
    std::fill(marginal.begin(), marginal.end(), 0.0);
    for (index_t j = begin; j < end; ++j) {
      detail::log_softmax(logits, j, logp);
      for (std::size_t c = 0; c < logp.size(); ++c) marginal[c] += std::exp(logp[c]);
    }
    for (double& p : marginal) p = std::log(p / count);
    double kl = 0;
    for (index_t j = begin; j < end; ++j) {
      detail::log_softmax(logits, j, logp);
      double sample = 0;
      for (std::size_t c = 0; c < logp.size(); ++c) {
        const double p = std::exp(logp[c]);
        if (p > 0.0) sample += p * (logp[c] - marginal[c]);
      }
      kl += sample;
    }
    scores[static_cast<std::size_t>(s)] = std::exp(kl / count);
  }

  InceptionScore r;
  r.splits = splits;
  for (const double v : scores) r.mean += v;
  r.mean /= static_cast<double>(splits);
  double sq = 0;
  for (const double v : scores) sq += (v - r.mean) * (v - r.mean);
  r.stddev = std::sqrt(sq / static_cast<double>(splits));
  return r;
}

/// The histogram of a classifier's predictions (argmax over classes of each column of
/// `logits`, classes x n, host memory; ties go to the lower class; probabilities work the
/// same as logits) and how evenly it covers the classes. A generator that has collapsed onto
/// a few modes covers few classes, with a large max/min ratio and a low normalised entropy.
/// Throws shape_error for 0 classes, config_error for no samples, non-finite logits, or
/// min_fraction outside [0, 1].
template <class T>
[[nodiscard]] ClassCoverage class_coverage(BatchView<T> logits, const ClassCoverageConfig& cfg = {}) {
  detail::check_logits("class_coverage", logits);
  detail::check_min_fraction(cfg);
  ClassCoverage r;
  r.classes = logits.features();
  r.samples = logits.batch();
  r.counts.assign(static_cast<std::size_t>(r.classes), 0);
  for (index_t j = 0; j < r.samples; ++j) {
    index_t best = 0;
    for (index_t c = 1; c < r.classes; ++c)
      if (logits(c, j) > logits(best, j)) best = c;
    ++r.counts[static_cast<std::size_t>(best)];
  }
  detail::summarize(r, cfg);
  return r;
}

/// class_coverage from predicted labels in [0, classes), one per sample.
/// Throws config_error for classes < 1, no labels, a label out of range or min_fraction
/// outside [0, 1].
[[nodiscard]] inline ClassCoverage class_coverage(std::span<const std::int32_t> labels, index_t classes,
                                                  const ClassCoverageConfig& cfg = {}) {
  if (classes < 1) throw config_error("classes", std::to_string(classes), "at least 1");
  if (labels.empty()) throw config_error("labels", "0 labels", "at least one label for class_coverage");
  detail::check_min_fraction(cfg);
  ClassCoverage r;
  r.classes = classes;
  r.samples = static_cast<index_t>(labels.size());
  r.counts.assign(static_cast<std::size_t>(classes), 0);
  for (std::size_t j = 0; j < labels.size(); ++j) {
    if (labels[j] < 0 || labels[j] >= classes)
      throw config_error("labels[" + std::to_string(j) + "]", std::to_string(labels[j]),
                         "a class in [0, " + std::to_string(classes) + ")");
    ++r.counts[static_cast<std::size_t>(labels[j])];
  }
  detail::summarize(r, cfg);
  return r;
}

} // namespace forgery::metrics
