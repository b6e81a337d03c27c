// Mode coverage of generated samples against a mixture with known modes: the protocol of
// VEEGAN (Srivastava et al., NeurIPS 2017, section 5.1), used for the ring and grid toys.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/data/toy.hpp"

namespace forgery::metrics {

/// The thresholds of the protocol. The defaults are VEEGAN's for 2-D data: a sample is of
/// high quality when it lies within 3 standard deviations of its nearest mode, and a mode is
/// captured when it is the nearest mode of at least one high-quality sample (VEEGAN
/// section 5.1; PacGAN's reference code, `MetricLogger`, counts the same way). VEEGAN draws
/// 2500 samples. Its 1200-D experiment uses 10 standard deviations instead of 3.
struct ModeCoverageConfig {
  /// Radius, in standard deviations of the mixture, within which a sample is high quality.
  double sigma_multiple = 3.0;
  /// High-quality samples a mode needs to count as covered (VEEGAN: 1).
  index_t min_high_quality = 1;
};

/// What mode_coverage() found.
struct ModeCoverage {
  index_t modes_covered = 0;        ///< modes with at least min_high_quality high-quality samples
  index_t total_modes = 0;          ///< modes of the target
  index_t samples = 0;              ///< samples evaluated
  index_t high_quality = 0;         ///< samples within sigma_multiple * sigma of their nearest mode
  double high_quality_fraction = 0; ///< high_quality / samples
  std::vector<index_t> counts;      ///< high-quality samples per mode, in the target's mode order
  /// Balance of the high-quality samples over the modes: KL(q || uniform) in nats, where q is
  /// `counts` normalised. 0 when every mode has the same count, log(total_modes) when all
  /// fall on one mode; +infinity when there is no high-quality sample.
  double kl_to_uniform = 0;
};

/// Assigns each sample (column of `samples`, D x n, host memory) to its nearest mode in
/// Euclidean distance (ties go to the lower index) and counts it as high quality when that
/// distance is below `cfg.sigma_multiple * sigma`. A non-finite sample is never high quality.
/// Throws shape_error when samples do not have D features, config_error for no samples, no
/// modes, sigma <= 0, sigma_multiple <= 0 or min_high_quality < 1.
template <class T, std::size_t D>
[[nodiscard]] ModeCoverage mode_coverage(BatchView<T> samples, const std::vector<std::array<double, D>>& modes,
                                         double sigma, const ModeCoverageConfig& cfg = {}) {
  if (samples.features() != static_cast<index_t>(D))
    throw shape_error("metrics::mode_coverage", std::to_string(D) + " features per sample (the modes' dimension)",
                      std::to_string(samples.features()) + " features");
  if (samples.batch() < 1 || samples.data() == nullptr)
    throw config_error("samples", "0 samples", "at least one sample");
  if (modes.empty()) throw config_error("modes", "0 modes", "at least one mode");
  if (!(sigma > 0.0) || !std::isfinite(sigma)) throw config_error("sigma", std::to_string(sigma), "a finite value > 0");
  if (!(cfg.sigma_multiple > 0.0) || !std::isfinite(cfg.sigma_multiple))
    throw config_error("sigma_multiple", std::to_string(cfg.sigma_multiple), "a finite value > 0");
  if (cfg.min_high_quality < 1)
    throw config_error("min_high_quality", std::to_string(cfg.min_high_quality), "at least 1");

  ModeCoverage r;
  r.total_modes = static_cast<index_t>(modes.size());
  r.samples = samples.batch();
  r.counts.assign(modes.size(), 0);
  const double radius = cfg.sigma_multiple * sigma;
  const double radius2 = radius * radius;

  for (index_t n = 0; n < samples.batch(); ++n) {
    double best = std::numeric_limits<double>::infinity();
    std::size_t nearest = 0;
    for (std::size_t m = 0; m < modes.size(); ++m) {
      double d2 = 0;
      for (std::size_t f = 0; f < D; ++f) {
        const double diff = static_cast<double>(samples(static_cast<index_t>(f), n)) - modes[m][f];
        d2 += diff * diff;
      }
      if (d2 < best) {
        best = d2;
        nearest = m;
      }
    }
    if (best < radius2) {
      ++r.counts[nearest];
      ++r.high_quality;
    }
  }

  for (const index_t c : r.counts)
    if (c >= cfg.min_high_quality) ++r.modes_covered;
  r.high_quality_fraction = static_cast<double>(r.high_quality) / static_cast<double>(r.samples);
  if (r.high_quality == 0) {
    r.kl_to_uniform = std::numeric_limits<double>::infinity();
  } else {
    const double k = static_cast<double>(r.total_modes);
    double kl = 0;
    for (const index_t c : r.counts) {
      if (c == 0) continue;
      const double q = static_cast<double>(c) / static_cast<double>(r.high_quality);
      kl += q * std::log(q * k);
    }
    r.kl_to_uniform = kl;
  }
  return r;
}

/// Mode coverage against a toy distribution's own modes and standard deviation.
template <class T, data::ModalDistribution Target>
[[nodiscard]] ModeCoverage mode_coverage(BatchView<T> samples, const Target& target,
                                         const ModeCoverageConfig& cfg = {}) {
  return mode_coverage(samples, target.modes(), target.sigma(), cfg);
}

} // namespace forgery::metrics
