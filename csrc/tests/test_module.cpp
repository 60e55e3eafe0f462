// The loader, executor and C API end to end on modules written here by hand: numerics against
// a plain C++ reference, named errors for each kind of damage, and random damage to the JSON
// files (with their hashes fixed up, so the structural checks are what is exercised). Run
// under ASan/UBSan in CI. `test_module --write-module DIR` writes the standard module (for the
// runner test, runner_cli.cmake).
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "odc/registry.h"
#include "odc/runtime.h"
#include "sha256.h"

using json = nlohmann::json;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// Recomputes the manifest's files table from the files on disk.
void refresh(const std::string& dir) {
  json manifest = json::parse(read_text(dir + "/manifest.json"));
  for (auto& [name, entry] : manifest["files"].items()) {
    std::string data = read_text(dir + "/" + name);
    entry = {{"size", data.size()}, {"sha256", odc::sha256_hex(data.data(), data.size())}};
  }
  write_text(dir + "/manifest.json", manifest.dump(1));
}

const float kW[12] = {-0.5f, -0.4f, -0.3f, -0.2f, -0.1f, 0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
const float kB[4] = {0.1f, -0.2f, 0.3f, -0.4f};

// y = relu(x[2,3] @ w[3,4] + b) + z ; s = 2 y - 1   (as tests/runtime/module_builder.py)
void write_standard(const std::string& dir) {
  ::mkdir(dir.c_str(), 0755);
  std::string weights(80, '\0');
  std::memcpy(&weights[0], kW, sizeof(kW));
  std::memcpy(&weights[64], kB, sizeof(kB));
  write_text(dir + "/weights.bin", weights);
  auto value = [](int id, const char* name, std::vector<int64_t> shape, const char* storage) {
    return json{{"id", id}, {"name", name}, {"dtype", "float32"}, {"shape", shape},
                {"storage", storage}, {"device", "cpu"}};
  };
  json values = json::array({
      value(0, "x", {2, 3}, "input"), value(1, "z", {2, 4}, "input"),
      value(2, "w", {3, 4}, "weights"), value(3, "b", {4}, "weights"),
      value(4, "h", {2, 4}, "arena"), value(5, "r", {2, 4}, "arena"),
      value(6, "y", {2, 4}, "output"), value(7, "s", {2, 4}, "output")});
  values[2]["offset"] = 0;
  values[2]["nbytes"] = 48;
  values[3]["offset"] = 64;
  values[3]["nbytes"] = 16;
  values[4]["offset"] = 0;
  values[4]["nbytes"] = 32;
  values[5]["offset"] = 64;
  values[5]["nbytes"] = 32;
  auto step = [](int kernel, const char* node, std::vector<int> in, std::vector<int> out) {
    return json{{"kernel", kernel}, {"node", node}, {"inputs", in}, {"outputs", out},
                {"iparams", json::array()}, {"fparams", json::array()}, {"workspace", 0}};
  };
  json steps = json::array({step(0, "fc", {0, 2, 3}, {4}), step(1, "act", {4}, {5}),
                            step(2, "residual", {5, 1}, {6}), step(3, "affine", {6}, {7})});
  steps[3]["iparams"] = {0};
  steps[3]["fparams"] = {2.0, -1.0};
  json plan = {{"alignment", 64}, {"arena_size", 128}, {"values", values}, {"steps", steps}};
  write_text(dir + "/plan.json", plan.dump(1));
  auto kernel = [](int id, const char* entry) {
    return json{{"id", id}, {"name", std::string("builtin.") + entry}, {"backend", "test"},
                {"kind", "builtin"}, {"entry", entry}, {"file", nullptr}, {"version", 1}};
  };
  json manifest = {
      {"format", "onnx-deploy-module"},
      {"format_version", 1},
      {"producer", {{"name", "test_module.cpp"}, {"version", "0"}}},
      {"targets", {"cpu"}},
      {"inputs", {{{"name", "x"}, {"dtype", "float32"}, {"shape", {2, 3}}, {"value", 0}},
                  {{"name", "z"}, {"dtype", "float32"}, {"shape", {2, 4}}, {"value", 1}}}},
      {"outputs", {{{"name", "y"}, {"dtype", "float32"}, {"shape", {2, 4}}, {"value", 6}},
                   {{"name", "s"}, {"dtype", "float32"}, {"shape", {2, 4}}, {"value", 7}}}},
      {"kernels", {kernel(0, "test.matmul_f32_naive"), kernel(1, "test.relu_f32"),
                   kernel(2, "test.add_f32"), kernel(3, "test.scale_f32")}},
      {"files", {{"plan.json", json::object()}, {"weights.bin", json::object()}}}};
  write_text(dir + "/manifest.json", manifest.dump(1));
  refresh(dir);
}

odc_tensor tensor(float* data, const int64_t* shape, int32_t ndim) {
  odc_tensor t{};
  t.data = data;
  t.dtype = ODC_FLOAT32;
  t.ndim = ndim;
  t.shape = shape;
  t.device_type = ODC_DEVICE_CPU;
  return t;
}

std::string load_error(const std::string& dir) {
  odc_module* m = odc_module_load(dir.c_str(), ODC_LOAD_DEFAULT);
  if (m != nullptr) {
    odc_module_free(m);
    return "";
  }
  return odc_last_error();
}

// A fresh standard module with one edit applied (then hashes refreshed unless told not to).
std::string damaged(const std::string& base, const std::string& name,
                    const std::function<void(json&)>& edit, bool fix_hashes = true) {
  static int counter = 0;
  const std::string dir = base + "/case" + std::to_string(counter++);
  write_standard(dir);
  json data = json::parse(read_text(dir + "/" + name));
  edit(data);
  write_text(dir + "/" + name, data.dump(1));
  if (fix_hashes && name != "manifest.json") refresh(dir);
  return dir;
}

void test_run(const std::string& dir) {
  odc_module* m = odc_module_load(dir.c_str(), ODC_LOAD_DEFAULT);
  CHECK(m != nullptr);
  if (m == nullptr) {
    std::fprintf(stderr, "load: %s\n", odc_last_error());
    return;
  }
  CHECK(odc_module_num_inputs(m) == 2);
  CHECK(odc_module_num_outputs(m) == 2);
  odc_value_info info;
  CHECK(odc_module_input_info(m, 1, &info) == 0);
  CHECK(std::string(info.name) == "z" && info.ndim == 2 && info.shape[1] == 4 && info.nbytes == 32);
  CHECK(odc_module_output_info(m, 2, &info) == -1);
  CHECK_CONTAINS(odc_last_error(), "output index 2 out of range");
  CHECK(odc_module_num_steps(m) == 4);
  odc_step_info step;
  CHECK(odc_module_step_info(m, 3, &step) == 0);
  CHECK(std::string(step.kernel_name) == "builtin.test.scale_f32" && std::string(step.node) == "affine");
  CHECK(odc_module_arena_size(m) == 128);

  float x[6] = {1, -2, 3, 0.5f, 0.25f, -1};
  float z[8] = {0, 1, 2, 3, -1, -2, -3, -4};
  float y[8], s[8];
  const int64_t sx[2] = {2, 3}, sz[2] = {2, 4};
  odc_tensor in[2] = {tensor(x, sx, 2), tensor(z, sz, 2)};
  odc_tensor out[2] = {tensor(y, sz, 2), tensor(s, sz, 2)};
  CHECK(odc_module_set_num_threads(m, 2) == 0 && odc_module_num_threads(m) == 2);
  CHECK(odc_module_run(m, in, 2, out, 2) == 0);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) {
      double h = kB[j];
      for (int k = 0; k < 3; ++k) h += double(x[i * 3 + k]) * kW[k * 4 + j];
      const double want_y = std::max(h, 0.0) + z[i * 4 + j];
      CHECK(std::fabs(y[i * 4 + j] - want_y) < 1e-5);
      CHECK(std::fabs(s[i * 4 + j] - (2 * want_y - 1)) < 1e-5);
    }
  }
  double seconds[4] = {-1, -1, -1, -1};
  CHECK(odc_module_profile(m, in, 2, out, 2, seconds, 4) == 0);
  CHECK(seconds[0] >= 0 && seconds[3] >= 0);
  CHECK(odc_module_profile(m, in, 2, out, 2, seconds, 3) == -1);

  // Caller-buffer checks.
  const int64_t wrong[2] = {3, 2};
  odc_tensor bad_in[2] = {tensor(x, wrong, 2), in[1]};
  CHECK(odc_module_run(m, bad_in, 2, out, 2) == -1);
  CHECK_CONTAINS(odc_last_error(), "run: inputs[0] 'x': shape [3, 2] != expected [2, 3]");
  bad_in[0] = in[0];
  bad_in[0].dtype = ODC_INT32;
  CHECK(odc_module_run(m, bad_in, 2, out, 2) == -1);
  CHECK_CONTAINS(odc_last_error(), "dtype int32 != expected float32");
  bad_in[0] = in[0];
  bad_in[0].data = nullptr;
  CHECK(odc_module_run(m, bad_in, 2, out, 2) == -1);
  CHECK_CONTAINS(odc_last_error(), "data is NULL");
  bad_in[0] = in[0];
  bad_in[0].ndim = 99;
  CHECK(odc_module_run(m, bad_in, 2, out, 2) == -1);
  CHECK_CONTAINS(odc_last_error(), "bad rank 99");
  CHECK(odc_module_run(m, in, 1, out, 2) == -1);
  CHECK(odc_module_run(m, nullptr, 2, out, 2) == -1);
  CHECK(odc_module_set_num_threads(m, 0) == -1);

  // The last error is per thread.
  std::string other;
  std::thread([&] {
    odc_module_load("/definitely/not/here", 0);
    other = odc_last_error();
  }).join();
  CHECK_CONTAINS(other, "cannot open module '/definitely/not/here'");
  CHECK_CONTAINS(odc_last_error(), "num_threads 0 must be in");  // unchanged on this thread
  CHECK(odc_module_run(m, in, 2, out, 2) == 0);
  odc_module_free(m);
}

void test_null_arguments() {
  CHECK(odc_module_load(nullptr, 0) == nullptr);
  CHECK_CONTAINS(odc_last_error(), "module path is NULL");
  CHECK(odc_module_num_inputs(nullptr) == -1);
  CHECK_CONTAINS(odc_last_error(), "module is NULL");
  CHECK(odc_module_run(nullptr, nullptr, 0, nullptr, 0) == -1);
  odc_module_free(nullptr);
  CHECK(std::string(odc_dtype_name(ODC_BFLOAT16)) == "bfloat16");
  CHECK(odc_dtype_name(99) == nullptr && odc_dtype_size(99) == 0 && odc_dtype_size(ODC_INT64) == 8);
  CHECK(odc_runtime_format_version() == 3);
  CHECK(odc::builtin_registration_errors().empty());
}

int32_t negate_f32(const odc_kernel_args* args, char*, int64_t) {
  const float* x = static_cast<const float*>(args->inputs[0].data);
  float* y = static_cast<float*>(args->outputs[0].data);
  for (int64_t i = 0; i < args->inputs[0].shape[0]; ++i) y[i] = -x[i];
  return 0;
}

int32_t resolver(const char* entry, void*, odc_kernel_fn* out, char* error, int64_t size) {
  if (std::string(entry) == "mod:negate") {
    *out = negate_f32;
    return 0;
  }
  return odc::kernel_error(error, size, "no such entry %s", entry);
}

void test_python_kind(const std::string& base) {
  const std::string dir = damaged(base, "manifest.json", [](json& m) {
    m["kernels"][1]["kind"] = "python";
    m["kernels"][1]["entry"] = "mod:negate";
  });
  CHECK_CONTAINS(load_error(dir),
                 "module needs Python: kernels[1] 'builtin.test.relu_f32' has kind 'python'");
  odc_set_python_kernel_resolver(resolver, nullptr);
  CHECK(load_error(dir).empty());
  const std::string bad = damaged(base, "manifest.json", [](json& m) {
    m["kernels"][1]["kind"] = "python";
    m["kernels"][1]["entry"] = "mod:other";
  });
  CHECK_CONTAINS(load_error(bad), "python entry 'mod:other': no such entry mod:other");
  odc_set_python_kernel_resolver(nullptr, nullptr);
}

void test_named_errors(const std::string& base) {
  struct Case {
    std::string file;
    std::function<void(json&)> edit;
    bool fix_hashes;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"manifest.json", [](json& m) { m["format_version"] = 4; }, false,
       "invalid module: manifest.json: format_version 4 is newer than this runtime (3)"},
      {"manifest.json", [](json& m) { m["format"] = "zip"; }, false,
       "invalid module: manifest.json: format 'zip' is not 'onnx-deploy-module'"},
      {"manifest.json", [](json& m) { m["files"]["weights.bin"]["size"] = 81; }, false,
       "invalid module: weights.bin: size 80 != 81 in manifest"},
      {"manifest.json", [](json& m) { m["files"]["plan.json"]["sha256"] = std::string(64, 'a'); }, false,
       "plan.json: sha256 differs from the manifest"},
      {"manifest.json", [](json& m) {
         m["kernels"][0]["kind"] = "shared_library";
         m["kernels"][0]["file"] = "kernels/0.so";
       }, false, "invalid module: kernels[0]: missing file kernels/0.so"},
      {"manifest.json", [](json& m) { m["files"]["/etc/passwd"] = {{"size", 1}, {"sha256", std::string(64, '0')}}; },
       false, "path must be relative"},
      {"plan.json", [](json& p) { p["values"][5]["offset"] = 4096; }, true,
       "invalid module: plan.json: values[5]: offset 4096 + nbytes 32 exceeds arena_size 128"},
      {"plan.json", [](json& p) { p["values"][5]["offset"] = 9223372036854775744LL; }, true,
       "offset 9223372036854775744 + nbytes 32 exceeds arena_size 128"},
      {"plan.json", [](json& p) { p["values"][5]["offset"] = 32; }, true,
       "values[5]: offset 32 is not a multiple of alignment 64"},
      {"plan.json", [](json& p) { p["values"][3]["offset"] = 128; }, true,
       "values[3]: offset 128 + nbytes 16 exceeds weights.bin size 80"},
      {"plan.json", [](json& p) { p["values"][4]["shape"] = {INT64_MAX, 2}; }, true,
       "overflows int64 bytes"},
      {"plan.json", [](json& p) { p["values"][4]["dtype"] = "string"; }, true,
       "values[4]: unknown dtype 'string'"},
      {"plan.json", [](json& p) { p["steps"][2]["inputs"] = {5, 1000}; }, true,
       "steps[2]: inputs[1]: value 1000 does not exist"},
      {"plan.json", [](json& p) { p["steps"][2]["inputs"] = {5, -2}; }, true,
       "steps[2]: inputs[1]: value -2 does not exist"},
      {"plan.json", [](json& p) { p["steps"][2]["kernel"] = -1; }, true,
       "steps[2]: kernel -1 is not in the kernel table"},
      {"plan.json", [](json& p) { p["steps"][0]["workspace"] = -5; }, true,
       "steps[0]: workspace -5 is not a sane size"},
      {"plan.json", [](json& p) { p["arena_size"] = -1; }, true, "arena_size -1 < 0"},
      {"plan.json", [](json& p) { p["values"] = json::object(); }, true,
       "plan.json: 'values' must be an array, got an object"},
  };
  for (const Case& c : cases) {
    const std::string dir = damaged(base, c.file, c.edit, c.fix_hashes);
    const std::string error = load_error(dir);
    CHECK_CONTAINS(error, c.expected);
    CHECK(error.find('\n') == std::string::npos);
  }
  {  // truncated weights, empty and garbage files
    std::string dir = damaged(base, "plan.json", [](json&) {});
    write_text(dir + "/weights.bin", std::string(10, '\0'));
    CHECK_CONTAINS(load_error(dir), "invalid module: weights.bin: size 10 != 80 in manifest");
    write_text(dir + "/manifest.json", "");
    CHECK_CONTAINS(load_error(dir), "invalid module: manifest.json: empty file");
    write_text(dir + "/manifest.json", "{\"format\": \xff\xfe");
    const std::string garbage = load_error(dir);
    CHECK_CONTAINS(garbage, "invalid module: manifest.json: not valid JSON: parse error");
    ::unlink((dir + "/manifest.json").c_str());
    CHECK_CONTAINS(load_error(dir), "invalid module: manifest.json: missing file");
  }
}

// Random damage to plan.json or manifest.json: each load either succeeds or fails with a
// one-line message, and successful loads run.
void test_random_damage(const std::string& base) {
  const std::string dir = base + "/fuzz";
  write_standard(dir);
  const std::string plan = read_text(dir + "/plan.json");
  const std::string manifest = read_text(dir + "/manifest.json");
  std::mt19937 rng(7);
  const char alphabet[] = "0123456789-+.eE[]{}\",: \x00\xff\\ntruefalsnul";
  int errors = 0, loads = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    const bool damage_plan = trial % 2 == 0;
    std::string data = damage_plan ? plan : manifest;
    const int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % data.size();
      switch (rng() % 3) {
        case 0: data[at] = alphabet[rng() % (sizeof(alphabet) - 1)]; break;
        case 1: data.erase(at, 1 + rng() % 8); break;
        default: data.insert(at, 1, alphabet[rng() % (sizeof(alphabet) - 1)]); break;
      }
      if (data.empty()) data = "{";
    }
    write_text(dir + "/manifest.json", manifest);
    write_text(dir + "/plan.json", plan);
    if (damage_plan) {
      write_text(dir + "/plan.json", data);
      refresh(dir);
    } else {
      write_text(dir + "/manifest.json", data);
    }
    odc_module* m = odc_module_load(dir.c_str(), ODC_LOAD_DEFAULT);
    if (m == nullptr) {
      ++errors;
      CHECK(std::strchr(odc_last_error(), '\n') == nullptr && odc_last_error()[0] != '\0');
      continue;
    }
    ++loads;
    // Whatever loaded must run on buffers of its own signature without touching memory it
    // does not own (ASan watches).
    std::vector<std::vector<float>> storage;
    std::vector<odc_tensor> tensors[2];
    for (int side = 0; side < 2; ++side) {
      const int32_t n = side == 0 ? odc_module_num_inputs(m) : odc_module_num_outputs(m);
      for (int32_t i = 0; i < n; ++i) {
        odc_value_info info;
        (side == 0 ? odc_module_input_info : odc_module_output_info)(m, i, &info);
        storage.emplace_back(size_t(info.nbytes / 4 + 1), 0.5f);
        odc_tensor t = tensor(storage.back().data(), info.shape, info.ndim);
        t.dtype = info.dtype;
        tensors[side].push_back(t);
      }
    }
    odc_module_run(m, tensors[0].data(), int32_t(tensors[0].size()), tensors[1].data(),
                   int32_t(tensors[1].size()));
    odc_module_free(m);
  }
  CHECK(errors > 300);
  std::printf("random damage: %d rejected, %d loaded\n", errors, loads);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--write-module") {
    write_standard(argv[2]);
    return 0;
  }
  char pattern[] = "/tmp/odc_test_module_XXXXXX";
  const char* base_ptr = ::mkdtemp(pattern);
  if (base_ptr == nullptr) return 1;
  const std::string base = base_ptr;
  write_standard(base + "/standard");
  test_null_arguments();
  test_run(base + "/standard");
  test_named_errors(base);
  test_python_kind(base);
  test_random_damage(base);
  const int rc = odc_test::finish("test_module");
  if (rc == 0) std::system(("rm -rf '" + base + "'").c_str());
  return rc;
}
