// LocalGradients: the gradients-ready hook of a single-process Trainer, which leaves the
// gradients as they are. The customisation point itself (GradientsReady, GradientsHook) is
// in core/concepts.hpp; a data-parallel communicator (fg::Communicator) is a hook too.
#pragma once

#include "forgery/core/concepts.hpp"

namespace forgery {

/// The gradients of one process are the gradients of the update: nothing to combine. Being
/// empty and inline, it costs nothing per update.
struct LocalGradients {
  template <class B>
  constexpr void gradients_ready(const GradientsReady<B>&) const noexcept {}
};

} // namespace forgery
