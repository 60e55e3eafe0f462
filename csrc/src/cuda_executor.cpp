// Running a module that targets cuda (docs/module-format.md, version 2): the device side of
// Module. At load (after every check of loader.cpp): open the driver, upload weights.bin once,
// allocate the arena, the workspace and one fixed staging buffer per input and output, load each
// cubin and pack every step's launch parameters (all device addresses are fixed from here on).
// Each run copies the caller's inputs into the staging buffers (host inputs through pinned
// host buffers), launches the plan on the module's
// stream (the first run captures the launches into a CUDA graph, later runs replay it), copies
// the outputs back and synchronizes.
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "cuda_driver.h"
#include "cuda_state.h"
#include "dtype.h"
#include "module.h"

namespace odc {

void CudaStateDeleter::operator()(CudaState* state) const { delete state; }

namespace {

std::string step_label(const Module& m, size_t s) {
  const Step& step = m.steps[s];
  return "kernel " + m.kernels[size_t(step.kernel)].name + " (step " + std::to_string(s) +
         ", node '" + step.node + "')";
}

}  // namespace

void* Module::cuda_stream() const { return cuda_ ? static_cast<void*>(cuda_->stream) : nullptr; }

void Module::prepare_cuda() {
  cuda_.reset(new CudaState());
  CudaState& c = *cuda_;
  c.driver = &cuda_driver();  // throws "module targets cuda: NVIDIA driver not found (...)"
  const CudaDriver& d = *c.driver;
  int count = 0;
  c.check(d.cuDeviceGetCount(&count), "cuDeviceGetCount", "module targets cuda");
  if (count < 1) throw Error("module targets cuda: no CUDA device found");
  c.check(d.cuDeviceGet(&c.device, 0), "cuDeviceGet", "module targets cuda");
  c.check(d.cuDeviceGetAttribute(&c.major, kCuDeviceAttributeComputeCapabilityMajor, c.device),
          "cuDeviceGetAttribute", "module targets cuda");
  c.check(d.cuDeviceGetAttribute(&c.minor, kCuDeviceAttributeComputeCapabilityMinor, c.device),
          "cuDeviceGetAttribute", "module targets cuda");
  c.check(d.cuDevicePrimaryCtxRetain(&c.context, c.device), "cuDevicePrimaryCtxRetain",
          "module targets cuda");
  c.retained = true;
  c.check(d.cuCtxSetCurrent(c.context), "cuCtxSetCurrent", "module targets cuda");
  c.check(d.cuStreamCreate(&c.stream, kCuStreamNonBlocking), "cuStreamCreate", "load");
  const std::string gpu = "sm_" + std::to_string(c.major) + std::to_string(c.minor);

  // Memory: weights (uploaded once; the host mapping is dropped after), arena, workspace and
  // the staging buffers the caller's inputs and outputs are copied through.
  c.weights = c.alloc(int64_t(weights_size_), "weights");
  if (weights_size_ > 0) {
    c.check(d.cuMemcpyHtoDAsync(c.weights, weights_, weights_size_, c.stream), "cuMemcpyHtoDAsync",
            "load: uploading weights.bin");
    c.check(d.cuStreamSynchronize(c.stream), "cuStreamSynchronize", "load: uploading weights.bin");
    ::munmap(weights_, weights_size_);
    weights_ = nullptr;
  }
  c.check(d.cuEventCreate(&c.done, kCuEventDisableTiming), "cuEventCreate", "load");
  c.arena = c.alloc(arena_size, "arena");
  c.workspace = c.alloc(workspace_size, "workspace");
  // Zero once: kernels that keep a zero-initialized region (split-K partial sums and tile
  // counters) restore it before they end, so every later run finds it zero again.
  if (workspace_size > 0) {
    c.check(d.cuMemsetD8Async(c.workspace, 0, size_t(workspace_size), c.stream), "cuMemsetD8Async",
            "load: zeroing the workspace");
    c.check(d.cuStreamSynchronize(c.stream), "cuStreamSynchronize", "load: zeroing the workspace");
  }
  for (const SignatureEntry& entry : inputs) {
    const int64_t bytes = values[size_t(entry.value)].nbytes;
    c.input_staging.push_back(c.alloc(bytes, "staging buffer of input '" + entry.name + "'"));
    c.input_pinned.push_back(c.alloc_pinned(bytes, "pinned buffer of input '" + entry.name + "'"));
    c.input_bytes.push_back(bytes);
  }
  for (const SignatureEntry& entry : outputs) {
    const int64_t bytes = values[size_t(entry.value)].nbytes;
    c.output_staging.push_back(c.alloc(bytes, "staging buffer of output '" + entry.name + "'"));
    c.output_pinned.push_back(
        c.alloc_pinned(bytes, "pinned buffer of output '" + entry.name + "'"));
    c.output_bytes.push_back(bytes);
  }

  // Kernels: one driver module per cubin file, one function per kernel.
  int shared_optin = 0;
  c.check(d.cuDeviceGetAttribute(&shared_optin, kCuDeviceAttributeMaxSharedMemoryPerBlockOptin,
                                 c.device),
          "cuDeviceGetAttribute", "module targets cuda");
  for (size_t i = 0; i < kernels.size(); ++i) {
    const Kernel& kernel = kernels[i];
    const std::string where = "kernels[" + std::to_string(i) + "] '" + kernel.name + "'";
    auto it = c.modules.find(kernel.file);
    if (it == c.modules.end()) {
      std::vector<uint8_t> image = read_file(directory_ + "/" + kernel.file, kernel.file,
                                             int64_t(1) << 30);
      CUmodule handle = nullptr;
      const CUresult result = d.cuModuleLoadData(&handle, image.data());
      if (result != kCudaSuccess) {
        throw Error(where + ": cannot load " + kernel.file + " on this GPU (" + gpu +
                    "; the module was built for " + cuda_arch + "): cuModuleLoadData: " +
                    d.describe(result));
      }
      it = c.modules.emplace(kernel.file, handle).first;
    }
    CUfunction function = nullptr;
    const CUresult result = d.cuModuleGetFunction(&function, it->second, kernel.entry.c_str());
    if (result != kCudaSuccess) {
      throw Error(where + ": " + kernel.file + " has no kernel function '" + kernel.entry +
                  "': cuModuleGetFunction: " + d.describe(result));
    }
    if (kernel.shared > shared_optin) {
      throw Error(where + ": launch.shared " + std::to_string(kernel.shared) +
                  " bytes exceeds this GPU's " + std::to_string(shared_optin) +
                  " bytes of shared memory per block (" + gpu + ")");
    }
    if (kernel.shared > 48 * 1024) {  // above 48 KiB, dynamic shared memory must be opted into
      c.check(d.cuFuncSetAttribute(function, kCuFuncAttributeMaxDynamicSharedSizeBytes,
                                   int(kernel.shared)),
              "cuFuncSetAttribute", where);
    }
    c.functions.push_back(function);
  }

  // Launch parameters: every pointer is a fixed device address from here on, which is what
  // lets the first run's launches be captured once and replayed.
  auto address = [&](int32_t index) -> CUdeviceptr {
    if (index < 0) return 0;
    const Value& value = values[size_t(index)];
    switch (value.storage) {
      case Storage::kWeights: return c.weights + CUdeviceptr(value.offset);
      case Storage::kArena: return c.arena + CUdeviceptr(value.offset);
      case Storage::kInput: return c.input_staging[size_t(value.signature_index)];
      case Storage::kOutput: return c.output_staging[size_t(value.signature_index)];
    }
    return 0;
  };
  auto pack = [&](CudaState::Launch& launch, const Step& step, int32_t kernel_index,
                  const uint32_t* grid, const std::vector<LaunchArg>& args) {
    const Kernel& kernel = kernels[size_t(kernel_index)];
    launch.function = c.functions[size_t(kernel_index)];
    std::copy(grid, grid + 3, launch.grid);
    launch.block = unsigned(kernel.num_warps) * 32u;
    launch.shared = unsigned(kernel.shared);
    launch.slots.assign(args.size(), 0);
    for (size_t k = 0; k < args.size(); ++k) {
      const LaunchArg& arg = args[k];
      uint64_t& slot = launch.slots[k];
      switch (arg.kind) {
        case ArgKind::kIn: slot = address(step.inputs[size_t(arg.integer)]); break;
        case ArgKind::kOut: slot = address(step.outputs[size_t(arg.integer)]); break;
        case ArgKind::kNull: slot = 0; break;
        case ArgKind::kWorkspace: slot = c.workspace; break;
        case ArgKind::kI64: slot = uint64_t(arg.integer); break;
        case ArgKind::kI32: {
          const int32_t v = int32_t(arg.integer);
          std::memcpy(&slot, &v, sizeof(v));
          break;
        }
        case ArgKind::kF32: {
          const float v = float(arg.real);
          std::memcpy(&slot, &v, sizeof(v));
          break;
        }
      }
    }
    for (uint64_t& slot : launch.slots) launch.params.push_back(&slot);
  };
  c.candidates.resize(steps.size());
  c.launches.assign(steps.size(), nullptr);
  for (size_t s = 0; s < steps.size(); ++s) {
    const Step& step = steps[s];
    c.candidates[s].resize(1 + step.tactics.size());  // sized once: params point into slots
    pack(c.candidates[s][0], step, step.kernel, step.grid, step.args);
    for (size_t t = 0; t < step.tactics.size(); ++t) {
      const Tactic& tactic = step.tactics[t];
      pack(c.candidates[s][t + 1], step, tactic.kernel, tactic.grid, tactic.args);
    }
    c.launches[s] = &c.candidates[s][0];
  }
  select_tactics();  // before the first run captures the graph
}

void Module::release_cuda() noexcept {
  if (!cuda_) return;
  CudaState& c = *cuda_;
  if (c.driver != nullptr && c.context != nullptr) {
    const CudaDriver& d = *c.driver;
    // Errors are ignored: at process exit the driver may already be shutting down.
    d.cuCtxSetCurrent(c.context);
    if (c.stream != nullptr) d.cuStreamSynchronize(c.stream);
    if (c.done_recorded) d.cuEventSynchronize(c.done);  // a run left on a caller's stream
    if (c.graph != nullptr) d.cuGraphExecDestroy(c.graph);
    for (CUevent event : c.events) d.cuEventDestroy(event);
    if (c.done != nullptr) d.cuEventDestroy(c.done);
    for (CUdeviceptr pointer : c.allocations) d.cuMemFree(pointer);
    for (void* pointer : c.pinned) d.cuMemFreeHost(pointer);
    for (auto& [file, handle] : c.modules) d.cuModuleUnload(handle);
    if (c.stream != nullptr) d.cuStreamDestroy(c.stream);
    if (c.retained) d.cuDevicePrimaryCtxRelease(c.device);
  }
  cuda_.reset();
}

void* Module::cuda_alloc(int64_t bytes) {
  if (!cuda_) throw Error("cuda_alloc: the module does not target cuda");
  if (bytes < 0) throw Error("cuda_alloc: negative size");
  CudaState& c = *cuda_;
  std::lock_guard<std::mutex> lock(run_mutex_);
  c.check(c.driver->cuCtxSetCurrent(c.context), "cuCtxSetCurrent", "cuda_alloc");
  CUdeviceptr pointer = 0;
  c.check(c.driver->cuMemAlloc(&pointer, size_t(std::max<int64_t>(bytes, 256))), "cuMemAlloc",
          "cuda_alloc (" + std::to_string(bytes) + " bytes)");
  return reinterpret_cast<void*>(pointer);
}

void Module::cuda_free(void* pointer) {
  if (!cuda_ || pointer == nullptr) return;
  CudaState& c = *cuda_;
  std::lock_guard<std::mutex> lock(run_mutex_);
  c.check(c.driver->cuCtxSetCurrent(c.context), "cuCtxSetCurrent", "cuda_free");
  c.check(c.driver->cuMemFree(reinterpret_cast<CUdeviceptr>(pointer)), "cuMemFree", "cuda_free");
}

void Module::run_cuda(const odc_tensor* caller_inputs, const odc_tensor* caller_outputs,
                      double* step_seconds, void* stream) {
  CudaState& c = *cuda_;
  const CudaDriver& d = *c.driver;
  c.check(d.cuCtxSetCurrent(c.context), "cuCtxSetCurrent", "run");
  try {
    run_cuda_locked(caller_inputs, caller_outputs, step_seconds, stream);
  } catch (...) {
    // Nothing enqueued may still read the pinned buffers when the next run refills them.
    d.cuStreamSynchronize(c.stream);
    if (stream != nullptr) d.cuStreamSynchronize(static_cast<CUstream>(stream));
    throw;
  }
}

void Module::run_cuda_locked(const odc_tensor* caller_inputs, const odc_tensor* caller_outputs,
                             double* step_seconds, void* caller_stream) {
  CudaState& c = *cuda_;
  const CudaDriver& d = *c.driver;
  // The stream everything of this run is enqueued on: the caller's (profiling keeps the
  // module's own, its events are there) or the module's.
  const CUstream stream = caller_stream != nullptr && step_seconds == nullptr
                              ? static_cast<CUstream>(caller_stream)
                              : c.stream;
  bool host_io = false;
  for (size_t i = 0; i < inputs.size(); ++i) host_io |= caller_inputs[i].device_type != ODC_DEVICE_CUDA;
  for (size_t i = 0; i < outputs.size(); ++i) {
    host_io |= caller_outputs[i].device_type != ODC_DEVICE_CUDA;
  }
  if (c.done_recorded) {  // after the previous run, whichever stream it ran on
    c.check(d.cuStreamWaitEvent(stream, c.done, 0), "cuStreamWaitEvent", "run");
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const odc_tensor& tensor = caller_inputs[i];
    const size_t bytes = size_t(c.input_bytes[i]);
    if (bytes == 0) continue;
    const std::string what = "run: copying input '" + inputs[i].name + "'";
    if (tensor.device_type == ODC_DEVICE_CUDA) {
      c.check(d.cuMemcpyDtoDAsync(c.input_staging[i], reinterpret_cast<CUdeviceptr>(tensor.data),
                                  bytes, stream),
              "cuMemcpyDtoDAsync", what);
    } else {
      std::memcpy(c.input_pinned[i], tensor.data, bytes);
      c.check(d.cuMemcpyHtoDAsync(c.input_staging[i], c.input_pinned[i], bytes, stream),
              "cuMemcpyHtoDAsync", what);
    }
  }

  // Plain launches go on the run's stream; a capture records them on the module's own.
  CUstream launch_stream = stream;
  auto launch_step = [&](size_t s) {
    CudaState::Launch& l = *c.launches[s];
    const CUresult result =
        d.cuLaunchKernel(l.function, l.grid[0], l.grid[1], l.grid[2], l.block, 1, 1, l.shared,
                         launch_stream, l.params.empty() ? nullptr : l.params.data(), nullptr);
    if (result != kCudaSuccess) {
      throw Error(step_label(*this, s) + " failed: cuLaunchKernel: " + d.describe(result));
    }
  };

  if (step_seconds != nullptr) {  // profile: plain launches between events
    while (c.events.size() < steps.size() + 1) {
      CUevent event = nullptr;
      c.check(d.cuEventCreate(&event, kCuEventDefault), "cuEventCreate", "profile");
      c.events.push_back(event);
    }
    for (size_t s = 0; s < steps.size(); ++s) {
      c.check(d.cuEventRecord(c.events[s], c.stream), "cuEventRecord", "profile");
      launch_step(s);
    }
    c.check(d.cuEventRecord(c.events[steps.size()], c.stream), "cuEventRecord", "profile");
  } else if (cuda_graphs && !steps.empty()) {
    if (c.graph == nullptr) {  // first run: capture the plan once
      launch_stream = c.stream;
      c.check(d.cuStreamBeginCapture(c.stream, kCuStreamCaptureModeThreadLocal),
              "cuStreamBeginCapture", "run: capturing the plan");
      CUgraph graph = nullptr;
      try {
        for (size_t s = 0; s < steps.size(); ++s) launch_step(s);
      } catch (...) {
        d.cuStreamEndCapture(c.stream, &graph);  // leave capture mode before reporting
        if (graph != nullptr) d.cuGraphDestroy(graph);
        throw;
      }
      c.check(d.cuStreamEndCapture(c.stream, &graph), "cuStreamEndCapture",
              "run: capturing the plan");
      CUgraphExec exec = nullptr;
      const CUresult result = d.cuGraphInstantiateWithFlags(&exec, graph, 0);
      d.cuGraphDestroy(graph);
      c.check(result, "cuGraphInstantiateWithFlags", "run: capturing the plan");
      c.graph = exec;
    }
    c.check(d.cuGraphLaunch(c.graph, stream), "cuGraphLaunch", "run");
  } else {
    for (size_t s = 0; s < steps.size(); ++s) launch_step(s);
  }

  for (size_t i = 0; i < outputs.size(); ++i) {
    const odc_tensor& tensor = caller_outputs[i];
    const size_t bytes = size_t(c.output_bytes[i]);
    if (bytes == 0) continue;
    const std::string what = "run: copying output '" + outputs[i].name + "'";
    if (tensor.device_type == ODC_DEVICE_CUDA) {
      c.check(d.cuMemcpyDtoDAsync(reinterpret_cast<CUdeviceptr>(tensor.data), c.output_staging[i],
                                  bytes, stream),
              "cuMemcpyDtoDAsync", what);
    } else {
      c.check(d.cuMemcpyDtoHAsync(c.output_pinned[i], c.output_staging[i], bytes, stream),
              "cuMemcpyDtoHAsync", what);
    }
  }
  c.check(d.cuEventRecord(c.done, stream), "cuEventRecord", "run");
  c.done_recorded = true;
  // On the caller's stream with every tensor on the device the run stays asynchronous (the
  // outputs are ready in that stream's order, as any kernel's); otherwise wait for it.
  if (stream != c.stream && !host_io) return;
  const CUresult result = d.cuStreamSynchronize(stream);
  if (result != kCudaSuccess) {
    throw Error("run: cuStreamSynchronize: " + d.describe(result) +
                " (a kernel of the plan failed; ODC_CUDA_GRAPHS=0 CUDA_LAUNCH_BLOCKING=1 "
                "names the step)");
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (caller_outputs[i].device_type != ODC_DEVICE_CUDA && c.output_bytes[i] > 0) {
      std::memcpy(caller_outputs[i].data, c.output_pinned[i], size_t(c.output_bytes[i]));
    }
  }
  if (step_seconds != nullptr) {
    for (size_t s = 0; s < steps.size(); ++s) {
      float ms = 0.0f;
      c.check(d.cuEventElapsedTime(&ms, c.events[s], c.events[s + 1]), "cuEventElapsedTime",
              "profile: " + step_label(*this, s));
      step_seconds[s] = double(ms) * 1e-3;
    }
  }
}

}  // namespace odc
