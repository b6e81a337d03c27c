// Callbacks: LossLog writes CSV with a header and JSON lines with every part's value;
// Progress prints plain lines when its stream is not a terminal; custom callbacks see
// every step.
#include "../support.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "forgery/train/callbacks.hpp"
#include "forgery/train/presets.hpp"

namespace {

using G = fg::Sequential<fg::Input<2>, fg::Dense<8>, fg::Tanh, fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<8>, fg::Tanh, fg::Dense<1>>;
using T = fg::WganGpTrainer<G, D>;

std::vector<std::string> lines_of(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::filesystem::path temp_path(const char* name) {
  return std::filesystem::temp_directory_path() / (std::string("forgery_test_") + std::to_string(::getpid()) + name);
}

TEST_CASE("LossLog writes CSV with a header naming each objective part") {
  const auto path = temp_path("_log.csv");
  auto cfg = fg::wgan_gp_config<T>();
  cfg.batch = 8;
  T t(cfg);
  fg::data::Ring ring;
  t.fit(ring, 4, fg::callbacks::LossLog(path, fg::callbacks::LogFormat::csv, 2));
  const auto lines = lines_of(path);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "step,d_loss,g_loss,d_grad_norm,g_grad_norm,GradientPenalty");
  CHECK(lines[1].rfind("2,", 0) == 0);
  CHECK(lines[2].rfind("4,", 0) == 0);
  // The last row holds the trainer's last statistics.
  std::istringstream row(lines[2]);
  std::vector<double> values;
  for (std::string cell; std::getline(row, cell, ',');) values.push_back(std::stod(cell));
  REQUIRE(values.size() == 6);
  CHECK(values[1] == doctest::Approx(t.last_stats().d_loss));
  CHECK(values[5] == doctest::Approx(t.last_stats().part_values[0]));
  CHECK(values[5] > 0);

  // A resumed fit appends without a second header.
  t.fit(ring, 2, fg::callbacks::LossLog(path, fg::callbacks::LogFormat::csv, 2));
  CHECK(lines_of(path).size() == 4);
  std::filesystem::remove(path);
}

TEST_CASE("LossLog writes JSON lines") {
  const auto path = temp_path("_log.jsonl");
  auto cfg = fg::wgan_gp_config<T>();
  cfg.batch = 8;
  T t(cfg);
  fg::data::Ring ring;
  t.fit(ring, 3, fg::callbacks::LossLog(path, fg::callbacks::LogFormat::json_lines));
  const auto lines = lines_of(path);
  REQUIRE(lines.size() == 3);
  CHECK(lines[2].rfind("{\"step\":3,\"d_loss\":", 0) == 0);
  CHECK(lines[2].find("\"GradientPenalty\":") != std::string::npos);
  CHECK(lines[2].back() == '}');
  std::filesystem::remove(path);
}

TEST_CASE("LossLog reports a path it cannot open") {
  T t(fg::wgan_gp_config<T>());
  fg::data::Ring ring;
  CHECK_THROWS_AS(t.fit(ring, 1, fg::callbacks::LossLog("/nonexistent-dir/log.csv")), fg::io_error);
}

TEST_CASE("Progress prints one plain line per report to a file") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  auto cfg = fg::wgan_gp_config<T>();
  cfg.batch = 8;
  T t(cfg);
  fg::data::Ring ring;
  t.fit(ring, 6, fg::callbacks::Progress(3, f));
  std::rewind(f);
  char buf[512];
  std::vector<std::string> lines;
  while (std::fgets(buf, sizeof buf, f)) lines.emplace_back(buf);
  std::fclose(f);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].rfind("step 3/6", 0) == 0);
  CHECK(lines[1].rfind("step 6/6", 0) == 0);
  CHECK(lines[1].find("GradientPenalty") != std::string::npos);
  CHECK(lines[1].find("steps/s") != std::string::npos);
  CHECK(lines[1].find('\r') == std::string::npos);
}

TEST_CASE("a user callback sees begin, every step and end") {
  struct Counter {
    long long begin_total = -1, steps = 0, last = 0;
    bool ended = false;
    void on_begin(const T&, long long total) { begin_total = total; }
    void on_step(const T&, const fg::StepStats& s) {
      ++steps;
      last = s.step;
    }
    void on_end(const T&, const fg::StepStats&) { ended = true; }
  } counter;
  auto cfg = fg::wgan_gp_config<T>();
  cfg.batch = 4;
  T t(cfg);
  fg::data::Ring ring;
  t.fit(ring, 5, counter);
  CHECK(counter.begin_total == 5);
  CHECK(counter.steps == 5);
  CHECK(counter.last == 5);
  CHECK(counter.ended);
}

} // namespace
