// Build-wide basics: the index type, the host/device marker for kernel bodies, and
// the library version.
#pragma once

#include <cstddef>
#include <cstdint>

#define FORGERY_VERSION_MAJOR 0
#define FORGERY_VERSION_MINOR 1
#define FORGERY_VERSION_PATCH 0

// Kernel bodies are functors written once and launched by the OpenMP loop of the CPU
// backend and by the CUDA grid of the CUDA backend: this is the one marker they carry.
#if defined(__CUDACC__)
#define FORGERY_HOST_DEVICE __host__ __device__
#else
#define FORGERY_HOST_DEVICE
#endif

namespace forgery {

/// Signed index used for sizes and loop counters throughout (matches Eigen::Index).
using index_t = std::ptrdiff_t;

/// Training or inference behaviour for layers that differ between the two.
enum class Mode : std::uint8_t { train, eval };

} // namespace forgery
