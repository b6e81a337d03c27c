// Two-dimensional toy distributions from the GAN literature on mode collapse: a ring
// and a grid of Gaussians (with known modes, for metrics/mode_coverage.hpp) and the swiss roll.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/checked.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"

namespace forgery::data {

/// A point of the plane.
using Point2 = std::array<double, 2>;

namespace detail {

inline void check_toy_batch(const char* who, index_t features) {
  if (features != 2)
    throw shape_error(std::string(who) + "::sample", "2 features per sample (a 2-D toy distribution)",
                      std::to_string(features) + " features");
}

inline void check_positive(const char* field, double value) {
  if (!(value > 0.0) || !std::isfinite(value)) throw config_error(field, std::to_string(value), "a finite value > 0");
}

} // namespace detail

/// A mixture of isotropic Gaussians with equal weights and one standard deviation: the shape
/// shared by Ring and Grid, usable directly for any other arrangement of modes.
///
/// Sample n uses Philox blocks `first + 2n` (the mode, from one uniform value) and
/// `first + 2n + 1` (the offset, two normal values), where `first` is the stream's counter
/// on entry; the stream advances by 2 blocks per sample. Values are drawn in double and
/// rounded to S, so float and double batches hold the same points, whatever the thread count.
class IsotropicMixture {
public:
  static constexpr index_t dims = 2;
  static constexpr std::uint64_t blocks_per_sample = 2;

  /// Throws config_error for no modes, a non-finite mode or sigma <= 0.
  IsotropicMixture(std::vector<Point2> modes, double sigma) : modes_(std::move(modes)), sigma_(sigma) {
    if (modes_.empty()) throw config_error("modes", "0 modes", "at least one mode");
    for (const Point2& m : modes_)
      if (!std::isfinite(m[0]) || !std::isfinite(m[1]))
        throw config_error("modes", "(" + std::to_string(m[0]) + ", " + std::to_string(m[1]) + ")", "finite centres");
    detail::check_positive("sigma", sigma_);
  }

  /// The mode centres, in the order sample() indexes them.
  [[nodiscard]] const std::vector<Point2>& modes() const noexcept { return modes_; }
  /// The standard deviation of every component, per coordinate.
  [[nodiscard]] double sigma() const noexcept { return sigma_; }

  /// Fills every column of `out` (2 x batch, host memory) with a sample; advances `rng`.
  template <class S>
  void sample(RandomStream& rng, BatchView<S> out) const {
    sample_impl(rng, out, nullptr);
  }

  /// The same draws as sample(rng, out), and each sample's mode index as its class label
  /// (a labelled source for conditional GANs: class i is mode i).
  template <class S>
  void sample(RandomStream& rng, BatchView<S> out, std::span<std::int32_t> labels) const {
    if (static_cast<index_t>(labels.size()) != out.batch())
      throw shape_error("IsotropicMixture::sample labels", std::to_string(out.batch()) + " labels (one per sample)",
                        std::to_string(labels.size()));
    sample_impl(rng, out, labels.data());
  }

  /// Number of modes, the class count of the labelled form.
  [[nodiscard]] index_t classes() const noexcept { return static_cast<index_t>(modes_.size()); }

private:
  template <class S>
  void sample_impl(RandomStream& rng, BatchView<S> out, std::int32_t* labels) const {
    static_assert(std::is_floating_point_v<S> && !std::is_const_v<S>,
                  "forgery::data toy samplers write float or double samples into a mutable BatchView.");
    detail::check_toy_batch("IsotropicMixture", out.features());
    const auto n = static_cast<std::uint64_t>(out.batch());
    const std::uint64_t first = rng.take(blocks_per_sample * n);
    const double k = static_cast<double>(modes_.size());
    for (index_t i = 0; i < out.batch(); ++i) {
      const std::uint64_t c = first + blocks_per_sample * static_cast<std::uint64_t>(i);
      // floor(u * k) with u uniform on 52 bits: uniform over the modes up to k / 2^52.
      const double u = uniform_from_block<double>(philox_block(rng.seed, rng.stream, c), 0);
      const auto m = std::min(static_cast<std::size_t>(u * k), modes_.size() - 1);
      const PhiloxBlock noise = philox_block(rng.seed, rng.stream, c + 1);
      out(0, i) = static_cast<S>(modes_[m][0] + sigma_ * normal_from_block<double>(noise, 0));
      out(1, i) = static_cast<S>(modes_[m][1] + sigma_ * normal_from_block<double>(noise, 1));
      if (labels) labels[i] = static_cast<std::int32_t>(m);
    }
  }

  std::vector<Point2> modes_;
  double sigma_;
};

/// `modes` Gaussians evenly spaced on a circle of radius `radius`, mode i at angle
/// 2 pi i / modes. The defaults (8 modes, radius 2, sigma 0.02) follow Metz et al., "Unrolled
/// Generative Adversarial Networks" (ICLR 2017). Published code varies (PacGAN's uses radius 1,
/// sigma 0.01), so compare mode-coverage numbers only between runs with the same constants.
class Ring : public IsotropicMixture {
public:
  /// Throws config_error for modes < 1, radius <= 0 or sigma <= 0.
  explicit Ring(index_t modes = 8, double radius = 2.0, double sigma = 0.02)
      : IsotropicMixture(centres(modes, radius), sigma), radius_(radius) {}

  [[nodiscard]] double radius() const noexcept { return radius_; }

private:
  static std::vector<Point2> centres(index_t modes, double radius) {
    if (modes < 1) throw config_error("modes", std::to_string(modes), "at least 1");
    detail::check_positive("radius", radius);
    std::vector<Point2> c(static_cast<std::size_t>(modes));
    const double two_pi = 6.283185307179586476925286766559;
    for (index_t i = 0; i < modes; ++i) {
      const double a = two_pi * static_cast<double>(i) / static_cast<double>(modes);
      c[static_cast<std::size_t>(i)] = {radius * std::cos(a), radius * std::sin(a)};
    }
    return c;
  }

  double radius_;
};

/// A side x side grid of Gaussians centred on the origin, `spacing` apart. The defaults
/// (5 x 5, spacing 2, sigma 0.05: centres {-4, -2, 0, 2, 4}^2) are the grid of Srivastava et
/// al., VEEGAN (NeurIPS 2017), section 5.1, as in its and PacGAN's (Lin et al. 2018) code.
/// Mode index is i * side + j for centre (x_i, y_j), x and y increasing.
class Grid : public IsotropicMixture {
public:
  /// Throws config_error for side < 1, spacing <= 0 or sigma <= 0, size_error when side x side
  /// does not fit in index_t.
  explicit Grid(index_t side = 5, double spacing = 2.0, double sigma = 0.05)
      : IsotropicMixture(centres(side, spacing), sigma), side_(side), spacing_(spacing) {}

  [[nodiscard]] index_t side() const noexcept { return side_; }
  [[nodiscard]] double spacing() const noexcept { return spacing_; }

private:
  static std::vector<Point2> centres(index_t side, double spacing) {
    if (side < 1) throw config_error("side", std::to_string(side), "at least 1");
    detail::check_positive("spacing", spacing);
    std::vector<Point2> c;
    c.reserve(static_cast<std::size_t>(checked_mul(side, side, "side")));
    const double half = 0.5 * static_cast<double>(side - 1);
    for (index_t i = 0; i < side; ++i)
      for (index_t j = 0; j < side; ++j)
        c.push_back({spacing * (static_cast<double>(i) - half), spacing * (static_cast<double>(j) - half)});
    return c;
  }

  index_t side_;
  double spacing_;
};

/// The 2-D swiss roll: scikit-learn's make_swiss_roll projected to (x, z), i.e.
/// t = 1.5 pi (1 + 2u), u ~ U(0, 1), point (t cos t, t sin t) + noise * N(0, I), then times
/// `scale`. The defaults (noise 0.25, scale 1 / 7.5) are those of the WGAN-GP toy experiments
/// (Gulrajani et al. 2017). The curve has no modes; its radius is scale * t, t in [1.5 pi, 4.5 pi].
///
/// Sample n uses blocks `first + 2n` (t) and `first + 2n + 1` (the noise); 2 blocks a sample.
class SwissRoll {
public:
  static constexpr index_t dims = 2;
  static constexpr std::uint64_t blocks_per_sample = 2;
  static constexpr double t_min = 1.5 * 3.14159265358979323846;
  static constexpr double t_max = 4.5 * 3.14159265358979323846;

  /// Throws config_error for noise < 0 or scale <= 0.
  explicit SwissRoll(double noise = 0.25, double scale = 1.0 / 7.5) : noise_(noise), scale_(scale) {
    if (!(noise_ >= 0.0) || !std::isfinite(noise_))
      throw config_error("noise", std::to_string(noise_), "a finite value >= 0");
    detail::check_positive("scale", scale_);
  }

  [[nodiscard]] double noise() const noexcept { return noise_; }
  [[nodiscard]] double scale() const noexcept { return scale_; }

  /// Fills every column of `out` (2 x batch, host memory) with a sample; advances `rng`.
  template <class S>
  void sample(RandomStream& rng, BatchView<S> out) const {
    static_assert(std::is_floating_point_v<S> && !std::is_const_v<S>,
                  "forgery::data toy samplers write float or double samples into a mutable BatchView.");
    detail::check_toy_batch("SwissRoll", out.features());
    const std::uint64_t first = rng.take(blocks_per_sample * static_cast<std::uint64_t>(out.batch()));
    for (index_t i = 0; i < out.batch(); ++i) {
      const std::uint64_t c = first + blocks_per_sample * static_cast<std::uint64_t>(i);
      const double u = uniform_from_block<double>(philox_block(rng.seed, rng.stream, c), 0);
      const double t = t_min + (t_max - t_min) * u;
      const PhiloxBlock e = philox_block(rng.seed, rng.stream, c + 1);
      out(0, i) = static_cast<S>(scale_ * (t * std::cos(t) + noise_ * normal_from_block<double>(e, 0)));
      out(1, i) = static_cast<S>(scale_ * (t * std::sin(t) + noise_ * normal_from_block<double>(e, 1)));
    }
  }

private:
  double noise_;
  double scale_;
};

/// A 2-D toy distribution: draws batches of 2-D samples from a Philox stream.
template <class T>
concept ToyDistribution = requires(const T& d, RandomStream& rng, BatchView<float> f, BatchView<double> g) {
  requires T::dims == 2;
  d.sample(rng, f);
  d.sample(rng, g);
};

/// A toy distribution with known modes of one standard deviation: what mode coverage needs.
template <class T>
concept ModalDistribution = ToyDistribution<T> && requires(const T& d) {
  { d.modes() } -> std::convertible_to<const std::vector<Point2>&>;
  { d.sigma() } -> std::convertible_to<double>;
};

static_assert(ModalDistribution<IsotropicMixture> && ModalDistribution<Ring> && ModalDistribution<Grid>);
static_assert(ToyDistribution<SwissRoll> && !ModalDistribution<SwissRoll>);

} // namespace forgery::data
