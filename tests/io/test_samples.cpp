// Sample export: .npy files read back by xtensor with the (batch, features) shape and the
// same values; CSV text; atomic replacement leaves no temporary file behind and reports an
// unwritable path by name.
#include "../support.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include <xtensor/xnpy.hpp>

#include "forgery/io/atomic_file.hpp"
#include "forgery/io/samples.hpp"

namespace {

std::filesystem::path scratch_dir() {
  const auto dir = std::filesystem::temp_directory_path() / ("forgery_io_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

TEST_CASE_TEMPLATE("save_npy writes a (batch, features) array that xtensor reads back", S, FORGERY_SCALARS) {
  const auto dir = scratch_dir();
  const auto data = fg::test::normal_buffer<S>(3 * 5, 9);
  const fg::ConstBatchView<S> view(data.data(), 3, 5);
  fg::io::save_npy(dir / "x.npy", view);
  const auto a = xt::load_npy<S>((dir / "x.npy").string());
  REQUIRE(a.dimension() == 2);
  CHECK(a.shape()[0] == 5);
  CHECK(a.shape()[1] == 3);
  for (fg::index_t n = 0; n < 5; ++n)
    for (fg::index_t f = 0; f < 3; ++f) CHECK(a(n, f) == view(f, n));
  std::filesystem::remove_all(dir);
}

TEST_CASE("save_csv writes a header and one sample per line") {
  const auto dir = scratch_dir();
  const float data[] = {1.5f, -2.f, 3.f, 4.25f};
  fg::io::save_csv(dir / "x.csv", fg::ConstBatchView<float>(data, 2, 2));
  std::ifstream in(dir / "x.csv");
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == "x0,x1\n1.5,-2\n3,4.25\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("atomic writes replace the file and leave no temporary behind") {
  const auto dir = scratch_dir();
  const auto path = dir / "f.txt";
  fg::io::write_file_atomically(path, "first");
  fg::io::write_file_atomically(path, "second");
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  CHECK(content == "second");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);
  try {
    fg::io::write_file_atomically(dir / "missing" / "f.txt", "x");
    FAIL("expected an io_error");
  } catch (const fg::io_error& e) {
    CHECK(std::string(e.what()).find("missing") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

} // namespace
