// Tests of core/buffer.hpp: HostBuffer's alignment, resize semantics and value semantics.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "forgery/core/buffer.hpp"

namespace {

using forgery::HostBuffer;
using forgery::index_t;

template <class T>
bool aligned64(const T* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 64 == 0;
}

template <class T>
void iota(HostBuffer<T>& b, T start) {
  for (index_t i = 0; i < b.size(); ++i) b[i] = start + static_cast<T>(i);
}

} // namespace

TEST_CASE_TEMPLATE("HostBuffer: default and sized construction", T, float, double, int) {
  const HostBuffer<T> empty;
  CHECK(empty.size() == 0);
  CHECK(empty.capacity() == 0);
  CHECK(empty.data() == nullptr);
  CHECK(empty.begin() == empty.end());
  CHECK(empty.span().empty());

  const HostBuffer<T> b(37);
  CHECK(b.size() == 37);
  CHECK(b.capacity() >= 37);
  REQUIRE(b.data() != nullptr);
  for (const T v : b) CHECK(v == T(0));
  CHECK(b.end() - b.begin() == 37);
  CHECK(b.span().size() == 37);
  CHECK(b.span().data() == b.data());
}

TEST_CASE_TEMPLATE("HostBuffer: data() is 64-byte aligned whatever the size", T, float, double, char) {
  for (const index_t n : {1, 2, 3, 15, 16, 17, 63, 64, 65, 1000, 4097}) {
    CAPTURE(n);
    HostBuffer<T> b(n);
    CHECK(aligned64(b.data()));
    b.resize(3 * n + 1); // reallocates
    CHECK(aligned64(b.data()));
  }
  // Many live buffers at once: alignment is not a lucky property of a fresh heap.
  HostBuffer<T> many[32];
  for (index_t i = 0; i < 32; ++i) {
    many[i].resize(i + 1);
    CHECK(aligned64(many[i].data()));
  }
}

TEST_CASE_TEMPLATE("HostBuffer: resize keeps values and zero-fills growth", T, float, double, int) {
  HostBuffer<T> b(5);
  iota(b, T(1));

  SUBCASE("growth past capacity reallocates and keeps the old values") {
    const index_t old_capacity = b.capacity();
    b.resize(old_capacity + 100);
    REQUIRE(b.size() == old_capacity + 100);
    for (index_t i = 0; i < 5; ++i) CHECK(b[i] == T(1) + static_cast<T>(i));
    for (index_t i = 5; i < b.size(); ++i) CHECK(b[i] == T(0));
    CHECK(aligned64(b.data()));
  }
  SUBCASE("shrinking keeps capacity and memory; regrowing within capacity zero-fills") {
    const index_t capacity = b.capacity();
    const T* data = b.data();
    b.resize(2);
    CHECK(b.size() == 2);
    CHECK(b.capacity() == capacity);
    CHECK(b.data() == data);
    CHECK(b[0] == T(1));
    CHECK(b[1] == T(2));
    b.resize(5); // no allocation: the values 3, 4, 5 once stored there must not reappear
    CHECK(b.data() == data);
    CHECK(b[0] == T(1));
    CHECK(b[1] == T(2));
    for (index_t i = 2; i < 5; ++i) CHECK(b[i] == T(0));
  }
  SUBCASE("resize to zero keeps the allocation for reuse") {
    const T* data = b.data();
    const index_t capacity = b.capacity();
    b.resize(0);
    CHECK(b.size() == 0);
    CHECK(b.capacity() == capacity);
    CHECK(b.begin() == b.end());
    b.resize(capacity);
    CHECK(b.data() == data);
    for (const T v : b) CHECK(v == T(0));
  }
  SUBCASE("repeated growth keeps every earlier value") {
    for (index_t n = 6; n <= 600; n *= 3) {
      const index_t old = b.size();
      b.resize(n);
      for (index_t i = old; i < n; ++i) b[i] = static_cast<T>(i + 1);
    }
    bool all_kept = true;
    for (index_t i = 0; i < b.size(); ++i) all_kept = all_kept && b[i] == static_cast<T>(i + 1);
    CHECK(all_kept);
  }
}

TEST_CASE_TEMPLATE("HostBuffer: copies are deep, moves transfer the allocation", T, float, double) {
  HostBuffer<T> a(10);
  iota(a, T(3));

  SUBCASE("copy construction") {
    HostBuffer<T> c(a);
    CHECK(c.size() == a.size());
    CHECK(c.data() != a.data());
    CHECK(aligned64(c.data()));
    for (index_t i = 0; i < a.size(); ++i) CHECK(c[i] == a[i]);
    c[0] = T(-1);
    CHECK(a[0] == T(3));
  }
  SUBCASE("copy assignment replaces the contents") {
    HostBuffer<T> c(4);
    c = a;
    CHECK(c.size() == 10);
    CHECK(c.data() != a.data());
    for (index_t i = 0; i < a.size(); ++i) CHECK(c[i] == a[i]);
    a[9] = T(0);
    CHECK(c[9] == T(12));
  }
  SUBCASE("self-assignment keeps the values") {
    HostBuffer<T>& same = a;
    a = same;
    REQUIRE(a.size() == 10);
    for (index_t i = 0; i < 10; ++i) CHECK(a[i] == T(3) + static_cast<T>(i));
  }
  SUBCASE("copy of an empty buffer is empty") {
    const HostBuffer<T> e;
    const HostBuffer<T> c(e);
    CHECK(c.size() == 0);
    a = e;
    CHECK(a.size() == 0);
  }
  SUBCASE("move construction steals the pointer and empties the source") {
    const T* data = a.data();
    const index_t capacity = a.capacity();
    HostBuffer<T> m(std::move(a));
    CHECK(m.data() == data);
    CHECK(m.size() == 10);
    CHECK(m.capacity() == capacity);
    CHECK(m[9] == T(12));
    CHECK(a.data() == nullptr); // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(a.size() == 0);
    CHECK(a.capacity() == 0);
    a.resize(3); // a moved-from buffer is reusable
    CHECK(a[2] == T(0));
  }
  SUBCASE("move assignment steals the pointer and empties the source") {
    const T* data = a.data();
    HostBuffer<T> m(3);
    m = std::move(a);
    CHECK(m.data() == data);
    CHECK(m.size() == 10);
    CHECK(m[0] == T(3));
    CHECK(a.data() == nullptr); // NOLINT(bugprone-use-after-move)
    CHECK(a.size() == 0);
  }
  SUBCASE("swap exchanges everything") {
    HostBuffer<T> b(2);
    b[1] = T(7);
    const T *pa = a.data(), *pb = b.data();
    a.swap(b);
    CHECK(a.data() == pb);
    CHECK(b.data() == pa);
    CHECK(a.size() == 2);
    CHECK(b.size() == 10);
    CHECK(a[1] == T(7));
  }
  static_assert(std::is_nothrow_move_constructible_v<HostBuffer<T>>);
  static_assert(std::is_nothrow_move_assignable_v<HostBuffer<T>>);
}

TEST_CASE_TEMPLATE("HostBuffer: a negative size or a byte count past index_t throws size_error", T, float, double) {
  HostBuffer<T> b(4);
  b[0] = T(1);
  // Before the check, a negative size was stored as is (size() < 0) and a byte count that
  // wrapped allocated a few bytes for a huge buffer.
  CHECK_THROWS_AS(b.resize(-1), forgery::size_error);
  // volatile: with the constant in sight, GCC's -Warray-bounds flags the memset the check
  // makes unreachable.
  volatile index_t wraps = std::numeric_limits<index_t>::max() / static_cast<index_t>(sizeof(T)) + 1;
  CHECK_THROWS_AS(b.resize(wraps), forgery::size_error);
  CHECK_THROWS_AS(HostBuffer<T>(-5), forgery::size_error);
  // A refused resize leaves the buffer as it was.
  CHECK(b.size() == 4);
  CHECK(b[0] == T(1));
}
