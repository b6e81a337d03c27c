// A folder of PNG, JPEG and BMP files as an ImageDataset: decoded with stb_image (in
// parallel, each image in its own slot), converted to grey or RGB, resized and centre-cropped
// with stb_image_resize, scaled to [-1, 1] as the IDX path is; labels from one subfolder per
// class. Optionally cached as .npy beside the folder, keyed by the size, the channels and the
// file list (names, sizes, modification times), so that a second run starts at once.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <stb_image.h>
#include <stb_image_resize.h>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>
#include <xtensor/xtensor.hpp>
#include <zlib.h>

#include "forgery/backend/parallel.hpp"
#include "forgery/core/error.hpp"
#include "forgery/data/image_dataset.hpp"
#include "forgery/io/atomic_file.hpp"
#include "forgery/io/weights.hpp"

namespace forgery::data {

/// How a folder's files map to labels.
enum class FolderLayout {
  automatic, ///< classes when the folder holds only subfolders, flat when it holds only images
  classes,   ///< one subfolder per class (its images directly inside it); top-level files ignored
  flat,      ///< the images directly in the folder, unlabelled; subfolders ignored
};

/// What load_image_folder does with a file it cannot use (stb_image cannot decode it, or its
/// header is over ImageFolderOptions::max_pixels).
enum class OnBadFile {
  refuse, ///< throw io_error naming the file and the reason
  skip,   ///< leave it out, with a warning on stderr naming it (also in ImageFolder::skipped)
};

/// How load_image_folder reads a folder.
struct ImageFolderOptions {
  index_t channels = 3; ///< 1 (grey) or 3 (RGB)
  index_t height = 32;  ///< every image is resized and centre-cropped to height x width
  index_t width = 32;
  FolderLayout layout = FolderLayout::automatic;
  /// Largest width x height accepted, read from the file's header before anything is decoded
  /// (a decoded image takes 4 bytes per pixel at most). 64 Mpixel by default.
  std::uint64_t max_pixels = std::uint64_t{64} << 20;
  OnBadFile on_bad_file = OnBadFile::refuse;
  /// Cache the decoded bytes as .npy (see load_image_folder).
  bool cache = false;
  /// Where the cache goes; empty: the folder `<folder>.forgery-cache` beside the images' folder.
  std::filesystem::path cache_dir;
  /// A progress line on stderr every this many decoded images, and one at the end (0: none).
  index_t progress_every = 0;
};

/// What load_image_folder returns.
/// \tparam S the scalar type of the images (float or double).
template <class S>
struct ImageFolder {
  /// Whether the cache was used.
  enum class Cache {
    off,     ///< not asked for
    loaded,  ///< the images came from the cache: nothing was decoded
    written, ///< decoded, and the cache written (or rewritten: it was missing, stale or damaged)
    failed,  ///< decoded, but the cache could not be written (see cache_problem)
  };

  ImageDataset<S> dataset;                    ///< (N, C, H, W) in [-1, 1], labelled when there are classes
  std::vector<std::string> class_names;       ///< the class subfolders' names, index = label (empty when flat)
  std::vector<std::filesystem::path> files;   ///< the file each image came from, in dataset order
  std::vector<std::filesystem::path> skipped; ///< files left out (OnBadFile::skip)
  Cache cache = Cache::off;
  /// Why a cache found on disk was not used or could not be written (empty when none was
  /// damaged and writing worked); also printed on stderr as a warning.
  std::string cache_problem;
  std::filesystem::path cache_key_file; ///< the cache's key file (empty when off)
};

namespace detail {

namespace fs = std::filesystem;

inline constexpr std::string_view image_extensions_text = ".png, .jpg, .jpeg, .bmp (any case)";

inline bool is_image_file_name(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

/// The files of a folder, in dataset order, with what the cache key needs.
struct FolderListing {
  fs::path root;                            ///< canonical
  FolderLayout layout = FolderLayout::flat; ///< resolved: classes or flat
  std::vector<std::string> classes;
  std::vector<fs::path> relative;   ///< to root
  std::vector<std::int32_t> labels; ///< empty when flat
  std::vector<std::uintmax_t> sizes;
  std::vector<long long> mtimes; ///< file_time_type ticks
};

/// The entries of `dir` that are not hidden (names starting with '.'), split into regular
/// files (symlinks followed) and folders, each sorted by name.
struct DirEntries {
  std::vector<fs::path> images, folders;
  index_t other_files = 0;
};

inline DirEntries read_dir(const fs::path& dir) {
  DirEntries out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw io_error(dir.string(), "cannot list the folder: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const fs::path p = it->path();
    if (p.filename().string().starts_with(".")) continue;
    std::error_code sec;
    const fs::file_status st = fs::status(p, sec); // follows symlinks
    if (sec) continue;                             // a dangling symlink: not an image
    if (fs::is_directory(st))
      out.folders.push_back(p);
    else if (fs::is_regular_file(st) && is_image_file_name(p))
      out.images.push_back(p);
    else
      ++out.other_files;
  }
  if (ec) throw io_error(dir.string(), "cannot list the folder: " + ec.message());
  const auto by_name = [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  };
  std::sort(out.images.begin(), out.images.end(), by_name);
  std::sort(out.folders.begin(), out.folders.end(), by_name);
  return out;
}

inline FolderListing list_folder(const fs::path& dir, FolderLayout layout) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) throw io_error(dir.string(), "no such folder (expected a folder of images)");
  if (!fs::is_directory(st))
    throw io_error(dir.string(), "is a file, not a folder: expected a folder of images (" +
                                     std::string(image_extensions_text) + ") or of class subfolders");
  FolderListing l;
  l.root = fs::canonical(dir, ec);
  if (ec) throw io_error(dir.string(), "cannot resolve the folder's path: " + ec.message());
  const DirEntries top = read_dir(l.root);
  if (layout == FolderLayout::automatic) {
    if (!top.images.empty() && !top.folders.empty())
      throw io_error(dir.string(),
                     "holds both images (" + std::to_string(top.images.size()) + ") and subfolders (" +
                         std::to_string(top.folders.size()) +
                         "): set ImageFolderOptions::layout to flat (the top-level images, unlabelled) or classes "
                         "(one subfolder per class)");
    layout = top.folders.empty() ? FolderLayout::flat : FolderLayout::classes;
  }
  l.layout = layout;
  const auto add = [&](const fs::path& file, std::int32_t label) {
    std::error_code e1, e2;
    const std::uintmax_t size = fs::file_size(file, e1);
    const auto mtime = fs::last_write_time(file, e2);
    if (e1 || e2) throw io_error(file.string(), "cannot read its size or time: " + (e1 ? e1 : e2).message());
    l.relative.push_back(file.lexically_relative(l.root));
    if (label >= 0) l.labels.push_back(label);
    l.sizes.push_back(size);
    l.mtimes.push_back(static_cast<long long>(mtime.time_since_epoch().count()));
  };
  if (layout == FolderLayout::flat) {
    if (top.images.empty())
      throw io_error(dir.string(), (top.other_files == 0 && top.folders.empty()
                                        ? std::string("empty folder: no images")
                                        : "no images among the " + std::to_string(top.other_files) + " files and " +
                                              std::to_string(top.folders.size()) + " subfolders seen") +
                                       " (accepted: " + std::string(image_extensions_text) + ")");
    for (const fs::path& f : top.images) add(f, -1);
    return l;
  }
  if (top.folders.empty())
    throw io_error(dir.string(), "no class subfolders (layout classes: one subfolder of images per class)");
  if (top.folders.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw io_error(dir.string(), "too many class subfolders");
  for (std::size_t c = 0; c < top.folders.size(); ++c) {
    const DirEntries sub = read_dir(top.folders[c]);
    if (sub.images.empty())
      throw io_error(top.folders[c].string(), "class folder holds no images (" + std::to_string(sub.other_files) +
                                                  " other files, " + std::to_string(sub.folders.size()) +
                                                  " subfolders; accepted: " + std::string(image_extensions_text) +
                                                  "); remove it or add images");
    l.classes.push_back(top.folders[c].filename().string());
    for (const fs::path& f : sub.images) add(f, static_cast<std::int32_t>(c));
  }
  return l;
}

/// "<length>:<text>": any byte, newlines included, survives a line-based key file.
inline std::string counted(const std::string& s) { return std::to_string(s.size()) + ":" + s; }

/// The part of the key file that must match for the cache to be used: the options that
/// change the bytes, and every file's name, size and modification time.
inline std::string cache_key(const FolderListing& l, const ImageFolderOptions& o) {
  std::string k = "forgery image folder cache 1\nfolder " + counted(l.root.string()) + "\nchannels " +
                  std::to_string(o.channels) + "\nheight " + std::to_string(o.height) + "\nwidth " +
                  std::to_string(o.width) + "\nlayout " + (l.layout == FolderLayout::classes ? "classes" : "flat") +
                  "\nmax_pixels " + std::to_string(o.max_pixels) + "\non_bad_file " +
                  (o.on_bad_file == OnBadFile::skip ? "skip" : "refuse") + "\nclasses " +
                  std::to_string(l.classes.size()) + "\n";
  for (const std::string& c : l.classes) k += counted(c) + "\n";
  k += "files " + std::to_string(l.relative.size()) + "\n";
  for (std::size_t i = 0; i < l.relative.size(); ++i)
    k += std::to_string(l.sizes[i]) + " " + std::to_string(l.mtimes[i]) + " " + counted(l.relative[i].string()) + "\n";
  return k;
}

inline std::uint32_t crc_of(std::string_view bytes) {
  return static_cast<std::uint32_t>(
      ::crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<z_size_t>(bytes.size())));
}

struct CachePaths {
  fs::path dir, key, images, labels;
};

inline CachePaths cache_paths(const FolderListing& l, const ImageFolderOptions& o) {
  CachePaths p;
  p.dir = o.cache_dir.empty() ? l.root.parent_path() / (l.root.filename().string() + ".forgery-cache") : o.cache_dir;
  const std::string stem = "c" + std::to_string(o.channels) + "_" + std::to_string(o.height) + "x" +
                           std::to_string(o.width) + (l.layout == FolderLayout::classes ? "_classes" : "_flat");
  p.key = p.dir / (stem + ".key");
  p.images = p.dir / (stem + ".images.npy");
  p.labels = p.dir / (stem + ".labels.npy");
  return p;
}

/// Decoded bytes (N, C, H, W) and what goes with them; the form both the decoder and the
/// cache produce.
struct FolderBytes {
  std::vector<std::uint8_t> pixels;
  std::vector<std::int32_t> labels; ///< empty when flat
  std::vector<std::size_t> kept;    ///< indices into the listing, in dataset order
  std::vector<std::size_t> skipped; ///< indices into the listing
};

/// Why a cache on disk cannot be used as it is.
struct CacheMiss {
  bool damaged = false; ///< false: absent or stale (quietly rebuilt); true: reported
  std::string why;
};

/// Parses "<word> <number>\n" at `pos` of `text`; false when it is not there.
inline bool read_field(std::string_view text, std::size_t& pos, std::string_view word, std::uint64_t& value) {
  if (text.substr(pos, word.size()) != word || pos + word.size() >= text.size() || text[pos + word.size()] != ' ')
    return false;
  std::size_t i = pos + word.size() + 1;
  bool digits = false;
  value = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (value > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) return false;
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
    digits = true;
    ++i;
  }
  if (!digits || i >= text.size() || text[i] != '\n') return false;
  pos = i + 1;
  return true;
}

/// Reads a .npy file of the cache: the exact size and checksum the key file recorded, then
/// its header against the dtype and shape expected. Returns the data bytes' offset.
inline std::size_t check_cache_npy(const fs::path& path, const std::string& bytes, std::uint64_t size,
                                   std::uint64_t crc, const std::string& descr, const std::vector<std::size_t>& shape,
                                   std::size_t item) {
  if (bytes.size() != size)
    throw io_error(path.string(), "the key file records " + std::to_string(size) + " bytes, the file has " +
                                      std::to_string(bytes.size()));
  if (crc_of(bytes) != crc) throw io_error(path.string(), "CRC-32 does not match the key file's");
  const io::detail::NpyHeader h = io::detail::parse_npy_header(path.string(), bytes);
  std::size_t count = 1;
  for (const std::size_t d : shape) count *= d;
  if (h.descr != descr || h.fortran_order || h.shape != shape || bytes.size() - h.data_offset != count * item)
    throw io_error(path.string(), "expected dtype '" + descr + "' and shape " + io::detail::shape_string(shape) +
                                      ", found '" + h.descr + "' and " + io::detail::shape_string(h.shape));
  return h.data_offset;
}

/// The cache's bytes when its key matches `key` and its files are intact.
inline FolderBytes read_cache(const CachePaths& p, const std::string& key, const FolderListing& l,
                              const ImageFolderOptions& o, CacheMiss& miss) {
  FolderBytes b;
  std::error_code ec;
  if (!fs::is_regular_file(p.key, ec)) {
    miss.why = "no cache yet";
    return b;
  }
  try {
    const std::size_t n_files = l.relative.size();
    const std::string text = io::detail::read_file_at_most(p.key, key.size() + 200 + 32 * n_files, "a cache key file");
    if (text.size() < key.size() || text.compare(0, key.size(), key) != 0) {
      miss.why = "stale: the options or the files changed";
      return b;
    }
    const std::string_view rest = std::string_view(text).substr(key.size());
    std::size_t pos = 0;
    std::uint64_t skipped = 0, isize = 0, icrc = 0, lsize = 0, lcrc = 0;
    const auto bad_key = [&] { return io_error(p.key.string(), "malformed key file after the file list"); };
    if (!read_field(rest, pos, "skipped", skipped) || skipped > n_files) throw bad_key();
    std::vector<bool> is_skipped(n_files, false);
    for (std::uint64_t s = 0; s < skipped; ++s) {
      std::uint64_t index = 0;
      if (!read_field(rest, pos, "skip", index) || index >= n_files || is_skipped[index]) throw bad_key();
      is_skipped[index] = true;
      b.skipped.push_back(static_cast<std::size_t>(index));
    }
    const bool labelled = l.layout == FolderLayout::classes;
    if (!read_field(rest, pos, "images_npy", isize) || !read_field(rest, pos, "images_crc", icrc)) throw bad_key();
    if (labelled && (!read_field(rest, pos, "labels_npy", lsize) || !read_field(rest, pos, "labels_crc", lcrc)))
      throw bad_key();
    if (rest.substr(pos) != "end\n") throw bad_key();
    for (std::size_t i = 0; i < n_files; ++i)
      if (!is_skipped[i]) b.kept.push_back(i);
    if (b.kept.empty()) throw bad_key();

    const auto n = b.kept.size();
    const auto c = static_cast<std::size_t>(o.channels), h = static_cast<std::size_t>(o.height),
               w = static_cast<std::size_t>(o.width);
    const std::string images = io::detail::read_file_at_most(p.images, isize, "a cache of decoded images");
    const std::size_t at = check_cache_npy(p.images, images, isize, icrc, "|u1", {n, c, h, w}, 1);
    b.pixels.assign(images.begin() + static_cast<std::ptrdiff_t>(at), images.end());
    if (labelled) {
      const std::string labels = io::detail::read_file_at_most(p.labels, lsize, "a cache of labels");
      const std::string descr = std::string(std::endian::native == std::endian::little ? "<" : ">") + "i4";
      const std::size_t lat = check_cache_npy(p.labels, labels, lsize, lcrc, descr, {n}, 4);
      b.labels.resize(n);
      std::memcpy(b.labels.data(), labels.data() + lat, n * 4);
      for (std::size_t k = 0; k < n; ++k)
        if (b.labels[k] != l.labels[b.kept[k]])
          throw io_error(p.labels.string(), "label " + std::to_string(b.labels[k]) + " of image " + std::to_string(k) +
                                                " does not match its folder");
    }
  } catch (const io_error& e) {
    miss.damaged = true;
    miss.why = e.what();
    return {};
  } catch (const std::bad_alloc&) {
    miss.damaged = true;
    miss.why = "out of memory while reading the cache " + p.dir.string();
    return {};
  }
  return b;
}

/// Writes the cache: the images, the labels, then the key file that vouches for both (with
/// their sizes and CRC-32), each atomically. A crash between leaves a key whose checksums
/// do not match, which the next load reports and rebuilds.
inline void write_cache(const CachePaths& p, const std::string& key, const FolderBytes& b,
                        const ImageFolderOptions& o) {
  std::error_code ec;
  fs::create_directories(p.dir, ec);
  if (ec) throw io_error(p.dir.string(), "cannot create the cache folder: " + ec.message());
  const std::array<std::size_t, 4> shape{b.kept.size(), static_cast<std::size_t>(o.channels),
                                         static_cast<std::size_t>(o.height), static_cast<std::size_t>(o.width)};
  const auto images = xt::adapt(const_cast<std::uint8_t*>(b.pixels.data()), b.pixels.size(), xt::no_ownership(), shape);
  const std::string image_bytes = xt::dump_npy(images);
  std::string tail = "skipped " + std::to_string(b.skipped.size()) + "\n";
  for (const std::size_t s : b.skipped) tail += "skip " + std::to_string(s) + "\n";
  tail +=
      "images_npy " + std::to_string(image_bytes.size()) + "\nimages_crc " + std::to_string(crc_of(image_bytes)) + "\n";
  io::write_file_atomically(p.images, image_bytes);
  if (!b.labels.empty()) {
    const std::array<std::size_t, 1> lshape{b.labels.size()};
    const auto labels =
        xt::adapt(const_cast<std::int32_t*>(b.labels.data()), b.labels.size(), xt::no_ownership(), lshape);
    const std::string label_bytes = xt::dump_npy(labels);
    tail += "labels_npy " + std::to_string(label_bytes.size()) + "\nlabels_crc " + std::to_string(crc_of(label_bytes)) +
            "\n";
    io::write_file_atomically(p.labels, label_bytes);
  }
  io::write_file_atomically(p.key, key + tail + "end\n");
}

struct StbFree {
  void operator()(stbi_uc* p) const noexcept { stbi_image_free(p); }
};

/// Decodes one file into `dst` (C*H*W bytes, CHW order); returns an empty string or why not.
/// `work` is the calling thread's scratch (H*W*C interleaved bytes).
inline std::string decode_one(const fs::path& path, const ImageFolderOptions& o, std::uint8_t* dst,
                              std::vector<std::uint8_t>& work) {
  int w = 0, h = 0, comp = 0;
  if (stbi_info(path.c_str(), &w, &h, &comp) == 0)
    return std::string("cannot read its header (stb_image: ") + stbi_failure_reason() + ")";
  const std::uint64_t pixels = std::uint64_t(static_cast<unsigned>(w)) * static_cast<unsigned>(h);
  if (pixels > o.max_pixels)
    return std::to_string(w) + " x " + std::to_string(h) + " = " + std::to_string(pixels) +
           " pixels, above the limit of " + std::to_string(o.max_pixels) +
           " per image (ImageFolderOptions::max_pixels); not decoded";
  const int c = static_cast<int>(o.channels);
  std::unique_ptr<stbi_uc, StbFree> img(stbi_load(path.c_str(), &w, &h, &comp, c));
  if (img == nullptr) return std::string("cannot decode it (stb_image: ") + stbi_failure_reason() + ")";
  const auto W = static_cast<int>(o.width), H = static_cast<int>(o.height);
  const std::uint8_t* src = img.get();
  if (w != W || h != H) {
    // The centred window of the target's aspect ratio, as large as the image allows: the
    // image scaled to cover W x H (for a square target, its shorter side matched), then
    // centre-cropped, in one resampling.
    float s0 = 0, t0 = 0, s1 = 1, t1 = 1;
    const double wide = static_cast<double>(w) * H, tall = static_cast<double>(h) * W;
    if (wide > tall) {
      const double keep = tall / wide; // the fraction of the width kept
      s0 = static_cast<float>((1 - keep) / 2);
      s1 = static_cast<float>((1 + keep) / 2);
    } else if (tall > wide) {
      const double keep = wide / tall;
      t0 = static_cast<float>((1 - keep) / 2);
      t1 = static_cast<float>((1 + keep) / 2);
    }
    work.resize(static_cast<std::size_t>(W) * static_cast<std::size_t>(H) * static_cast<std::size_t>(c));
    if (stbir_resize_region(img.get(), w, h, 0, work.data(), W, H, 0, STBIR_TYPE_UINT8, c, STBIR_ALPHA_CHANNEL_NONE, 0,
                            STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT, STBIR_FILTER_DEFAULT,
                            STBIR_COLORSPACE_LINEAR, nullptr, s0, t0, s1, t1) == 0)
      return "stb_image_resize failed (out of memory?) resizing " + std::to_string(w) + " x " + std::to_string(h);
    src = work.data();
  }
  const std::size_t plane = static_cast<std::size_t>(W) * static_cast<std::size_t>(H);
  for (std::size_t p = 0; p < plane; ++p)
    for (int k = 0; k < c; ++k)
      dst[static_cast<std::size_t>(k) * plane + p] = src[p * static_cast<std::size_t>(c) + static_cast<std::size_t>(k)];
  return {};
}

inline FolderBytes decode_folder(const FolderListing& l, const fs::path& shown, const ImageFolderOptions& o) {
  const std::size_t n = l.relative.size();
  const std::size_t per = static_cast<std::size_t>(o.channels * o.height * o.width);
  FolderBytes b;
  try {
    b.pixels.resize(n * per);
  } catch (const std::bad_alloc&) {
    throw io_error(shown.string(),
                   "out of memory for " + std::to_string(n) + " decoded images of " + std::to_string(per) + " bytes");
  }
  std::vector<std::string> errors(n);
  std::atomic<index_t> done{0};
  const auto start = std::chrono::steady_clock::now();
  // One image per index, each written to its own slot: the bytes do not depend on which
  // thread decoded what, so the result is the same for any thread count.
  backend::parallel::for_each(
      static_cast<index_t>(n),
      [&](index_t i) {
        thread_local std::vector<std::uint8_t> work;
        const auto k = static_cast<std::size_t>(i);
        try {
          errors[k] = decode_one(l.root / l.relative[k], o, b.pixels.data() + k * per, work);
        } catch (const std::bad_alloc&) {
          errors[k] = "out of memory while decoding";
        }
        const index_t now = done.fetch_add(1) + 1;
        if (o.progress_every > 0 && now % o.progress_every == 0 && now != static_cast<index_t>(n))
          std::fprintf(stderr, "image folder %s: decoded %ld of %zu images\n", shown.c_str(), static_cast<long>(now),
                       n);
      },
      2);
  if (o.progress_every > 0)
    std::fprintf(stderr, "image folder %s: decoded %zu images in %.1f s\n", shown.c_str(), n,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  // Refusals and skips in file order, whatever order the threads met them in.
  for (std::size_t k = 0; k < n; ++k) {
    if (errors[k].empty()) {
      b.kept.push_back(k);
      continue;
    }
    const fs::path file = l.root / l.relative[k];
    if (o.on_bad_file == OnBadFile::refuse) throw io_error(file.string(), errors[k]);
    std::fprintf(stderr, "forgery: warning: skipped %s: %s\n", file.c_str(), errors[k].c_str());
    b.skipped.push_back(k);
  }
  if (b.kept.empty())
    throw io_error(shown.string(), "none of its " + std::to_string(n) + " images could be used (all skipped; first: " +
                                       (l.root / l.relative[b.skipped.front()]).string() + ": " +
                                       errors[b.skipped.front()] + ")");
  for (std::size_t j = 0; j < b.kept.size(); ++j)
    if (b.kept[j] != j) std::memmove(b.pixels.data() + j * per, b.pixels.data() + b.kept[j] * per, per);
  b.pixels.resize(b.kept.size() * per);
  b.pixels.shrink_to_fit();
  if (l.layout == FolderLayout::classes)
    for (const std::size_t k : b.kept) b.labels.push_back(l.labels[k]);
  return b;
}

} // namespace detail

/// Loads a folder of images as an ImageDataset.
///
/// Files: .png, .jpg, .jpeg and .bmp (any case), found by extension; other files, hidden
/// entries (names starting with '.') and anything that is not a regular file are ignored;
/// symlinks to regular files and folders are followed. Nothing in the folder is modified.
/// With one subfolder per class (FolderLayout::classes, or automatic when the folder holds
/// only subfolders) an image's label is its subfolder's index in name order (bytewise) and
/// class_names keeps the names; a flat folder (only images) gives an unlabelled dataset.
/// Within a folder, files are in name order, so the dataset's order is deterministic.
///
/// Pixels: decoded by stb_image (8 bits per channel; 16-bit PNGs are reduced by it) and
/// converted by it to the channel count asked for: grey from colour by its luma,
/// (77 R + 150 G + 29 B) >> 8 (ITU-R BT.601 weights 0.299, 0.587, 0.114 in 8-bit fixed
/// point); colour from grey by copying grey to R, G and B; an alpha channel is dropped
/// (not composited over a background). Images may have any and different sizes: each is
/// scaled so that it covers height x width (for a square size: its shorter side matches)
/// and centre-cropped, in one stb_image_resize pass (default filters, clamped edges,
/// resampled in the stored sRGB values as stbir_resize_uint8 does); an image already of the
/// size is copied unchanged. Bytes b become b / 127.5 - 1, as the IDX path scales them.
/// Decoding runs in parallel over files (OpenMP); each image lands in its own slot, so the
/// result is the same for any thread count.
///
/// Refusals (io_error naming the folder or file): a missing folder, a file instead of a
/// folder, an empty folder or one without images (how many files were seen and the accepted
/// extensions), a folder with both images and subfolders under automatic layout, a class
/// subfolder without images, and, unless on_bad_file is skip, a file stb_image cannot
/// decode (with its reason) or whose header gives more than max_pixels pixels (checked with
/// stbi_info before decoding). With skip, such files are left out with a warning on stderr.
///
/// Cache (options.cache): the decoded bytes are kept in cache_dir (by default the folder
/// `<folder>.forgery-cache` beside the images' folder) as `c<C>_<H>x<W>_<layout>.images.npy`
/// (uint8, N x C x H x W), `.labels.npy` (int32, N) and a `.key` text file holding what
/// they were made from: the folder, the size, the channels, the layout, max_pixels,
/// on_bad_file, the classes and every file's name, size and modification time, then the
/// skipped files and the .npy files' sizes and CRC-32. A load whose key matches reads the
/// .npy files instead of decoding; any change of those inputs rebuilds the cache; a cache
/// whose key file or .npy files do not check out is reported on stderr (and in
/// cache_problem) and rebuilt, never used. A change to a file that keeps its size and
/// modification time is not seen. Every cache file is written atomically.
/// \tparam S the scalar type of the images (float or double).
template <class S>
ImageFolder<S> load_image_folder(const std::filesystem::path& dir, const ImageFolderOptions& options = {}) {
  namespace fs = std::filesystem;
  const ImageFolderOptions& o = options;
  if (o.channels != 1 && o.channels != 3)
    throw config_error("ImageFolderOptions.channels", std::to_string(o.channels), "1 (grey) or 3 (RGB)");
  constexpr index_t most = 1 << 14;
  if (o.height < 1 || o.height > most)
    throw config_error("ImageFolderOptions.height", std::to_string(o.height), "1 to " + std::to_string(most));
  if (o.width < 1 || o.width > most)
    throw config_error("ImageFolderOptions.width", std::to_string(o.width), "1 to " + std::to_string(most));
  if (o.max_pixels < 1) throw config_error("ImageFolderOptions.max_pixels", "0", "at least 1");
  if (o.progress_every < 0)
    throw config_error("ImageFolderOptions.progress_every", std::to_string(o.progress_every), "0 or more");

  const detail::FolderListing listing = detail::list_folder(dir, o.layout);
  ImageFolder<S> result{ImageDataset<S>(xt::xtensor<S, 4>::from_shape({1, 1, 1, 1})), {}, {}, {}, {}, {}, {}};
  detail::FolderBytes bytes;
  bool from_cache = false;
  std::string key;
  detail::CachePaths paths;
  if (o.cache) {
    key = detail::cache_key(listing, o);
    paths = detail::cache_paths(listing, o);
    result.cache_key_file = paths.key;
    detail::CacheMiss miss;
    bytes = detail::read_cache(paths, key, listing, o, miss);
    from_cache = !bytes.kept.empty();
    if (miss.damaged) {
      result.cache_problem = "damaged cache, rebuilt: " + miss.why;
      std::fprintf(stderr, "forgery: warning: %s: %s\n", paths.key.c_str(), result.cache_problem.c_str());
    } else if (!from_cache && o.progress_every > 0) {
      std::fprintf(stderr, "image folder %s: cache %s: %s; decoding\n", dir.c_str(), paths.key.c_str(),
                   miss.why.c_str());
    }
  }
  if (from_cache) {
    result.cache = ImageFolder<S>::Cache::loaded;
    for (const std::size_t k : bytes.skipped)
      std::fprintf(stderr, "forgery: warning: skipped %s (as when the cache was made)\n",
                   (listing.root / listing.relative[k]).c_str());
    if (o.progress_every > 0)
      std::fprintf(stderr, "image folder %s: %zu images from the cache %s\n", dir.c_str(), bytes.kept.size(),
                   paths.images.c_str());
  } else {
    bytes = detail::decode_folder(listing, dir, o);
    if (o.cache) {
      try {
        detail::write_cache(paths, key, bytes, o);
        result.cache = ImageFolder<S>::Cache::written;
      } catch (const io_error& e) {
        result.cache = ImageFolder<S>::Cache::failed;
        result.cache_problem += std::string(result.cache_problem.empty() ? "" : "; ") + "not cached: " + e.what();
        std::fprintf(stderr, "forgery: warning: the images are not cached: %s\n", e.what());
      }
    }
  }

  const std::size_t n = bytes.kept.size();
  auto images = xt::xtensor<S, 4>::from_shape(
      {n, static_cast<std::size_t>(o.channels), static_cast<std::size_t>(o.height), static_cast<std::size_t>(o.width)});
  const std::array<S, 256> table = detail::byte_to_unit_table<S>();
  S* dst = images.data();
  for (std::size_t i = 0; i < bytes.pixels.size(); ++i) dst[i] = table[bytes.pixels[i]];
  bytes.pixels = {};
  for (const std::size_t k : bytes.kept) result.files.push_back(listing.root / listing.relative[k]);
  for (const std::size_t k : bytes.skipped) result.skipped.push_back(listing.root / listing.relative[k]);
  if (listing.layout == FolderLayout::classes) {
    auto labels = xt::xtensor<std::int32_t, 1>::from_shape({n});
    std::copy(bytes.labels.begin(), bytes.labels.end(), labels.begin());
    result.dataset =
        ImageDataset<S>(std::move(images), std::move(labels), static_cast<index_t>(listing.classes.size()));
    result.class_names = listing.classes;
  } else {
    result.dataset = ImageDataset<S>(std::move(images));
  }
  return result;
}

} // namespace forgery::data
