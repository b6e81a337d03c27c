// forgery: header-only C++20 framework for training GANs. This umbrella header brings in
// everything except the CUDA backend (forgery/backend/cuda.hpp, nvcc only).
#pragma once

#include "forgery/backend/cpu.hpp"
#include "forgery/backend/kernels.hpp"
#include "forgery/backend/op_set.hpp"
#include "forgery/backend/reference.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/data/tensor_dataset.hpp"
#include "forgery/data/toy.hpp"
#include "forgery/layers/activation.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/dense.hpp"
#include "forgery/layers/init.hpp"
#include "forgery/layers/label_conditioning.hpp"
#include "forgery/layers/projection.hpp"
#include "forgery/layers/reshape.hpp"
#include "forgery/loss/loss.hpp"
#include "forgery/metrics/energy_distance.hpp"
#include "forgery/metrics/mmd.hpp"
#include "forgery/metrics/mode_coverage.hpp"
#include "forgery/nn/sequential.hpp"
#include "forgery/optim/optim.hpp"
#include "forgery/penalty/penalty.hpp"
#include "forgery/testing/gradient_check.hpp"
#include "forgery/train/callbacks.hpp"
#include "forgery/train/objective.hpp"
#include "forgery/train/presets.hpp"
#include "forgery/train/trainer.hpp"

/// Short name used throughout the documentation and examples.
namespace fg = forgery;
