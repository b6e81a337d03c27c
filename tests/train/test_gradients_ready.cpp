// The gradients-ready hook: called once per critic update and once per generator update,
// with every gradient of that update and before the optimizer reads them, so that what a
// hook does to the gradients is exactly what the optimizer applies; a hook that averages
// identical replica gradients (a data-parallel all-reduce) changes no bit.
#include "../support.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "forgery/data/toy.hpp"
#include "forgery/loss/loss.hpp"
#include "forgery/optim/optim.hpp"
#include "forgery/penalty/penalty.hpp"
#include "forgery/train/trainer.hpp"

namespace {
using fg::index_t;

using SmallG = fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
using SmallD = fg::Sequential<fg::Input<2>, fg::Dense<6>, fg::Tanh, fg::Dense<1>>;

template <class B>
using S = typename B::scalar;

// Remembers each call and a copy of the last gradients of each network.
template <class B>
struct Recorder {
  struct Call {
    fg::GradientsOf network;
    index_t count;
    index_t batch;
    long long step;
  };
  std::vector<Call> calls;
  std::vector<S<B>> critic, generator;
  void gradients_ready(const fg::GradientsReady<B>& r) {
    calls.push_back({r.network, r.count, r.batch, r.step});
    auto& copy = r.network == fg::GradientsOf::critic ? critic : generator;
    copy.assign(r.grads, r.grads + r.count);
  }
};

// Multiplies every gradient by a factor.
template <class B>
struct Scale {
  S<B> factor = 1;
  void gradients_ready(const fg::GradientsReady<B>& r) const {
    for (index_t i = 0; i < r.count; ++i) r.grads[i] *= factor;
  }
};

// Two replicas that computed the same gradient, summed in shard order and averaged: the
// single-process all-reduce of a data-parallel trainer with identical shards.
template <class B>
struct AverageTwoReplicas {
  std::vector<S<B>> shard0, shard1;
  void gradients_ready(const fg::GradientsReady<B>& r) {
    shard0.assign(r.grads, r.grads + r.count);
    shard1.assign(r.grads, r.grads + r.count);
    for (index_t i = 0; i < r.count; ++i) r.grads[i] = (shard0[i] + shard1[i]) * S<B>(0.5);
  }
};

template <class T>
typename T::Config config(double lr, index_t n_critic) {
  typename T::Config c;
  c.batch = 6;
  c.seed = 31;
  c.n_critic = n_critic;
  c.g_optimizer.lr = lr;
  c.d_optimizer.lr = lr;
  return c;
}

template <class Net>
std::vector<typename Net::scalar> params_of(const Net& net) {
  return {net.params(), net.params() + Net::param_count};
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(*a.data()) * a.size()) == 0;
}

using Obj = fg::Objective<fg::loss::NonSaturating, fg::penalty::R1>;

} // namespace

TEST_CASE_TEMPLATE("the hook runs once per critic update and once per generator update", B, FORGERY_ALL_BACKENDS) {
  using T = fg::Trainer<SmallG, SmallD, Obj, fg::optim::SGD, B, Recorder<B>>;
  T t(config<T>(1e-2, 3));
  fg::data::Ring ring(4);
  for (int s = 0; s < 4; ++s) t.step(ring);
  const auto& calls = t.hook().calls;
  REQUIRE(calls.size() == 16);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const bool generator = i % 4 == 3;
    CHECK(calls[i].network == (generator ? fg::GradientsOf::generator : fg::GradientsOf::critic));
    CHECK(calls[i].count == (generator ? T::generator_type::param_count : T::discriminator_type::param_count));
    CHECK(calls[i].batch == 6);
    CHECK(calls[i].step == static_cast<long long>(i / 4 + 1));
  }
}

TEST_CASE_TEMPLATE("the hook sees the gradients the optimizer applies", B, FORGERY_ALL_BACKENDS) {
  using Plain = fg::Trainer<SmallG, SmallD, Obj, fg::optim::SGD, B>;
  using Recording = fg::Trainer<SmallG, SmallD, Obj, fg::optim::SGD, B, Recorder<B>>;
  fg::data::Ring ring(4);
  Plain plain(config<Plain>(1e-2, 2));
  Recording recording(config<Recording>(1e-2, 2));
  for (int s = 0; s < 3; ++s) {
    plain.step(ring);
    recording.step(ring);
    // The gradient buffers still hold the last updates' gradients, which the optimizer read.
    const auto& d = plain.discriminator();
    const auto& g = plain.generator();
    CHECK(same_bits(recording.hook().critic, std::vector<S<B>>(d.grads(), d.grads() + d.param_count)));
    CHECK(same_bits(recording.hook().generator, std::vector<S<B>>(g.grads(), g.grads() + g.param_count)));
  }
  CHECK(same_bits(params_of(plain.generator()), params_of(recording.generator())));
  CHECK(same_bits(params_of(plain.discriminator()), params_of(recording.discriminator())));
}

TEST_CASE_TEMPLATE("what the hook does to the gradients is what the optimizer steps with", B, FORGERY_ALL_BACKENDS) {
  using Scaled = fg::Trainer<SmallG, SmallD, Obj, fg::optim::SGD, B, Scale<B>>;
  fg::data::Ring ring(4);
  SUBCASE("zero gradients leave plain SGD where it was") {
    Scaled t(config<Scaled>(1e-2, 3), Scale<B>{S<B>(0)});
    const auto g0 = params_of(t.generator());
    const auto d0 = params_of(t.discriminator());
    for (int s = 0; s < 3; ++s) t.step(ring);
    CHECK(same_bits(params_of(t.generator()), g0));
    CHECK(same_bits(params_of(t.discriminator()), d0));
    CHECK(t.last_stats().d_grad_norm == 0);
    CHECK(t.last_stats().g_grad_norm == 0);
  }
  SUBCASE("doubled gradients step as a doubled learning rate") {
    using Plain = fg::Trainer<SmallG, SmallD, Obj, fg::optim::SGD, B>;
    Scaled scaled(config<Scaled>(1e-2, 2), Scale<B>{S<B>(2)});
    Plain plain(config<Plain>(2e-2, 2));
    for (int s = 0; s < 5; ++s) {
      scaled.step(ring);
      plain.step(ring);
    }
    CHECK(same_bits(params_of(scaled.generator()), params_of(plain.generator())));
    CHECK(same_bits(params_of(scaled.discriminator()), params_of(plain.discriminator())));
  }
}

TEST_CASE_TEMPLATE("averaging identical replica gradients changes no bit", B, FORGERY_ALL_BACKENDS) {
  using Plain = fg::Trainer<SmallG, SmallD, Obj, fg::optim::Adam, B>;
  using Averaged = fg::Trainer<SmallG, SmallD, Obj, fg::optim::Adam, B, AverageTwoReplicas<B>>;
  auto with_ema = [](auto c) {
    c.ema_decay = 0.9;
    return c;
  };
  Plain plain(with_ema(config<Plain>(1e-3, 2)));
  Averaged averaged(with_ema(config<Averaged>(1e-3, 2)));
  fg::data::Ring ring(4);
  for (int s = 0; s < 8; ++s) {
    const auto a = plain.step(ring);
    const auto b = averaged.step(ring);
    CHECK(a.d_loss == b.d_loss);
    CHECK(a.g_loss == b.g_loss);
    CHECK(a.d_grad_norm == b.d_grad_norm);
    CHECK(a.g_grad_norm == b.g_grad_norm);
  }
  CHECK(same_bits(params_of(plain.generator()), params_of(averaged.generator())));
  CHECK(same_bits(params_of(plain.discriminator()), params_of(averaged.discriminator())));
  CHECK(same_bits(plain.ema_params(), averaged.ema_params()));
}
