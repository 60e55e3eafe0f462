// Modules that target cuda (format version 2) without a GPU: every check of the loader runs
// before the driver is opened, so each damage gives its named error here; an intact module gets
// as far as "NVIDIA driver not found" (ODC_CUDA_DRIVER points at a library that does not exist,
// so the result is the same on machines with a driver). Random damage to the cuda plan and
// manifest must never crash (CI runs this under ASan/UBSan).
// `test_cuda_module --write-module DIR` writes the module (for runner_cli.cmake).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "odc/runtime.h"
#include "sha256.h"

using json = nlohmann::json;

namespace {

const char kNoDriver[] = "module targets cuda: NVIDIA driver not found (/nonexistent/libcuda.so.1)";

using odc_test::read_text;
using odc_test::write_text;

void refresh(const std::string& dir) {
  json manifest = json::parse(read_text(dir + "/manifest.json"));
  for (auto& [name, entry] : manifest["files"].items()) {
    std::string data = read_text(dir + "/" + name);
    entry = {{"size", data.size()}, {"sha256", odc::sha256_hex(data.data(), data.size())}};
  }
  write_text(dir + "/manifest.json", manifest.dump(1));
}

// As tests/runtime/cuda_modules.py's standard cuda module: x, z inputs [2, 4]; w weights; h
// arena; y, s outputs; kernels axpb (ptr ptr ptr i32 f32 ptr) and add_ws (ptr ptr ptr i64 ptr).
void write_cuda_module(const std::string& dir) {
  ::mkdir(dir.c_str(), 0755);
  ::mkdir((dir + "/kernels").c_str(), 0755);
  write_text(dir + "/weights.bin", std::string(32, '\x01'));
  write_text(dir + "/kernels/0.cubin", "placeholder cubin 0");
  write_text(dir + "/kernels/1.cubin", "placeholder cubin 1");
  auto value = [](int id, const char* name, const char* storage) {
    return json{{"id", id},           {"name", name},       {"dtype", "float32"},
                {"shape", {2, 4}},    {"storage", storage}, {"device", "cuda"}};
  };
  json values = json::array({value(0, "x", "input"), value(1, "z", "input"),
                             value(2, "w", "weights"), value(3, "h", "arena"),
                             value(4, "y", "output"), value(5, "s", "output")});
  values[2]["offset"] = 0;
  values[2]["nbytes"] = 32;
  values[3]["offset"] = 0;
  values[3]["nbytes"] = 32;
  json axpb_args = json::array({{{"in", 0}}, {{"in", 1}}, {{"out", 0}}, {{"i32", 8}},
                                {{"f32", 2.0}}, {{"null", 0}}});
  json add_args = json::array({{{"in", 0}}, {{"in", 1}}, {{"out", 0}}, {{"i64", 8}},
                               {{"workspace", 0}}});
  json steps = json::array(
      {{{"kernel", 0}, {"node", "scale"}, {"inputs", {0, 2}}, {"outputs", {3}},
        {"grid", {1, 1, 1}}, {"args", axpb_args}},
       {{"kernel", 1}, {"node", "residual"}, {"inputs", {3, 1}}, {"outputs", {4}},
        {"workspace", 32}, {"grid", {1, 1, 1}}, {"args", add_args}},
       {{"kernel", 0}, {"node", "negate"}, {"inputs", {4, 2}}, {"outputs", {5}},
        {"grid", {1, 1, 1}}, {"args", axpb_args}}});
  json plan = {{"alignment", 64}, {"arena_size", 64}, {"values", values}, {"steps", steps}};
  write_text(dir + "/plan.json", plan.dump(1));
  auto kernel = [](int id, const char* entry, std::vector<std::string> params) {
    return json{{"id", id},
                {"name", std::string("test.") + entry},
                {"backend", "test"},
                {"kind", "cubin"},
                {"file", "kernels/" + std::to_string(id) + ".cubin"},
                {"entry", entry},
                {"version", 1},
                {"launch", {{"num_warps", 4}, {"shared", 0}, {"params", params}}}};
  };
  auto io = [](const char* name, int value) {
    return json{{"name", name}, {"dtype", "float32"}, {"shape", {2, 4}}, {"value", value}};
  };
  json manifest = {
      {"format", "onnx-deploy-module"},
      {"format_version", 2},
      {"producer", {{"name", "test_cuda_module.cpp"}, {"version", "0"}}},
      {"targets", {"cuda"}},
      {"cuda", {{"arch", "sm_90"}}},
      {"inputs", {io("x", 0), io("z", 1)}},
      {"outputs", {io("y", 4), io("s", 5)}},
      {"kernels", {kernel(0, "axpb", {"ptr", "ptr", "ptr", "i32", "f32", "ptr"}),
                   kernel(1, "add_ws", {"ptr", "ptr", "ptr", "i64", "ptr"})}},
      {"files",
       {{"plan.json", json::object()}, {"weights.bin", json::object()},
        {"kernels/0.cubin", json::object()}, {"kernels/1.cubin", json::object()}}}};
  write_text(dir + "/manifest.json", manifest.dump(1));
  refresh(dir);
}

std::string load_error(const std::string& dir) {
  odc_module* m = odc_module_load(dir.c_str(), ODC_LOAD_DEFAULT);
  if (m != nullptr) {
    odc_module_free(m);
    return "";
  }
  return odc_last_error();
}

std::string damaged(const std::string& base, const std::string& name,
                    const std::function<void(json&)>& edit) {
  static int counter = 0;
  const std::string dir = base + "/case" + std::to_string(counter++);
  write_cuda_module(dir);
  json data = json::parse(read_text(dir + "/" + name));
  edit(data);
  write_text(dir + "/" + name, data.dump(1));
  if (name != "manifest.json") refresh(dir);
  return dir;
}

void test_named_errors(const std::string& base) {
  struct Case {
    std::string file;
    std::function<void(json&)> edit;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"manifest.json", [](json& m) { m["kernels"][0]["launch"]["num_warps"] = 0; },
       "manifest.json: kernels[0]: launch: num_warps 0 must be in [1, 32]"},
      {"manifest.json", [](json& m) { m["kernels"][1]["launch"]["params"][3] = "u64"; },
       "kernels[1]: launch: params[3] 'u64' is not one of 'ptr', 'i32', 'i64', 'f32'"},
      {"manifest.json", [](json& m) { m["kernels"][0]["launch"]["shared"] = int64_t(1) << 40; },
       "kernels[0]: launch: shared 1099511627776 must be in [0, 1048576] bytes"},
      {"manifest.json", [](json& m) { m["kernels"][0].erase("launch"); },
       "manifest.json: kernels[0]: missing 'launch'"},
      {"manifest.json", [](json& m) { m["cuda"]["arch"] = "sm_9"; },
       "manifest.json: cuda: arch 'sm_9' is not a CUDA architecture like 'sm_90'"},
      {"manifest.json", [](json& m) { m["targets"] = {"cuda", "cpu"}; },
       "must be exactly one of 'cpu', 'cuda'"},
      {"manifest.json", [](json& m) { m["format_version"] = 1; },
       "manifest.json: target 'cuda' needs format_version 2 (this is 1)"},
      {"plan.json", [](json& p) { p["steps"][0]["grid"] = {1, 1, 0}; },
       "plan.json: steps[0]: grid[2] 0 must be in [1, 65535]"},
      {"plan.json", [](json& p) { p["steps"][0]["grid"] = {int64_t(1) << 31, 1, 1}; },
       "plan.json: steps[0]: grid[0] 2147483648 must be in [1, 2147483647]"},
      {"plan.json", [](json& p) { p["steps"][1]["args"].erase(0); },
       "plan.json: steps[1]: 4 args for the 5 launch params of kernels[1] 'test.add_ws'"},
      {"plan.json", [](json& p) { p["steps"][1]["args"][3] = {{"i32", 8}}; },
       "steps[1]: args[3]: i32 argument for launch param 3 of type 'i64'"},
      {"plan.json", [](json& p) { p["steps"][2]["args"][1] = {{"in", 7}}; },
       "steps[2]: args[1]: in 7 is out of range (the step has 2 inputs)"},
      {"plan.json", [](json& p) { p["steps"][0]["args"][3] = {{"i32", -2147483649LL}}; },
       "steps[0]: args[3]: i32 -2147483649 is out of int32 range"},
      {"plan.json", [](json& p) { p["steps"][0]["args"][5] = {{"workspace", 0}}; },
       "steps[0]: args[5]: workspace argument but the step's workspace is 0 bytes"},
      {"plan.json", [](json& p) { p["steps"][0]["args"][0] = json::array({1}); },
       "steps[0]: args[0] must be an object with one member"},
      {"plan.json", [](json& p) { p["values"][3]["device"] = "cpu"; },
       "plan.json: values[3]: device 'cpu' in a module that targets cuda"},
      {"plan.json", [](json& p) { p["arena_size"] = int64_t(1) << 41; },
       "plan.json: arena_size 2199023255552 exceeds 1 TiB"},
  };
  for (const Case& c : cases) {
    const std::string error = load_error(damaged(base, c.file, c.edit));
    CHECK_CONTAINS(error, c.expected);
    CHECK(error.find('\n') == std::string::npos);
  }
  {  // the cubin file itself: missing, edited
    const std::string dir = damaged(base, "plan.json", [](json&) {});
    write_text(dir + "/kernels/1.cubin", "PLACEHOLDER CUBIN 1");
    CHECK_CONTAINS(load_error(dir), "invalid module: kernels/1.cubin: sha256 differs");
    ::unlink((dir + "/kernels/0.cubin").c_str());
    CHECK_CONTAINS(load_error(dir), "invalid module: kernels[0]: missing file kernels/0.cubin");
  }
}

void test_driver_not_found(const std::string& base) {
  const std::string dir = base + "/intact";
  write_cuda_module(dir);
  CHECK(load_error(dir) == kNoDriver);
  CHECK(load_error(dir) == kNoDriver);  // a failed open is tried again, with the same answer
}

void test_random_damage(const std::string& base) {
  const std::string dir = base + "/fuzz";
  write_cuda_module(dir);
  const std::string plan = read_text(dir + "/plan.json");
  const std::string manifest = read_text(dir + "/manifest.json");
  std::mt19937 rng(11);
  const char alphabet[] = "0123456789-+.eE[]{}\",: \x00\xff\\ntruefalsnul";
  int errors = 0, no_driver = 0;
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
    if (m != nullptr) {  // only a damage that made it a cpu module could load
      odc_module_free(m);
      continue;
    }
    ++errors;
    CHECK(std::strchr(odc_last_error(), '\n') == nullptr && odc_last_error()[0] != '\0');
    if (std::string(odc_last_error()) == kNoDriver) ++no_driver;
  }
  CHECK(errors > 1000);
  std::printf("random damage: %d rejected (%d passed validation: driver not found)\n", errors,
              no_driver);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--write-module") {
    write_cuda_module(argv[2]);
    return 0;
  }
  ::setenv("ODC_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  char pattern[] = "/tmp/odc_test_cuda_module_XXXXXX";
  const char* base_ptr = ::mkdtemp(pattern);
  if (base_ptr == nullptr) return 1;
  const std::string base = base_ptr;
  test_driver_not_found(base);
  test_named_errors(base);
  test_random_damage(base);
  const int rc = odc_test::finish("test_cuda_module");
  if (rc == 0) std::system(("rm -rf '" + base + "'").c_str());
  return rc;
}
