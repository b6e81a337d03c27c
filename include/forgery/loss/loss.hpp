// The adversarial losses on critic logits, all in one include. Each is a policy meeting
// forgery::Loss (core/concepts.hpp): it computes its own discriminator and generator terms.
#pragma once

#include "forgery/loss/hinge.hpp"
#include "forgery/loss/least_squares.hpp"
#include "forgery/loss/minimax.hpp"
#include "forgery/loss/non_saturating.hpp"
#include "forgery/loss/relativistic_average.hpp"
#include "forgery/loss/wasserstein.hpp"
