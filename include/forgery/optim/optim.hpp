// The optimizers: SGD, Adam, AdamW and RMSprop, each a policy with a run-time Config and a
// per-backend State (see the Optimizer concept in core/concepts.hpp).
#pragma once

#include "forgery/optim/adam.hpp"
#include "forgery/optim/adamw.hpp"
#include "forgery/optim/rmsprop.hpp"
#include "forgery/optim/sgd.hpp"
