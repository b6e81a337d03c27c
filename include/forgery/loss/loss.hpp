// The adversarial losses on critic logits, all in one include. Each is a policy meeting
// forgery::Loss (core/concepts.hpp): it computes its own discriminator and generator terms.
//
// The contract they share: `real` and `fake` hold n >= 1 logits each in backend memory
// (n < 1 throws forgery::shape_error); d_real, d_fake and work (2n scalars) must not overlap
// each other or the logits; the value returned is the batch mean (the sum of two means for
// two-term losses) and the gradients are of that value, so they include the 1/n. A NaN
// logit gives a NaN loss.
#pragma once

#include "forgery/loss/aux_classifier.hpp"
#include "forgery/loss/cross_entropy.hpp"

#include "forgery/loss/hinge.hpp"
#include "forgery/loss/least_squares.hpp"
#include "forgery/loss/minimax.hpp"
#include "forgery/loss/non_saturating.hpp"
#include "forgery/loss/relativistic_average.hpp"
#include "forgery/loss/wasserstein.hpp"
