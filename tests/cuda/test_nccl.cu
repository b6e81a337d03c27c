// fg::nccl::Communicator on one GPU: a one-rank NCCL run with 4 shards gives the bits of the
// single-process Cuda Trainer with 4 shards (the exchange, the shard mean and the layer
// states it carries change nothing), and sharded Cuda training matches sharded Cpu
// training as the unsharded runs do (test_trainer.cu). Several ranks need one GPU each:
// NCCL does not put two ranks on one device.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda_support.hpp"
#include "forgery/distributed/nccl.hpp"

namespace fg = forgery;

namespace {
using fg::index_t;
using namespace fg::test;

using G =
    fg::Sequential<fg::Input<4>, fg::ConcatOneHot<8>, fg::Dense<32, false>, fg::BatchNorm<>, fg::ReLU, fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<32, false>, fg::BatchNorm<>, fg::LeakyReLU<>, fg::Projection<8>>;
using Obj = fg::loss::NonSaturating; // BatchNorm critic: no input-gradient penalty

template <class T>
typename T::Config config() {
  typename T::Config c;
  c.batch = 64;
  c.shards = 4;
  c.seed = 11;
  c.n_critic = 2;
  c.ema_decay = 0.9;
  for (auto* o : {&c.g_optimizer, &c.d_optimizer}) o->lr = 1e-4;
  return c;
}

template <class S>
bool same_bits(const std::vector<S>& a, const std::vector<S>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(S)) == 0;
}
} // namespace

TEST_CASE("one NCCL rank with 4 shards gives the bits of the single-process Cuda Trainer with 4 shards") {
  using B = fg::backend::Cuda<float>;
  using Local = fg::Trainer<G, D, Obj, fg::optim::Adam, B>;
  using Nccl = fg::Trainer<G, D, Obj, fg::optim::Adam, B, fg::nccl::Communicator>;
  Local local(config<Local>());
  Nccl nccl(config<Nccl>(), fg::nccl::Communicator(fg::nccl::Communicator::unique_id(), 0, 1));
  CHECK(nccl.ranks() == 1);
  fg::data::Ring a(8), b(8);
  for (int s = 0; s < 6; ++s) {
    const fg::StepStats x = local.step(a);
    const fg::StepStats y = nccl.step(b);
    CHECK(x.d_loss == y.d_loss);
    CHECK(x.g_loss == y.g_loss);
  }
  const index_t ng = Local::generator_type::param_count, nd = Local::discriminator_type::param_count;
  CHECK(same_bits(download(local.generator().params(), ng), download(nccl.generator().params(), ng)));
  CHECK(same_bits(download(local.discriminator().params(), nd), download(nccl.discriminator().params(), nd)));
  CHECK(same_bits(download(local.ema_params()), download(nccl.ema_params())));
}

TEST_CASE("sharded Cuda training matches sharded Cpu training") {
  using TC = fg::Trainer<G, D, Obj, fg::optim::Adam, fg::backend::Cpu<double>>;
  using TG = fg::Trainer<G, D, Obj, fg::optim::Adam, fg::backend::Cuda<double>>;
  TC cpu(config<TC>());
  TG gpu(config<TG>());
  fg::data::Ring a(8), b(8);
  for (int s = 0; s < 6; ++s) {
    const fg::StepStats x = cpu.step(a);
    const fg::StepStats y = gpu.step(b);
    CHECK(std::abs(x.d_loss - y.d_loss) <= 1e-9 * std::max(1.0, std::abs(x.d_loss)));
    CHECK(std::abs(x.g_loss - y.g_loss) <= 1e-9 * std::max(1.0, std::abs(x.g_loss)));
  }
  const index_t ng = TC::generator_type::param_count;
  CHECK(max_rel_diff(download(gpu.generator().params(), ng).data(), cpu.generator().params(), ng) < 1e-8);
}
