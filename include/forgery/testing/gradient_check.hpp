// forgery::testing::check_gradients: compares a network's hand-written backward and
// tangent passes with central finite differences in double precision. Public API, so a
// user's own layer is checked exactly as forgery's are.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/nn/sequential.hpp"

namespace forgery::testing {

struct GradientCheckOptions {
  index_t batch = 3;          ///< samples in the probe batch
  double step = 1e-6;         ///< finite-difference step h
  double tolerance = 1e-6;    ///< maximum relative error accepted
  std::uint64_t seed = 1234;  ///< probe inputs, tangents and output weights come from this
  bool check_dual = true;     ///< also check forward_dual / backward_dual (when supported)
  index_t max_checked = 4096; ///< per group, check at most this many entries (evenly strided)
  /// Layers that draw (Dropout) get a random stream from this seed, rewound before every
  /// forward pass so that each pass of the check sees the same draws.
  std::uint64_t random_seed = 4321;
};

/// Maximum relative error per checked quantity, and the verdict.
struct GradientCheckReport {
  double input = 0;        ///< dL/dx from backward
  double params = 0;       ///< dL/dtheta from backward
  double tangent = 0;      ///< ty = J tx from forward_dual, against differences of y along tx
  double dual_params = 0;  ///< dQ/dtheta from backward_dual, Q = s . y + q . ty
  double dual_input = 0;   ///< dQ/dx from backward_dual
  double dual_tangent = 0; ///< dQ/dtx from backward_dual
  double tolerance = 0;
  bool dual_checked = false;

  [[nodiscard]] double worst() const {
    return std::max({input, params, tangent, dual_params, dual_input, dual_tangent});
  }
  [[nodiscard]] bool passed() const { return worst() < tolerance; }
  [[nodiscard]] std::string summary() const {
    std::ostringstream o;
    o << "max relative error: input " << input << ", params " << params;
    if (dual_checked)
      o << ", tangent " << tangent << ", dual params " << dual_params << ", dual input " << dual_input
        << ", dual tangent " << dual_tangent;
    o << " (tolerance " << tolerance << ")";
    return o.str();
  }
};

namespace detail {

/// Relative error of analytic vs numeric values; entries far below the group's scale are
/// judged against that scale, so round-off on near-zero entries is not called an error.
struct ErrorAccumulator {
  std::vector<double> analytic, numeric;
  [[nodiscard]] double max_relative() const {
    double scale = 0;
    for (double a : analytic) scale = std::max(scale, std::abs(a));
    const double floor = std::max(1e-3 * scale, 1e-10);
    double worst = 0;
    for (std::size_t i = 0; i < analytic.size(); ++i) {
      const double a = analytic[i], n = numeric[i];
      const double err = std::abs(a - n) / std::max({std::abs(a), std::abs(n), floor});
      if (!(err <= worst)) worst = err; // NaN propagates as a failure
    }
    return worst;
  }
};

inline index_t stride_for(index_t n, index_t max_checked) {
  return n <= max_checked ? 1 : (n + max_checked - 1) / max_checked;
}

template <class S>
double weighted_sum(ConstBatchView<S> a, const HostBuffer<S>& w) {
  double acc = 0;
  for (index_t i = 0; i < a.size(); ++i) acc += static_cast<double>(a.data()[i]) * static_cast<double>(w[i]);
  return acc;
}

} // namespace detail

/// Checks every gradient `net` computes against central differences, with probe data drawn
/// from `opts.seed`. The network's parameters are used as they are (initialise it first)
/// and left unchanged; its gradient buffer is overwritten, and its random stream is replaced
/// by one from `opts.random_seed` during the check and cleared (set to null) after it.
template <class Net>
GradientCheckReport check_gradients(Net& net, const GradientCheckOptions& opts = {}) {
  using S = typename Net::scalar;
  using B = typename Net::backend;
  static_assert(std::is_same_v<S, double>, "fg::testing::check_gradients runs in double precision: bind the network "
                                           "to backend::Reference<double> or backend::Cpu<double>.");
  static_assert(B::host_memory, "fg::testing::check_gradients needs a host-memory backend (Reference or Cpu).");
  constexpr index_t nin = Net::input_size, nout = Net::output_size;
  const index_t n = opts.batch;
  const double h = opts.step;

  // The stream layers draw from, rewound before every forward pass and detached on return
  // (the network keeps no pointer to it).
  const RandomStream layer_start{opts.random_seed, 0x6c61796572ULL, 0};
  RandomStream layer_rng = layer_start;
  struct StreamGuard {
    Net& net;
    ~StreamGuard() { net.set_random_stream(nullptr); }
  } guard{net};
  net.set_random_stream(&layer_rng);
  auto forward = [&](ConstBatchView<S> in) {
    layer_rng = layer_start;
    return net.forward(in);
  };
  // Generic, so that its body is instantiated only for networks with a tangent pass.
  auto forward_dual = [&](auto in, auto tangent) {
    layer_rng = layer_start;
    return net.forward_dual(in, tangent);
  };

  RandomStream rng{opts.seed, 0x6772616443686bULL, 0};
  HostBuffer<S> x(nin * n), r(nout * n);
  B::fill_normal(x.size(), x.data(), rng, S(0), S(1));
  B::fill_normal(r.size(), r.data(), rng, S(0), S(1));
  const ConstBatchView<S> xv(x.data(), nin, n), rv(r.data(), nout, n);

  auto loss = [&] { return detail::weighted_sum<S>(forward(xv), r); };
  auto probe = [&](S* v, index_t count, const HostBuffer<S>& analytic, auto&& objective) {
    detail::ErrorAccumulator acc;
    for (index_t i = 0; i < count; i += detail::stride_for(count, opts.max_checked)) {
      const S saved = v[i];
      v[i] = saved + h;
      const double up = objective();
      v[i] = saved - h;
      const double down = objective();
      v[i] = saved;
      acc.analytic.push_back(analytic[i]);
      acc.numeric.push_back((up - down) / (2 * h));
    }
    return acc.max_relative();
  };

  GradientCheckReport rep;
  rep.tolerance = opts.tolerance;

  // First order: L = r . net(x).
  net.zero_grad();
  forward(xv);
  const ConstBatchView<S> dx = net.backward(rv, Grad::both);
  HostBuffer<S> gx(dx.size()), gp(Net::param_count);
  std::copy(dx.data(), dx.data() + dx.size(), gx.data());
  std::copy(net.grads(), net.grads() + Net::param_count, gp.data());
  rep.input = probe(x.data(), x.size(), gx, loss);
  rep.params = probe(net.params(), Net::param_count, gp, loss);

  if constexpr (Net::supports_dual) {
    if (opts.check_dual) {
      rep.dual_checked = true;
      HostBuffer<S> t(nin * n), s(nout * n), q(nout * n);
      B::fill_normal(t.size(), t.data(), rng, S(0), S(1));
      B::fill_normal(s.size(), s.data(), rng, S(0), S(1));
      B::fill_normal(q.size(), q.data(), rng, S(0), S(1));
      const ConstBatchView<S> tv(t.data(), nin, n), sv(s.data(), nout, n), qv(q.data(), nout, n);

      // Directional derivative: ty against (y(x + h t) - y(x - h t)) / 2h, per output.
      {
        const auto [y0, ty] = forward_dual(xv, tv);
        HostBuffer<S> ty_copy(ty.size());
        std::copy(ty.data(), ty.data() + ty.size(), ty_copy.data());
        HostBuffer<S> xp(x), xm(x);
        for (index_t i = 0; i < x.size(); ++i) {
          xp[i] = x[i] + h * t[i];
          xm[i] = x[i] - h * t[i];
        }
        HostBuffer<S> yp(ty.size());
        const ConstBatchView<S> up = forward(ConstBatchView<S>(xp.data(), nin, n));
        std::copy(up.data(), up.data() + up.size(), yp.data());
        const ConstBatchView<S> down = forward(ConstBatchView<S>(xm.data(), nin, n));
        detail::ErrorAccumulator acc;
        for (index_t i = 0; i < ty_copy.size(); ++i) {
          acc.analytic.push_back(ty_copy[i]);
          acc.numeric.push_back((static_cast<double>(yp[i]) - static_cast<double>(down.data()[i])) / (2 * h));
        }
        rep.tangent = acc.max_relative();
      }

      // Second order: Q = s . y + q . ty, differentiated through the tangent pass.
      auto dual_objective = [&] {
        const auto [y, ty] = forward_dual(xv, tv);
        return detail::weighted_sum<S>(y, s) + detail::weighted_sum<S>(ty, q);
      };
      net.zero_grad();
      forward_dual(xv, tv);
      const auto [gdx, gdt] = net.backward_dual(sv, qv, Grad::both);
      HostBuffer<S> qx(gdx.size()), qt(gdt.size()), qp(Net::param_count);
      std::copy(gdx.data(), gdx.data() + gdx.size(), qx.data());
      std::copy(gdt.data(), gdt.data() + gdt.size(), qt.data());
      std::copy(net.grads(), net.grads() + Net::param_count, qp.data());
      rep.dual_input = probe(x.data(), x.size(), qx, dual_objective);
      rep.dual_tangent = probe(t.data(), t.size(), qt, dual_objective);
      rep.dual_params = probe(net.params(), Net::param_count, qp, dual_objective);
    }
  }
  net.zero_grad();
  return rep;
}

} // namespace forgery::testing
