// Features for the metrics: a network's activations at one layer boundary over a whole data
// set, e.g. a classifier's penultimate layer for Frechet distance or KID.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>

#include <Eigen/Core>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/nn/sequential.hpp"

namespace forgery::metrics {

/// The boundary before a network's last layer (Network::depth - 1): the usual feature layer
/// of a classifier, whose last layer maps features to logits.
template <NetworkSpec Spec, Backend B>
[[nodiscard]] constexpr std::size_t penultimate(const Network<Spec, B>&) noexcept {
  return Network<Spec, B>::depth - 1;
}

/// Runs `net` in eval mode over the columns of `data` (Network::input_size x n, host
/// memory) `batch` samples at a time and returns its activations at layer `boundary`
/// (0: the input, Network::depth: the output) as an owning Network::widths[boundary] x n
/// matrix in double: every metric here computes in double, and an owning result outlives the
/// network's activation buffers, which the next forward overwrites. The network's mode is
/// restored afterwards, also when a forward throws. Every sample's features depend only on
/// that sample (in eval mode), so the chunking does not change them.
/// The network keeps a pointer to `data` as its last input, as any forward does.
/// \tparam Spec the network spec (fg::Sequential<...>).
/// \tparam B a host-memory backend.
/// Throws shape_error when data does not have Network::input_size features, config_error for
/// no samples, batch < 1 or a boundary past Network::depth.
template <NetworkSpec Spec, Backend B>
[[nodiscard]] Eigen::MatrixXd extract_features(Network<Spec, B>& net, ConstBatchView<typename B::scalar> data,
                                               std::size_t boundary, index_t batch = 256) {
  static_assert(B::host_memory, "fg::metrics::extract_features reads activations on the host: run the feature network "
                                "on a host-memory backend (backend::Cpu or backend::Reference).");
  using Net = Network<Spec, B>;
  using S = typename B::scalar;
  if (data.features() != Net::input_size)
    throw shape_error("metrics::extract_features",
                      "data of " + std::to_string(Net::input_size) + " features (the network's input size)",
                      std::to_string(data.features()) + " features");
  if (data.batch() < 1 || data.data() == nullptr)
    throw config_error("data", "0 samples", "at least one sample to extract features from");
  if (batch < 1) throw config_error("batch", std::to_string(batch), "at least 1");
  if (boundary > Net::depth)
    throw config_error("boundary", std::to_string(boundary),
                       "a layer boundary in [0, " + std::to_string(Net::depth) + "] (the network's depth)");

  // Restores the caller's mode however the loop ends.
  struct ModeGuard {
    Net& net;
    Mode saved;
    ~ModeGuard() {
      if (saved == Mode::train)
        net.train();
      else
        net.eval();
    }
  } guard{net, net.mode()};
  net.eval();

  const index_t width = Net::widths[boundary];
  const index_t n = data.batch();
  Eigen::MatrixXd out(width, n);
  for (index_t j0 = 0; j0 < n; j0 += batch) {
    const index_t m = std::min(batch, n - j0);
    (void)net.forward(ConstBatchView<S>(data.sample(j0), data.features(), m));
    out.middleCols(j0, m) = net.activation(boundary).matrix().template cast<double>();
  }
  return out;
}

/// extract_features at the penultimate boundary (Network::depth - 1).
template <NetworkSpec Spec, Backend B>
[[nodiscard]] Eigen::MatrixXd extract_penultimate(Network<Spec, B>& net, ConstBatchView<typename B::scalar> data,
                                                  index_t batch = 256) {
  return extract_features(net, data, penultimate(net), batch);
}

} // namespace forgery::metrics
