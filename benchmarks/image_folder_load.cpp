// bench_image_folder_load: how long fg::data::load_image_folder takes on a folder of 10,000
// small PNGs (32 x 32 RGB, two class subfolders, written with stb_image_write into a scratch
// folder): cold (decode, resize to 28 x 28, scale; no cache), cold writing the .npy cache,
// and warm (read from the cache). --quick: 300 images, one repetition, to prove it runs.
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <stb_image_write.h>
#include <unistd.h>

#include <forgery/data/image_folder.hpp>

#include "bench_common.hpp"

namespace {

namespace fs = std::filesystem;

/// A 32 x 32 RGB image with some structure (PNG compresses it less than a flat colour).
std::vector<std::uint8_t> pattern(int i) {
  std::vector<std::uint8_t> px(32 * 32 * 3);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c)
        px[static_cast<std::size_t>((y * 32 + x) * 3 + c)] =
            static_cast<std::uint8_t>((x * (c + 3) + y * (i % 7 + 1) + i * 13 + ((x ^ y) & 5) * 20) & 0xff);
  return px;
}

struct Scratch {
  fs::path dir;
  Scratch() : dir(fs::temp_directory_path() / ("forgery_bench_folder_" + std::to_string(::getpid()))) {
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

} // namespace

int main(int argc, char** argv) try {
  const bench::Options opts = bench::parse_options(
      argc, argv,
      "usage: bench_image_folder_load [--quick] [--json FILE]\n"
      "Times load_image_folder on 10,000 generated 32x32 PNGs: cold, cold writing the cache, from the cache.\n");
  if (opts.exit_code >= 0) return opts.exit_code;
  const int images = opts.quick ? 300 : 10000, reps = opts.quick ? 1 : 3;
  Scratch s;
  const fs::path root = s.dir / "images";
  auto t0 = bench::Clock::now();
  for (int i = 0; i < images; ++i) {
    const fs::path p = root / (i % 2 ? "odd" : "even") / ("img" + std::to_string(100000 + i) + ".png");
    if (i < 2) fs::create_directories(p.parent_path());
    const auto px = pattern(i);
    if (stbi_write_png(p.c_str(), 32, 32, 3, px.data(), 32 * 3) == 0)
      throw std::runtime_error("cannot write " + p.string());
  }
  const double generate = bench::seconds_since(t0);

  fg::data::ImageFolderOptions o;
  o.height = o.width = 28;
  o.cache_dir = s.dir / "cache";
  const auto time_load = [&](bool cache, fg::data::ImageFolder<float>::Cache expect) {
    o.cache = cache;
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      if (cache && expect != fg::data::ImageFolder<float>::Cache::loaded) fs::remove_all(o.cache_dir);
      const auto start = bench::Clock::now();
      const auto f = fg::data::load_image_folder<float>(root, o);
      t.push_back(bench::seconds_since(start));
      if (f.dataset.size() != images || f.cache != expect) throw std::runtime_error("unexpected load result");
    }
    return bench::median(t);
  };
  using Cache = fg::data::ImageFolder<float>::Cache;
  const double cold = time_load(false, Cache::off);
  const double write = time_load(true, Cache::written);
  const double warm = time_load(true, Cache::loaded);

  const double n = images;
  if (opts.json != "-") {
    std::printf("bench_image_folder_load: %d PNGs of 32x32 RGB (2 class folders) -> 3x28x28 float, %d OpenMP "
                "thread(s), median of %d\n",
                images, bench::thread_count(), reps);
    std::printf("  generate (stb_image_write, not timed as loading) %8.3f s\n", generate);
    std::printf("  cold, no cache (decode + resize + scale)        %8.3f s  %9.0f images/s\n", cold, n / cold);
    std::printf("  cold, writing the cache                         %8.3f s  %9.0f images/s\n", write, n / write);
    std::printf("  from the cache                                  %8.3f s  %9.0f images/s  (%.1fx faster than cold)\n",
                warm, n / warm, cold / warm);
    if (opts.quick) std::printf("  (--quick: timings mean nothing)\n");
  }
  if (!opts.json.empty()) {
    bench::Json j;
    j.begin_object()
        .field("benchmark", "image_folder_load")
        .field("images", images)
        .field("threads", bench::thread_count())
        .field("reps", reps)
        .field("quick", opts.quick)
        .field("cold_seconds", cold)
        .field("cold_write_cache_seconds", write)
        .field("cached_seconds", warm)
        .end_object();
    bench::write_text(opts.json, j.str());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_image_folder_load: %s\n", e.what());
  return 1;
}
