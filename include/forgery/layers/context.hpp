// What a layer's forward pass may need beyond its input: the mode and a random stream
// (for layers such as Dropout). Passed by the network, never stored by a layer.
#pragma once

#include <cstdint>

#include "forgery/core/config.hpp"
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
};

} // namespace forgery
