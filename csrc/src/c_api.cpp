// The C API: a thin wall around odc::Module. Every entry point catches everything, so no C++
// exception crosses it, and records the message in a thread-local last-error string.
#include <new>
#include <string>

#include "dtype.h"
#include "module.h"
#include "odc/runtime.h"

struct odc_module {
  std::unique_ptr<odc::Module> impl;
};

namespace {

thread_local std::string t_last_error;

int32_t fail(const std::string& message) {
  try {
    t_last_error = odc::one_line(message);
  } catch (...) {
  }
  return -1;
}

// Runs `body`, turning any exception into the last error; returns `on_error` then.
template <typename T, typename Body>
T guarded(T on_error, Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    fail("out of memory");
  } catch (const std::exception& e) {
    fail(e.what());
  } catch (...) {
    fail("unknown error");
  }
  return on_error;
}

const odc::Module* get(const odc_module* module) {
  if (module == nullptr || module->impl == nullptr) throw odc::Error("module is NULL");
  return module->impl.get();
}

void fill_info(const odc::Module& m, const std::vector<odc::SignatureEntry>& list, int32_t index,
               odc_value_info* out, const char* what) {
  if (out == nullptr) throw odc::Error("info pointer is NULL");
  if (index < 0 || size_t(index) >= list.size()) {
    throw odc::Error(std::string(what) + " index " + std::to_string(index) + " out of range");
  }
  const odc::Value& value = m.values[size_t(list[size_t(index)].value)];
  out->name = list[size_t(index)].name.c_str();
  out->dtype = value.dtype;
  out->ndim = int32_t(value.shape.size());
  out->shape = value.shape.data();
  out->nbytes = value.nbytes;
}

}  // namespace

extern "C" {

const char* odc_last_error(void) { return t_last_error.c_str(); }

int32_t odc_runtime_format_version(void) { return ODC_MODULE_FORMAT_VERSION; }

const char* odc_dtype_name(int32_t dtype) {
  const odc::DtypeInfo* info = odc::find_dtype(dtype);
  return info ? info->name : nullptr;
}

int32_t odc_dtype_size(int32_t dtype) {
  const odc::DtypeInfo* info = odc::find_dtype(dtype);
  return info ? info->size : 0;
}

void odc_set_python_kernel_resolver(odc_python_kernel_resolver resolver, void* user_data) {
  odc::set_python_resolver(resolver, user_data);
}

odc_module* odc_module_load(const char* path, uint32_t flags) {
  return guarded<odc_module*>(nullptr, [&]() -> odc_module* {
    if (path == nullptr) throw odc::Error("module path is NULL");
    auto module = std::make_unique<odc_module>();
    module->impl = odc::Module::load(path, flags);
    return module.release();
  });
}

void odc_module_free(odc_module* module) {
  try {
    delete module;
  } catch (...) {
  }
}

int32_t odc_module_num_inputs(const odc_module* module) {
  return guarded<int32_t>(-1, [&] { return int32_t(get(module)->inputs.size()); });
}

int32_t odc_module_num_outputs(const odc_module* module) {
  return guarded<int32_t>(-1, [&] { return int32_t(get(module)->outputs.size()); });
}

int32_t odc_module_input_info(const odc_module* module, int32_t index, odc_value_info* out) {
  return guarded<int32_t>(-1, [&] {
    const odc::Module* m = get(module);
    fill_info(*m, m->inputs, index, out, "input");
    return 0;
  });
}

int32_t odc_module_output_info(const odc_module* module, int32_t index, odc_value_info* out) {
  return guarded<int32_t>(-1, [&] {
    const odc::Module* m = get(module);
    fill_info(*m, m->outputs, index, out, "output");
    return 0;
  });
}

int32_t odc_module_num_steps(const odc_module* module) {
  return guarded<int32_t>(-1, [&] { return int32_t(get(module)->steps.size()); });
}

int32_t odc_module_step_info(const odc_module* module, int32_t index, odc_step_info* out) {
  return guarded<int32_t>(-1, [&] {
    const odc::Module* m = get(module);
    if (out == nullptr) throw odc::Error("info pointer is NULL");
    if (index < 0 || size_t(index) >= m->steps.size()) {
      throw odc::Error("step index " + std::to_string(index) + " out of range");
    }
    const odc::Step& step = m->steps[size_t(index)];
    const odc::Kernel& kernel = m->kernels[size_t(step.kernel)];
    out->kernel_name = kernel.name.c_str();
    out->node = step.node.c_str();
    out->kernel_id = int32_t(kernel.id);
    return 0;
  });
}

int32_t odc_module_step_tactics(const odc_module* module, int32_t index, odc_tactic_info* out) {
  return guarded<int32_t>(-1, [&] {
    const odc::Module* m = get(module);
    if (out == nullptr) throw odc::Error("info pointer is NULL");
    if (index < 0 || size_t(index) >= m->steps.size()) {
      throw odc::Error("step index " + std::to_string(index) + " out of range");
    }
    const odc::Step& step = m->steps[size_t(index)];
    out->num_candidates = int32_t(step.tactic_seconds.size());
    out->chosen = step.chosen;
    out->source = step.tactic_source.c_str();
    out->key = step.tactic_key.c_str();
    out->seconds = step.tactic_seconds.data();
    out->names = step.tactic_names.data();
    return 0;
  });
}

const char* odc_module_tactics_note(const odc_module* module) {
  return guarded<const char*>(nullptr, [&] { return get(module)->tactics_note.c_str(); });
}

int64_t odc_module_arena_size(const odc_module* module) {
  return guarded<int64_t>(-1, [&] { return get(module)->arena_size; });
}

int64_t odc_module_workspace_size(const odc_module* module) {
  return guarded<int64_t>(-1, [&] { return get(module)->workspace_size; });
}

int32_t odc_module_set_num_threads(odc_module* module, int32_t num_threads) {
  return guarded<int32_t>(-1, [&] {
    const_cast<odc::Module*>(get(module))->set_num_threads(num_threads);
    return 0;
  });
}

int32_t odc_module_num_threads(const odc_module* module) {
  return guarded<int32_t>(-1, [&] { return get(module)->num_threads; });
}

int32_t odc_module_run(odc_module* module, const odc_tensor* inputs, int32_t num_inputs,
                       const odc_tensor* outputs, int32_t num_outputs) {
  return guarded<int32_t>(-1, [&] {
    const_cast<odc::Module*>(get(module))->run(inputs, num_inputs, outputs, num_outputs, nullptr);
    return 0;
  });
}

int32_t odc_module_run_on_stream(odc_module* module, const odc_tensor* inputs,
                                 int32_t num_inputs, const odc_tensor* outputs,
                                 int32_t num_outputs, void* stream) {
  return guarded<int32_t>(-1, [&] {
    const_cast<odc::Module*>(get(module))
        ->run(inputs, num_inputs, outputs, num_outputs, nullptr, stream);
    return 0;
  });
}

int32_t odc_module_profile(odc_module* module, const odc_tensor* inputs, int32_t num_inputs,
                           const odc_tensor* outputs, int32_t num_outputs, double* step_seconds,
                           int32_t num_steps) {
  return guarded<int32_t>(-1, [&] {
    odc::Module* m = const_cast<odc::Module*>(get(module));
    if (step_seconds == nullptr || num_steps != int32_t(m->steps.size())) {
      throw odc::Error("profile: step_seconds must hold " + std::to_string(m->steps.size()) +
                       " entries");
    }
    m->run(inputs, num_inputs, outputs, num_outputs, step_seconds);
    return 0;
  });
}

int32_t odc_module_device_type(const odc_module* module) {
  return guarded<int32_t>(-1, [&] {
    return get(module)->device == odc::Device::kCuda ? int32_t(ODC_DEVICE_CUDA)
                                                     : int32_t(ODC_DEVICE_CPU);
  });
}

const char* odc_module_targets(const odc_module* module) {
  return guarded<const char*>(nullptr, [&] { return get(module)->targets.c_str(); });
}

const char* odc_module_target_note(const odc_module* module) {
  return guarded<const char*>(nullptr, [&] { return get(module)->target_note.c_str(); });
}

int32_t odc_module_cuda_stream(const odc_module* module, void** stream) {
  return guarded<int32_t>(-1, [&] {
    if (stream == nullptr) throw odc::Error("stream pointer is NULL");
    *stream = get(module)->cuda_stream();
    return 0;
  });
}

int32_t odc_module_cuda_alloc(odc_module* module, int64_t nbytes, void** pointer) {
  return guarded<int32_t>(-1, [&] {
    if (pointer == nullptr) throw odc::Error("pointer is NULL");
    *pointer = const_cast<odc::Module*>(get(module))->cuda_alloc(nbytes);
    return 0;
  });
}

int32_t odc_module_cuda_free(odc_module* module, void* pointer) {
  return guarded<int32_t>(-1, [&] {
    const_cast<odc::Module*>(get(module))->cuda_free(pointer);
    return 0;
  });
}

}  // extern "C"
