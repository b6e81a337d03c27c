// Weight initialisation schemes. The scheme is a run-time value so one binary can sweep it;
// every draw comes from a Philox stream named after the network and the layer.
#pragma once

#include <cmath>
#include <string_view>

#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"

namespace forgery {

/// How weights are drawn; biases always start at zero.
enum class Init {
  glorot_uniform, ///< U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)
  he_normal,      ///< N(0, 2 / fan_in) (He et al. 2015), for ReLU networks
  dcgan_normal,   ///< N(0, 0.02^2), the DCGAN paper's choice (Radford et al. 2016)
};

[[nodiscard]] constexpr std::string_view to_string(Init s) noexcept {
  switch (s) {
  case Init::glorot_uniform:
    return "glorot_uniform";
  case Init::he_normal:
    return "he_normal";
  case Init::dcgan_normal:
    return "dcgan_normal";
  }
  return "unknown";
}

/// Fills `n` weights of a layer with fan-in `fan_in` and fan-out `fan_out`.
template <class B, class S>
void init_weights(S* w, index_t n, index_t fan_in, index_t fan_out, Init scheme, RandomStream& rng) {
  switch (scheme) {
  case Init::glorot_uniform: {
    const S a = static_cast<S>(std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
    B::fill_uniform(n, w, rng, -a, a);
    break;
  }
  case Init::he_normal:
    B::fill_normal(n, w, rng, S(0), static_cast<S>(std::sqrt(2.0 / static_cast<double>(fan_in))));
    break;
  case Init::dcgan_normal:
    B::fill_normal(n, w, rng, S(0), S(0.02));
    break;
  }
}

} // namespace forgery
