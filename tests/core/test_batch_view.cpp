// Tests of core/batch_view.hpp: column-major features x batch indexing, samples, the
// mutable-to-const conversion, and the Eigen map over the same memory.
#include <doctest/doctest.h>

#include <type_traits>
#include <vector>

#include "forgery/core/batch_view.hpp"

namespace {

using forgery::BatchView;
using forgery::ConstBatchView;
using forgery::index_t;

// A batch of 4 samples with 3 features each, values 10 * sample + feature.
template <class S>
std::vector<S> make_batch() {
  std::vector<S> v(12);
  for (index_t n = 0; n < 4; ++n)
    for (index_t f = 0; f < 3; ++f) v[static_cast<std::size_t>(n * 3 + f)] = static_cast<S>(10 * n + f);
  return v;
}

static_assert(std::is_convertible_v<BatchView<float>, ConstBatchView<float>>);
static_assert(!std::is_convertible_v<ConstBatchView<float>, BatchView<float>>,
              "a read-only view must not silently become writable");
static_assert(!std::is_convertible_v<BatchView<float>, ConstBatchView<double>>);
static_assert(std::is_same_v<ConstBatchView<double>::value_type, double>);

// Indexing is usable in constant evaluation.
static_assert([] {
  int a[6] = {0, 1, 2, 3, 4, 5};
  const BatchView<int> v(a, 2, 3);
  return v(1, 2) == 5 && v(0, 1) == 2 && v.sample(2)[0] == 4 && v.size() == 6;
}());

} // namespace

TEST_CASE_TEMPLATE("BatchView: column-major features x batch indexing", S, float, double) {
  std::vector<S> mem = make_batch<S>();
  const BatchView<S> v(mem.data(), 3, 4);
  CHECK(v.features() == 3);
  CHECK(v.batch() == 4);
  CHECK(v.size() == 12);
  CHECK(v.data() == mem.data());
  CHECK_FALSE(v.empty());
  for (index_t n = 0; n < 4; ++n)
    for (index_t f = 0; f < 3; ++f) {
      CAPTURE(f);
      CAPTURE(n);
      CHECK(v(f, n) == static_cast<S>(10 * n + f));
      CHECK(&v(f, n) == &mem[static_cast<std::size_t>(n * 3 + f)]);
    }
  // Writes through a view land in the memory it views.
  v(2, 1) = S(-5);
  CHECK(mem[5] == S(-5));
}

TEST_CASE_TEMPLATE("BatchView: sample(n) points at sample n's contiguous values", S, float, double) {
  std::vector<S> mem = make_batch<S>();
  const BatchView<S> v(mem.data(), 3, 4);
  for (index_t n = 0; n < 4; ++n) {
    CAPTURE(n);
    S* s = v.sample(n);
    CHECK(s == mem.data() + 3 * n);
    for (index_t f = 0; f < 3; ++f) CHECK(s[f] == v(f, n));
  }
  v.sample(3)[0] = S(99);
  CHECK(v(0, 3) == S(99));
}

TEST_CASE_TEMPLATE("BatchView: a default view is empty", S, float, double) {
  const BatchView<S> v;
  CHECK(v.empty());
  CHECK(v.data() == nullptr);
  CHECK(v.size() == 0);
  const ConstBatchView<S> c;
  CHECK(c.empty());
}

TEST_CASE_TEMPLATE("BatchView: a mutable view converts to a read-only view of the same memory", S, float, double) {
  std::vector<S> mem = make_batch<S>();
  const BatchView<S> v(mem.data(), 3, 4);
  const ConstBatchView<S> c = v;
  CHECK(c.data() == v.data());
  CHECK(c.features() == 3);
  CHECK(c.batch() == 4);
  static_assert(std::is_same_v<decltype(c(0, 0)), const S&>);
  static_assert(std::is_same_v<decltype(c.sample(0)), const S*>);
  v(1, 2) = S(42);
  CHECK(c(1, 2) == S(42));

  // Passing a mutable view where a read-only one is expected (how layers take inputs).
  auto sum = [](ConstBatchView<S> x) {
    S acc = 0;
    for (index_t i = 0; i < x.size(); ++i) acc += x.data()[i];
    return acc;
  };
  S expected = 0;
  for (const S value : mem) expected += value;
  CHECK(sum(v) == expected);
}

TEST_CASE_TEMPLATE("BatchView::matrix maps the same memory as a features x batch Eigen matrix", S, float, double) {
  std::vector<S> mem = make_batch<S>();
  const BatchView<S> v(mem.data(), 3, 4);
  auto m = v.matrix();
  CHECK(m.rows() == 3);
  CHECK(m.cols() == 4);
  CHECK(m.data() == mem.data());
  for (index_t n = 0; n < 4; ++n)
    for (index_t f = 0; f < 3; ++f) CHECK(m(f, n) == v(f, n));

  // Writes through the map reach the view and vice versa.
  m(0, 2) = S(-1);
  CHECK(v(0, 2) == S(-1));
  v(2, 3) = S(7);
  CHECK(m(2, 3) == S(7));
  // Eigen expressions see the layout: column sums are per-sample sums.
  m.col(1).setConstant(S(2));
  CHECK(m.col(1).sum() == S(6));
  CHECK(mem[3] == S(2));
  CHECK(mem[5] == S(2));
  CHECK(mem[9] == S(30)); // neighbouring columns untouched

  const ConstBatchView<S> c = v;
  auto cm = c.matrix();
  static_assert(std::is_const_v<std::remove_pointer_t<decltype(cm.data())>>,
                "the matrix of a read-only view must be read-only");
  CHECK(cm.data() == mem.data());
  CHECK(cm(2, 3) == S(7));
  CHECK(cm.rows() == 3);
  CHECK(cm.cols() == 4);
}

TEST_CASE("BatchView: a features x batch product past index_t, or a negative extent, throws size_error") {
  float x = 0;
  // 784 x 2^62 wraps to 0 in 64 bits, so size() once reported an empty view over a batch
  // of 2^62 samples.
  CHECK_THROWS_AS(BatchView<float>(&x, 784, index_t{1} << 62), forgery::size_error);
  CHECK_THROWS_AS(ConstBatchView<float>(&x, -1, 4), forgery::size_error);
  CHECK_THROWS_AS(BatchView<float>(&x, 1, -1), forgery::size_error);
  CHECK(BatchView<float>(&x, 1, 1).size() == 1);
  CHECK(BatchView<float>(nullptr, 0, 0).size() == 0);
}
