#include "odc/registry.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <mutex>

#if defined(ODC_HAVE_NATIVE_KERNELS)
#include "registry.h"  // kernels/native: odc_native_kernels(), the native kernel table
#endif

namespace odc {
namespace {

// Function-local statics: safe to use from other files' static initializers.
struct Registry {
  std::mutex mutex;
  std::map<std::string, odc_kernel_fn> kernels;
  std::vector<std::string> errors;

  Registry() {
#if defined(ODC_HAVE_NATIVE_KERNELS)
    // kernels/native publishes a table instead of static registrations.
    int32_t count = 0;
    const odc_builtin* table = odc_native_kernels(&count);
    for (int32_t i = 0; table != nullptr && i < count; ++i) {
      if (table[i].name == nullptr || table[i].fn == nullptr) {
        errors.push_back("native kernel table entry " + std::to_string(i) + " is empty");
      } else if (!kernels.emplace(table[i].name, table[i].fn).second) {
        errors.push_back(std::string("builtin kernel '") + table[i].name + "' registered twice");
      }
    }
#endif
  }
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

bool register_builtin(const char* name, odc_kernel_fn fn) noexcept {
  try {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (name == nullptr || name[0] == '\0' || fn == nullptr) {
      r.errors.push_back(std::string("builtin kernel '") + (name ? name : "(null)") +
                         "': empty name or null function");
      return false;
    }
    if (!r.kernels.emplace(name, fn).second) {
      r.errors.push_back(std::string("builtin kernel '") + name + "' registered twice");
      return false;
    }
    return true;
  } catch (...) {
    return false;
  }
}

odc_kernel_fn find_builtin(const std::string& name) noexcept {
  try {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.kernels.find(name);
    return it == r.kernels.end() ? nullptr : it->second;
  } catch (...) {
    return nullptr;
  }
}

std::vector<std::string> builtin_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& entry : r.kernels) names.push_back(entry.first);
  return names;
}

std::vector<std::string> builtin_registration_errors() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.errors;
}

const char* builtin_isa() noexcept {
#if defined(ODC_HAVE_NATIVE_KERNELS)
  return odc_native_isa();
#else
  return "none";
#endif
}

int32_t kernel_error(char* error, int64_t error_size, const char* format, ...) noexcept {
  if (error != nullptr && error_size > 0) {
    va_list args;
    va_start(args, format);
    std::vsnprintf(error, size_t(error_size), format, args);
    va_end(args);
  }
  return 1;
}

}  // namespace odc
