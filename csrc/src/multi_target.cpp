// Choosing what to load: a module directory of one target (format versions 1 and 2) loads as
// it is; a multi-target module (format version 3, docs/module-format.md) is an index over one
// complete module per target in sub-directories named after the target. Every target is
// validated in full before one is picked (so a damaged cuda part fails on machines without a
// GPU too), then only the picked one is prepared. By default cuda is picked when the NVIDIA
// driver opens and GPU 0 can run the module's cubins, else cpu, and the module records why it
// skipped cuda (Module::target_note); ODC_LOAD_TARGET_CPU / ODC_LOAD_TARGET_CUDA force one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cuda_driver.h"
#include "dtype.h"
#include "loader.h"
#include "module.h"
#include "sha256.h"

namespace odc {

using json = nlohmann::json;

namespace {

const char* const kKnownTargets[] = {"cpu", "cuda"};

Error invalid(const std::string& message) { return Error("invalid module: " + message); }

std::string quoted(const std::string& text) { return "'" + one_line(text) + "'"; }

bool known_target(const std::string& name) {
  for (const char* known : kKnownTargets) {
    if (name == known) return true;
  }
  return false;
}

const char* target_name(Device device) { return device == Device::kCuda ? "cuda" : "cpu"; }

const json& member(const json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) throw invalid(where + ": missing '" + key + "'");
  return *it;
}

int64_t as_int(const json& j, const std::string& what) {
  if (!j.is_number_integer()) throw invalid(what + " must be an integer");
  if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(INT64_MAX)) {
    throw invalid(what + " is out of range");
  }
  return j.get<int64_t>();
}

bool safe_relative_path(const std::string& path) {
  if (path.empty() || path.size() > 1024 || path[0] == '/') return false;
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

// One signature entry of the index: what every target's module must agree on.
struct Tensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string show() const { return name + ": " + dtype + " " + shape_string(shape); }
};

struct IndexFile {
  int64_t size = 0;
  std::string sha256;
};

class IndexLoader {
 public:
  IndexLoader(const std::string& directory, const ValidatedModule& header, uint32_t flags)
      : dir_(directory), root_(header.root()), flags_(flags), index_(header.index()) {}

  std::unique_ptr<Module> load() {
    read_targets();
    read_signature("inputs", &inputs_);
    read_signature("outputs", &outputs_);
    read_files();
    for (const std::string& target : targets_) check_target_directory(target);
    verify_files();
    // Every target in full, before anything is prepared or a driver opened.
    std::map<std::string, std::unique_ptr<ValidatedModule>> parts;
    for (const std::string& target : targets_) parts[target] = validate_target(target);
    return pick(parts);
  }

 private:
  std::string path(const std::string& relative) const { return dir_ + "/" + relative; }

  void read_targets() {
    const json& list = member(index_, "targets", "manifest.json");
    if (!list.is_array() || list.empty()) {
      throw invalid("manifest.json: targets must be a non-empty array of target names");
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = "manifest.json: targets[" + std::to_string(i) + "]";
      if (!list[i].is_string()) throw invalid(where + " must be a string");
      const std::string name = list[i].get<std::string>();
      if (!known_target(name)) throw invalid(where + ": unknown target " + quoted(name) + " (cpu, cuda)");
      for (const std::string& seen : targets_) {
        if (seen == name) throw invalid(where + ": target " + quoted(name) + " is listed twice");
      }
      targets_.push_back(name);
    }
  }

  void read_signature(const char* key, std::vector<Tensor>* out) {
    const json& list = member(index_, key, "manifest.json");
    const std::string base = std::string("manifest.json: ") + key;
    if (!list.is_array()) throw invalid(base + " must be an array");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = base + "[" + std::to_string(i) + "]";
      if (!list[i].is_object()) throw invalid(where + " must be an object");
      Tensor tensor;
      const json& name = member(list[i], "name", where);
      const json& dtype = member(list[i], "dtype", where);
      const json& shape = member(list[i], "shape", where);
      if (!name.is_string() || !dtype.is_string() || !shape.is_array() || shape.size() > 64) {
        throw invalid(where + ": name and dtype must be strings, shape an array of dims");
      }
      tensor.name = name.get<std::string>();
      tensor.dtype = dtype.get<std::string>();
      for (size_t d = 0; d < shape.size(); ++d) {
        tensor.shape.push_back(as_int(shape[d], where + ": shape[" + std::to_string(d) + "]"));
      }
      out->push_back(std::move(tensor));
    }
  }

  void read_files() {
    const json& files = member(index_, "files", "manifest.json");
    if (!files.is_object()) throw invalid("manifest.json: files must be an object");
    for (auto it = files.begin(); it != files.end(); ++it) {
      const std::string where = "manifest.json: files: " + quoted(it.key());
      if (!safe_relative_path(it.key())) {
        throw invalid(where + ": path must be relative, inside the module, without '..'");
      }
      if (it.key() == "manifest.json") throw invalid(where + ": the manifest cannot list itself");
      if (!it.value().is_object()) throw invalid(where + " must be an object");
      IndexFile entry;
      entry.size = as_int(member(it.value(), "size", where), where + ": size");
      if (entry.size < 0) throw invalid(where + ": size " + std::to_string(entry.size) + " < 0");
      const json& sha = member(it.value(), "sha256", where);
      if (!sha.is_string()) throw invalid(where + ": sha256 must be 64 hex digits");
      entry.sha256 = sha.get<std::string>();
      for (char& c : entry.sha256) c = char(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
      if (entry.sha256.size() != 64 ||
          entry.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
        throw invalid(where + ": sha256 must be 64 hex digits");
      }
      files_[it.key()] = entry;
    }
    for (const std::string& target : targets_) {
      if (files_.find(target + "/manifest.json") == files_.end()) {
        throw invalid("manifest.json: files: " + target + "/manifest.json is not listed (target " +
                      quoted(target) + ")");
      }
    }
  }

  // A path of the module must not resolve outside it (a symlink may point within it).
  void check_inside(const std::string& relative) const {
    if (root_.empty()) return;
    char* resolved = ::realpath(path(relative).c_str(), nullptr);
    if (resolved == nullptr) return;
    const std::string target(resolved);
    std::free(resolved);
    if (target.compare(0, root_.size(), root_) != 0 && target + "/" != root_) {
      throw invalid(relative + ": a symlink to " + quoted(target) + ", outside the module");
    }
  }

  void check_target_directory(const std::string& target) const {
    check_inside(target);
    struct stat info;
    if (::stat(path(target).c_str(), &info) != 0) {
      if (errno == ENOENT) {
        throw invalid(target + "/: missing target directory (manifest.json lists target " +
                      quoted(target) + ")");
      }
      throw invalid(target + "/: cannot open: " + std::strerror(errno));
    }
    if (!S_ISDIR(info.st_mode)) throw invalid(target + "/: not a directory");
  }

  void verify_files() const {
    const bool verify = !(flags_ & ODC_LOAD_SKIP_CHECKSUMS);
    for (const auto& [name, entry] : files_) {
      check_inside(name);
      const ListedFile file(path(name), name, entry.size);
      if (!verify) continue;
      Sha256 hasher;
      file.hash_into(hasher);
      if (hasher.hex_digest() != entry.sha256) {
        throw invalid(name + ": sha256 differs from the manifest (file edited or corrupt)");
      }
    }
  }

  // The target's module, validated in full; its errors read "invalid module: target cuda: ...".
  std::unique_ptr<ValidatedModule> validate_target(const std::string& target) const {
    const std::string prefix = "target " + target + ": ";
    std::unique_ptr<ValidatedModule> part;
    try {
      part = std::make_unique<ValidatedModule>(path(target), flags_);
    } catch (const Error& e) {
      std::string message = e.what();
      const std::string head = "invalid module: ";
      if (message.compare(0, head.size(), head) == 0) message = message.substr(head.size());
      throw invalid(prefix + message);
    }
    if (part->is_index()) {
      throw invalid(prefix + "manifest.json: format_version 3 (a multi-target index) cannot be "
                    "nested in a multi-target module");
    }
    const Module& m = part->module();
    if (target_name(m.device) != target) {
      throw invalid(prefix + "manifest.json: the module targets " + target_name(m.device) +
                    ", not " + target + " (its directory's name)");
    }
    check_signature(prefix, m, m.inputs, inputs_, "inputs");
    check_signature(prefix, m, m.outputs, outputs_, "outputs");
    return part;
  }

  void check_signature(const std::string& prefix, const Module& m,
                       const std::vector<SignatureEntry>& got, const std::vector<Tensor>& want,
                       const char* key) const {
    const std::string where = prefix + "manifest.json: " + key;
    if (got.size() != want.size()) {
      throw invalid(where + ": " + std::to_string(got.size()) + " entries, manifest.json has " +
                    std::to_string(want.size()));
    }
    for (size_t i = 0; i < got.size(); ++i) {
      const Value& value = m.values[size_t(got[i].value)];
      Tensor tensor{got[i].name, find_dtype(value.dtype)->name, value.shape};
      if (tensor.name != want[i].name || tensor.dtype != want[i].dtype ||
          tensor.shape != want[i].shape) {
        throw invalid(where + "[" + std::to_string(i) + "] " + one_line(tensor.show()) +
                      " != the index's " + one_line(want[i].show()));
      }
    }
  }

  std::unique_ptr<Module> pick(std::map<std::string, std::unique_ptr<ValidatedModule>>& parts) {
    const bool force_cpu = flags_ & ODC_LOAD_TARGET_CPU;
    const bool force_cuda = flags_ & ODC_LOAD_TARGET_CUDA;
    std::string all;
    for (const std::string& target : targets_) all += (all.empty() ? "" : ",") + target;
    auto finish = [&](const std::string& target, const std::string& note) {
      std::unique_ptr<Module> module = parts.at(target)->finish();
      module->targets = all;
      module->target_note = note;
      return module;
    };
    if (force_cpu || force_cuda) {
      const std::string want = force_cuda ? "cuda" : "cpu";
      if (parts.find(want) == parts.end()) {
        throw Error("module has no " + want + " target (it carries " + all + ")");
      }
      return finish(want, "");
    }
    const bool has_cpu = parts.find("cpu") != parts.end();
    if (parts.find("cuda") == parts.end()) return finish(targets_.front(), "");
    const std::string reason = cuda_unusable_reason(parts.at("cuda")->module().cuda_arch);
    if (reason.empty()) {
      if (!has_cpu) return finish("cuda", "");
      try {
        return finish("cuda", "");
      } catch (const Error& e) {  // the GPU is there but the cuda part does not load on it
        return finish("cpu", "cuda skipped: " + one_line(e.what()));
      }
    }
    if (!has_cpu) return finish("cuda", "");  // fails with the driver's own message
    return finish("cpu", "cuda skipped: " + reason);
  }

  std::string dir_, root_;
  uint32_t flags_;
  const json& index_;
  std::vector<std::string> targets_;
  std::vector<Tensor> inputs_, outputs_;
  std::map<std::string, IndexFile> files_;
};

void check_forced_target(const Module& module, uint32_t flags) {
  const bool force_cpu = flags & ODC_LOAD_TARGET_CPU;
  const bool force_cuda = flags & ODC_LOAD_TARGET_CUDA;
  const std::string have = target_name(module.device);
  if ((force_cpu && have != "cpu") || (force_cuda && have != "cuda")) {
    throw Error(std::string("module has no ") + (force_cuda ? "cuda" : "cpu") +
                " target (it carries " + have + ")");
  }
}

}  // namespace

std::string cuda_unusable_reason(const std::string& arch) {
  const CudaDriver* driver = nullptr;
  try {
    driver = &cuda_driver();
  } catch (const Error& e) {
    std::string message = e.what();
    const std::string head = "module targets cuda: ";
    if (message.compare(0, head.size(), head) == 0) message = message.substr(head.size());
    return one_line(message);
  }
  const CudaDriver& d = *driver;
  int count = 0;
  CUresult result = d.cuDeviceGetCount(&count);
  if (result != kCudaSuccess) return "cuDeviceGetCount: " + d.describe(result);
  if (count < 1) return "no CUDA device";
  CUdevice device = 0;
  int major = 0, minor = 0;
  result = d.cuDeviceGet(&device, 0);
  if (result == kCudaSuccess) {
    result = d.cuDeviceGetAttribute(&major, kCuDeviceAttributeComputeCapabilityMajor, device);
  }
  if (result == kCudaSuccess) {
    result = d.cuDeviceGetAttribute(&minor, kCuDeviceAttributeComputeCapabilityMinor, device);
  }
  if (result != kCudaSuccess) return "cannot query GPU 0: " + d.describe(result);
  if (!cubin_runs_on(arch, major, minor)) {
    return "GPU 0 is sm_" + std::to_string(major) + std::to_string(minor) +
           ", the module's cubins are built for " + arch;
  }
  return "";
}

bool cubin_runs_on(const std::string& arch, int major, int minor) {
  // "sm_XY", "sm_XYa", "sm_XYf" (the loader checked the form): major X, minor Y. A cubin runs
  // on the same major with a minor at least its own; an 'a' (architecture-specific) cubin only
  // on exactly its own.
  std::string digits = arch.substr(3);
  const bool specific = !digits.empty() && digits.back() == 'a';
  if (!digits.empty() && (digits.back() == 'a' || digits.back() == 'f')) digits.pop_back();
  if (digits.size() < 2 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  const int want_major = std::atoi(digits.substr(0, digits.size() - 1).c_str());
  const int want_minor = digits.back() - '0';
  if (major != want_major) return false;
  return specific ? minor == want_minor : minor >= want_minor;
}

std::unique_ptr<Module> Module::load(const std::string& directory, uint32_t flags) {
  if ((flags & ODC_LOAD_TARGET_CPU) && (flags & ODC_LOAD_TARGET_CUDA)) {
    throw Error("load flags: ODC_LOAD_TARGET_CPU and ODC_LOAD_TARGET_CUDA exclude each other");
  }
  ValidatedModule header(directory, flags);
  try {
    if (header.is_index()) return IndexLoader(directory, header, flags).load();
  } catch (const json::exception& e) {
    throw invalid(std::string("unexpected JSON content: ") + one_line(e.what()));
  } catch (const std::bad_alloc&) {
    throw invalid("out of memory while loading");
  }
  check_forced_target(header.module(), flags);
  return header.finish();
}

}  // namespace odc
