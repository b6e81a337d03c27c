// Softmax cross-entropy: value against the textbook formula, gradient against central
// differences, stability for huge logits, label errors.
#include "../support.hpp"

#include <cstdint>
#include <vector>

#include "forgery/loss/cross_entropy.hpp"

namespace {
using fg::index_t;

TEST_CASE_TEMPLATE("cross_entropy matches -log softmax and its gradient matches finite differences", B,
                   FORGERY_DOUBLE_BACKENDS) {
  const index_t k = 4, n = 3;
  auto z = fg::test::normal_buffer<double>(k * n, 7);
  const std::vector<std::int32_t> y{2, 0, 3};
  std::vector<double> grad(k * n), work(n);
  const double v =
      fg::loss::cross_entropy<B>(fg::ConstBatchView<double>(z.data(), k, n), y.data(), grad.data(), work.data());
  double expect = 0;
  for (index_t j = 0; j < n; ++j) {
    double s = 0;
    for (index_t c = 0; c < k; ++c) s += std::exp(z[j * k + c]);
    expect += std::log(s) - z[j * k + y[static_cast<std::size_t>(j)]];
  }
  CHECK(v == doctest::Approx(expect / n).epsilon(1e-13));
  const double h = 1e-6;
  for (index_t i = 0; i < k * n; ++i) {
    const double saved = z[i];
    z[i] = saved + h;
    const double up =
        fg::loss::cross_entropy<B>(fg::ConstBatchView<double>(z.data(), k, n), y.data(), nullptr, work.data());
    z[i] = saved - h;
    const double down =
        fg::loss::cross_entropy<B>(fg::ConstBatchView<double>(z.data(), k, n), y.data(), nullptr, work.data());
    z[i] = saved;
    CHECK(grad[static_cast<std::size_t>(i)] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-7));
  }
}

TEST_CASE("cross_entropy is finite for huge logits and rejects bad labels") {
  using B = fg::backend::Cpu<float>;
  const std::vector<float> z{1e4f, -1e4f, 0.f, 3e4f};
  const std::vector<std::int32_t> right{0, 1};
  std::vector<float> grad(4), work(2);
  const float v =
      fg::loss::cross_entropy<B>(fg::ConstBatchView<float>(z.data(), 2, 2), right.data(), grad.data(), work.data());
  CHECK(v == doctest::Approx(0.0));
  const std::vector<std::int32_t> wrong{1, 0};
  const float w =
      fg::loss::cross_entropy<B>(fg::ConstBatchView<float>(z.data(), 2, 2), wrong.data(), grad.data(), work.data());
  CHECK(w == doctest::Approx((2e4 + 3e4) / 2.0));
  for (float g : grad) CHECK(std::isfinite(g));
  const std::vector<std::int32_t> bad{0, 2};
  CHECK_THROWS_AS(
      fg::loss::cross_entropy<B>(fg::ConstBatchView<float>(z.data(), 2, 2), bad.data(), grad.data(), work.data()),
      fg::config_error);
}

} // namespace
