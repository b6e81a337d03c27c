// Tests of forgery/metrics/classifier_scores.hpp: the Inception score on known predictions
// and by hand, and class coverage on a hand-made histogram.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "forgery/metrics/classifier_scores.hpp"

namespace {

using forgery::BatchView;
using forgery::index_t;
namespace metrics = forgery::metrics;

// classes x n logits, `margin` for the class of sample j (labels[j]) and 0 elsewhere.
std::vector<double> one_hot_logits(const std::vector<int>& labels, index_t classes, double margin) {
  std::vector<double> l(labels.size() * static_cast<std::size_t>(classes), 0.0);
  for (std::size_t j = 0; j < labels.size(); ++j)
    l[j * static_cast<std::size_t>(classes) + static_cast<std::size_t>(labels[j])] = margin;
  return l;
}

BatchView<const double> view(const std::vector<double>& l, index_t classes) {
  return {l.data(), classes, static_cast<index_t>(l.size()) / classes};
}

} // namespace

TEST_CASE("confident predictions spread evenly over K classes score K") {
  for (const index_t k : {2, 5, 10}) {
    std::vector<int> labels;
    for (int rep = 0; rep < 4; ++rep)
      for (index_t c = 0; c < k; ++c) labels.push_back(static_cast<int>(c));
    // A margin of 50 leaves e^-50 on the other classes: the score is K to ~1e-19.
    const auto logits = one_hot_logits(labels, k, 50.0);
    const auto r = metrics::inception_score(view(logits, k));
    CHECK(r.mean == doctest::Approx(static_cast<double>(k)).epsilon(1e-12));
    CHECK(r.stddev == 0.0);
    CHECK(r.splits == 1);
    // Every consecutive block of K samples holds each class once: each split scores K too.
    const auto split = metrics::inception_score(view(logits, k), 4);
    CHECK(split.mean == doctest::Approx(static_cast<double>(k)).epsilon(1e-12));
    CHECK(split.stddev < 1e-12);
    CHECK(split.splits == 4);
  }
}

TEST_CASE("identical predictions score 1, confident or not") {
  const std::vector<double> one = {0.3, -1.2, 2.0, 0.0};
  std::vector<double> logits;
  for (int j = 0; j < 6; ++j) logits.insert(logits.end(), one.begin(), one.end());
  CHECK(metrics::inception_score(view(logits, 4)).mean == doctest::Approx(1.0).epsilon(1e-14));
  // All samples confidently in one class: mode collapse onto a single class.
  const auto collapsed = one_hot_logits({2, 2, 2, 2, 2}, 3, 30.0);
  CHECK(metrics::inception_score(view(collapsed, 3)).mean == doctest::Approx(1.0).epsilon(1e-14));
}

TEST_CASE("a two-sample example by hand") {
  // p(y|x1) = (1/2, 1/2) from logits (0, 0), p(y|x2) = (3/4, 1/4) from (log 3, 0);
  // p(y) = (5/8, 3/8); KL1 = 0.0322692605687856, KL2 = 0.0353748905684248;
  // exp((KL1 + KL2) / 2) = 1.0344005452252407.
  const std::vector<double> logits = {0.0, 0.0, std::log(3.0), 0.0};
  CHECK(metrics::inception_score(view(logits, 2)).mean == doctest::Approx(1.0344005452252407).epsilon(1e-14));
  // The softmax does not see a common offset, however large, nor does it overflow.
  const std::vector<double> shifted = {1e4, 1e4, 1e4 + std::log(3.0), 1e4};
  CHECK(metrics::inception_score(view(shifted, 2)).mean == doctest::Approx(1.0344005452252407).epsilon(1e-12));
  const std::vector<float> as_float = {0.f, 0.f, std::log(3.f), 0.f};
  CHECK(metrics::inception_score(BatchView<const float>(as_float.data(), 2, 2)).mean ==
        doctest::Approx(1.0344005452252407).epsilon(1e-7));
}

TEST_CASE("splits: consecutive parts scored separately, mean and standard deviation over them") {
  // First half confident and balanced over 2 classes (score 2), second half identical (1).
  std::vector<double> logits = one_hot_logits({0, 1, 0, 1}, 2, 60.0);
  for (int j = 0; j < 4; ++j) logits.insert(logits.end(), {1.0, 0.0});
  const auto r = metrics::inception_score(view(logits, 2), 2);
  CHECK(r.mean == doctest::Approx(1.5).epsilon(1e-12));
  CHECK(r.stddev == doctest::Approx(0.5).epsilon(1e-12)); // divisor = splits
  // Uneven parts: 7 samples in 3 splits are [0, 2), [2, 4), [4, 7).
  const std::vector<double> seven = {0.1, 2.0, -1.0, 0.4, 3.0, 0.0, 0.0, 0.0, 1.5, 1.5, -2.0, 0.3, 0.9, 0.8};
  const auto s = metrics::inception_score(view(seven, 2), 3);
  const double parts[] = {
      metrics::inception_score(BatchView<const double>(seven.data(), 2, 2)).mean,
      metrics::inception_score(BatchView<const double>(seven.data() + 4, 2, 2)).mean,
      metrics::inception_score(BatchView<const double>(seven.data() + 8, 2, 3)).mean,
  };
  const double mean = (parts[0] + parts[1] + parts[2]) / 3.0;
  double var = 0;
  for (const double p : parts) var += (p - mean) * (p - mean) / 3.0;
  CHECK(s.mean == doctest::Approx(mean).epsilon(1e-14));
  CHECK(s.stddev == doctest::Approx(std::sqrt(var)).epsilon(1e-12));
  CHECK(s.stddev > 0.0);
}

TEST_CASE("inception_score rejects invalid input") {
  const std::vector<double> l = {0.0, 1.0, 2.0, 3.0};
  CHECK_THROWS_AS((void)metrics::inception_score(view(l, 2), 0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::inception_score(view(l, 2), 3), forgery::config_error);
  CHECK_NOTHROW((void)metrics::inception_score(view(l, 2), 2));
  CHECK_THROWS_AS((void)metrics::inception_score(BatchView<const double>(nullptr, 2, 0)), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::inception_score(BatchView<const double>(l.data(), 0, 4)), forgery::shape_error);
  std::vector<double> bad = l;
  bad[3] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS((void)metrics::inception_score(view(bad, 2)), forgery::config_error);
}

TEST_CASE("class coverage of a hand-made histogram") {
  // 6 samples over 5 classes: counts 2, 1, 0, 3, 0.
  const std::vector<std::int32_t> labels = {0, 3, 0, 1, 3, 3};
  const auto r = metrics::class_coverage(labels, 5);
  CHECK(r.counts == std::vector<index_t>{2, 1, 0, 3, 0});
  CHECK(r.classes == 5);
  CHECK(r.samples == 6);
  CHECK(r.covered == 3);
  CHECK(std::isinf(r.max_min_ratio)); // classes 2 and 4 are never predicted
  const double h = -(2.0 / 6 * std::log(2.0 / 6) + 1.0 / 6 * std::log(1.0 / 6) + 3.0 / 6 * std::log(3.0 / 6));
  CHECK(r.normalized_entropy == doctest::Approx(h / std::log(5.0)).epsilon(1e-14));
  // A class needs min_fraction of the samples: 1/4 of 6 is 1.5 (classes 0 and 3), 1/2 is 3.
  CHECK(metrics::class_coverage(labels, 5, {.min_fraction = 0.25}).covered == 2);
  CHECK(metrics::class_coverage(labels, 5, {.min_fraction = 0.5}).covered == 1);
  CHECK(metrics::class_coverage(labels, 5, {.min_fraction = 0.51}).covered == 0);

  // The same predictions as logits (argmax), with a tie going to the lower class.
  std::vector<double> logits = one_hot_logits({0, 3, 0, 1, 3, 3}, 5, 2.0);
  logits[5 * 5 + 0] = 1.9; // a close second does not change the argmax
  const auto from_logits = metrics::class_coverage(view(logits, 5));
  CHECK(from_logits.counts == r.counts);
  CHECK(from_logits.normalized_entropy == r.normalized_entropy);
  const std::vector<double> tie = {1.0, 1.0, 0.5};
  CHECK(metrics::class_coverage(view(tie, 3)).counts == std::vector<index_t>{1, 0, 0});
}

TEST_CASE("class coverage: balanced, collapsed and single-class histograms") {
  const auto balanced = metrics::class_coverage(std::vector<std::int32_t>{0, 1, 2, 3, 3, 2, 1, 0}, 4);
  CHECK(balanced.covered == 4);
  CHECK(balanced.max_min_ratio == 1.0);
  CHECK(balanced.normalized_entropy == doctest::Approx(1.0).epsilon(1e-15));
  const auto skewed = metrics::class_coverage(std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 1, 1}, 2);
  CHECK(skewed.max_min_ratio == 3.0);
  CHECK(skewed.normalized_entropy < 1.0);
  const auto collapsed = metrics::class_coverage(std::vector<std::int32_t>{2, 2, 2}, 4);
  CHECK(collapsed.covered == 1);
  CHECK(collapsed.normalized_entropy == 0.0);
  const auto single = metrics::class_coverage(std::vector<std::int32_t>{0, 0}, 1);
  CHECK(single.covered == 1);
  CHECK(single.max_min_ratio == 1.0);
  CHECK(single.normalized_entropy == 1.0);
}

TEST_CASE("class coverage rejects invalid input") {
  const std::vector<std::int32_t> labels = {0, 1, 2};
  CHECK_THROWS_AS((void)metrics::class_coverage(labels, 2), forgery::config_error); // label 2 of 2 classes
  CHECK_THROWS_AS((void)metrics::class_coverage(std::vector<std::int32_t>{-1}, 2), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::class_coverage(labels, 0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::class_coverage(std::vector<std::int32_t>{}, 3), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::class_coverage(labels, 3, {.min_fraction = -0.1}), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::class_coverage(labels, 3, {.min_fraction = 1.5}), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::class_coverage(labels, 3, {.min_fraction = NAN}), forgery::config_error);
  const std::vector<double> nan = {0.0, NAN};
  CHECK_THROWS_AS((void)metrics::class_coverage(view(nan, 2)), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::class_coverage(BatchView<const double>(nan.data(), 0, 2)), forgery::shape_error);
  CHECK_NOTHROW((void)metrics::class_coverage(labels, 3, {.min_fraction = 1.0}));
}
