// Saving a batch of samples: as .npy (an (N, C, H, W) or (N, F) array, through xtensor)
// and as CSV (one sample per row). Both are written atomically.
#pragma once

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

#include "forgery/core/batch_view.hpp"
#include "forgery/io/atomic_file.hpp"

namespace forgery::io {

/// Saves samples (features x batch, column-major, which is a row-major (batch, features)
/// array) as a .npy file of shape (batch, features).
template <class T>
void save_npy(const std::filesystem::path& path, BatchView<T> samples) {
  using V = std::remove_const_t<T>;
  const std::array<std::size_t, 2> shape{static_cast<std::size_t>(samples.batch()),
                                         static_cast<std::size_t>(samples.features())};
  const auto array =
      xt::adapt(const_cast<V*>(samples.data()), static_cast<std::size_t>(samples.size()), xt::no_ownership(), shape);
  write_file_atomically(path, xt::dump_npy(array));
}

/// Saves samples as CSV with a header "x0,x1,...", one sample per line.
template <class T>
void save_csv(const std::filesystem::path& path, BatchView<T> samples) {
  std::string out;
  for (index_t f = 0; f < samples.features(); ++f) out += (f ? ",x" : "x") + std::to_string(f);
  out += '\n';
  char buf[32];
  for (index_t n = 0; n < samples.batch(); ++n) {
    for (index_t f = 0; f < samples.features(); ++f) {
      std::snprintf(buf, sizeof buf, f ? ",%.9g" : "%.9g", static_cast<double>(samples(f, n)));
      out += buf;
    }
    out += '\n';
  }
  write_file_atomically(path, out);
}

} // namespace forgery::io
