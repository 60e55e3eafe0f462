// optimizer._runtime: the thin pybind11 skin over the C API (odc/runtime.h). Errors become
// optimizer.runtime.errors.ModuleError; NumPy arrays are passed by pointer (the Python layer,
// optimizer/runtime/module.py, checks names and allocates outputs); the GIL is released while
// loading and running.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "odc/registry.h"
#include "odc/runtime.h"

namespace py = pybind11;

namespace {

struct RuntimeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void raise_last_error() { throw RuntimeFailure(odc_last_error()); }

// Element type of a NumPy array as enum odc_dtype (0 when the runtime has no such type).
int32_t dtype_of(const py::array& array) {
  const py::dtype dtype = array.dtype();
  const char kind = dtype.kind();
  const auto size = dtype.itemsize();
  if (kind == 'f') return size == 4 ? ODC_FLOAT32 : size == 2 ? ODC_FLOAT16 : size == 8 ? ODC_FLOAT64 : 0;
  if (kind == 'i') return size == 1 ? ODC_INT8 : size == 2 ? ODC_INT16 : size == 4 ? ODC_INT32 : size == 8 ? ODC_INT64 : 0;
  if (kind == 'u') return size == 1 ? ODC_UINT8 : size == 2 ? ODC_UINT16 : size == 4 ? ODC_UINT32 : size == 8 ? ODC_UINT64 : 0;
  if (kind == 'b' && size == 1) return ODC_BOOL;
  if (size == 2 && py::str(dtype.attr("name")).cast<std::string>() == "bfloat16") return ODC_BFLOAT16;
  return 0;
}

// Descriptors pointing into the arrays; shapes live in `shapes` (kept alive by the caller).
std::vector<odc_tensor> tensors(const std::vector<py::array>& arrays, bool writable,
                                std::vector<std::vector<int64_t>>* shapes, const char* what) {
  std::vector<odc_tensor> out;
  shapes->reserve(shapes->size() + arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    const py::array& array = arrays[i];
    if (!(array.flags() & py::array::c_style)) {
      throw RuntimeFailure(std::string("run: ") + what + "[" + std::to_string(i) + "] is not C-contiguous");
    }
    if (writable && !array.writeable()) {
      throw RuntimeFailure(std::string("run: ") + what + "[" + std::to_string(i) + "] is read-only");
    }
    shapes->emplace_back(array.shape(), array.shape() + array.ndim());
    odc_tensor t{};
    t.data = const_cast<void*>(array.data());
    t.dtype = dtype_of(array);
    t.ndim = int32_t(array.ndim());
    t.shape = shapes->back().data();
    t.strides = nullptr;
    t.device_type = ODC_DEVICE_CPU;
    out.push_back(t);
  }
  return out;
}

// DLPack (https://dmlc.github.io/dlpack/latest/c_api.html), the stable ABI of version 0.x,
// declared here so the build needs no dlpack header.
struct DLDevice {
  int32_t device_type;  // kDLCPU 1, kDLCUDA 2
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // 0 int, 1 uint, 2 float, 4 bfloat, 6 bool
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};
constexpr int32_t kDLCPU = 1;
constexpr int32_t kDLCUDA = 2;

int32_t dtype_of_dlpack(DLDataType t) {
  if (t.lanes != 1) return 0;
  switch (t.code) {
    case 0: return t.bits == 8 ? ODC_INT8 : t.bits == 16 ? ODC_INT16 : t.bits == 32 ? ODC_INT32 : t.bits == 64 ? ODC_INT64 : 0;
    case 1: return t.bits == 8 ? ODC_UINT8 : t.bits == 16 ? ODC_UINT16 : t.bits == 32 ? ODC_UINT32 : t.bits == 64 ? ODC_UINT64 : 0;
    case 2: return t.bits == 16 ? ODC_FLOAT16 : t.bits == 32 ? ODC_FLOAT32 : t.bits == 64 ? ODC_FLOAT64 : 0;
    case 4: return t.bits == 16 ? ODC_BFLOAT16 : 0;
    case 6: return t.bits == 8 ? ODC_BOOL : 0;
    default: return 0;
  }
}

DLDataType dlpack_dtype(int32_t dtype) {
  switch (dtype) {
    case ODC_FLOAT32: return {2, 32, 1};
    case ODC_FLOAT16: return {2, 16, 1};
    case ODC_FLOAT64: return {2, 64, 1};
    case ODC_BFLOAT16: return {4, 16, 1};
    case ODC_INT8: return {0, 8, 1};
    case ODC_INT16: return {0, 16, 1};
    case ODC_INT32: return {0, 32, 1};
    case ODC_INT64: return {0, 64, 1};
    case ODC_UINT8: return {1, 8, 1};
    case ODC_UINT16: return {1, 16, 1};
    case ODC_UINT32: return {1, 32, 1};
    case ODC_UINT64: return {1, 64, 1};
    case ODC_BOOL: return {6, 8, 1};
    default: return {0, 0, 0};
  }
}

// A device buffer the runtime allocated for an output (run(..., device_outputs=True)): owns
// its memory (freed through the module, which it keeps alive) and hands it out via DLPack.
class DeviceTensor {
 public:
  DeviceTensor(py::object owner, odc_module* module, int32_t dtype, std::vector<int64_t> shape,
               int64_t nbytes)
      : owner_(std::move(owner)), module_(module), dtype_(dtype), shape_(std::move(shape)),
        nbytes_(nbytes) {
    if (odc_module_cuda_alloc(module_, nbytes_, &data_) != 0) {
      throw RuntimeFailure(odc_last_error());
    }
  }
  ~DeviceTensor() {
    if (data_ != nullptr) odc_module_cuda_free(module_, data_);
  }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  void* data() const { return data_; }
  int32_t dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t nbytes() const { return nbytes_; }

 private:
  py::object owner_;  // the Python Module: keeps the context (and so the memory) alive
  odc_module* module_;
  int32_t dtype_;
  std::vector<int64_t> shape_;
  int64_t nbytes_;
  void* data_ = nullptr;
};

// What a DLPack capsule of a DeviceTensor owns: a reference to the Python object and the shape.
struct DeviceTensorExport {
  DLManagedTensor managed;
  PyObject* self;
  std::vector<int64_t> shape;
};

void delete_export(DLManagedTensor* managed) {
  auto* exported = static_cast<DeviceTensorExport*>(managed->manager_ctx);
  if (Py_IsInitialized()) {
    PyGILState_STATE state = PyGILState_Ensure();  // consumers may free without the GIL
    Py_XDECREF(exported->self);
    PyGILState_Release(state);
  }
  delete exported;
}

void capsule_destructor(PyObject* capsule) {
  // Consumed capsules are renamed "used_dltensor" and owned by the consumer.
  if (PyCapsule_IsValid(capsule, "dltensor")) {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    if (managed != nullptr && managed->deleter != nullptr) managed->deleter(managed);
  }
}

py::object export_dlpack(py::object self) {
  DeviceTensor& tensor = self.cast<DeviceTensor&>();
  auto* exported = new DeviceTensorExport();
  exported->shape = tensor.shape();
  exported->self = self.ptr();
  Py_INCREF(exported->self);
  DLTensor& t = exported->managed.dl_tensor;
  t.data = tensor.data();
  t.device = {kDLCUDA, 0};
  t.ndim = int32_t(exported->shape.size());
  t.dtype = dlpack_dtype(tensor.dtype());
  t.shape = exported->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  exported->managed.manager_ctx = exported;
  exported->managed.deleter = delete_export;
  PyObject* capsule = PyCapsule_New(&exported->managed, "dltensor", capsule_destructor);
  if (capsule == nullptr) {
    delete_export(&exported->managed);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(capsule);
}

// The caller's tensors for a run: NumPy arrays (host), DLPack capsules of CUDA tensors (the
// Python layer calls __dlpack__(stream=<the module's stream>)) or DeviceTensors.
std::vector<odc_tensor> any_tensors(const std::vector<py::object>& objects, bool writable,
                                    std::vector<std::vector<int64_t>>* shapes,
                                    std::vector<py::array>* arrays, const char* what) {
  std::vector<odc_tensor> out;
  shapes->reserve(shapes->size() + objects.size());
  for (size_t i = 0; i < objects.size(); ++i) {
    const std::string where = std::string("run: ") + what + "[" + std::to_string(i) + "]";
    const py::object& object = objects[i];
    odc_tensor t{};
    if (py::isinstance<DeviceTensor>(object)) {
      const DeviceTensor& tensor = object.cast<const DeviceTensor&>();
      shapes->push_back(tensor.shape());
      t.data = tensor.data();
      t.dtype = tensor.dtype();
      t.ndim = int32_t(tensor.shape().size());
      t.shape = shapes->back().data();
      t.device_type = ODC_DEVICE_CUDA;
    } else if (PyCapsule_CheckExact(object.ptr())) {
      if (!PyCapsule_IsValid(object.ptr(), "dltensor")) {
        throw RuntimeFailure(where + ": not an unused DLPack capsule");
      }
      auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(object.ptr(), "dltensor"));
      const DLTensor& dl = managed->dl_tensor;
      if (dl.device.device_type != kDLCUDA) {
        throw RuntimeFailure(where + ": DLPack device type " + std::to_string(dl.device.device_type) +
                             " is not CUDA (pass host arrays as NumPy)");
      }
      if (dl.device.device_id != 0) {
        throw RuntimeFailure(where + ": on CUDA device " + std::to_string(dl.device.device_id) +
                             "; the module runs on device 0");
      }
      if (dl.ndim < 0 || dl.ndim > ODC_MAX_RANK) throw RuntimeFailure(where + ": bad rank");
      shapes->emplace_back(dl.shape, dl.shape + dl.ndim);
      if (dl.strides != nullptr) {
        int64_t expected = 1;
        for (int32_t d = dl.ndim - 1; d >= 0; --d) {
          if (dl.shape[d] > 1 && dl.strides[d] != expected) {
            throw RuntimeFailure(where + " is not C-contiguous (call .contiguous() first)");
          }
          expected *= dl.shape[d];
        }
      }
      t.data = static_cast<char*>(dl.data) + dl.byte_offset;
      t.dtype = dtype_of_dlpack(dl.dtype);
      if (t.dtype == 0) throw RuntimeFailure(where + ": unsupported DLPack dtype");
      t.ndim = dl.ndim;
      t.shape = shapes->back().data();
      t.device_type = ODC_DEVICE_CUDA;
    } else {
      py::array array = py::array::ensure(object);
      if (!array) throw RuntimeFailure(where + ": not an array");
      arrays->push_back(array);
      std::vector<odc_tensor> one = tensors({array}, writable, shapes, what);
      t = one[0];
    }
    out.push_back(t);
  }
  return out;
}

py::tuple value_info(const odc_value_info& info) {
  py::tuple shape(info.ndim);
  for (int32_t d = 0; d < info.ndim; ++d) shape[d] = py::int_(info.shape[d]);
  return py::make_tuple(std::string(info.name), std::string(odc_dtype_name(info.dtype)), shape);
}

class Module {
 public:
  // target: "auto" (cuda when the driver and a matching GPU are there, else cpu), "cpu", "cuda".
  // tune: time cuda steps' tactics at load (ODC_LOAD_CUDA_TUNE).
  Module(const std::string& path, bool verify_checksums, bool cuda_graphs,
         const std::string& target, bool tune) {
    if (target != "auto" && target != "cpu" && target != "cuda") {
      throw RuntimeFailure("target must be 'auto', 'cpu' or 'cuda', got '" + target + "'");
    }
    const uint32_t flags = (verify_checksums ? ODC_LOAD_DEFAULT : ODC_LOAD_SKIP_CHECKSUMS) |
                           (cuda_graphs ? 0u : ODC_LOAD_NO_CUDA_GRAPHS) |
                           (target == "cpu" ? ODC_LOAD_TARGET_CPU : 0u) |
                           (target == "cuda" ? ODC_LOAD_TARGET_CUDA : 0u) |
                           (tune ? ODC_LOAD_CUDA_TUNE : 0u);
    std::string error;
    {
      py::gil_scoped_release release;
      module_ = odc_module_load(path.c_str(), flags);
      if (module_ == nullptr) error = odc_last_error();
    }
    if (module_ == nullptr) throw RuntimeFailure(error);
  }
  ~Module() { odc_module_free(module_); }
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  py::list inputs() const { return signature(true); }
  py::list outputs() const { return signature(false); }

  py::list steps() const {
    py::list out;
    for (int32_t i = 0, n = odc_module_num_steps(module_); i < n; ++i) {
      odc_step_info info;
      if (odc_module_step_info(module_, i, &info) != 0) raise_last_error();
      out.append(py::make_tuple(std::string(info.kernel_name), std::string(info.node)));
    }
    return out;
  }

  // (step, names, chosen, seconds, source, key) of every step with alternatives.
  py::list tactics() const {
    py::list out;
    for (int32_t i = 0, n = odc_module_num_steps(module_); i < n; ++i) {
      odc_tactic_info info;
      if (odc_module_step_tactics(module_, i, &info) != 0) raise_last_error();
      if (info.num_candidates < 2) continue;
      py::list names, seconds;
      for (int32_t t = 0; t < info.num_candidates; ++t) {
        names.append(std::string(info.names[t]));
        seconds.append(info.seconds[t] < 0 ? py::object(py::none()) : py::float_(info.seconds[t]));
      }
      out.append(py::make_tuple(i, names, info.chosen, seconds, std::string(info.source),
                                std::string(info.key)));
    }
    return out;
  }
  std::string tactics_note() const {
    const char* note = odc_module_tactics_note(module_);
    return note == nullptr ? "" : note;
  }

  int32_t num_threads() const { return odc_module_num_threads(module_); }
  void set_num_threads(int32_t n) {
    if (odc_module_set_num_threads(module_, n) != 0) raise_last_error();
  }
  int64_t arena_size() const { return odc_module_arena_size(module_); }
  int64_t workspace_size() const { return odc_module_workspace_size(module_); }
  std::string targets() const {
    const char* text = odc_module_targets(module_);
    if (text == nullptr) raise_last_error();
    return text;
  }
  std::string target_note() const {
    const char* text = odc_module_target_note(module_);
    if (text == nullptr) raise_last_error();
    return text;
  }
  std::string device() const {
    return odc_module_device_type(module_) == ODC_DEVICE_CUDA ? "cuda" : "cpu";
  }
  uintptr_t cuda_stream() const {
    void* stream = nullptr;
    if (odc_module_cuda_stream(module_, &stream) != 0) raise_last_error();
    return reinterpret_cast<uintptr_t>(stream);
  }

  // Runs once on NumPy arrays, DLPack capsules of CUDA tensors or DeviceTensors.
  // stream: a CUstream handle to enqueue the run on (0: the module's own; see
  // odc_module_run_on_stream).
  std::vector<double> run_any(const std::vector<py::object>& inputs,
                              const std::vector<py::object>& outputs, bool profile,
                              uintptr_t stream) {
    std::vector<std::vector<int64_t>> shapes;
    std::vector<py::array> arrays;
    std::vector<odc_tensor> in = any_tensors(inputs, false, &shapes, &arrays, "inputs");
    std::vector<odc_tensor> out = any_tensors(outputs, true, &shapes, &arrays, "outputs");
    return run_tensors(in, out, profile, reinterpret_cast<void*>(stream));
  }

  // A device buffer for output `index` (CUDA modules).
  static py::object device_output(py::object self, int32_t index) {
    Module& m = self.cast<Module&>();
    odc_value_info info;
    if (odc_module_output_info(m.module_, index, &info) != 0) raise_last_error();
    return py::cast(new DeviceTensor(self, m.module_, info.dtype,
                                     std::vector<int64_t>(info.shape, info.shape + info.ndim),
                                     info.nbytes),
                    py::return_value_policy::take_ownership);
  }

  // Runs once; outputs are written in place. With profile, returns per-step seconds.
  std::vector<double> run(const std::vector<py::array>& inputs,
                          const std::vector<py::array>& outputs, bool profile) {
    std::vector<std::vector<int64_t>> shapes;
    std::vector<odc_tensor> in = tensors(inputs, false, &shapes, "inputs");
    std::vector<odc_tensor> out = tensors(outputs, true, &shapes, "outputs");
    return run_tensors(in, out, profile);
  }

  std::vector<double> run_tensors(const std::vector<odc_tensor>& in,
                                  const std::vector<odc_tensor>& out, bool profile,
                                  void* stream = nullptr) {
    std::vector<double> seconds(profile ? size_t(odc_module_num_steps(module_)) : 0);
    int32_t status;
    std::string error;
    {
      py::gil_scoped_release release;
      status = profile ? odc_module_profile(module_, in.data(), int32_t(in.size()), out.data(),
                                            int32_t(out.size()), seconds.data(),
                                            int32_t(seconds.size()))
                       : odc_module_run_on_stream(module_, in.data(), int32_t(in.size()),
                                                  out.data(), int32_t(out.size()), stream);
      if (status != 0) error = odc_last_error();
    }
    if (status != 0) throw RuntimeFailure(error);
    return seconds;
  }

 private:
  py::list signature(bool inputs) const {
    py::list out;
    const int32_t n = inputs ? odc_module_num_inputs(module_) : odc_module_num_outputs(module_);
    for (int32_t i = 0; i < n; ++i) {
      odc_value_info info;
      int32_t status = inputs ? odc_module_input_info(module_, i, &info)
                              : odc_module_output_info(module_, i, &info);
      if (status != 0) raise_last_error();
      out.append(value_info(info));
    }
    return out;
  }

  odc_module* module_ = nullptr;
};

// Kind "python" kernels: optimizer.runtime.python_kernels.resolve(entry) -> address.
int32_t resolve_python_kernel(const char* entry, void*, odc_kernel_fn* out, char* error,
                              int64_t error_size) {
  if (!Py_IsInitialized()) {
    std::snprintf(error, size_t(error_size), "the Python interpreter is shut down");
    return 1;
  }
  py::gil_scoped_acquire gil;
  try {
    py::object address =
        py::module_::import("optimizer.runtime.python_kernels").attr("resolve")(entry);
    const auto value = address.cast<uintptr_t>();
    if (value == 0) throw std::runtime_error("resolved to a NULL address");
    *out = reinterpret_cast<odc_kernel_fn>(value);
    return 0;
  } catch (py::error_already_set& e) {
    std::string message = py::str(e.value()).cast<std::string>();
    std::snprintf(error, size_t(error_size), "%s: %s",
                  py::str(e.type().attr("__name__")).cast<std::string>().c_str(), message.c_str());
    return 1;
  } catch (const std::exception& e) {
    std::snprintf(error, size_t(error_size), "%s", e.what());
    return 1;
  }
}

// Calls builtin kernel `name` on the given arrays `iterations` times (after one untimed warm-up
// call) and returns the seconds of each call. Inputs may be None (an omitted optional input).
// Used by compile-time tactic selection (optimizer/lower/tactics.py); outputs are written in
// place, so the caller can compare candidates' results. A failing kernel raises its message.
std::vector<double> time_builtin(const std::string& name, const std::vector<py::object>& inputs,
                                 const std::vector<py::array>& outputs,
                                 const std::vector<int64_t>& iparams,
                                 const std::vector<double>& fparams, int64_t workspace_bytes,
                                 int32_t num_threads, int32_t iterations) {
  const odc_kernel_fn fn = odc::find_builtin(name);
  if (fn == nullptr) throw RuntimeFailure("time_builtin: unknown builtin kernel '" + name + "'");
  if (num_threads < 1) throw RuntimeFailure("time_builtin: num_threads must be >= 1");
  if (iterations < 0) throw RuntimeFailure("time_builtin: iterations must be >= 0");
  if (workspace_bytes < 0 || workspace_bytes > (int64_t(1) << 34)) {
    throw RuntimeFailure("time_builtin: workspace_bytes out of range");
  }
  std::vector<py::array> present;
  std::vector<bool> omitted;
  for (const py::object& input : inputs) {
    omitted.push_back(input.is_none());
    if (!input.is_none()) present.push_back(py::array::ensure(input));
    if (!input.is_none() && !present.back()) throw RuntimeFailure("time_builtin: an input is not an array");
  }
  std::vector<std::vector<int64_t>> shapes;
  std::vector<odc_tensor> given = tensors(present, false, &shapes, "inputs");
  std::vector<odc_tensor> in;
  for (size_t i = 0, k = 0; i < omitted.size(); ++i) {
    odc_tensor t{};
    if (!omitted[i]) t = given[k++];
    in.push_back(t);
  }
  std::vector<odc_tensor> out = tensors(outputs, true, &shapes, "outputs");
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].data != nullptr && in[i].dtype == 0) throw RuntimeFailure("time_builtin: inputs[" + std::to_string(i) + "] has an unsupported dtype");
  }
  std::unique_ptr<void, void (*)(void*)> workspace(
      workspace_bytes > 0 ? std::aligned_alloc(64, size_t((workspace_bytes + 63) / 64 * 64)) : nullptr,
      std::free);
  if (workspace_bytes > 0 && workspace == nullptr) throw RuntimeFailure("time_builtin: out of memory");
  odc_kernel_args args{};
  args.inputs = in.data();
  args.num_inputs = int32_t(in.size());
  args.outputs = out.data();
  args.num_outputs = int32_t(out.size());
  args.iparams = iparams.data();
  args.num_iparams = int32_t(iparams.size());
  args.fparams = fparams.data();
  args.num_fparams = int32_t(fparams.size());
  args.workspace = workspace.get();
  args.workspace_size = workspace_bytes;
  args.stream = nullptr;
  args.num_threads = num_threads;
  std::vector<double> seconds;
  std::string error;
  {
    py::gil_scoped_release release;
    char message[1024];
    for (int32_t i = -1; i < iterations && error.empty(); ++i) {
      message[0] = '\0';
      const auto start = std::chrono::steady_clock::now();
      int32_t status;
      try {
        status = fn(&args, message, int64_t(sizeof(message)));
      } catch (...) {
        status = -1;
        std::strcpy(message, "threw a C++ exception");
      }
      const auto stop = std::chrono::steady_clock::now();
      if (status != 0) {
        message[sizeof(message) - 1] = '\0';
        error = "kernel " + name + " failed: " + (message[0] ? message : "(no message)");
      } else if (i >= 0) {
        seconds.push_back(std::chrono::duration<double>(stop - start).count());
      }
    }
  }
  if (!error.empty()) throw RuntimeFailure(error);
  return seconds;
}

}  // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "C++ runtime for compiled modules (use optimizer.runtime, not this module).";

  py::register_exception_translator([](std::exception_ptr pointer) {
    try {
      if (pointer) std::rethrow_exception(pointer);
    } catch (const RuntimeFailure& e) {
      PyObject* cls = PyExc_RuntimeError;
      py::object module_error;
      try {
        module_error = py::module_::import("optimizer.runtime.errors").attr("ModuleError");
        cls = module_error.ptr();
      } catch (py::error_already_set&) {
      }
      PyErr_SetString(cls, e.what());
    }
  });

  odc_set_python_kernel_resolver(resolve_python_kernel, nullptr);

  m.attr("FORMAT_VERSION") = odc_runtime_format_version();
  m.attr("ABI_VERSION") = ODC_ABI_VERSION;
  m.def("builtin_kernels", &odc::builtin_names, "Names of the kernels compiled into the runtime.");
  m.def("builtin_registration_errors", &odc::builtin_registration_errors);
  m.def("builtin_isa", &odc::builtin_isa,
        "ISA the builtin native kernels dispatch to (avx512, avx2, scalar; none without them).");
  m.def("time_builtin", &time_builtin, py::arg("name"), py::arg("inputs"), py::arg("outputs"),
        py::arg("iparams"), py::arg("fparams"), py::arg("workspace_bytes") = 0,
        py::arg("num_threads") = 1, py::arg("iterations") = 1,
        "Calls builtin kernel `name` (one warm-up call, then `iterations` timed calls) and "
        "returns the seconds of each timed call; outputs are written in place.");

  py::class_<Module>(m, "Module")
      .def(py::init<const std::string&, bool, bool, const std::string&, bool>(), py::arg("path"),
           py::arg("verify_checksums") = true, py::arg("cuda_graphs") = true,
           py::arg("target") = "auto", py::arg("tune") = false)
      .def_property_readonly("targets", &Module::targets, "the targets the module carries")
      .def_property_readonly("target_note", &Module::target_note,
                             "why loading skipped a target ('' when none was skipped)")
      .def_property_readonly("tactics", &Module::tactics,
                             "[(step, names, chosen, seconds, source, key)] of steps with tactics")
      .def_property_readonly("tactics_note", &Module::tactics_note)
      .def_property_readonly("inputs", &Module::inputs, "[(name, dtype, shape)]")
      .def_property_readonly("outputs", &Module::outputs, "[(name, dtype, shape)]")
      .def_property_readonly("steps", &Module::steps, "[(kernel name, node)]")
      .def_property_readonly("arena_size", &Module::arena_size)
      .def_property_readonly("workspace_size", &Module::workspace_size)
      .def_property("num_threads", &Module::num_threads, &Module::set_num_threads)
      .def("run", &Module::run, py::arg("inputs"), py::arg("outputs"), py::arg("profile") = false)
      .def_property_readonly("device", &Module::device, "'cpu' or 'cuda'")
      .def_property_readonly("cuda_stream", &Module::cuda_stream,
                             "the CUstream runs are ordered on (0 for cpu modules)")
      .def("run_any", &Module::run_any, py::arg("inputs"), py::arg("outputs"),
           py::arg("profile") = false, py::arg("stream") = 0,
           "As run, each tensor a NumPy array, a DLPack capsule of a CUDA tensor or a "
           "DeviceTensor; stream: a CUstream handle to run on (0: the module's own).")
      .def("device_output", &Module::device_output, py::arg("index"),
           "A DeviceTensor for output `index` (cuda modules).");

  py::class_<DeviceTensor>(m, "DeviceTensor",
                           "Device memory holding a module output; hand it to torch / CuPy "
                           "with their from_dlpack (no copy).")
      .def_property_readonly("shape", [](const DeviceTensor& t) { return py::tuple(py::cast(t.shape())); })
      .def_property_readonly("dtype", [](const DeviceTensor& t) { return std::string(odc_dtype_name(t.dtype())); })
      .def_property_readonly("nbytes", &DeviceTensor::nbytes)
      .def_property_readonly("data_ptr", [](const DeviceTensor& t) { return reinterpret_cast<uintptr_t>(t.data()); })
      .def("__dlpack_device__", [](const DeviceTensor&) { return py::make_tuple(kDLCUDA, 0); })
      .def(
          "__dlpack__",
          [](py::object self, py::object /*stream*/, py::kwargs) { return export_dlpack(self); },
          py::arg("stream") = py::none(),
          "A DLPack capsule of the buffer; the data is ready (runs return synchronized), so "
          "`stream` needs no wait.");
}
