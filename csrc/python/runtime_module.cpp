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

py::tuple value_info(const odc_value_info& info) {
  py::tuple shape(info.ndim);
  for (int32_t d = 0; d < info.ndim; ++d) shape[d] = py::int_(info.shape[d]);
  return py::make_tuple(std::string(info.name), std::string(odc_dtype_name(info.dtype)), shape);
}

class Module {
 public:
  Module(const std::string& path, bool verify_checksums) {
    const uint32_t flags = verify_checksums ? ODC_LOAD_DEFAULT : ODC_LOAD_SKIP_CHECKSUMS;
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

  int32_t num_threads() const { return odc_module_num_threads(module_); }
  void set_num_threads(int32_t n) {
    if (odc_module_set_num_threads(module_, n) != 0) raise_last_error();
  }
  int64_t arena_size() const { return odc_module_arena_size(module_); }
  int64_t workspace_size() const { return odc_module_workspace_size(module_); }

  // Runs once; outputs are written in place. With profile, returns per-step seconds.
  std::vector<double> run(const std::vector<py::array>& inputs,
                          const std::vector<py::array>& outputs, bool profile) {
    std::vector<std::vector<int64_t>> shapes;
    std::vector<odc_tensor> in = tensors(inputs, false, &shapes, "inputs");
    std::vector<odc_tensor> out = tensors(outputs, true, &shapes, "outputs");
    std::vector<double> seconds(profile ? size_t(odc_module_num_steps(module_)) : 0);
    int32_t status;
    std::string error;
    {
      py::gil_scoped_release release;
      status = profile ? odc_module_profile(module_, in.data(), int32_t(in.size()), out.data(),
                                            int32_t(out.size()), seconds.data(),
                                            int32_t(seconds.size()))
                       : odc_module_run(module_, in.data(), int32_t(in.size()), out.data(),
                                        int32_t(out.size()));
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
      .def(py::init<const std::string&, bool>(), py::arg("path"), py::arg("verify_checksums") = true)
      .def_property_readonly("inputs", &Module::inputs, "[(name, dtype, shape)]")
      .def_property_readonly("outputs", &Module::outputs, "[(name, dtype, shape)]")
      .def_property_readonly("steps", &Module::steps, "[(kernel name, node)]")
      .def_property_readonly("arena_size", &Module::arena_size)
      .def_property_readonly("workspace_size", &Module::workspace_size)
      .def_property("num_threads", &Module::num_threads, &Module::set_num_threads)
      .def("run", &Module::run, py::arg("inputs"), py::arg("outputs"), py::arg("profile") = false);
}
