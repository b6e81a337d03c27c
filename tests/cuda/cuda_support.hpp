// Helpers of the CUDA tests: moving test data between host and device, and the tolerances
// of backend::Cuda against backend::Cpu.
#pragma once

#include <doctest/doctest.h>

#include <cstring>
#include <limits>

#include "../support.hpp"
#include "forgery/backend/cuda.hpp"

namespace forgery::test {

// Any Cuda<S> moves any T; one spelling for the helpers.
using Transfer = backend::Cuda<float>;

/// A device copy of n host values.
template <class T>
DeviceBuffer<T> upload(const T* host, index_t n) {
  DeviceBuffer<T> d(n);
  Transfer::to_device(n, host, d.data());
  return d;
}
template <class T>
DeviceBuffer<T> upload(const HostBuffer<T>& host) {
  return upload(host.data(), host.size());
}

/// A host copy of n device values.
template <class T>
HostBuffer<T> download(const T* device, index_t n) {
  HostBuffer<T> h(n);
  Transfer::to_host(n, device, h.data());
  return h;
}
template <class T>
HostBuffer<T> download(const DeviceBuffer<T>& device) {
  return download(device.data(), device.size());
}

template <class T>
bool same_bits(const T* a, const T* b, index_t n) {
  return n == 0 || std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(T)) == 0;
}
template <class T>
bool same_bits(const HostBuffer<T>& a, const HostBuffer<T>& b) {
  return a.size() == b.size() && same_bits(a.data(), b.data(), a.size());
}

template <class S>
constexpr double epsilon = std::numeric_limits<S>::epsilon();

/// Cuda against Cpu on a network's values (max_rel_diff: |a - b| / max(1, |b|)): GEMMs sum
/// in another order (cuBLAS), and the device fuses multiply-adds. Four to five times the
/// Cpu-against-Reference tolerance of support.hpp.
template <class S>
constexpr double cuda_tolerance() {
  return sizeof(S) == 4 ? 1e-4 : 1e-10;
}

/// Normal draws: the device's log, sin and cos are within a few ulp of glibc's.
template <class S>
constexpr double normal_tolerance() {
  return 64 * epsilon<S>;
}

} // namespace forgery::test
