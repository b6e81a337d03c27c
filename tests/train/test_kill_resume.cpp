// Resume survives real process deaths: a training process (resume_worker.cpp) is killed with
// SIGKILL at arbitrary moments (mid-step, mid-save) and restarted again and again, with 1 or
// 2 OpenMP threads, until it finishes; its final state must equal, bit for bit, that of a
// run never interrupted. SIGTERM and SIGINT make it save, report and exit with status 0.
#include "../support.hpp"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forgery/core/philox.hpp"
#include "forgery/io/checkpoint.hpp"

extern char** environ;

#ifndef FORGERY_RESUME_WORKER
#error "FORGERY_RESUME_WORKER must name the resume_worker executable (tests/CMakeLists.txt sets it)"
#endif

namespace {
using forgery::test::Scratch;

constexpr long long total_steps = 160;
constexpr long long every = 3;

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Starts the worker on `dir` with `threads` OpenMP threads, output appended to `log`.
pid_t start_worker(const std::filesystem::path& dir, const std::filesystem::path& out, int threads,
                   const std::filesystem::path& log) {
  const std::string steps = std::to_string(total_steps), ev = std::to_string(every);
  std::vector<std::string> args{FORGERY_RESUME_WORKER, "--dir", dir.string(), "--steps", steps, "--every", ev, "--out",
                                out.string()};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string(*e).rfind("OMP_NUM_THREADS=", 0) != 0) env.emplace_back(*e);
  env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(rc == 0, "cannot start " << argv[0]);
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  pid_t got = -1;
  while ((got = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  REQUIRE_MESSAGE(got == pid, "waitpid failed: " << std::strerror(errno));
  return status;
}

// Runs the worker to completion; returns its exit status.
int run_worker(const std::filesystem::path& dir, const std::filesystem::path& out, int threads,
               const std::filesystem::path& log) {
  const int status = wait_for(start_worker(dir, out, threads, log));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// Waits (up to a minute) until `dir` holds a checkpoint newer than `after` (returns true, the
// worker still to be waited for) or the worker exited (returns false, its wait status in
// *exited: it has been reaped).
bool wait_for_checkpoint(const std::filesystem::path& dir, long long after, pid_t pid, int* exited) {
  for (int i = 0; i < 6000; ++i) {
    const auto all = forgery::io::list_checkpoints(dir);
    if (!all.empty() && all.back().step > after) return true;
    if (::waitpid(pid, exited, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("no new checkpoint in " << dir << " within a minute");
  return false;
}

std::string log_text(const std::filesystem::path& log) { return read_bytes(log); }

TEST_CASE("a run killed with SIGKILL again and again and resumed ends bit for bit as an uninterrupted one") {
  Scratch s;
  const auto log = s.dir / "worker.log";
  const auto reference = s.dir / "reference.fgck";
  REQUIRE_MESSAGE(run_worker(s.dir / "straight", reference, 2, log) == 0, log_text(log));
  REQUIRE(std::filesystem::exists(reference));

  const auto dir = s.dir / "killed";
  const auto out = s.dir / "killed.fgck";
  // Kill delays (microseconds after the newest checkpoint appeared) from a fixed Philox
  // stream: different moments of a step or of a save, reproducibly.
  fg::RandomStream rng{77, 0, 0};
  int kills = 0, attempts = 0;
  for (; attempts < 200; ++attempts) {
    if (std::filesystem::exists(out)) {
      if (kills >= 5) break;
      // The run ended before five kills (the machine was busy, the saves slow): what it
      // wrote must still be the same bits; then once more from the start.
      CHECK(read_bytes(out) == read_bytes(reference));
      std::filesystem::remove_all(dir);
      std::filesystem::remove(out);
    }
    const int threads = 1 + attempts % 2;
    const auto before = forgery::io::list_checkpoints(dir);
    const long long newest = before.empty() ? -1 : before.back().step;
    const pid_t pid = start_worker(dir, out, threads, log);
    int exited = 0;
    if (!wait_for_checkpoint(dir, newest, pid, &exited)) {
      // The worker finished (or died) before it was seen saving again: it must have
      // finished cleanly.
      REQUIRE_MESSAGE((WIFEXITED(exited) && WEXITSTATUS(exited) == 0), log_text(log));
      continue;
    }
    const fg::PhiloxBlock w = fg::philox_block(rng.seed, rng.stream, rng.take(1));
    std::this_thread::sleep_for(std::chrono::microseconds(w.w[0] % 20000));
    ::kill(pid, SIGKILL);
    const int status = wait_for(pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ++kills;
  }
  INFO(log_text(log));
  REQUIRE(std::filesystem::exists(out));
  CHECK(kills >= 5);
  MESSAGE("killed " << kills << " times in " << attempts << " starts");
  // Nothing half-written is ever taken for a checkpoint, and the result is the same bits.
  CHECK(read_bytes(out) == read_bytes(reference));
}

TEST_CASE("SIGTERM and SIGINT make a training process save, report and exit cleanly; it then resumes") {
  Scratch s;
  const auto log = s.dir / "worker.log";
  const auto reference = s.dir / "reference.fgck";
  REQUIRE(run_worker(s.dir / "straight", reference, 2, log) == 0);
  for (int signo : {SIGTERM, SIGINT}) {
    const auto dir = s.dir / ("signal" + std::to_string(signo));
    const auto out = s.dir / ("signal" + std::to_string(signo) + ".fgck");
    const pid_t pid = start_worker(dir, out, 2, log);
    int exited = 0;
    REQUIRE_MESSAGE(wait_for_checkpoint(dir, 0, pid, &exited), "the worker ended before its first checkpoint");
    ::kill(pid, signo);
    const int status = wait_for(pid);
    INFO(log_text(log));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(log_text(log).find("interrupted by signal " + std::to_string(signo)) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(out)); // it stopped early
    REQUIRE(run_worker(dir, out, 1, log) == 0);
    CHECK(read_bytes(out) == read_bytes(reference));
  }
}

} // namespace
