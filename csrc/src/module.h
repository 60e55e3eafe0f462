// The loaded module: the validated plan, its memory (arena, workspace, mapped weights) and the
// prebuilt kernel-call descriptors. Loading (loader.cpp) validates everything against
// docs/module-format.md; running (executor.cpp) then needs no checks beyond the caller's
// buffers.
#ifndef ODC_MODULE_H_
#define ODC_MODULE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "odc/abi.h"
#include "odc/runtime.h"
#include "util.h"

namespace odc {

enum class Storage { kInput, kOutput, kWeights, kArena };

// Where a module's plan runs: every value and kernel of one module lives on one device.
enum class Device { kCpu, kCuda };

// A cubin kernel's parameter types (manifest kernels[i].launch.params).
enum class ParamType { kPtr, kI32, kI64, kF32 };

// One launch argument of a cubin step (plan steps[i].args): a step tensor's device pointer,
// a scalar, NULL or the step's workspace.
enum class ArgKind { kIn, kOut, kI32, kI64, kF32, kNull, kWorkspace };
struct LaunchArg {
  ArgKind kind = ArgKind::kNull;
  int64_t integer = 0;  // in / out: index in the step's inputs / outputs; i32 / i64: the value
  double real = 0.0;    // f32
};

struct CudaState;  // cuda_executor.cpp
struct CudaStateDeleter {
  void operator()(CudaState* state) const;
};

struct Value {
  int64_t id = 0;
  std::string name;
  int32_t dtype = 0;
  std::vector<int64_t> shape;
  Storage storage = Storage::kArena;
  int64_t offset = 0;  // weights / arena only
  int64_t nbytes = 0;
  int32_t signature_index = -1;  // input / output: index in the module's inputs / outputs
};

struct Kernel {
  int64_t id = 0;
  std::string name, backend, kind, entry, file;
  odc_kernel_fn fn = nullptr;
  // kind "cubin"
  int32_t num_warps = 0;
  int64_t shared = 0;  // dynamic shared memory bytes
  std::vector<ParamType> params;
};

// An alternative launch of a cubin step (plan steps[i].tactics[t]): same inputs and outputs,
// another kernel (tiling, warps, stages), grid and arguments.
struct Tactic {
  int32_t kernel = 0;  // index into Module::kernels
  uint32_t grid[3] = {1, 1, 1};
  std::vector<LaunchArg> args;
  int64_t workspace = 0;
  std::string name;
};

struct Step {
  int32_t kernel = 0;  // index into Module::kernels
  std::string node;
  std::vector<int32_t> inputs;  // value indices; -1 = omitted optional input
  std::vector<int32_t> outputs;
  std::vector<int64_t> iparams;
  std::vector<double> fparams;
  int64_t workspace = 0;
  // cubin steps
  uint32_t grid[3] = {1, 1, 1};
  std::vector<LaunchArg> args;
  // Tactics (cuda): alternatives of the launch above; which one runs is chosen at load
  // (0: the step's own launch, t + 1: tactics[t]) from timing (tune) or the tactics cache.
  std::vector<Tactic> tactics;
  std::string tactic_key, tactic_name;  // informative: known-tactics table key, config name
  int32_t chosen = 0;
  std::string tactic_source = "default";  // "default", "cache" or "tuned"
  std::vector<double> tactic_seconds;     // per candidate (0 = the step's own); -1 = not timed
  std::vector<const char*> tactic_names;  // per candidate, for the C API
  // Built once at load; caller-bound entries get their data pointer at each run.
  std::vector<odc_tensor> input_tensors, output_tensors;
};

struct SignatureEntry {
  std::string name;
  int32_t value = 0;  // value index
};

// Where each run patches a caller's buffer into a step's descriptor.
struct Binding {
  int32_t step;
  bool is_output;  // in the step's outputs (else inputs)
  int32_t slot;
  bool caller_output;  // the caller's outputs (else inputs)
  int32_t index;       // signature index
};

// The process-wide resolver for kind "python" kernels (installed by the Python bindings).
void set_python_resolver(odc_python_kernel_resolver resolver, void* user_data);

class Module {
 public:
  // Loads and validates a module directory; throws odc::Error with the one-line message.
  static std::unique_ptr<Module> load(const std::string& directory, uint32_t flags);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Runs the plan (serialized per module). step_seconds: nullptr or one entry per step.
  // stream (cuda modules): the caller's CUstream to enqueue the run on, nullptr for the
  // module's own (see odc_module_run_on_stream).
  void run(const odc_tensor* inputs, int32_t num_inputs, const odc_tensor* outputs,
           int32_t num_outputs, double* step_seconds, void* stream = nullptr);

  void set_num_threads(int32_t n);

  std::vector<Value> values;
  std::vector<Kernel> kernels;
  std::vector<Step> steps;
  std::vector<SignatureEntry> inputs, outputs;
  int64_t arena_size = 0;
  int64_t alignment = 64;
  int64_t workspace_size = 0;
  int32_t num_threads = 1;
  Device device = Device::kCpu;
  std::string cuda_arch;     // manifest cuda.arch, e.g. "sm_90"
  std::string targets;       // the targets the module directory carries: "cpu", "cpu,cuda"...
  std::string target_note;   // why loading skipped a target ("" when none was skipped)
  bool cuda_graphs = true;   // capture the first run into a CUDA graph, replay it later
  bool cuda_tune = false;    // time every step's tactics at load (ODC_LOAD_CUDA_TUNE)
  std::string plan_sha256;   // manifest files["plan.json"].sha256: the tactics cache's key
  std::string tactics_note;  // why the tactics cache was not read or written ("" if it was)
  void* cuda_stream() const;  // the CUstream runs are ordered on (NULL for CPU modules)
  // Device memory in the module's context (device outputs); freed with cuda_free.
  void* cuda_alloc(int64_t bytes);
  void cuda_free(void* pointer);

 private:
  Module() = default;
  friend class Loader;
  friend class ValidatedModule;
  void prepare();  // allocates memory and builds the descriptors (after validation)
  void prepare_cuda();  // opens the driver, uploads weights, loads cubins (cuda_executor.cpp)
  void run_cuda(const odc_tensor* inputs, const odc_tensor* outputs, double* step_seconds,
                void* stream);
  void run_cuda_locked(const odc_tensor* inputs, const odc_tensor* outputs,
                       double* step_seconds, void* stream);
  void release_cuda() noexcept;
  void select_tactics();  // cuda_tactics.cpp: cached choices, or timing with cuda_tune
  void check_caller_tensor(const odc_tensor& tensor, const SignatureEntry& entry,
                           const char* what, int32_t index) const;

  AlignedBuffer arena_, workspace_;
  uint8_t* weights_ = nullptr;  // mmap'ed read-only
  size_t weights_size_ = 0;
  std::vector<void*> libraries_;  // dlopen handles
  std::vector<Binding> bindings_;
  std::mutex run_mutex_;
  std::string directory_;  // for messages and reading cubins
  std::unique_ptr<CudaState, CudaStateDeleter> cuda_;
};

}  // namespace odc

#endif  // ODC_MODULE_H_
