// odc-run: load a compiled module and run it from the command line, with no Python.
//
//   odc-run MODULE_DIR [--input NAME=FILE.npy ...] [--iterations N] [--warmup N]
//           [--threads N] [--seed N] [--save-outputs DIR] [--no-verify] [--no-cuda-graphs]
//           [--target cpu|cuda|auto] [--tune]
//
// A module compiled for several targets (--target cpu,cuda) runs on cuda when the NVIDIA driver
// is found and GPU 0 can run its cubins, else on cpu (the runner prints which, and why it
// skipped cuda); --target forces one.
//
// Modules that target cuda run on the GPU (device 0): inputs are copied from host memory,
// outputs back, and the latency is that of the whole run (copies and synchronization included;
// the first run, a warm-up, captures the CUDA graph that later runs replay). --tune times the
// alternative launches ("tactics") of each step at load, keeps the fastest (cached in
// $ODC_CACHE_DIR/cuda_tactics.json, which later loads reuse) and prints each step's times.
//
// Inputs not given are filled with seeded random values. Prints each output (shape, first
// values, top-5 for [1, K] / [K] float outputs) and the latency (median / min over the timed
// iterations). Exit codes: 0 ok, 1 a kernel failed while running, 2 bad usage / module / input.
#include <algorithm>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "dtype.h"
#include "npy.h"
#include "odc/runtime.h"
#include "util.h"

namespace {

struct Options {
  std::string module_dir;
  std::map<std::string, std::string> input_files;
  long iterations = 10;
  long warmup = 1;
  long threads = 0;
  unsigned long seed = 0;
  std::string save_dir;
  bool verify = true;
  bool cuda_graphs = true;
  uint32_t target_flags = 0;  // ODC_LOAD_TARGET_*; 0: auto
  bool tune = false;
};

const char kUsage[] =
    "usage: odc-run MODULE_DIR [--input NAME=FILE.npy ...] [--iterations N] [--warmup N]\n"
    "               [--threads N] [--seed N] [--save-outputs DIR] [--no-verify]\n"
    "               [--no-cuda-graphs] [--target cpu|cuda|auto] [--tune]\n";

struct UsageError : odc::Error {
  using odc::Error::Error;
};

long parse_count(const char* flag, const char* text, long min, long max) {
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
    throw UsageError(std::string(flag) + " expects an integer in [" + std::to_string(min) + ", " +
                     std::to_string(max) + "], got '" + text + "'");
  }
  return value;
}

uint32_t parse_target(const std::string& text) {
  if (text == "cpu") return ODC_LOAD_TARGET_CPU;
  if (text == "cuda") return ODC_LOAD_TARGET_CUDA;
  if (text == "auto") return 0;
  throw UsageError("--target expects cpu, cuda or auto, got '" + text + "'");
}

Options parse_args(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--input") {
      std::string spec = value();
      size_t eq = spec.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
        throw UsageError("--input expects NAME=FILE.npy, got '" + spec + "'");
      }
      options.input_files[spec.substr(0, eq)] = spec.substr(eq + 1);
    } else if (arg == "--iterations") {
      options.iterations = parse_count("--iterations", value(), 1, 1000000);
    } else if (arg == "--warmup") {
      options.warmup = parse_count("--warmup", value(), 0, 1000000);
    } else if (arg == "--threads") {
      options.threads = parse_count("--threads", value(), 1, 4096);
    } else if (arg == "--seed") {
      options.seed = static_cast<unsigned long>(parse_count("--seed", value(), 0, 1L << 31));
    } else if (arg == "--save-outputs") {
      options.save_dir = value();
    } else if (arg == "--no-verify") {
      options.verify = false;
    } else if (arg == "--no-cuda-graphs") {
      options.cuda_graphs = false;
    } else if (arg == "--target") {
      options.target_flags = parse_target(value());
    } else if (arg == "--tune") {
      options.tune = true;
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError("unknown option " + arg);
    } else if (options.module_dir.empty()) {
      options.module_dir = arg;
    } else {
      throw UsageError("unexpected argument '" + arg + "'");
    }
  }
  if (options.module_dir.empty()) throw UsageError("missing MODULE_DIR");
  return options;
}

void fill_random(odc::AlignedBuffer& buffer, int32_t dtype, int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> real(-1.0, 1.0);
  std::uniform_int_distribution<int> small(0, 9);
  uint8_t* p = buffer.data();
  for (int64_t i = 0; i < count; ++i) {
    switch (dtype) {
      case ODC_FLOAT32: reinterpret_cast<float*>(p)[i] = float(real(rng)); break;
      case ODC_FLOAT64: reinterpret_cast<double*>(p)[i] = real(rng); break;
      case ODC_INT8: reinterpret_cast<int8_t*>(p)[i] = int8_t(small(rng)); break;
      case ODC_UINT8: reinterpret_cast<uint8_t*>(p)[i] = uint8_t(small(rng)); break;
      case ODC_INT16: reinterpret_cast<int16_t*>(p)[i] = int16_t(small(rng)); break;
      case ODC_UINT16: reinterpret_cast<uint16_t*>(p)[i] = uint16_t(small(rng)); break;
      case ODC_INT32: reinterpret_cast<int32_t*>(p)[i] = small(rng); break;
      case ODC_UINT32: reinterpret_cast<uint32_t*>(p)[i] = uint32_t(small(rng)); break;
      case ODC_INT64: reinterpret_cast<int64_t*>(p)[i] = small(rng); break;
      case ODC_UINT64: reinterpret_cast<uint64_t*>(p)[i] = uint64_t(small(rng)); break;
      case ODC_BOOL: p[i] = uint8_t(small(rng) & 1); break;
      case ODC_FLOAT16:  // random halves in [-1, 1): sign, exponent 0x0..0xE, mantissa
      case ODC_BFLOAT16: {
        double x = real(rng);
        float f = float(x);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        uint16_t h;
        if (dtype == ODC_BFLOAT16) {
          h = uint16_t(bits >> 16);
        } else {
          int exponent = int((bits >> 23) & 0xff) - 127 + 15;
          h = exponent <= 0 ? uint16_t((bits >> 16) & 0x8000)
                            : uint16_t(((bits >> 16) & 0x8000) | (exponent << 10) |
                                       ((bits >> 13) & 0x3ff));
        }
        reinterpret_cast<uint16_t*>(p)[i] = h;
        break;
      }
      default: break;
    }
  }
}

double as_double(const uint8_t* p, int32_t dtype, int64_t i) {
  switch (dtype) {
    case ODC_FLOAT32: return reinterpret_cast<const float*>(p)[i];
    case ODC_FLOAT64: return reinterpret_cast<const double*>(p)[i];
    case ODC_INT8: return reinterpret_cast<const int8_t*>(p)[i];
    case ODC_UINT8: return p[i];
    case ODC_BOOL: return p[i];
    case ODC_INT16: return reinterpret_cast<const int16_t*>(p)[i];
    case ODC_UINT16: return reinterpret_cast<const uint16_t*>(p)[i];
    case ODC_INT32: return reinterpret_cast<const int32_t*>(p)[i];
    case ODC_UINT32: return reinterpret_cast<const uint32_t*>(p)[i];
    case ODC_INT64: return double(reinterpret_cast<const int64_t*>(p)[i]);
    case ODC_UINT64: return double(reinterpret_cast<const uint64_t*>(p)[i]);
    case ODC_FLOAT16: {
      uint16_t h = reinterpret_cast<const uint16_t*>(p)[i];
      int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
      double value = exponent == 0    ? std::ldexp(mantissa, -24)
                     : exponent == 31 ? (mantissa ? NAN : INFINITY)
                                      : std::ldexp(mantissa | 0x400, exponent - 25);
      return (h & 0x8000) ? -value : value;
    }
    case ODC_BFLOAT16: {
      uint32_t bits = uint32_t(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default: return 0.0;
  }
}

void print_output(const odc_value_info& info, const uint8_t* data) {
  const int64_t count = odc::element_count(info.shape, info.ndim);
  std::printf("output %s: %s %s\n", info.name, odc_dtype_name(info.dtype),
              odc::shape_string(info.shape, info.ndim).c_str());
  std::printf("  first:");
  for (int64_t i = 0; i < std::min<int64_t>(count, 8); ++i) {
    std::printf(" %.6g", as_double(data, info.dtype, i));
  }
  std::printf(count > 8 ? " ...\n" : "\n");
  const bool is_float = info.dtype == ODC_FLOAT32 || info.dtype == ODC_FLOAT64 ||
                        info.dtype == ODC_FLOAT16 || info.dtype == ODC_BFLOAT16;
  const bool classifier = (info.ndim == 2 && info.shape[0] == 1) || info.ndim == 1;
  if (is_float && classifier && count > 1) {
    std::vector<int64_t> order(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) order[size_t(i)] = i;
    const int64_t k = std::min<int64_t>(5, count);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      return as_double(data, info.dtype, a) > as_double(data, info.dtype, b);
    });
    std::printf("  top-%" PRId64 ":", k);
    for (int64_t i = 0; i < k; ++i) {
      std::printf(" %" PRId64 " (%.6g)", order[size_t(i)],
                  as_double(data, info.dtype, order[size_t(i)]));
    }
    std::printf("\n");
  }
}

// "device: cpu (targets cpu,cuda; cuda skipped: NVIDIA driver not found (libcuda.so.1))"
void print_target(const odc_module* module) {
  const char* device = odc_module_device_type(module) == ODC_DEVICE_CUDA ? "cuda" : "cpu";
  const char* targets = odc_module_targets(module);
  const char* note = odc_module_target_note(module);
  std::printf("device: %s (targets %s%s%s)\n", device, targets ? targets : "?",
              note && *note ? "; " : "", note ? note : "");
}

// --tune: each step with alternatives, its candidates' times and the one kept.
void print_tactics(odc_module* module) {
  int32_t tuned = 0;
  double before = 0.0, after = 0.0;
  for (int32_t i = 0, n = odc_module_num_steps(module); i < n; ++i) {
    odc_tactic_info info;
    odc_step_info step;
    if (odc_module_step_tactics(module, i, &info) != 0 || odc_module_step_info(module, i, &step) != 0) {
      throw odc::Error(odc_last_error());
    }
    if (info.num_candidates < 2) continue;
    ++tuned;
    std::printf("tactics: step %d %s (%s), %s:", i, step.kernel_name, step.node, info.source);
    for (int32_t t = 0; t < info.num_candidates; ++t) {
      const char* name = info.names[t][0] ? info.names[t] : "?";
      if (info.seconds[t] < 0) {
        std::printf(" %s%s -", t == info.chosen ? "*" : "", name);
      } else {
        std::printf(" %s%s %.1fus", t == info.chosen ? "*" : "", name, info.seconds[t] * 1e6);
      }
    }
    std::printf("\n");
    if (info.seconds[0] >= 0 && info.seconds[info.chosen] >= 0) {
      before += info.seconds[0];
      after += info.seconds[info.chosen];
    }
  }
  if (tuned == 0) {
    std::printf("tactics: the module has no alternative launches (compile with --tune)\n");
  } else if (after > 0) {
    std::printf("tactics: %d steps, their kernels %.1fus with the default launches, %.1fus as "
                "chosen (%.2fx)\n", tuned, before * 1e6, after * 1e6, before / after);
  }
  const char* note = odc_module_tactics_note(module);
  if (note != nullptr && note[0]) std::printf("tactics: %s\n", note);
}

int run_main(int argc, char** argv) {
  Options options = parse_args(argc, argv);
  const uint32_t flags = (options.verify ? ODC_LOAD_DEFAULT : ODC_LOAD_SKIP_CHECKSUMS) |
                         (options.cuda_graphs ? 0u : ODC_LOAD_NO_CUDA_GRAPHS) |
                         options.target_flags |
                         (options.tune ? ODC_LOAD_CUDA_TUNE : 0u);
  odc_module* module = odc_module_load(options.module_dir.c_str(), flags);
  if (module == nullptr) throw odc::Error(odc_last_error());
  struct Freer {
    odc_module* m;
    ~Freer() { odc_module_free(m); }
  } freer{module};
  print_target(module);
  if (options.tune) print_tactics(module);
  if (options.threads > 0 && odc_module_set_num_threads(module, int32_t(options.threads)) != 0) {
    throw odc::Error(odc_last_error());
  }

  const int32_t num_inputs = odc_module_num_inputs(module);
  const int32_t num_outputs = odc_module_num_outputs(module);
  std::vector<odc_value_info> input_info(static_cast<size_t>(num_inputs));
  std::vector<odc_value_info> output_info(static_cast<size_t>(num_outputs));
  std::vector<odc::AlignedBuffer> buffers;
  std::vector<odc_tensor> inputs, outputs;
  std::vector<odc::NpyArray> arrays;
  arrays.reserve(size_t(num_inputs));
  std::mt19937_64 rng(options.seed);
  std::map<std::string, std::string> unused = options.input_files;
  auto tensor_for = [](const odc_value_info& info, void* data) {
    odc_tensor t{};
    t.data = data;
    t.dtype = info.dtype;
    t.ndim = info.ndim;
    t.shape = info.shape;
    t.device_type = ODC_DEVICE_CPU;
    return t;
  };
  for (int32_t i = 0; i < num_inputs; ++i) {
    odc_value_info& info = input_info[size_t(i)];
    odc_module_input_info(module, i, &info);
    auto file = options.input_files.find(info.name);
    if (file != options.input_files.end()) {
      unused.erase(info.name);
      arrays.push_back(odc::read_npy(file->second));
      odc::NpyArray& array = arrays.back();
      if (array.dtype != info.dtype) {
        throw odc::Error("input '" + std::string(info.name) + "': " + file->second + " holds " +
                         odc_dtype_name(array.dtype) + ", the module expects " +
                         odc_dtype_name(info.dtype));
      }
      if (array.shape != std::vector<int64_t>(info.shape, info.shape + info.ndim)) {
        throw odc::Error("input '" + std::string(info.name) + "': " + file->second +
                         " has shape " + odc::shape_string(array.shape) +
                         ", the module expects " + odc::shape_string(info.shape, info.ndim));
      }
      inputs.push_back(tensor_for(info, array.data.data()));
    } else {
      buffers.emplace_back(size_t(info.nbytes), 64);
      fill_random(buffers.back(), info.dtype, info.nbytes / odc_dtype_size(info.dtype), rng);
      inputs.push_back(tensor_for(info, buffers.back().data()));
      std::printf("input %s: %s %s (random, seed %lu)\n", info.name, odc_dtype_name(info.dtype),
                  odc::shape_string(info.shape, info.ndim).c_str(), options.seed);
    }
  }
  if (!unused.empty()) {
    std::string names;
    for (int32_t i = 0; i < num_inputs; ++i) names += std::string(i ? ", " : "") + input_info[size_t(i)].name;
    throw odc::Error("--input " + unused.begin()->first + ": the module has no such input (inputs: " +
                     names + ")");
  }
  for (int32_t i = 0; i < num_outputs; ++i) {
    odc_value_info& info = output_info[size_t(i)];
    odc_module_output_info(module, i, &info);
    buffers.emplace_back(size_t(info.nbytes), 64);
    outputs.push_back(tensor_for(info, buffers.back().data()));
  }

  std::vector<double> times;
  for (long it = 0; it < options.warmup + options.iterations; ++it) {
    auto start = std::chrono::steady_clock::now();
    if (odc_module_run(module, inputs.data(), num_inputs, outputs.data(), num_outputs) != 0) {
      std::fprintf(stderr, "odc-run: %s\n", odc_last_error());
      return 1;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (it >= options.warmup) times.push_back(seconds);
  }
  for (int32_t i = 0; i < num_outputs; ++i) {
    print_output(output_info[size_t(i)], static_cast<const uint8_t*>(outputs[size_t(i)].data));
    if (!options.save_dir.empty()) {
      const odc_value_info& info = output_info[size_t(i)];
      std::string file_name;
      for (const char* c = info.name; *c; ++c) {
        file_name += (std::isalnum(static_cast<unsigned char>(*c)) || *c == '-' || *c == '.') ? *c : '_';
      }
      odc::write_npy(options.save_dir + "/" + file_name + ".npy", info.dtype,
                     std::vector<int64_t>(info.shape, info.shape + info.ndim),
                     outputs[size_t(i)].data, size_t(info.nbytes));
    }
  }
  std::sort(times.begin(), times.end());
  std::string where = std::to_string(odc_module_num_threads(module)) + " threads";
  if (odc_module_device_type(module) == ODC_DEVICE_CUDA) {
    const char* env = std::getenv("ODC_CUDA_GRAPHS");
    const bool graphs = options.cuda_graphs && !(env != nullptr && std::strcmp(env, "0") == 0);
    where = graphs ? "cuda, graph replay" : "cuda, plain launches";
  }
  std::printf("latency: median %.3f ms, min %.3f ms over %zu iterations (%s)\n",
              times[times.size() / 2] * 1e3, times.front() * 1e3, times.size(), where.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "odc-run: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "odc-run: %s\n", odc::one_line(e.what()).c_str());
    return 2;
  }
}
