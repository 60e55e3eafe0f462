// Multi-target modules (format version 3): the cubin / GPU compatibility rule, picking cpu when
// the driver is missing (forced with ODC_CUDA_DRIVER), forcing a target, running the picked cpu
// part, and random damage to the index and to a part: always a one-line error or a clean load,
// never a crash (this test also runs under ASan + UBSan in CI).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "loader.h"
#include "odc/runtime.h"
#include "sha256.h"

using json = nlohmann::json;

namespace {

const char kNoDriver[] = "module targets cuda: NVIDIA driver not found (/nonexistent/libcuda.so.1)";

using odc_test::read_text;
using odc_test::write_text;

json entry_of(const std::string& path) {
  const std::string data = read_text(path);
  return {{"size", data.size()}, {"sha256", odc::sha256_hex(data.data(), data.size())}};
}

void refresh(const std::string& dir) {
  json manifest = json::parse(read_text(dir + "/manifest.json"));
  for (auto& [name, entry] : manifest["files"].items()) entry = entry_of(dir + "/" + name);
  write_text(dir + "/manifest.json", manifest.dump(1));
}

json io(const char* name, int value) {
  return {{"name", name}, {"dtype", "float32"}, {"shape", {2, 4}}, {"value", value}};
}

json value(int id, const char* name, const char* storage, const char* device) {
  return {{"id", id},        {"name", name},       {"dtype", "float32"},
          {"shape", {2, 4}}, {"storage", storage}, {"device", device}};
}

// y = x + z; s = 2 y - 1 with the runtime's test kernels.
void write_cpu_part(const std::string& dir) {
  ::mkdir(dir.c_str(), 0755);
  json values = json::array({value(0, "x", "input", "cpu"), value(1, "z", "input", "cpu"),
                             value(2, "y", "output", "cpu"), value(3, "s", "output", "cpu")});
  json steps = json::array(
      {{{"kernel", 0}, {"node", "add"}, {"inputs", {0, 1}}, {"outputs", {2}}},
       {{"kernel", 1}, {"node", "affine"}, {"inputs", {2}}, {"outputs", {3}},
        {"iparams", {0}}, {"fparams", {2.0, -1.0}}}});
  write_text(dir + "/plan.json",
             json{{"alignment", 64}, {"arena_size", 0}, {"values", values}, {"steps", steps}}.dump(1));
  auto kernel = [](int id, const char* entry) {
    return json{{"id", id}, {"name", entry}, {"backend", "test"}, {"kind", "builtin"},
                {"entry", entry}, {"file", nullptr}, {"version", 1}};
  };
  json manifest = {{"format", "onnx-deploy-module"},
                   {"format_version", 1},
                   {"producer", {{"name", "test_multi_target.cpp"}, {"version", "0"}}},
                   {"targets", {"cpu"}},
                   {"inputs", {io("x", 0), io("z", 1)}},
                   {"outputs", {io("y", 2), io("s", 3)}},
                   {"kernels", {kernel(0, "test.add_f32"), kernel(1, "test.scale_f32")}},
                   {"files", {{"plan.json", json::object()}}}};
  write_text(dir + "/manifest.json", manifest.dump(1));
  refresh(dir);
}

// The same signature on cuda: one placeholder cubin step (validated, never handed to a driver).
void write_cuda_part(const std::string& dir) {
  ::mkdir(dir.c_str(), 0755);
  ::mkdir((dir + "/kernels").c_str(), 0755);
  write_text(dir + "/kernels/0.cubin", "placeholder cubin");
  json values = json::array({value(0, "x", "input", "cuda"), value(1, "z", "input", "cuda"),
                             value(2, "y", "output", "cuda"), value(3, "s", "output", "cuda")});
  json args = json::array({{{"in", 0}}, {{"in", 1}}, {{"out", 0}}, {{"out", 1}}, {{"i32", 8}}});
  json steps = json::array({{{"kernel", 0}, {"node", "fused"}, {"inputs", {0, 1}},
                             {"outputs", {2, 3}}, {"grid", {1, 1, 1}}, {"args", args}}});
  write_text(dir + "/plan.json",
             json{{"alignment", 64}, {"arena_size", 0}, {"values", values}, {"steps", steps}}.dump(1));
  json kernel = {{"id", 0}, {"name", "test.fused"}, {"backend", "test"}, {"kind", "cubin"},
                 {"file", "kernels/0.cubin"}, {"entry", "fused"}, {"version", 1},
                 {"launch", {{"num_warps", 4}, {"shared", 0},
                             {"params", {"ptr", "ptr", "ptr", "ptr", "i32"}}}}};
  json manifest = {{"format", "onnx-deploy-module"},
                   {"format_version", 2},
                   {"producer", {{"name", "test_multi_target.cpp"}, {"version", "0"}}},
                   {"targets", {"cuda"}},
                   {"cuda", {{"arch", "sm_90"}}},
                   {"inputs", {io("x", 0), io("z", 1)}},
                   {"outputs", {io("y", 2), io("s", 3)}},
                   {"kernels", {kernel}},
                   {"files", {{"plan.json", json::object()}, {"kernels/0.cubin", json::object()}}}};
  write_text(dir + "/manifest.json", manifest.dump(1));
  refresh(dir);
}

void write_index(const std::string& dir) {
  json sig_in = json::array({{{"name", "x"}, {"dtype", "float32"}, {"shape", {2, 4}}},
                             {{"name", "z"}, {"dtype", "float32"}, {"shape", {2, 4}}}});
  json sig_out = json::array({{{"name", "y"}, {"dtype", "float32"}, {"shape", {2, 4}}},
                              {{"name", "s"}, {"dtype", "float32"}, {"shape", {2, 4}}}});
  json index = {{"format", "onnx-deploy-module"},
                {"format_version", 3},
                {"producer", {{"name", "test_multi_target.cpp"}, {"version", "0"}}},
                {"targets", {"cpu", "cuda"}},
                {"inputs", sig_in},
                {"outputs", sig_out},
                {"files", {{"cpu/manifest.json", json::object()},
                           {"cuda/manifest.json", json::object()}}}};
  write_text(dir + "/manifest.json", index.dump(1));
  refresh(dir);
}

void write_multi_module(const std::string& dir) {
  ::mkdir(dir.c_str(), 0755);
  write_cpu_part(dir + "/cpu");
  write_cuda_part(dir + "/cuda");
  write_index(dir);
}

void test_cubin_compatibility() {
  CHECK(odc::cubin_runs_on("sm_90", 9, 0));
  CHECK(!odc::cubin_runs_on("sm_90", 8, 9));
  CHECK(!odc::cubin_runs_on("sm_90", 10, 0));
  CHECK(odc::cubin_runs_on("sm_80", 8, 6));
  CHECK(!odc::cubin_runs_on("sm_86", 8, 0));
  CHECK(odc::cubin_runs_on("sm_90a", 9, 0));
  CHECK(!odc::cubin_runs_on("sm_100a", 10, 3));
  CHECK(odc::cubin_runs_on("sm_100f", 10, 3));
  CHECK(odc::cubin_runs_on("sm_120", 12, 0));
  CHECK(!odc::cubin_runs_on("sm_", 9, 0));
  CHECK(!odc::cubin_runs_on("sm_9x", 9, 0));
}

void test_pick_and_run(const std::string& base) {
  const std::string dir = base + "/intact";
  write_multi_module(dir);
  odc_module* m = odc_module_load(dir.c_str(), ODC_LOAD_DEFAULT);
  CHECK(m != nullptr);
  if (m == nullptr) {
    std::fprintf(stderr, "load: %s\n", odc_last_error());
    return;
  }
  CHECK(odc_module_device_type(m) == ODC_DEVICE_CPU);
  CHECK(std::string(odc_module_targets(m)) == "cpu,cuda");
  CHECK(std::string(odc_module_target_note(m)) ==
        "cuda skipped: NVIDIA driver not found (/nonexistent/libcuda.so.1)");
  float x[8], z[8], y[8], s[8];
  for (int i = 0; i < 8; ++i) x[i] = float(i), z[i] = 0.5f * float(i);
  const int64_t shape[2] = {2, 4};
  auto tensor = [&](float* data) {
    odc_tensor t{};
    t.data = data;
    t.dtype = ODC_FLOAT32;
    t.ndim = 2;
    t.shape = shape;
    t.device_type = ODC_DEVICE_CPU;
    return t;
  };
  odc_tensor inputs[2] = {tensor(x), tensor(z)}, outputs[2] = {tensor(y), tensor(s)};
  CHECK(odc_module_run(m, inputs, 2, outputs, 2) == 0);
  for (int i = 0; i < 8; ++i) CHECK(y[i] == 1.5f * float(i) && s[i] == 3.0f * float(i) - 1.0f);
  odc_module_free(m);

  m = odc_module_load(dir.c_str(), ODC_LOAD_TARGET_CPU);
  CHECK(m != nullptr && std::string(odc_module_target_note(m)).empty());
  odc_module_free(m);
  CHECK(odc_module_load(dir.c_str(), ODC_LOAD_TARGET_CUDA) == nullptr);
  CHECK(std::string(odc_last_error()) == kNoDriver);
  CHECK(odc_module_load(dir.c_str(), ODC_LOAD_TARGET_CPU | ODC_LOAD_TARGET_CUDA) == nullptr);
  CHECK_CONTAINS(std::string(odc_last_error()), "exclude each other");
  // Each part alone is a module; a forced target it does not carry is refused.
  CHECK(odc_module_load((dir + "/cpu").c_str(), ODC_LOAD_TARGET_CUDA) == nullptr);
  CHECK(std::string(odc_last_error()) == "module has no cuda target (it carries cpu)");
}

// Random edits of the index or of the cuda part's plan (hashes kept consistent for the plan):
// every outcome is a one-line error or a load.
void test_random_damage(const std::string& base) {
  const std::string dir = base + "/fuzz";
  write_multi_module(dir);
  const std::string index = read_text(dir + "/manifest.json");
  const std::string cuda_manifest = read_text(dir + "/cuda/manifest.json");
  const std::string plan = read_text(dir + "/cuda/plan.json");
  std::mt19937 rng(5);
  const char alphabet[] = "0123456789-+.eE[]{}\",: \x00\xff\\ntruefalsnulcpuda/";
  int errors = 0;
  for (int trial = 0; trial < 1200; ++trial) {
    const bool damage_plan = trial % 2 == 0;
    std::string data = damage_plan ? plan : index;
    for (int e = 0, edits = 1 + int(rng() % 3); e < edits; ++e) {
      const size_t at = rng() % data.size();
      switch (rng() % 3) {
        case 0: data[at] = alphabet[rng() % (sizeof(alphabet) - 1)]; break;
        case 1: data.erase(at, 1 + rng() % 8); break;
        default: data.insert(at, 1, alphabet[rng() % (sizeof(alphabet) - 1)]); break;
      }
      if (data.empty()) data = "{";
    }
    write_text(dir + "/manifest.json", index);
    write_text(dir + "/cuda/manifest.json", cuda_manifest);
    write_text(dir + "/cuda/plan.json", plan);
    if (damage_plan) {
      write_text(dir + "/cuda/plan.json", data);
      refresh(dir + "/cuda");
      refresh(dir);
    } else {
      write_text(dir + "/manifest.json", data);
    }
    odc_module* m = odc_module_load(dir.c_str(), ODC_LOAD_DEFAULT);
    if (m != nullptr) {
      odc_module_free(m);
      continue;
    }
    ++errors;
    CHECK(std::strchr(odc_last_error(), '\n') == nullptr && odc_last_error()[0] != '\0');
  }
  CHECK(errors > 400);
  std::printf("random damage: %d of 1200 rejected\n", errors);
}

#ifdef ODC_FAKE_CUDA_DRIVER
std::string note_of(const std::string& dir, uint32_t flags = ODC_LOAD_DEFAULT) {
  odc_module* m = odc_module_load(dir.c_str(), flags);
  if (m == nullptr) return std::string("error: ") + odc_last_error();
  std::string note = std::string(odc_module_device_type(m) == ODC_DEVICE_CUDA ? "cuda" : "cpu") +
                     ": " + odc_module_target_note(m);
  odc_module_free(m);
  return note;
}

// With a "driver" (tests/fake_cuda_driver.cpp) whose devices are set per call. Last: the
// process keeps the first driver it opened successfully.
void test_fake_driver(const std::string& base) {
  const std::string dir = base + "/fake";
  write_multi_module(dir);
  ::setenv("ODC_CUDA_DRIVER", ODC_FAKE_CUDA_DRIVER, 1);
  ::setenv("FAKE_CUDA_CC", "8.0", 1);
  CHECK(note_of(dir) == "cpu: cuda skipped: GPU 0 is sm_80, the module's cubins are built for sm_90");
  ::setenv("FAKE_CUDA_CC", "12.0", 1);
  CHECK(note_of(dir) == "cpu: cuda skipped: GPU 0 is sm_120, the module's cubins are built for sm_90");
  ::setenv("FAKE_CUDA_DEVICES", "0", 1);
  CHECK(note_of(dir) == "cpu: cuda skipped: no CUDA device");
  // A matching GPU on which preparing fails (the fake fails every real call): auto falls back.
  ::setenv("FAKE_CUDA_DEVICES", "1", 1);
  ::setenv("FAKE_CUDA_CC", "9.0", 1);
  CHECK(note_of(dir) ==
        "cpu: cuda skipped: module targets cuda: cuDevicePrimaryCtxRetain: "
        "CUDA_ERROR_NOT_SUPPORTED (fake driver for tests)");
  CHECK(note_of(dir, ODC_LOAD_TARGET_CUDA) ==
        "error: module targets cuda: cuDevicePrimaryCtxRetain: CUDA_ERROR_NOT_SUPPORTED (fake "
        "driver for tests)");
  CHECK(note_of(dir, ODC_LOAD_TARGET_CPU) == "cpu: ");
}
#endif

}  // namespace

int main() {
  ::setenv("ODC_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  char pattern[] = "/tmp/odc_test_multi_target_XXXXXX";
  const char* base_ptr = ::mkdtemp(pattern);
  if (base_ptr == nullptr) return 1;
  const std::string base = base_ptr;
  test_cubin_compatibility();
  test_pick_and_run(base);
  test_random_damage(base);
#ifdef ODC_FAKE_CUDA_DRIVER
  test_fake_driver(base);
#endif
  const int rc = odc_test::finish("test_multi_target");
  if (rc == 0) std::system(("rm -rf '" + base + "'").c_str());
  return rc;
}
