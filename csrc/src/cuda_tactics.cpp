// Tactic selection for cuda modules (docs/module-format.md, "Tactics"): a step may carry
// alternative launches of the same computation (other tilings, warps, stages). At load, before
// the first run captures the CUDA graph, each step's candidate is chosen:
//   - tuning (ODC_LOAD_CUDA_TUNE / ODC_CUDA_TUNE=1): every candidate is timed on the device arena
//     (its contents are irrelevant to the time; the first real run recomputes everything), the
//     fastest kept, and the choice stored in the tactics cache;
//   - otherwise the cached choice for (plan SHA-256, GPU name, step), else the step's own launch.
// Cache: $ODC_CACHE_DIR/cuda_tactics.json (default ~/.cache/onnx-deploy-optimizer/), written
// atomically (temporary file + rename); an unreadable cache reads as empty.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cuda_state.h"
#include "module.h"

namespace odc {
namespace {

using json = nlohmann::json;

constexpr const char* kCacheFormat = "odc-cuda-tactics";
constexpr int kCacheVersion = 1;
constexpr int kSamples = 5;              // timed graph replays per candidate (median)
constexpr double kSampleTarget = 2e-4;   // seconds of work per replay: small kernels repeat
constexpr int kMaxRepeat = 20;           // launches per replayed graph, at most
constexpr double kKeepDefaultWithin = 0.02;  // an alternative must win by more than 2%

std::string cache_directory() {
  const char* base = std::getenv("ODC_CACHE_DIR");
  if (base != nullptr && *base != '\0') return base;
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return std::string(home) + "/.cache/onnx-deploy-optimizer";
  return "";
}

// mkdir -p; false on failure (errno set).
bool make_directories(const std::string& path) {
  for (size_t at = 1; at <= path.size(); ++at) {
    if (at != path.size() && path[at] != '/') continue;
    const std::string prefix = path.substr(0, at);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

// The cache's entries object (empty when the file is missing); `note` says why it was ignored.
json read_cache(const std::string& path, std::string* note) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return json::object();
  std::stringstream text;
  text << in.rdbuf();
  json cache = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  // Every member is type-checked before use: a hostile cache must not fail the load.
  const bool ok = !cache.is_discarded() && cache.is_object() && cache.contains("format") &&
                  cache["format"].is_string() && cache["format"].get<std::string>() == kCacheFormat &&
                  cache.contains("entries") && cache["entries"].is_object();
  if (!ok) {
    *note = "tactics cache " + path + " is not a valid " + kCacheFormat + " file: ignored";
    return json::object();
  }
  return cache["entries"];
}

void write_cache(const std::string& directory, const std::string& path, const json& updates,
                 std::string* note) {
  if (!make_directories(directory)) {
    *note = "tactics cache " + path + " not written: " + std::strerror(errno);
    return;
  }
  std::string ignored;
  json entries = read_cache(path, &ignored);  // entries other loads wrote meanwhile stay
  for (auto it = updates.begin(); it != updates.end(); ++it) entries[it.key()] = it.value();
  json cache = {{"format", kCacheFormat}, {"version", kCacheVersion}, {"entries", entries}};
  std::string temp = path + ".XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    *note = "tactics cache " + path + " not written: " + std::strerror(errno);
    return;
  }
  const std::string text = cache.dump(1) + "\n";
  bool ok = true;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += size_t(n);
  }
  ok = ::close(fd) == 0 && ok;
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
    *note = "tactics cache " + path + " not written: " + std::strerror(errno);
    ::unlink(temp.c_str());
  }
}

struct EventPair {
  const CudaDriver* d;
  CUevent start = nullptr, end = nullptr;
  explicit EventPair(CudaState& c) : d(c.driver) {
    c.check(d->cuEventCreate(&start, kCuEventDefault), "cuEventCreate", "tune");
    c.check(d->cuEventCreate(&end, kCuEventDefault), "cuEventCreate", "tune");
  }
  ~EventPair() {
    if (start != nullptr) d->cuEventDestroy(start);
    if (end != nullptr) d->cuEventDestroy(end);
  }
};

// Device seconds per launch of `l` (median of kSamples replays of a graph of up to kMaxRepeat
// launches: graph replay has the launch overhead of a real run), or -1 with `failure` set when
// the candidate cannot launch. A fault while it runs is an error (the context is then lost).
double time_candidate(CudaState& c, CudaState::Launch& l, EventPair& ev, const std::string& what,
                      std::string* failure) {
  const CudaDriver& d = *c.driver;
  auto launch = [&]() {
    return d.cuLaunchKernel(l.function, l.grid[0], l.grid[1], l.grid[2], l.block, 1, 1, l.shared,
                            c.stream, l.params.empty() ? nullptr : l.params.data(), nullptr);
  };
  CUresult result = launch();  // warm-up (the first launch of a function may load it)
  if (result != kCudaSuccess) {
    *failure = "cuLaunchKernel: " + d.describe(result);
    return -1.0;
  }
  c.check(d.cuStreamSynchronize(c.stream), "cuStreamSynchronize", what);
  c.check(d.cuEventRecord(ev.start, c.stream), "cuEventRecord", what);
  c.check(launch(), "cuLaunchKernel", what);
  c.check(d.cuEventRecord(ev.end, c.stream), "cuEventRecord", what);
  c.check(d.cuStreamSynchronize(c.stream), "cuStreamSynchronize", what);
  float ms = 0.0f;
  c.check(d.cuEventElapsedTime(&ms, ev.start, ev.end), "cuEventElapsedTime", what);
  const double once = std::max(double(ms) * 1e-3, 1e-7);
  const int repeat = std::clamp(int(kSampleTarget / once), 1, kMaxRepeat);

  c.check(d.cuStreamBeginCapture(c.stream, kCuStreamCaptureModeThreadLocal),
          "cuStreamBeginCapture", what);
  CUgraph graph = nullptr;
  for (int r = 0; r < repeat && result == kCudaSuccess; ++r) result = launch();
  const CUresult ended = d.cuStreamEndCapture(c.stream, &graph);
  if (result != kCudaSuccess || ended != kCudaSuccess) {
    if (graph != nullptr) d.cuGraphDestroy(graph);
    *failure = "capture: " + d.describe(result != kCudaSuccess ? result : ended);
    return -1.0;
  }
  CUgraphExec exec = nullptr;
  result = d.cuGraphInstantiateWithFlags(&exec, graph, 0);
  d.cuGraphDestroy(graph);
  c.check(result, "cuGraphInstantiateWithFlags", what);
  std::vector<double> samples;
  try {
    c.check(d.cuGraphLaunch(exec, c.stream), "cuGraphLaunch", what);  // warm-up
    for (int k = 0; k < kSamples; ++k) {
      c.check(d.cuEventRecord(ev.start, c.stream), "cuEventRecord", what);
      c.check(d.cuGraphLaunch(exec, c.stream), "cuGraphLaunch", what);
      c.check(d.cuEventRecord(ev.end, c.stream), "cuEventRecord", what);
      c.check(d.cuEventSynchronize(ev.end), "cuEventSynchronize", what);
      c.check(d.cuEventElapsedTime(&ms, ev.start, ev.end), "cuEventElapsedTime", what);
      samples.push_back(double(ms) * 1e-3 / repeat);
    }
  } catch (...) {
    d.cuGraphExecDestroy(exec);
    throw;
  }
  d.cuGraphExecDestroy(exec);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace

void Module::select_tactics() {
  bool any = false;
  for (const Step& step : steps) any = any || !step.tactics.empty();
  if (!any) return;
  CudaState& c = *cuda_;
  const CudaDriver& d = *c.driver;
  char name[256] = {0};
  c.check(d.cuDeviceGetName(name, int(sizeof(name) - 1), c.device), "cuDeviceGetName", "load");
  const std::string gpu = one_line(name);
  const std::string directory = cache_directory();
  const std::string path = directory.empty() ? "" : directory + "/cuda_tactics.json";
  auto key_of = [&](size_t s) { return plan_sha256 + "/" + gpu + "/" + std::to_string(s); };

  json cached = json::object();
  if (path.empty()) {
    tactics_note = "no tactics cache: neither ODC_CACHE_DIR nor HOME is set";
  } else {
    cached = read_cache(path, &tactics_note);
  }
  for (size_t s = 0; s < steps.size(); ++s) {
    Step& step = steps[s];
    const int64_t count = int64_t(step.tactics.size()) + 1;
    if (step.tactics.empty() || cuda_tune) continue;
    auto it = cached.find(key_of(s));
    if (it == cached.end() || !it->is_object()) continue;
    const json& entry = *it;
    auto integer = [&](const char* member) -> int64_t {  // -1 unless a non-negative integer
      if (!entry.contains(member)) return -1;
      const json& v = entry[member];
      if (v.is_number_unsigned()) return int64_t(std::min<uint64_t>(v.get<uint64_t>(), 1u << 30));
      return v.is_number_integer() ? std::max<int64_t>(v.get<int64_t>(), -1) : -1;
    };
    if (integer("count") != count) continue;  // another shape of entry: not ours to trust
    const int64_t index = integer("chosen");
    if (index < 0 || index >= count) continue;
    step.chosen = int32_t(index);
    step.tactic_source = "cache";
    const json& seconds = entry.contains("seconds") ? entry["seconds"] : json();
    if (seconds.is_array() && int64_t(seconds.size()) == count) {
      for (int64_t t = 0; t < count; ++t) {
        step.tactic_seconds[size_t(t)] =
            seconds[size_t(t)].is_number() ? seconds[size_t(t)].get<double>() : -1.0;
      }
    }
  }

  if (cuda_tune) {
    // Defined contents for the timing runs (kernels never index by data, but NaN-free inputs
    // keep every candidate on its ordinary path).
    c.check(d.cuMemsetD8Async(c.arena, 0, size_t(std::max<int64_t>(arena_size, 256)), c.stream),
            "cuMemsetD8Async", "tune: clearing the arena");
    for (size_t i = 0; i < c.input_staging.size(); ++i) {
      c.check(d.cuMemsetD8Async(c.input_staging[i], 0,
                                size_t(std::max<int64_t>(c.input_bytes[i], 256)), c.stream),
              "cuMemsetD8Async", "tune: clearing the input buffers");
    }
    EventPair events(c);
    json updates = json::object();
    for (size_t s = 0; s < steps.size(); ++s) {
      Step& step = steps[s];
      if (step.tactics.empty()) continue;
      const std::string what = "tune: " + kernels[size_t(step.kernel)].name + " (step " +
                               std::to_string(s) + ", node '" + step.node + "')";
      json names = json::array();
      json seconds = json::array();
      int32_t best = 0;
      for (size_t t = 0; t < c.candidates[s].size(); ++t) {
        std::string failure;
        const double time = time_candidate(c, c.candidates[s][t], events, what, &failure);
        step.tactic_seconds[t] = time;
        seconds.push_back(time);
        names.push_back(step.tactic_names[t]);
        if (time < 0) continue;
        const double best_time = step.tactic_seconds[size_t(best)];
        if (best_time < 0 || time < best_time * (1.0 - kKeepDefaultWithin)) best = int32_t(t);
      }
      if (step.tactic_seconds[size_t(best)] < 0) {
        throw Error(what + ": no candidate launch of the step can run on this GPU");
      }
      step.chosen = best;
      step.tactic_source = "tuned";
      updates[key_of(s)] = {
          {"chosen", best},          {"count", int64_t(c.candidates[s].size())},
          {"seconds", seconds},      {"names", names},
          {"key", step.tactic_key},  {"kernel", kernels[size_t(step.kernel)].name},
          {"node", step.node},       {"arch", cuda_arch},
          {"gpu", gpu},
      };
    }
    if (!path.empty()) {
      tactics_note.clear();
      write_cache(directory, path, updates, &tactics_note);
    }
  }
  for (size_t s = 0; s < steps.size(); ++s) {
    c.launches[s] = &c.candidates[s][size_t(steps[s].chosen)];
  }
}

}  // namespace odc
