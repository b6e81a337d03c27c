// Frechet distance between Gaussians fitted to two feature sets: FID (Heusel et al., NeurIPS
// 2017) when the features are an Inception network's pool features, any network's otherwise.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include "forgery/backend/cpu.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"

namespace forgery::metrics {

/// A Gaussian fitted to features: the sample mean and the unbiased sample covariance, in
/// double whatever the features' type. Also the form in which reference statistics of a
/// data set are kept and compared against (frechet_distance reads only `mean` and `cov`).
struct GaussianStats {
  Eigen::VectorXd mean; ///< length d
  Eigen::MatrixXd cov;  ///< d x d, symmetric positive semi-definite
  index_t count = 0;    ///< samples the statistics came from (informative only)

  [[nodiscard]] index_t dim() const noexcept { return mean.size(); }
};

namespace detail {

/// Samples converted to double at a time while accumulating a covariance: bounds the
/// double copy's memory at d x 1024 values whatever the number of samples.
inline constexpr index_t stats_chunk = 1024;

/// Relative size below which a negative eigenvalue of a covariance is taken for rounding
/// and clamped to 0; anything more negative means the matrix is not a covariance. Loose
/// enough for statistics stored in float (entries rounded at 6e-8 relative).
inline constexpr double psd_tolerance = 1e-5;

/// C = A B for square d x d matrices through the backend GEMM, which is multi-threaded and
/// yet bitwise independent of the thread count.
inline void square_product(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, Eigen::MatrixXd& c) {
  const index_t d = a.rows();
  c.resize(d, d);
  backend::Cpu<double>::gemm(backend::Trans::no, backend::Trans::no, d, d, d, 1.0, a.data(), d, b.data(), d, 0.0,
                             c.data(), d);
}

/// (A + A^T) / 2: exactly symmetric, as a GEMM's two triangles need not be.
inline void symmetrize(Eigen::MatrixXd& a) { a = (0.5 * (a + a.transpose())).eval(); }

/// Checks statistics handed to frechet_distance and returns the covariance, symmetrised.
inline Eigen::MatrixXd checked_cov(const char* which, const GaussianStats& s) {
  const std::string field = std::string("GaussianStats ") + which;
  const index_t d = s.dim();
  if (d < 1) throw shape_error("metrics::frechet_distance", "statistics of at least 1 feature", field + " with 0");
  if (s.cov.rows() != d || s.cov.cols() != d)
    throw shape_error("metrics::frechet_distance",
                      field + ".cov of " + std::to_string(d) + " x " + std::to_string(d) + " (the mean's length)",
                      std::to_string(s.cov.rows()) + " x " + std::to_string(s.cov.cols()));
  if (!s.mean.allFinite() || !s.cov.allFinite())
    throw config_error(field, "a non-finite mean or covariance entry", "finite statistics");
  const double scale = s.cov.cwiseAbs().maxCoeff();
  if ((s.cov - s.cov.transpose()).cwiseAbs().maxCoeff() > 1e-6 * scale)
    throw config_error(field + ".cov", "a non-symmetric matrix", "a symmetric covariance");
  Eigen::MatrixXd c = s.cov;
  symmetrize(c);
  return c;
}

/// Eigenvalues of a symmetric matrix, ascending, checked for convergence.
inline Eigen::VectorXd symmetric_eigenvalues(const Eigen::MatrixXd& a, const char* what) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
  es.compute(a, Eigen::EigenvaluesOnly);
  if (es.info() != Eigen::Success)
    throw error(std::string("forgery: metrics::frechet_distance: the eigenvalues of ") + what + " did not converge");
  return es.eigenvalues();
}

/// Throws unless the ascending eigenvalues `l` are non-negative up to rounding, judged
/// against `scale` (the size of the matrix the eigenvalues came from).
inline void check_psd(const Eigen::VectorXd& l, double scale, const std::string& field) {
  if (l.size() > 0 && l(0) < -psd_tolerance * scale)
    throw config_error(field, "a matrix with eigenvalue " + std::to_string(l(0)),
                       "a positive semi-definite covariance (no eigenvalue below -" + std::to_string(psd_tolerance) +
                           " x the largest)");
}

/// The eigenvalues `l` of a d x d matrix of size `scale` with those that rounding cannot
/// tell from 0 (|l| <= d eps scale, the backward error of the decomposition) set to 0. Their
/// square roots would otherwise add errors of sqrt(d eps scale) each: with a singular
/// covariance, as fewer samples than features give, that is most of the error.
inline Eigen::VectorXd resolved(const Eigen::VectorXd& l, double scale) {
  const double noise = static_cast<double>(l.size()) * std::numeric_limits<double>::epsilon() * scale;
  return l.unaryExpr([noise](double v) { return v > noise ? v : 0.0; });
}

/// The symmetric positive semi-definite square root U diag(sqrt(l)) U^T of a covariance,
/// with its eigenvalues resolved (those 0 up to rounding, negative ones included, set to 0).
inline Eigen::MatrixXd psd_sqrt(const Eigen::MatrixXd& a, double& largest_eigenvalue) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
  es.compute(a, Eigen::ComputeEigenvectors);
  if (es.info() != Eigen::Success)
    throw error("forgery: metrics::frechet_distance: the eigen-decomposition of GaussianStats a.cov did not converge");
  const Eigen::VectorXd& l = es.eigenvalues();
  const index_t d = l.size();
  largest_eigenvalue = std::max(0.0, l(d - 1));
  const double scale = std::max(std::abs(l(0)), std::abs(l(d - 1)));
  check_psd(l, scale, "GaussianStats a.cov");
  const Eigen::MatrixXd scaled = es.eigenvectors() * resolved(l, scale).cwiseSqrt().asDiagonal();
  Eigen::MatrixXd root(d, d);
  backend::Cpu<double>::gemm(backend::Trans::no, backend::Trans::yes, d, d, d, 1.0, scaled.data(), d,
                             es.eigenvectors().data(), d, 0.0, root.data(), d);
  symmetrize(root);
  return root;
}

} // namespace detail

/// The mean and unbiased covariance (divisor n - 1) of the columns of `features` (d x n,
/// host memory), in double. Two passes (the mean, then the centred products), so large
/// feature means do not cancel the covariance's digits; the products run through the
/// backend GEMM d x 1024 samples at a time, in a fixed order: the result is bitwise the same
/// for any thread count.
/// Throws shape_error for 0 features, config_error for fewer than 2 samples or a non-finite
/// feature value.
template <class T>
[[nodiscard]] GaussianStats gaussian_stats(BatchView<T> features) {
  const index_t d = features.features();
  const index_t n = features.data() == nullptr ? 0 : features.batch();
  if (d < 1) throw shape_error("metrics::gaussian_stats", "features with at least 1 feature", "0 features");
  if (n < 2)
    throw config_error("features", std::to_string(n) + " samples",
                       "at least 2 samples for an unbiased covariance estimate");
  GaussianStats s;
  s.count = n;
  s.mean = Eigen::VectorXd::Zero(d);
  for (index_t j = 0; j < n; ++j)
    for (index_t f = 0; f < d; ++f) {
      const double v = static_cast<double>(features(f, j));
      if (!std::isfinite(v))
        throw config_error("features",
                           "a non-finite value at feature " + std::to_string(f) + " of sample " + std::to_string(j),
                           "finite features");
      s.mean(f) += v;
    }
  s.mean /= static_cast<double>(n);

  s.cov = Eigen::MatrixXd::Zero(d, d);
  Eigen::MatrixXd centred(d, std::min(n, detail::stats_chunk));
  const double scale = 1.0 / static_cast<double>(n - 1);
  for (index_t j0 = 0; j0 < n; j0 += detail::stats_chunk) {
    const index_t m = std::min(detail::stats_chunk, n - j0);
    for (index_t j = 0; j < m; ++j)
      for (index_t f = 0; f < d; ++f) centred(f, j) = static_cast<double>(features(f, j0 + j)) - s.mean(f);
    backend::Cpu<double>::gemm(backend::Trans::no, backend::Trans::yes, d, d, m, scale, centred.data(), d,
                               centred.data(), d, 1.0, s.cov.data(), d);
  }
  detail::symmetrize(s.cov);
  return s;
}

/// gaussian_stats of features held in an Eigen matrix (d x n), such as extract_features'.
[[nodiscard]] inline GaussianStats gaussian_stats(const Eigen::MatrixXd& features) {
  return gaussian_stats(ConstBatchView<double>(features.data(), features.rows(), features.cols()));
}

/// The squared Frechet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2):
///   |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}),
/// in double. Why this form rather than the sqrtm(S1 S2) of the FID reference code: S1 S2 is
/// not symmetric, so its square root comes from a general (Schur) method whose rounding
/// leaves complex parts and which is unstable for the singular covariances that fewer
/// samples than features give; the reference code patches that with an offset on the
/// diagonal and by dropping imaginary parts. S1^{1/2} S2 S1^{1/2} has the same eigenvalues
/// as S1 S2 (cyclic permutation), but is symmetric positive semi-definite, so both square
/// roots are taken from a symmetric eigen-decomposition (Eigen::SelfAdjointEigenSolver),
/// backward stable, real by construction. Eigenvalues within the decomposition's rounding
/// of 0 (|l| <= d eps |matrix|, negative ones included) are set to 0 before their square
/// roots are taken: otherwise each would add about sqrt(d eps) |S1|^{1/2} |S2|^{1/2}, which
/// with the singular covariances of fewer samples than features is ~1e-7 relative; with it,
/// identical or exactly singular statistics come out right to ~1e-14 relative. The result is
/// not clamped: identical statistics give 0 up to rounding of either sign.
/// Cost: two symmetric eigen-decompositions (one with eigenvectors), single-threaded, and
/// three d^3 GEMMs on the backend's threads (d = 2048: about 10 s on 2 cores, mostly the
/// decompositions). Eigen's own products are not used for the GEMMs: Eigen threads large
/// products itself with a blocking that depends on the thread count, so their last bits
/// would too; the backend GEMM's blocking does not, and the decomposition's Householder
/// products are triangular ones, which Eigen never threads. The result is therefore
/// bitwise the same for any thread count (tested).
/// Throws shape_error for statistics of different or zero dimension or a covariance that
/// is not d x d, config_error for non-finite entries, a non-symmetric covariance or one with
/// an eigenvalue clearly below 0.
[[nodiscard]] inline double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  const Eigen::MatrixXd s1 = detail::checked_cov("a", a);
  const Eigen::MatrixXd s2 = detail::checked_cov("b", b);
  if (a.dim() != b.dim())
    throw shape_error("metrics::frechet_distance",
                      "statistics of the same dimension (a has " + std::to_string(a.dim()) + ")",
                      "b with " + std::to_string(b.dim()));
  double largest1 = 0;
  const Eigen::MatrixXd root = detail::psd_sqrt(s1, largest1);
  Eigen::MatrixXd t, m;
  detail::square_product(root, s2, t);
  detail::square_product(t, root, m);
  detail::symmetrize(m);
  const Eigen::VectorXd l = detail::symmetric_eigenvalues(m, "S1^1/2 S2 S1^1/2");
  // A negative eigenvalue of S2 shows in M = S1^1/2 S2 S1^1/2 at the scale |S1| |S2|; rounding
  // in M is relative to that scale too, not to M's own, which may be much smaller.
  const double scale = std::max({std::abs(l(0)), std::abs(l(l.size() - 1)), largest1 * std::sqrt(s2.squaredNorm())});
  detail::check_psd(l, scale, "GaussianStats b.cov");
  const Eigen::VectorXd lr = detail::resolved(l, scale);
  double trace_sqrt = 0;
  for (index_t i = 0; i < lr.size(); ++i) trace_sqrt += std::sqrt(lr(i));
  return (a.mean - b.mean).squaredNorm() + s1.trace() + s2.trace() - 2.0 * trace_sqrt;
}

/// The Frechet distance between Gaussians fitted to two feature sets (d x m and d x n, host
/// memory, any scalar types): FID when the features are Inception pool features.
/// Throws as gaussian_stats and frechet_distance do; shape_error first when the feature
/// counts differ.
template <class T, class U>
[[nodiscard]] double frechet_distance(BatchView<T> x, BatchView<U> y) {
  if (x.features() != y.features())
    throw shape_error("metrics::frechet_distance",
                      "both feature sets with the same features (x has " + std::to_string(x.features()) + ")",
                      "y with " + std::to_string(y.features()));
  return frechet_distance(gaussian_stats(x), gaussian_stats(y));
}

/// frechet_distance of two feature sets held in Eigen matrices (features x samples).
[[nodiscard]] inline double frechet_distance(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
  return frechet_distance(ConstBatchView<double>(x.data(), x.rows(), x.cols()),
                          ConstBatchView<double>(y.data(), y.rows(), y.cols()));
}

} // namespace forgery::metrics
