// Trainer::Config::shards without a communicator: the batch of each update is cut into
// shards computed alone and averaged in shard order. What the MPI ranks rely on is checked
// here in one process: the shards draw the batch's own columns of the data stream, the
// average is the plain batch's gradient where nothing else differs, the bits do not depend
// on the thread count, a sharded run resumes bit for bit, and the settings are validated.
// tests/distributed/check_mpi.sh runs the same Trainer on 1, 2 and 3 MPI ranks.
#include "../support.hpp"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <span>
#include <vector>

#include "forgery/data/toy.hpp"
#include "forgery/loss/loss.hpp"
#include "forgery/optim/optim.hpp"
#include "forgery/penalty/penalty.hpp"
#include "forgery/train/trainer.hpp"

namespace {
using fg::index_t;
constexpr index_t K = 3;

using SmallG = fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
using SmallD = fg::Sequential<fg::Input<2>, fg::Dense<6>, fg::Tanh, fg::Dense<1>>;
using CondG =
    fg::Sequential<fg::Input<3>, fg::ConcatOneHot<K>, fg::Dense<8, false>, fg::BatchNorm<>, fg::ReLU, fg::Dense<2>>;
using CondD = fg::Sequential<fg::Input<2>, fg::Dense<8, false>, fg::BatchNorm<>, fg::LeakyReLU<>, fg::Dropout<>,
                             fg::Projection<K>>;

template <class Net>
std::vector<typename Net::scalar> params_of(const Net& net) {
  return {net.params(), net.params() + Net::param_count};
}
template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(*a.data()) * a.size()) == 0;
}

// A source that takes one block per sample (as the datasets do) and records where each
// call started and how many samples it drew.
struct RecordingSource {
  static constexpr std::uint64_t blocks_per_sample = 1;
  struct Call {
    std::uint64_t stream, counter;
    index_t count;
  };
  std::vector<Call> calls;
  template <class S>
  void sample(fg::RandomStream& rng, fg::BatchView<S> out) {
    calls.push_back({rng.stream, rng.counter, out.batch()});
    const std::uint64_t first = rng.take(static_cast<std::uint64_t>(out.batch()));
    for (index_t j = 0; j < out.batch(); ++j)
      for (index_t f = 0; f < out.features(); ++f)
        out.sample(j)[f] = static_cast<S>(std::sin(0.1 * static_cast<double>(first + j) + f));
  }
};
// The same draw without declaring blocks_per_sample: the Trainer cannot address its
// columns, so each shard gets a stream of its own.
struct OpaqueSource {
  std::vector<std::uint64_t> streams;
  template <class S>
  void sample(fg::RandomStream& rng, fg::BatchView<S> out) {
    streams.push_back(rng.stream);
    rng.take(static_cast<std::uint64_t>(out.batch()));
    for (index_t j = 0; j < out.batch(); ++j)
      for (index_t f = 0; f < out.features(); ++f) out.sample(j)[f] = static_cast<S>(0.5 * f - 0.25 * j);
  }
};

// A communicator that says it has two ranks (constructing a Trainer asks nothing else).
struct TwoRanks {
  template <class B>
  void gradients_ready(const fg::GradientsReady<B>&) {}
  [[nodiscard]] index_t rank() const { return 0; }
  [[nodiscard]] index_t size() const { return 2; }
  template <class B>
  void exchange_shards(const fg::ShardExchange<B>&) {}
};

// Records the gradients the optimizer is about to apply.
template <class B>
struct Recorder {
  std::vector<typename B::scalar> critic;
  void gradients_ready(const fg::GradientsReady<B>& r) {
    if (r.network == fg::GradientsOf::critic) critic.assign(r.grads, r.grads + r.count);
  }
};
} // namespace

TEST_CASE("Trainer.shards must divide the batch and cover the ranks") {
  using T = fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating>;
  for (index_t shards : {index_t{0}, index_t{-1}, index_t{4}, index_t{13}}) {
    T::Config c;
    c.batch = 12 - (shards == 4 ? 2 : 0); // 10 is not a multiple of 4
    c.shards = shards;
    CHECK_THROWS_WITH_AS(T{c}, doctest::Contains("'Trainer.shards'"), fg::config_error);
  }
  using Two = fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>, TwoRanks>;
  static_assert(fg::Communicator<TwoRanks, fg::backend::Cpu<float>>);
  Two::Config c;
  c.batch = 12;
  CHECK_THROWS_WITH_AS(Two{c}, doctest::Contains("at least the number of ranks (2)"), fg::config_error);
  c.shards = 3;
  const Two t(c);
  CHECK(t.ranks() == 2);
  CHECK(t.local_shards().first == 0);
  CHECK(t.local_shards().count == 2); // shards 0 and 1 of 3; rank 1 holds shard 2
  CHECK(fg::shard_range(3, 2, 1).first == 2);
  CHECK(fg::shard_range(3, 2, 1).count == 1);
  CHECK(fg::shard_range(7, 3, 2).first == 5);
  CHECK(fg::shard_range(7, 3, 2).count == 2);
}

TEST_CASE("each shard draws its own columns of the batch from the data stream") {
  using T = fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Reference<double>>;
  T::Config c;
  c.batch = 12;
  c.shards = 3;
  c.n_critic = 2;
  T t(c);
  RecordingSource src;
  t.step(src);
  t.step(src);
  REQUIRE(src.calls.size() == 12); // 2 steps x 2 critic updates x 3 shards
  for (std::size_t i = 0; i < src.calls.size(); ++i) {
    CHECK(src.calls[i].stream == T::data);
    CHECK(src.calls[i].count == 4);
    CHECK(src.calls[i].counter == 4 * i); // update u, shard s: columns 12u + 4s ...
  }
  CHECK(t.random_streams()[1]->counter == 48); // the run's data stream passed all four batches

  OpaqueSource opaque;
  T u(c);
  u.step(opaque);
  REQUIRE(opaque.streams.size() == 6);
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < i; ++j) CHECK(opaque.streams[i] != opaque.streams[j]);
}

TEST_CASE("the shards' gradient is the batch's gradient where the shards see the same samples") {
  // G's weights are zeroed, so every fake is G's output bias whatever the noise: the shards
  // then differ from the plain batch only by how the mean over the batch is summed.
  using B = fg::backend::Reference<double>;
  using T = fg::Trainer<SmallG, SmallD, fg::Objective<fg::loss::NonSaturating, fg::penalty::R1>, fg::optim::SGD, B,
                        Recorder<B>>;
  T::Config c;
  c.batch = 12;
  c.seed = 5;
  T plain(c);
  c.shards = 4;
  T sharded(c);
  for (T* t : {&plain, &sharded}) {
    double* p = t->generator().params();
    for (index_t i = 0; i < T::generator_type::param_count - 2; ++i) p[i] = 0; // all but the output bias
    p[T::generator_type::param_count - 2] = 0.3;
    p[T::generator_type::param_count - 1] = -0.7;
  }
  RecordingSource a, b;
  plain.train_critic(a);
  sharded.train_critic(b);
  const auto& x = plain.hook().critic;
  const auto& y = sharded.hook().critic;
  REQUIRE(x.size() == y.size());
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    worst = std::max(worst, std::abs(x[i] - y[i]));
    scale = std::max(scale, std::abs(x[i]));
  }
  CHECK(scale > 1e-3);
  CHECK(worst <= 1e-14 * scale);
  CHECK(plain.last_stats().d_loss == doctest::Approx(sharded.last_stats().d_loss).epsilon(1e-13));
  CHECK(plain.last_stats().part_values[0] == doctest::Approx(sharded.last_stats().part_values[0]).epsilon(1e-13));
}

namespace {
using CondT = fg::Trainer<CondG, CondD, fg::loss::NonSaturating>;
CondT::Config cond_config() {
  CondT::Config c;
  c.batch = 24;
  c.shards = 4;
  c.seed = 9;
  c.n_critic = 2;
  c.ema_decay = 0.9;
  return c;
}
} // namespace

TEST_CASE("sharded training gives the same bits on 1 and 2 threads") {
  const int saved = omp_get_max_threads();
  std::vector<float> g[2], d[2], ema[2];
  double loss[2];
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    CondT t(cond_config());
    fg::data::Ring ring(K);
    for (int s = 0; s < 5; ++s) t.step(ring);
    g[threads - 1] = params_of(t.generator());
    d[threads - 1] = params_of(t.discriminator());
    ema[threads - 1].assign(t.ema_params().data(), t.ema_params().data() + CondT::generator_type::param_count);
    loss[threads - 1] = t.last_stats().d_loss;
  }
  omp_set_num_threads(saved);
  CHECK(same_bits(g[0], g[1]));
  CHECK(same_bits(d[0], d[1]));
  CHECK(same_bits(ema[0], ema[1]));
  CHECK(loss[0] == loss[1]);
}

TEST_CASE("a sharded run resumes bit for bit, and only with its own shard count") {
  fg::data::Ring ring(K);
  CondT straight(cond_config());
  for (int s = 0; s < 6; ++s) straight.step(ring);

  CondT first(cond_config());
  for (int s = 0; s < 3; ++s) first.step(ring);
  const auto bytes = first.checkpoint();
  fg::test::Scratch scratch;
  const auto path = scratch.dir / "sharded.fgck";
  first.save_checkpoint(path);
  CondT resumed(cond_config());
  resumed.load_checkpoint(path);
  for (int s = 0; s < 3; ++s) resumed.step(ring);
  CHECK(same_bits(params_of(straight.generator()), params_of(resumed.generator())));
  CHECK(same_bits(params_of(straight.discriminator()), params_of(resumed.discriminator())));
  CHECK(straight.last_stats().g_loss == resumed.last_stats().g_loss);

  auto other = cond_config();
  other.shards = 2;
  CondT two(other);
  CHECK_THROWS_WITH_AS(two.load_checkpoint(path), doctest::Contains("shards"), fg::error);
}
