// Regularisers of the critic: the input-gradient penalties (GradientPenalty, DRAGAN, R1,
// R2), which back-propagate into the critic through its tangent pass, and the WeightClip
// constraint.
#pragma once

#include "forgery/penalty/dragan.hpp"
#include "forgery/penalty/gradient_penalty.hpp"
#include "forgery/penalty/r1.hpp"
#include "forgery/penalty/weight_clip.hpp"
#include "forgery/penalty/workspace.hpp"
