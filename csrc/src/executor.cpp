// Running a loaded module: bind the caller's buffers into the prebuilt descriptors, call each
// step's kernel through the one C ABI, turn a kernel's failure into a message naming it.
#include <dlfcn.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "dtype.h"
#include "module.h"

namespace odc {
namespace {

// Data pointer for zero-byte tensors with no backing memory, so data != NULL still means
// "present" to kernels.
alignas(64) uint8_t g_empty_tensor[64];

constexpr size_t kKernelErrorSize = 1024;

}  // namespace

Module::~Module() {
  release_cuda();
  if (weights_ != nullptr) ::munmap(weights_, weights_size_);
  for (void* handle : libraries_) ::dlclose(handle);
}

void Module::set_num_threads(int32_t n) {
  if (n < 1 || n > 4096) throw Error("num_threads " + std::to_string(n) + " must be in [1, 4096]");
  std::lock_guard<std::mutex> lock(run_mutex_);  // not while a run reads it
  num_threads = n;
}

void Module::prepare() {
  if (device == Device::kCuda) {
    num_threads = 1;
    prepare_cuda();
    return;
  }
  arena_ = AlignedBuffer(size_t(arena_size), size_t(alignment));
  workspace_ = AlignedBuffer(size_t(workspace_size), 64);
  unsigned hardware = std::thread::hardware_concurrency();
  num_threads = hardware == 0 ? 1 : int32_t(hardware);

  auto descriptor = [&](int32_t index) {
    odc_tensor tensor;
    std::memset(&tensor, 0, sizeof(tensor));
    if (index < 0) return tensor;  // omitted optional input: data NULL
    const Value& value = values[size_t(index)];
    tensor.dtype = value.dtype;
    tensor.ndim = int32_t(value.shape.size());
    tensor.shape = value.shape.data();
    tensor.strides = nullptr;
    tensor.device_type = ODC_DEVICE_CPU;
    tensor.device_id = 0;
    uint8_t* base = nullptr;
    if (value.storage == Storage::kWeights) base = weights_;
    if (value.storage == Storage::kArena) base = arena_.data();
    if (base != nullptr) tensor.data = base + value.offset;
    if (tensor.data == nullptr && value.nbytes == 0) tensor.data = g_empty_tensor;
    return tensor;
  };
  for (size_t s = 0; s < steps.size(); ++s) {
    Step& step = steps[s];
    for (size_t k = 0; k < step.inputs.size(); ++k) {
      step.input_tensors.push_back(descriptor(step.inputs[k]));
      if (step.inputs[k] < 0) continue;
      const Value& value = values[size_t(step.inputs[k])];
      if (value.storage == Storage::kInput || value.storage == Storage::kOutput) {
        bindings_.push_back({int32_t(s), false, int32_t(k), value.storage == Storage::kOutput,
                             value.signature_index});
      }
    }
    for (size_t k = 0; k < step.outputs.size(); ++k) {
      step.output_tensors.push_back(descriptor(step.outputs[k]));
      const Value& value = values[size_t(step.outputs[k])];
      if (value.storage == Storage::kOutput) {
        bindings_.push_back({int32_t(s), true, int32_t(k), true, value.signature_index});
      }
    }
  }
}

void Module::check_caller_tensor(const odc_tensor& tensor, const SignatureEntry& entry,
                                 const char* what, int32_t index) const {
  const Value& value = values[size_t(entry.value)];
  const std::string where =
      std::string("run: ") + what + "[" + std::to_string(index) + "] '" + one_line(entry.name) + "'";
  if (tensor.dtype != value.dtype) {
    const DtypeInfo* got = find_dtype(tensor.dtype);
    throw Error(where + ": dtype " + (got ? got->name : std::to_string(tensor.dtype)) +
                " != expected " + find_dtype(value.dtype)->name);
  }
  if (tensor.ndim < 0 || tensor.ndim > ODC_MAX_RANK || (tensor.ndim > 0 && tensor.shape == nullptr)) {
    throw Error(where + ": bad rank " + std::to_string(tensor.ndim));
  }
  if (size_t(tensor.ndim) != value.shape.size() ||
      (tensor.ndim > 0 &&
       std::memcmp(tensor.shape, value.shape.data(), sizeof(int64_t) * size_t(tensor.ndim)) != 0)) {
    throw Error(where + ": shape " + shape_string(tensor.shape, tensor.ndim) + " != expected " +
                shape_string(value.shape));
  }
  if (tensor.device_type != ODC_DEVICE_CPU &&
      !(device == Device::kCuda && tensor.device_type == ODC_DEVICE_CUDA)) {
    throw Error(where + (device == Device::kCuda ? ": not a CPU or CUDA buffer"
                                                 : ": not a CPU buffer"));
  }
  if (tensor.strides != nullptr) {
    int64_t expected = 1;
    for (int32_t d = tensor.ndim - 1; d >= 0; --d) {
      if (tensor.shape[d] > 1 && tensor.strides[d] != expected) {
        throw Error(where + ": not C-contiguous");
      }
      expected *= tensor.shape[d];
    }
  }
  if (tensor.data == nullptr && value.nbytes > 0) throw Error(where + ": data is NULL");
}

void Module::run(const odc_tensor* caller_inputs, int32_t num_inputs,
                 const odc_tensor* caller_outputs, int32_t num_outputs, double* step_seconds,
                 void* stream) {
  if (num_inputs != int32_t(inputs.size()) || num_outputs != int32_t(outputs.size())) {
    throw Error("run: got " + std::to_string(num_inputs) + " inputs and " +
                std::to_string(num_outputs) + " outputs, the module has " +
                std::to_string(inputs.size()) + " and " + std::to_string(outputs.size()));
  }
  if ((num_inputs > 0 && caller_inputs == nullptr) || (num_outputs > 0 && caller_outputs == nullptr)) {
    throw Error("run: tensor array is NULL");
  }
  for (int32_t i = 0; i < num_inputs; ++i) {
    check_caller_tensor(caller_inputs[i], inputs[size_t(i)], "inputs", i);
  }
  for (int32_t i = 0; i < num_outputs; ++i) {
    check_caller_tensor(caller_outputs[i], outputs[size_t(i)], "outputs", i);
  }

  if (stream != nullptr && device != Device::kCuda) {
    throw Error("run: a CUDA stream was given but the module targets cpu");
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  if (device == Device::kCuda) {
    run_cuda(caller_inputs, caller_outputs, step_seconds, stream);
    return;
  }
  for (const Binding& binding : bindings_) {
    Step& step = steps[size_t(binding.step)];
    odc_tensor& tensor = binding.is_output ? step.output_tensors[size_t(binding.slot)]
                                           : step.input_tensors[size_t(binding.slot)];
    const odc_tensor& source = binding.caller_output ? caller_outputs[binding.index]
                                                     : caller_inputs[binding.index];
    tensor.data = source.data != nullptr ? source.data : g_empty_tensor;
  }

  char error[kKernelErrorSize];
  for (size_t s = 0; s < steps.size(); ++s) {
    const Step& step = steps[s];
    const Kernel& kernel = kernels[size_t(step.kernel)];
    odc_kernel_args args;
    args.inputs = step.input_tensors.data();
    args.num_inputs = int32_t(step.input_tensors.size());
    args.outputs = step.output_tensors.data();
    args.num_outputs = int32_t(step.output_tensors.size());
    args.iparams = step.iparams.data();
    args.num_iparams = int32_t(step.iparams.size());
    args.fparams = step.fparams.data();
    args.num_fparams = int32_t(step.fparams.size());
    args.workspace = step.workspace > 0 ? workspace_.data() : nullptr;
    args.workspace_size = step.workspace;
    args.stream = nullptr;
    args.num_threads = num_threads;
    error[0] = '\0';
    auto start = std::chrono::steady_clock::now();
    int32_t status;
    try {
      status = kernel.fn(&args, error, int64_t(sizeof(error)));
    } catch (...) {  // a C++ builtin that broke the ABI's no-throw rule
      status = -1;
      std::strcpy(error, "threw a C++ exception");
    }
    if (step_seconds != nullptr) {
      step_seconds[s] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (status != 0) {
      error[sizeof(error) - 1] = '\0';
      throw Error("kernel " + kernel.name + " (step " + std::to_string(s) + ", node '" +
                  step.node + "') failed: " + (error[0] ? one_line(error) : "(no message)"));
    }
  }
}

}  // namespace odc
