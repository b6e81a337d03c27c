// Owning, 64-byte aligned host memory: the storage of the CPU backends (parameter and
// gradient buffers, activations, workspaces). Growing is the only thing that allocates.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "forgery/core/checked.hpp"
#include "forgery/core/config.hpp"

namespace forgery {

/// A resizable array of trivially copyable `T` in 64-byte aligned host memory.
/// `resize` keeps capacity, so a steady-state training step does not allocate.
template <class T>
class HostBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "forgery::HostBuffer holds trivially copyable values only.");

public:
  static constexpr std::size_t alignment = 64;

  HostBuffer() = default;
  explicit HostBuffer(index_t n) { resize(n); }
  HostBuffer(const HostBuffer& o) : HostBuffer(o.size_) {
    if (size_ > 0) std::memcpy(data_, o.data_, static_cast<std::size_t>(size_) * sizeof(T));
  }
  HostBuffer(HostBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  HostBuffer& operator=(HostBuffer o) noexcept {
    swap(o);
    return *this;
  }
  ~HostBuffer() { release(); }

  void swap(HostBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }

  /// Sets the size; values up to the old size are kept, new values are zero. Throws
  /// size_error for a negative size or one whose byte count does not fit in index_t.
  void resize(index_t n) {
    checked_size(n, "HostBuffer size");
    if (n > capacity_) {
      // The largest index_t plus the rounding to 64 bytes still fits in size_t.
      T* fresh =
          allocate(static_cast<std::size_t>(checked_mul(n, static_cast<index_t>(sizeof(T)), "HostBuffer bytes")));
      const index_t kept = size_; // release() zeroes size_
      if (kept > 0) std::memcpy(fresh, data_, static_cast<std::size_t>(kept) * sizeof(T));
      release();
      data_ = fresh;
      size_ = kept;
      capacity_ = n;
    }
    if (n > size_) std::memset(static_cast<void*>(data_ + size_), 0, static_cast<std::size_t>(n - size_) * sizeof(T));
    size_ = n;
  }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] index_t size() const noexcept { return size_; }
  [[nodiscard]] index_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] T& operator[](index_t i) noexcept { return data_[i]; }
  [[nodiscard]] const T& operator[](index_t i) const noexcept { return data_[i]; }
  [[nodiscard]] std::span<T> span() noexcept { return {data_, static_cast<std::size_t>(size_)}; }
  [[nodiscard]] std::span<const T> span() const noexcept { return {data_, static_cast<std::size_t>(size_)}; }
  [[nodiscard]] T* begin() noexcept { return data_; }
  [[nodiscard]] T* end() noexcept { return data_ + size_; }
  [[nodiscard]] const T* begin() const noexcept { return data_; }
  [[nodiscard]] const T* end() const noexcept { return data_ + size_; }

private:
  static T* allocate(std::size_t exact_bytes) {
    const std::size_t bytes = (exact_bytes + alignment - 1) / alignment * alignment;
    return static_cast<T*>(::operator new (bytes, std::align_val_t{alignment}));
  }
  void release() noexcept {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{alignment});
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  T* data_ = nullptr;
  index_t size_ = 0;
  index_t capacity_ = 0;
};

} // namespace forgery
