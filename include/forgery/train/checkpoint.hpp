// TrainerCheckpoint: the mapping between a Trainer's whole state and the records of a
// checkpoint file (io/checkpoint.hpp is the container): their names, types and sizes, the
// signatures and settings a resumed run must share, and the validation of a file before any
// of it is loaded.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/type_name.hpp"
#include "forgery/io/checkpoint.hpp"
#include "forgery/nn/sequential.hpp"

namespace forgery {

/// A Trainer's state, by reference, and its checkpoint records:
///   forgery/version, signature/{generator, discriminator, objective, optimizer, scalar},
///   config, trainer/step, trainer/generator_updates, rng/<stream> (seed, stream, counter),
///   then for each of generator and discriminator: <net>/params, <net>/state/<layer>,
///   <net>/optimizer/steps, <net>/optimizer/<buffer>, <net>/optimizer/config; and
///   generator/ema when the EMA is on.
/// The Trainer builds one over its members for each save or load.
/// \tparam G, D the network specs; \tparam Obj the objective as the Trainer names it (its
/// type name is the objective's signature); \tparam Opt the optimizer; \tparam B the backend.
template <class G, class D, class Obj, class Opt, class B>
struct TrainerCheckpoint {
  using S = typename B::scalar;
  using generator_type = Network<G, B>;
  using discriminator_type = Network<D, B>;
  using optimizer_state = typename Opt::template State<B>;

  /// Checkpoint records of the Trainer's random streams (noise, data, penalty, labels, G's
  /// and D's dropout), in the order of `streams`.
  static constexpr std::array<const char*, 6> stream_records{"rng/noise",  "rng/data",      "rng/penalty",
                                                             "rng/labels", "rng/dropout_g", "rng/dropout_d"};

  generator_type& g;
  discriminator_type& d;
  optimizer_state& g_opt;
  optimizer_state& d_opt;
  typename B::template buffer<S>& ema; ///< empty when the EMA is off
  std::array<RandomStream*, 6> streams;
  long long& steps;
  long long& g_updates;
  std::string config; ///< the settings a resumed run must share (config_text)

  /// The Trainer settings a resumed run must share with the run that wrote the checkpoint.
  template <class Config>
  static std::string config_text(const Config& c) {
    std::string s;
    s += "batch=" + std::to_string(c.batch) + "\n";
    s += "n_critic=" + std::to_string(c.n_critic) + "\n";
    s += "seed=" + std::to_string(c.seed) + "\n";
    s += "init=" + std::to_string(static_cast<int>(c.init)) + "\n";
    s += "ema_decay=" + number_text(c.ema_decay) + "\n";
    s += "ema_warmup=" + std::to_string(c.ema_warmup ? 1 : 0) + "\n";
    // Written only when set, so the checkpoints of runs without shards keep their bytes.
    if (c.shards != 1) s += "shards=" + std::to_string(c.shards) + "\n";
    return s;
  }

  /// The whole state as records. Throws numeric_error (naming the network and the quantity)
  /// if any of it is not finite: a diverged state is never written.
  [[nodiscard]] io::CheckpointWriter write() const {
    check_checkpointable();
    io::CheckpointWriter w;
    w.add_text("forgery/version", version_string());
    w.add_text("signature/generator", type_name<G>());
    w.add_text("signature/discriminator", type_name<D>());
    w.add_text("signature/objective", type_name<Obj>());
    w.add_text("signature/optimizer", type_name<Opt>());
    w.add_text("signature/scalar", io::record_type_name(io::record_type_of<S>()));
    w.add_text("config", config);
    w.add_i64("trainer/step", steps);
    w.add_i64("trainer/generator_updates", g_updates);
    for (std::size_t i = 0; i < streams.size(); ++i) {
      const std::uint64_t v[3] = {streams[i]->seed, streams[i]->stream, streams[i]->counter};
      w.add(stream_records[i], v, 3);
    }
    write_network(w, "generator", g, g_opt);
    write_network(w, "discriminator", d, d_opt);
    if (!ema.empty()) add_finite(w, "generator/ema", "generator", "EMA parameters", ema.data(), ema.size());
    return w;
  }

  /// Restores the state from `file`. Everything is checked before anything is changed: on
  /// any error (io_error naming the file and record, or the two differing types or settings)
  /// the state is unchanged.
  void read(const io::CheckpointFile& file) const {
    check_checkpointable();
    const std::string& name = file.name();
    expect_text(file, "signature/scalar", io::record_type_name(io::record_type_of<S>()), "scalar type");
    expect_text(file, "signature/generator", type_name<G>(), "generator");
    expect_text(file, "signature/discriminator", type_name<D>(), "discriminator");
    expect_text(file, "signature/objective", type_name<Obj>(), "objective");
    expect_text(file, "signature/optimizer", type_name<Opt>(), "optimizer");
    check_config(file);
    const std::int64_t step = file.i64("trainer/step");
    const std::int64_t g_updates_saved = file.i64("trainer/generator_updates");
    if (step < 0 || g_updates_saved < 0 || g_updates_saved > step)
      throw io_error(name, "checkpoint step counters are inconsistent: step " + std::to_string(step) +
                               ", generator updates " + std::to_string(g_updates_saved));
    std::array<RandomStream, 6> restored{};
    for (std::size_t i = 0; i < streams.size(); ++i) {
      std::uint64_t v[3];
      file.read_array(stream_records[i], v, 3);
      if (v[0] != streams[i]->seed || v[1] != streams[i]->stream)
        throw io_error(name, std::string("checkpoint record '") + stream_records[i] + "' is for seed " +
                                 std::to_string(v[0]) + " stream " + std::to_string(v[1]) +
                                 ", this trainer's is seed " + std::to_string(streams[i]->seed) + " stream " +
                                 std::to_string(streams[i]->stream));
      restored[i] = RandomStream{v[0], v[1], v[2]};
    }
    // Validate every array record and the optimizer settings before changing anything.
    auto g_cfg = g_opt.config();
    auto d_cfg = d_opt.config();
    const long long g_opt_steps = check_network(file, "generator", g, g_opt, g_cfg);
    const long long d_opt_steps = check_network(file, "discriminator", d, d_opt, d_cfg);
    if (!ema.empty()) {
      file.require_array<S>("generator/ema", static_cast<std::uint64_t>(ema.size()));
      file.require_finite("generator/ema");
    }
    // Commit.
    read_network(file, "generator", g, g_opt, g_cfg, g_opt_steps);
    read_network(file, "discriminator", d, d_opt, d_cfg, d_opt_steps);
    if (!ema.empty()) read_record(file, "generator/ema", ema.data(), ema.size());
    for (std::size_t i = 0; i < streams.size(); ++i) *streams[i] = restored[i];
    steps = step;
    g_updates = g_updates_saved;
  }

  /// The limits a checkpoint file of this state fits in: the size and record count of its
  /// own checkpoint (the arrays sized by the networks, the text records as write() writes
  /// them), plus 64 KiB and 64 records of room for settings written with other digits or by
  /// another version.
  [[nodiscard]] io::CheckpointLimits limits() const {
    std::uint64_t bytes = io::checkpoint_header_size;
    std::uint32_t records = 0;
    auto add = [&](std::string_view name, std::uint64_t data_bytes) {
      bytes += 2 + name.size() + 2 + 8 + data_bytes;
      ++records;
    };
    add("forgery/version", version_string().size());
    add("signature/generator", type_name<G>().size());
    add("signature/discriminator", type_name<D>().size());
    add("signature/objective", type_name<Obj>().size());
    add("signature/optimizer", type_name<Opt>().size());
    add("signature/scalar", std::string_view(io::record_type_name(io::record_type_of<S>())).size());
    add("config", config.size());
    add("trainer/step", 8);
    add("trainer/generator_updates", 8);
    for (const char* r : stream_records) add(r, 3 * 8);
    auto network = [&](const std::string& prefix, auto& net, const auto& opt) {
      using Net = std::remove_cvref_t<decltype(net)>;
      add(prefix + "/params", sizeof(S) * static_cast<std::uint64_t>(Net::param_count));
      net.for_each_state([&](std::size_t layer, S*, index_t count) {
        add(prefix + "/state/" + std::to_string(layer), sizeof(S) * static_cast<std::uint64_t>(count));
      });
      add(prefix + "/optimizer/steps", 8);
      opt.for_each_state([&](const char* buf_name, const auto& buf) {
        add(prefix + "/optimizer/" + buf_name, sizeof(S) * static_cast<std::uint64_t>(buf.size()));
      });
      std::uint64_t cfg = 0;
      opt.config().fields(
          [&](const char* field, const auto& v) { cfg += std::strlen(field) + 2 + number_text(v).size(); });
      add(prefix + "/optimizer/config", cfg);
    };
    network("generator", g, g_opt);
    network("discriminator", d, d_opt);
    if (!ema.empty()) add("generator/ema", sizeof(S) * static_cast<std::uint64_t>(ema.size()));
    io::CheckpointLimits result;
    result.max_bytes = bytes + (std::uint64_t{1} << 16);
    result.max_records = records + 64;
    result.max_bytes_source = "the largest checkpoint this trainer loads: the size of its own plus 64 KiB";
    return result;
  }

private:
  template <class State>
  static constexpr bool checkpointable_state = requires(State& s, const State& cs) {
    cs.steps();
    s.set_steps(0LL);
    cs.for_each_state([](const char*, const auto&) {});
    cs.config().fields([](const char*, const auto&) {});
  };

public:
  /// Whether this Trainer's state can be written at all (its optimizer's state is visible).
  static constexpr bool checkpointable = checkpointable_state<optimizer_state>;

private:
  static void check_checkpointable() {
    static_assert(checkpointable_state<optimizer_state>,
                  "fg::Trainer checkpoints: the optimizer's State needs steps(), set_steps(n), for_each_state(f) "
                  "calling f(name, buffer) for each state buffer, and its Config needs fields(f) calling f(name, "
                  "field) for each setting (see optim/sgd.hpp).");
  }

  static std::string version_string() {
    return std::to_string(FORGERY_VERSION_MAJOR) + "." + std::to_string(FORGERY_VERSION_MINOR) + "." +
           std::to_string(FORGERY_VERSION_PATCH);
  }

  static std::string number_text(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
  }

  void check_config(const io::CheckpointFile& file) const {
    const auto saved = io::parse_fields(file.text("config"), file.name(), "config");
    const auto mine = io::parse_fields(config, "this trainer", "config");
    // Settings written only when not at their default (shards), read as the default when
    // absent, on either side.
    const auto value_of = [](const auto& fields, const std::string& key) -> const std::string* {
      const auto it = std::find_if(fields.begin(), fields.end(), [&](const auto& kv) { return kv.first == key; });
      return it == fields.end() ? nullptr : &it->second;
    };
    const auto mismatch = [&](const std::string& key, const std::string& theirs, const std::string& ours) {
      return io_error(file.name(), "checkpoint was written with Trainer::Config." + key + " = " + theirs +
                                       ", this trainer has " + ours +
                                       ": resume with the configuration of the run that wrote it");
    };
    for (const auto& [key, value] : mine) {
      const std::string* theirs = value_of(saved, key);
      if (theirs == nullptr && key == "shards") throw mismatch(key, "1", value);
      if (theirs == nullptr)
        throw io_error(file.name(), "checkpoint config has no '" + key + "' (expected " + key + "=" + value + ")");
      if (*theirs != value) throw mismatch(key, *theirs, value);
    }
    if (const std::string* theirs = value_of(saved, "shards"); theirs != nullptr && value_of(mine, "shards") == nullptr)
      throw mismatch("shards", *theirs, "1");
  }

  static void expect_text(const io::CheckpointFile& file, const char* record, const std::string& mine,
                          const char* what) {
    const std::string_view saved = file.text(record);
    if (saved != mine)
      throw io_error(file.name(), std::string("checkpoint holds another ") + what + ": it was written by\n  " +
                                      std::string(saved) + "\nand this trainer's is\n  " + mine);
  }

  static void check_finite_buffer(const char* network, const char* quantity, const S* p, index_t n, long long step) {
    for (index_t i = 0; i < n; ++i)
      if (!std::isfinite(static_cast<double>(p[i])))
        throw numeric_error(step, network, quantity,
                            "hold a non-finite value (" + number_text(static_cast<double>(p[i])) + " at index " +
                                std::to_string(i) + "): a diverged state is not checkpointed");
  }

  // Copies n values from a checkpoint record into backend memory.
  static void read_record(const io::CheckpointFile& file, const std::string& record, S* dst, index_t n) {
    if constexpr (B::host_memory) {
      file.read_array(record, dst, static_cast<std::uint64_t>(n));
    } else {
      std::vector<S> host(static_cast<std::size_t>(n));
      file.read_array(record, host.data(), static_cast<std::uint64_t>(n));
      B::to_device(n, host.data(), dst);
    }
  }

  // Adds n values of backend memory as a record, refusing non-finite ones.
  void add_finite(io::CheckpointWriter& w, const std::string& record, const std::string& network,
                  const std::string& quantity, const S* p, index_t n) const {
    const S* h = p;
    std::vector<S> host;
    if constexpr (!B::host_memory) {
      host.resize(static_cast<std::size_t>(n));
      B::to_host(n, p, host.data());
      h = host.data();
    }
    check_finite_buffer(network.c_str(), quantity.c_str(), h, n, steps);
    w.add(record, h, static_cast<std::size_t>(n));
  }

  template <class Net>
  void write_network(io::CheckpointWriter& w, const std::string& prefix, Net& net, const optimizer_state& opt) const {
    add_finite(w, prefix + "/params", prefix, "parameters", net.params(), Net::param_count);
    net.for_each_state([&](std::size_t layer, S* data, index_t count) {
      add_finite(w, prefix + "/state/" + std::to_string(layer), prefix,
                 "layer " + std::to_string(layer) + " state values", data, count);
    });
    w.add_i64(prefix + "/optimizer/steps", opt.steps());
    opt.for_each_state([&](const char* buf_name, const auto& buf) {
      add_finite(w, prefix + "/optimizer/" + buf_name, prefix, std::string("optimizer ") + buf_name + " values",
                 buf.data(), buf.size());
    });
    std::string cfg;
    opt.config().fields(
        [&](const char* field, const auto& v) { cfg += std::string(field) + "=" + number_text(v) + "\n"; });
    w.add_text(prefix + "/optimizer/config", cfg);
  }

  // Checks every record of one network; parses the optimizer settings into `cfg`. Returns
  // the optimizer's step count.
  template <class Net, class Cfg>
  static long long check_network(const io::CheckpointFile& file, const std::string& prefix, Net& net,
                                 optimizer_state& opt, Cfg& cfg) {
    // A non-finite value would only diverge again (and a rollback would return to it).
    file.require_array<S>(prefix + "/params", static_cast<std::uint64_t>(Net::param_count));
    file.require_finite(prefix + "/params");
    net.for_each_state([&](std::size_t layer, S*, index_t count) {
      const std::string record = prefix + "/state/" + std::to_string(layer);
      file.require_array<S>(record, static_cast<std::uint64_t>(count));
      file.require_finite(record);
    });
    const std::int64_t opt_steps = file.i64(prefix + "/optimizer/steps");
    if (opt_steps < 0)
      throw io_error(file.name(), "checkpoint record '" + prefix + "/optimizer/steps' is " + std::to_string(opt_steps) +
                                      ", expected a count >= 0");
    opt.for_each_state([&](const char* buf_name, const auto& buf) {
      file.require_array<S>(prefix + "/optimizer/" + buf_name, static_cast<std::uint64_t>(buf.size()));
      file.require_finite(prefix + "/optimizer/" + buf_name);
    });
    const std::string record = prefix + "/optimizer/config";
    const auto fields = io::parse_fields(file.text(record), file.name(), record);
    cfg.fields([&](const char* field, auto& v) {
      const auto it = std::find_if(fields.begin(), fields.end(), [&](const auto& kv) { return kv.first == field; });
      if (it == fields.end())
        throw io_error(file.name(), "checkpoint record '" + record + "' has no '" + field + "' setting");
      const char* text = it->second.c_str();
      char* end = nullptr;
      const double x = std::strtod(text, &end);
      if (end == text || *end != '\0')
        throw io_error(file.name(), "checkpoint record '" + record + "': '" + field + "' is '" + it->second +
                                        "', expected a number");
      using V = std::remove_cvref_t<decltype(v)>;
      if constexpr (std::is_same_v<V, bool>) {
        if (x != 0 && x != 1)
          throw io_error(file.name(), "checkpoint record '" + record + "': '" + field + "' is '" + it->second +
                                          "', expected 0 or 1");
        v = x != 0;
      } else {
        v = static_cast<V>(x);
      }
    });
    try {
      cfg.validate();
    } catch (const config_error& e) {
      throw io_error(file.name(), "checkpoint record '" + record + "' holds invalid settings: " + e.what());
    }
    return opt_steps;
  }

  template <class Net, class Cfg>
  static void read_network(const io::CheckpointFile& file, const std::string& prefix, Net& net, optimizer_state& opt,
                           const Cfg& cfg, long long opt_steps) {
    read_record(file, prefix + "/params", net.params(), Net::param_count);
    net.for_each_state([&](std::size_t layer, S* data, index_t count) {
      read_record(file, prefix + "/state/" + std::to_string(layer), data, count);
    });
    opt.for_each_state([&](const char* buf_name, auto& buf) {
      read_record(file, prefix + "/optimizer/" + buf_name, buf.data(), buf.size());
    });
    opt.config() = cfg;
    opt.set_steps(opt_steps);
  }
};

} // namespace forgery
