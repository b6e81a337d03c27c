// Upsample and AvgPool2d on backend::Cuda against backend::Cpu: alone, every pass gives the
// same bits (copies, sums in the same order and a correctly rounded division); inside a
// network with convolutions, within the Cuda tolerance (cuBLAS sums in another order).
#include <doctest/doctest.h>

#include <cstdint>

#include "cuda_support.hpp"
#include "forgery/layers/resample.hpp"

namespace fg = forgery;

namespace {

using fg::ConstBatchView;
using fg::HostBuffer;
using fg::index_t;
using namespace fg::test;

template <class S>
HostBuffer<S> host(ConstBatchView<S> v) {
  return download(v.data(), v.size());
}

/// Compares Spec on Cuda<S> and Cpu<S> with the same parameters: forward, backward (input and
/// parameter gradients), forward_dual, forward_tangent and backward_dual. `tol` < 0: same bits.
template <class Spec, class S>
void compare_with_cpu(double tol, index_t batch = 5, std::uint64_t seed = 21) {
  fg::Network<Spec, fg::backend::Cpu<S>> cpu;
  fg::Network<Spec, fg::backend::Cuda<S>> gpu;
  cpu.initialize(seed);
  constexpr index_t np = decltype(cpu)::param_count;
  if constexpr (np > 0) fg::backend::Cuda<S>::to_device(np, cpu.params(), gpu.params());
  auto agree = [&](const HostBuffer<S>& g, const S* c, index_t n) {
    if (tol < 0) return same_bits(g.data(), c, n);
    return max_rel_diff(g.data(), c, n) < tol;
  };

  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = normal_buffer<S>(nin * batch, seed, 1), t = normal_buffer<S>(nin * batch, seed, 2);
  const auto dy = normal_buffer<S>(nout * batch, seed, 3), q = normal_buffer<S>(nout * batch, seed, 4);
  const auto gx_ = upload(x), gt_ = upload(t), gdy_ = upload(dy), gq_ = upload(q);
  const ConstBatchView<S> xc(x.data(), nin, batch), tc(t.data(), nin, batch), dyc(dy.data(), nout, batch),
      qc(q.data(), nout, batch);
  const ConstBatchView<S> xg(gx_.data(), nin, batch), tg(gt_.data(), nin, batch), dyg(gdy_.data(), nout, batch),
      qg(gq_.data(), nout, batch);

  const auto yc = cpu.forward(xc);
  CHECK(agree(host(gpu.forward(xg)), yc.data(), yc.size()));
  cpu.zero_grad();
  gpu.zero_grad();
  const auto dc = cpu.backward(dyc);
  CHECK(agree(host(gpu.backward(dyg)), dc.data(), dc.size()));
  if constexpr (np > 0) CHECK(agree(download(gpu.grads(), np), cpu.grads(), np));

  const auto tyc = cpu.forward_tangent(tc).second;
  CHECK(agree(host(gpu.forward_tangent(tg).second), tyc.data(), tyc.size()));
  const auto [y1, ty1] = cpu.forward_dual(xc, tc);
  const auto [y2, ty2] = gpu.forward_dual(xg, tg);
  CHECK(agree(host(y2), y1.data(), y1.size()));
  CHECK(agree(host(ty2), ty1.data(), ty1.size()));
  cpu.zero_grad();
  gpu.zero_grad();
  const auto [gx1, gt1] = cpu.backward_dual(dyc, qc);
  const auto [gx2, gt2] = gpu.backward_dual(dyg, qg);
  CHECK(agree(host(gx2), gx1.data(), gx1.size()));
  CHECK(agree(host(gt2), gt1.data(), gt1.size()));
  if constexpr (np > 0) CHECK(agree(download(gpu.grads(), np), cpu.grads(), np));
}

TEST_CASE_TEMPLATE("Upsample and AvgPool2d on Cuda give Cpu's bits", S, float, double) {
  using fg::Input, fg::Sequential;
  compare_with_cpu<Sequential<Input<3, 5, 7>, fg::Upsample<>>, S>(-1);
  compare_with_cpu<Sequential<Input<2, 4, 3>, fg::Upsample<3>>, S>(-1);
  compare_with_cpu<Sequential<Input<3, 6, 8>, fg::AvgPool2d<>>, S>(-1);
  compare_with_cpu<Sequential<Input<2, 9, 6>, fg::AvgPool2d<3>>, S>(-1);
  compare_with_cpu<Sequential<Input<4, 16, 16>, fg::AvgPool2d<4>, fg::Upsample<2>>, S>(-1, 64);
}

TEST_CASE_TEMPLATE("a network with AvgPool2d and Upsample between convolutions on Cuda matches Cpu", S, float, double) {
  using Spec = fg::Sequential<fg::Input<2, 8, 8>, fg::Conv2d<4, 3, 1, 1>, fg::AvgPool2d<>, fg::LeakyReLU<>,
                              fg::Upsample<>, fg::Conv2d<1, 3, 1, 1>>;
  compare_with_cpu<Spec, S>(cuda_tolerance<S>());
}

} // namespace
