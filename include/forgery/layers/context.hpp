// What a layer's forward pass may need beyond its input: the mode and a random stream
// (for layers such as Dropout), and the class labels of conditional networks with their
// range check. Passed by the network, never stored by a layer.
#pragma once

#include <cstdint>
#include <string>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"

namespace forgery {

/// Per-call information for a layer's forward pass.
struct Context {
  Mode mode = Mode::train;
  /// Source of per-step randomness; layers that draw advance it.
  RandomStream* rng = nullptr;
  /// Class labels of the batch's samples (conditional networks), one per column; layers
  /// that condition on them read the first `batch` entries.
  const std::int32_t* labels = nullptr;
  index_t label_count = 0;
  /// Batch-statistics groups: layers that normalise with batch statistics (BatchNorm)
  /// treat the batch as this many consecutive groups of equal size, each with statistics
  /// of its own, exactly as separate passes over each group would (the Trainer passes real
  /// and fake through the critic this way, in one pass). Other layers ignore it.
  index_t statistics_groups = 1;
};

namespace detail {
/// Checks n class labels in host memory against [0, classes): config_error naming
/// "<where> label of sample j", its value and the allowed range.
inline void check_label_range(const std::int32_t* labels, index_t n, index_t classes, const std::string& where) {
  for (index_t j = 0; j < n; ++j)
    if (labels[j] < 0 || labels[j] >= classes)
      throw config_error(where + " label of sample " + std::to_string(j), std::to_string(labels[j]),
                         "a class in [0, " + std::to_string(classes) + ")");
}
} // namespace detail

} // namespace forgery
