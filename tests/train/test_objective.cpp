// The objective's mapping of critic outputs to losses and output gradients: the critic
// update's and the generator update's terms, for a one-logit critic, a relativistic loss
// (the generator's loss reads the real logits) and an AuxClassifier head, against the loss
// and head called as the Trainer called them before the objective owned the mapping.
#include "../support.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "forgery/loss/loss.hpp"
#include "forgery/train/objective.hpp"

namespace {
using fg::index_t;

constexpr index_t K = 3;
constexpr index_t n = 5;

template <class S>
std::vector<S> probe(index_t count, std::uint64_t stream) {
  std::vector<S> v(static_cast<std::size_t>(count));
  fg::RandomStream rng{7, stream, 0};
  fg::backend::Reference<S>::fill_normal(count, v.data(), rng, S(0), S(1.5));
  return v;
}

// Labels of [real | fake].
std::vector<std::int32_t> labels() {
  std::vector<std::int32_t> l(2 * n);
  for (index_t j = 0; j < 2 * n; ++j) l[static_cast<std::size_t>(j)] = static_cast<std::int32_t>((3 * j + 1) % K);
  return l;
}

// Row 0 of a rows x cols output.
template <class S>
std::vector<S> row0(const std::vector<S>& out, index_t rows, index_t cols) {
  std::vector<S> r(static_cast<std::size_t>(cols));
  for (index_t j = 0; j < cols; ++j) r[static_cast<std::size_t>(j)] = out[static_cast<std::size_t>(j * rows)];
  return r;
}

// The gradient of a rows x cols output with `d` (cols values) in row 0 and zeros below.
template <class S>
std::vector<S> scatter(const std::vector<S>& d, index_t rows, index_t cols) {
  std::vector<S> g(static_cast<std::size_t>(rows * cols), S(0));
  for (index_t j = 0; j < cols; ++j) g[static_cast<std::size_t>(j * rows)] = d[static_cast<std::size_t>(j)];
  return g;
}

// A sum of a loss and a head's `scale * sum` value: the compiler may fuse the product into
// the addition (FMA contraction) in one inlining context and not in another, so such a sum
// is compared within a few ulp; everything else is compared bit for bit.
template <class S>
bool within_ulps(S got, S want) {
  return std::abs(got - want) <= S(4) * std::numeric_limits<S>::epsilon() * std::abs(want);
}

template <class S>
void check_same(const S* got, const std::vector<S>& want) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("index " << i);
    CHECK(got[i] == want[i]);
  }
}

} // namespace

TEST_CASE_TEMPLATE("a one-logit objective's terms are its loss's", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  using Obj = fg::Objective<fg::loss::NonSaturating>;
  static_assert(Obj::critic_rows == 1 && Obj::generator_columns(n) == n);
  const Obj obj;
  fg::CriticBatch<B, 1> batch;
  batch.resize(n);
  const auto out = probe<S>(2 * n, 1);
  std::vector<S> d(2 * n), work(2 * n);
  const S want_d =
      obj.loss.template discriminator<B>(n, out.data(), out.data() + n, d.data(), d.data() + n, work.data());
  const auto critic =
      obj.template critic_terms<B>(n, fg::ConstBatchView<S>(out.data(), 1, 2 * n), nullptr, batch, nullptr);
  CHECK(critic.loss == want_d);
  check_same(critic.grad, d);
  std::vector<S> dg(n);
  const S want_g =
      obj.loss.template generator<B>(n, static_cast<const S*>(nullptr), out.data() + n, dg.data(), work.data());
  const auto gen = obj.template generator_terms<B>(n, fg::ConstBatchView<S>(out.data() + n, 1, n), nullptr, batch);
  CHECK(gen.loss == want_g);
  check_same(gen.grad, dg);
}

TEST_CASE_TEMPLATE("a relativistic generator's terms read the real logits and leave them no gradient", B,
                   FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  using Obj = fg::Objective<fg::loss::RelativisticAverage>;
  static_assert(Obj::generator_columns(n) == 2 * n);
  const Obj obj;
  fg::CriticBatch<B, 1> batch;
  batch.resize(n);
  const auto out = probe<S>(2 * n, 2);
  std::vector<S> d(2 * n, S(0)), work(2 * n);
  const S want = obj.loss.template generator<B>(n, out.data(), out.data() + n, d.data() + n, work.data());
  const auto gen = obj.template generator_terms<B>(n, fg::ConstBatchView<S>(out.data(), 1, 2 * n), nullptr, batch);
  CHECK(gen.loss == want);
  check_same(gen.grad, d);
  for (index_t j = 0; j < n; ++j) CHECK(gen.grad[j] == S(0));
}

TEST_CASE_TEMPLATE("an AuxClassifier head's terms join the loss's, for plain and relativistic losses", B,
                   FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  using Head = fg::loss::AuxClassifier<K>;
  constexpr index_t rows = 1 + K;
  const auto lab = labels();
  auto check = [&]<class L>(L, bool on_fake) {
    using Obj = fg::Objective<L, Head>;
    static_assert(Obj::critic_rows == rows);
    const Obj obj(typename Obj::Config{{}, {typename Head::Config{0.75, on_fake}}});
    const Head& head = std::get<0>(obj.parts);
    fg::CriticBatch<B, rows> batch;
    batch.resize(n);
    const auto out = probe<S>(rows * 2 * n, 3);
    std::vector<S> work(2 * n);

    // The critic update: the loss on row 0, the head's critic term on the class rows.
    const auto logits = row0(out, rows, 2 * n);
    std::vector<S> d(2 * n);
    const S want_loss =
        obj.loss.template discriminator<B>(n, logits.data(), logits.data() + n, d.data(), d.data() + n, work.data());
    auto want_grad = scatter(d, rows, 2 * n);
    const S want_head = head.template critic<B>(n, out.data(), lab.data(), want_grad.data(), work.data());
    double values[1] = {-1};
    const auto critic =
        obj.template critic_terms<B>(n, fg::ConstBatchView<S>(out.data(), rows, 2 * n), lab.data(), batch, values);
    CHECK(critic.loss == want_loss);
    CHECK(values[0] == static_cast<double>(want_head));
    check_same(critic.grad, want_grad);

    // The generator update, on the fakes alone or on [real | fake] (relativistic).
    const index_t cols = Obj::generator_columns(n);
    const index_t first_fake = cols - n;
    const S* gen_out = out.data() + rows * (2 * n - cols);
    const std::vector<S> gen_view(gen_out, gen_out + rows * cols);
    const auto gl = row0(gen_view, rows, cols);
    std::vector<S> dg(static_cast<std::size_t>(cols), S(0));
    S want_g = obj.loss.template generator<B>(n, L::generator_uses_real ? gl.data() : static_cast<const S*>(nullptr),
                                              gl.data() + first_fake, dg.data() + first_fake, work.data());
    auto want_ggrad = scatter(dg, rows, cols);
    want_g += head.template generator<B>(n, gen_view.data() + rows * first_fake, lab.data() + n,
                                         want_ggrad.data() + rows * first_fake, work.data());
    const auto gen = obj.template generator_terms<B>(n, fg::ConstBatchView<S>(gen_out, rows, cols), lab.data(), batch);
    CHECK(within_ulps(gen.loss, want_g));
    check_same(gen.grad, want_ggrad);
  };
  SUBCASE("non-saturating, classifier on fakes") { check(fg::loss::NonSaturating{}, true); }
  SUBCASE("relativistic average, classifier on reals only") { check(fg::loss::RelativisticAverage{}, false); }
}
