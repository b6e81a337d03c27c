// Objective<Loss, Parts...>: an adversarial loss composed with any number of critic
// penalties (GradientPenalty, R1, ...), critic constraints (WeightClip) and a classifier head
// (AuxClassifier). Each part carries its own behaviour; the Objective runs them in order and
// maps the critic's outputs to the losses and output gradients of both updates, so that the
// Trainer never asks which loss or which parts it has.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/penalty/workspace.hpp"
#include "forgery/train/critic_batch.hpp"

namespace forgery {

namespace detail {
template <class P, class Net>
concept CriticPenaltyFor = requires(const P& p, Net& critic, ConstBatchView<typename Net::scalar> v, RandomStream& rng,
                                    penalty::Workspace<typename Net::backend>& ws) {
  { p.apply(critic, v, v, rng, ws) } -> std::convertible_to<typename Net::scalar>;
};
template <class P, class Net>
concept CriticConstraintFor = requires(const P& p, Net& critic) {
  p.after_critic_step(critic);
};
/// A part that reads extra critic outputs (rows 1..head_outputs): an auxiliary classifier.
template <class P>
concept CriticHead = requires {
  { P::head_outputs } -> std::convertible_to<index_t>;
};
template <class P>
constexpr index_t head_outputs_of() {
  if constexpr (CriticHead<P>)
    return P::head_outputs;
  else
    return 0;
}
} // namespace detail

/// A loss plus penalties and constraints on the critic.
/// \tparam L the adversarial loss (fg::loss::...).
/// \tparam Parts penalties (have apply()) and constraints (have after_critic_step()).
template <class L, class... Parts>
struct Objective {
  using loss_type = L;
  static constexpr std::size_t part_count = sizeof...(Parts);
  /// Critic outputs read by head parts (AuxClassifier<K>: K class logits after the
  /// adversarial logit); 0 for a one-logit critic.
  static constexpr index_t head_outputs = (index_t{0} + ... + detail::head_outputs_of<Parts>());
  static_assert((0 + ... + (detail::CriticHead<Parts> ? 1 : 0)) <= 1,
                "fg::Objective: at most one classifier head part (fg::loss::AuxClassifier) per objective.");
  /// Critic outputs per sample: the adversarial logit, then the head part's logits.
  static constexpr index_t critic_rows = 1 + head_outputs;

  /// The critic batch the generator's update reads, for n fakes: the n fakes alone, or, for a
  /// loss that compares them with the real batch (relativistic losses), [real | fake] with
  /// the last real batch. Its last n samples are always the fakes.
  static constexpr index_t generator_columns(index_t n) noexcept { return L::generator_uses_real ? 2 * n : n; }

  /// A loss value and the gradient of the critic's output it was computed from (critic_rows
  /// values per sample, in the CriticBatch the terms were given).
  template <class S>
  struct Terms {
    S loss;
    const S* grad;
  };

  /// Run-time settings of the loss and of every part, in template order.
  struct Config {
    typename L::Config loss{};
    std::tuple<typename Parts::Config...> parts{};
  };

  L loss;
  std::tuple<Parts...> parts;

  Objective() : Objective(Config{}) {}
  explicit Objective(const Config& c)
      : loss(c.loss), parts(std::apply([](const auto&... pc) { return std::tuple<Parts...>(Parts(pc)...); }, c.parts)) {
  }

  /// Names of the parts, for logs (a constraint's entry stays 0 in the values).
  static constexpr std::array<const char*, part_count> part_names{Parts::name...};

  /// Applies every penalty to the critic after the loss gradient is in its gradient buffer;
  /// writes each part's value (0 for constraints) into `values`.
  template <class Net>
  void apply_penalties(Net& critic, ConstBatchView<typename Net::scalar> real,
                       ConstBatchView<typename Net::scalar> fake, RandomStream& rng,
                       penalty::Workspace<typename Net::backend>& ws, double* values) const {
    apply_each(critic, real, fake, rng, ws, values, std::index_sequence_for<Parts...>{});
  }

  /// The critic update's terms on the critic's output `out` (critic_rows x 2n, [real |
  /// fake]) with the 2n labels of those samples (null when unconditional): the loss's value
  /// and the output gradient of the loss and the head parts. Each head part's value goes into
  /// `values` (penalties write theirs in apply_penalties).
  template <class B, class S>
  Terms<S> critic_terms(index_t n, ConstBatchView<S> out, [[maybe_unused]] const std::int32_t* labels,
                        CriticBatch<B, critic_rows>& batch, [[maybe_unused]] double* values) const {
    const S* logits = batch.logits(out);
    S* d = batch.logit_grad();
    const S value = loss.template discriminator<B>(n, logits, logits + n, d, d + n, batch.work());
    S* grad = batch.output_grad(2 * n);
    if constexpr (head_outputs > 0) critic_heads<B>(n, out.data(), labels, grad, batch.work(), values);
    return {value, grad};
  }

  /// The generator update's terms on the critic's output `out` (critic_rows x
  /// generator_columns(n), the fakes last) with the 2n labels of [real | fake] (null when
  /// unconditional): the loss of the fakes (the head parts' included) and the output
  /// gradient, zero in any real sample's columns.
  template <class B, class S>
  Terms<S> generator_terms(index_t n, ConstBatchView<S> out, [[maybe_unused]] const std::int32_t* labels,
                           CriticBatch<B, critic_rows>& batch) const {
    const index_t first_fake = out.batch() - n;
    const S* logits = batch.logits(out);
    S* d = batch.logit_grad();
    const S* real = L::generator_uses_real ? logits : static_cast<const S*>(nullptr);
    S value = loss.template generator<B>(n, real, logits + first_fake, d + first_fake, batch.work());
    if constexpr (L::generator_uses_real) B::fill(n, d, S(0)); // the real samples are not the generator's
    S* grad = batch.output_grad(out.batch());
    if constexpr (head_outputs > 0)
      value += generator_heads<B>(n, out.data() + critic_rows * first_fake, labels + n, grad + critic_rows * first_fake,
                                  batch.work());
    return {value, grad};
  }

  /// Head parts' critic terms: `out` is the critic's (1 + head_outputs) x 2n output on
  /// [real | fake], `grad` its gradient (row 0 already holds the loss's); each head adds its
  /// rows' gradient and writes its value into `values`. `work` holds at least 2n scalars.
  template <class B, class S>
  void critic_heads(index_t n, const S* out, const std::int32_t* labels, S* grad, S* work, double* values) const {
    for_each_head([&]<std::size_t I>(const auto& h) {
      values[I] = static_cast<double>(h.template critic<B>(n, out, labels, grad, work));
    });
  }
  /// Head parts' generator terms on the n fakes' output; returns their sum.
  template <class B, class S>
  S generator_heads(index_t n, const S* out, const std::int32_t* labels, S* grad, S* work) const {
    S total = S(0);
    for_each_head([&]<std::size_t>(const auto& h) { total += h.template generator<B>(n, out, labels, grad, work); });
    return total;
  }

  /// Runs every constraint after the critic's optimizer step.
  template <class Net>
  void after_critic_step([[maybe_unused]] Net& critic) const {
    std::apply(
        [&](const auto&... p) {
          (
              [&] {
                if constexpr (detail::CriticConstraintFor<std::decay_t<decltype(p)>, Net>) p.after_critic_step(critic);
              }(),
              ...);
        },
        parts);
  }

private:
  template <class F, std::size_t... I>
  void for_each_head_impl(F& f, std::index_sequence<I...>) const {
    (
        [&] {
          if constexpr (detail::CriticHead<std::tuple_element_t<I, std::tuple<Parts...>>>)
            f.template operator()<I>(std::get<I>(parts));
        }(),
        ...);
  }
  template <class F>
  void for_each_head(F&& f) const {
    for_each_head_impl(f, std::index_sequence_for<Parts...>{});
  }

  template <class Net, std::size_t... I>
  void apply_each([[maybe_unused]] Net& critic, [[maybe_unused]] ConstBatchView<typename Net::scalar> real,
                  [[maybe_unused]] ConstBatchView<typename Net::scalar> fake, [[maybe_unused]] RandomStream& rng,
                  [[maybe_unused]] penalty::Workspace<typename Net::backend>& ws, [[maybe_unused]] double* values,
                  std::index_sequence<I...>) const {
    (
        [&] {
          using P = std::tuple_element_t<I, std::tuple<Parts...>>;
          static_assert(detail::CriticPenaltyFor<P, Net> || detail::CriticConstraintFor<P, Net> ||
                            detail::CriticHead<P>,
                        "fg::Objective: a part is neither a penalty (apply(critic, real, fake, rng, workspace)), a "
                        "constraint (after_critic_step(critic)) nor a classifier head (head_outputs); see the "
                        "Penalty and Constraint concepts and fg::loss::AuxClassifier.");
          if constexpr (detail::CriticPenaltyFor<P, Net>)
            values[I] = static_cast<double>(std::get<I>(parts).apply(critic, real, fake, rng, ws));
          else if constexpr (!detail::CriticHead<P>)
            values[I] = 0;
        }(),
        ...);
  }
};

namespace detail {
template <class T>
struct is_objective : std::false_type {};
template <class L, class... P>
struct is_objective<Objective<L, P...>> : std::true_type {};
} // namespace detail

/// A bare loss used where an objective is expected becomes Objective<Loss>.
template <class T>
using objective_of = std::conditional_t<detail::is_objective<T>::value, T, Objective<T>>;

} // namespace forgery
