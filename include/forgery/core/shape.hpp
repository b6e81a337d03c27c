// Compile-time tensor shapes: the per-sample shape of an activation (C, H, W or just N),
// the unit of Sequential's shape inference.
#pragma once

#include <array>
#include <type_traits>

#include "forgery/core/config.hpp"

namespace forgery {

/// The shape of one sample, e.g. Shape<784> or Shape<1, 28, 28> (CHW).
template <index_t... Dims>
struct Shape {
  static_assert(sizeof...(Dims) >= 1, "forgery::Shape needs at least one dimension.");
  static_assert(((Dims > 0) && ...), "forgery::Shape: every dimension must be positive.");
  static constexpr index_t rank = sizeof...(Dims);
  static constexpr index_t size = (Dims * ...);
  static constexpr std::array<index_t, sizeof...(Dims)> dims{Dims...};
};

namespace detail {
template <class T>
struct is_shape : std::false_type {};
template <index_t... D>
struct is_shape<Shape<D...>> : std::true_type {};
} // namespace detail

/// True for the Shape<...> template.
template <class T>
concept ShapeType = detail::is_shape<T>::value;

/// A flat (rank-1) shape, the input Dense expects.
template <class T>
concept FlatShape = ShapeType<T> && T::rank == 1;

} // namespace forgery
