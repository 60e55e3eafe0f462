// Loading a module: every check of docs/module-format.md, in the documented order (format name
// and version first, then each section by name), each failure one line naming what and where.
// A hostile module must give an error here, never a crash later in the executor.
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "dtype.h"
#include "loader.h"
#include "module.h"
#include "odc/registry.h"
#include "sha256.h"

namespace odc {

using json = nlohmann::json;

namespace {

constexpr int64_t kIndexFormatVersion = 3;  // docs/module-format.md, version 3
constexpr int64_t kMaxJsonBytes = int64_t(256) << 20;
constexpr int kMaxJsonDepth = 64;
constexpr size_t kMaxEntries = size_t(1) << 24;  // values, steps, params of one step, ...
constexpr int64_t kMaxDeviceBytes = int64_t(1) << 40;  // sanity bound for cuda plans
constexpr int64_t kMaxSharedBytes = int64_t(1) << 20;  // the device's opt-in limit is checked at load
constexpr size_t kMaxLaunchParams = 1024;

std::mutex g_resolver_mutex;
odc_python_kernel_resolver g_resolver = nullptr;
void* g_resolver_data = nullptr;

Error invalid(const std::string& message) { return Error("invalid module: " + message); }

// A user-supplied string for a message: one line, clipped.
std::string show(const std::string& text) {
  std::string out = one_line(text);
  if (out.size() > 120) out = out.substr(0, 117) + "...";
  return "'" + out + "'";
}

const char* type_name(const json& j) {
  return j.is_number_float() ? "a float" : j.is_number() ? "a number"
       : j.is_string()       ? "a string"
       : j.is_boolean()      ? "a boolean"
       : j.is_null()         ? "null"
       : j.is_array()        ? "an array"
       : j.is_object()       ? "an object"
                             : "something else";
}

// nlohmann's parser is iterative, but keep hostile nesting bounded anyway (destruction and our
// own walks stay shallow).
void check_depth(const std::vector<uint8_t>& bytes, const std::string& label) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (uint8_t c : bytes) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        throw invalid(label + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                      " levels");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

json parse_json(const std::vector<uint8_t>& bytes, const std::string& label) {
  if (bytes.empty()) throw invalid(label + ": empty file");
  check_depth(bytes, label);
  try {
    return json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    std::string message = e.what();
    size_t bracket = message.find("] ");
    if (message.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) {
      message = message.substr(bracket + 2);
    }
    throw invalid(label + ": not valid JSON: " + one_line(message));
  }
}

// Typed access with the location in every message ("plan.json: values[3]").
const json& member(const json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) throw invalid(where + ": missing '" + key + "'");
  return *it;
}

const json* optional_member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

void expect_object(const json& j, const std::string& where) {
  if (!j.is_object()) throw invalid(where + ": expected an object, got " + type_name(j));
}

const json& array_member(const json& object, const char* key, const std::string& where) {
  const json& value = member(object, key, where);
  if (!value.is_array()) {
    throw invalid(where + ": '" + key + "' must be an array, got " + type_name(value));
  }
  if (value.size() > kMaxEntries) throw invalid(where + ": '" + key + "' has too many entries");
  return value;
}

int64_t as_int(const json& j, const std::string& what) {
  if (j.is_number_unsigned()) {
    uint64_t value = j.get<uint64_t>();
    if (value > uint64_t(INT64_MAX)) {
      throw invalid(what + " " + std::to_string(value) + " is out of range");
    }
    return int64_t(value);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  throw invalid(what + " must be an integer, got " + type_name(j));
}

int64_t int_member(const json& object, const char* key, const std::string& where) {
  return as_int(member(object, key, where), where + ": " + key);
}

std::string string_member(const json& object, const char* key, const std::string& where) {
  const json& value = member(object, key, where);
  if (!value.is_string()) {
    throw invalid(where + ": '" + key + "' must be a string, got " + type_name(value));
  }
  return value.get<std::string>();
}

int32_t dtype_member(const json& object, const std::string& where) {
  std::string name = string_member(object, "dtype", where);
  const DtypeInfo* info = find_dtype_by_name(name.c_str());
  if (info == nullptr || name.find('\0') != std::string::npos) {
    throw invalid(where + ": unknown dtype " + show(name));
  }
  return info->dtype;
}

// Static shape; also checks the byte size fits int64.
std::vector<int64_t> shape_member(const json& object, int32_t dtype, const std::string& where) {
  const json& shape = member(object, "shape", where);
  if (!shape.is_array()) throw invalid(where + ": 'shape' must be an array");
  if (shape.size() > ODC_MAX_RANK) {
    throw invalid(where + ": rank " + std::to_string(shape.size()) + " exceeds ODC_MAX_RANK " +
                  std::to_string(ODC_MAX_RANK));
  }
  std::vector<int64_t> dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    const std::string what = where + ": shape[" + std::to_string(i) + "]";
    if (shape[i].is_string()) {
      throw invalid(what + " is symbolic " + show(shape[i].get<std::string>()) +
                    "; pin it at compile time (--input-shape)");
    }
    int64_t dim = as_int(shape[i], what);
    if (dim < 0) throw invalid(what + " is " + std::to_string(dim) + " (must be >= 0)");
    dims.push_back(dim);
  }
  int64_t numel = element_count(dims.data(), int32_t(dims.size()));
  int64_t nbytes = 0;
  if (numel < 0 || !checked_mul(numel, find_dtype(dtype)->size, &nbytes)) {
    throw invalid(where + ": shape " + shape_string(dims) + " overflows int64 bytes");
  }
  return dims;
}

int64_t byte_size(const std::vector<int64_t>& shape, int32_t dtype) {
  return element_count(shape.data(), int32_t(shape.size())) * find_dtype(dtype)->size;
}

// Relative, inside the module, no surprises for open().
bool safe_relative_path(const std::string& path) {
  if (path.empty() || path.size() > 1024 || path[0] == '/') return false;
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

int64_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return INT64_MAX;
  int64_t total = 0;
  return checked_mul(pages, page_size, &total) ? total : INT64_MAX;
}

const char* storage_name(Storage storage) {
  switch (storage) {
    case Storage::kInput:
      return "input";
    case Storage::kOutput:
      return "output";
    case Storage::kWeights:
      return "weights";
    case Storage::kArena:
      return "arena";
  }
  return "?";
}

// dlopen maps a library's segments without comparing them to the file's size: a truncated
// library crashes the process (SIGBUS) inside dlopen. So check the ELF program headers first;
// returns "" when they fit in the file, or what is wrong. Anything that is not a 64-bit ELF
// file is left to dlopen, which refuses it with a message.
std::string elf_segments_problem(const std::string& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::string("cannot open: ") + std::strerror(errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) return "not a regular file";
  const uint64_t size = uint64_t(info.st_size);
  Elf64_Ehdr header;
  if (size < sizeof(header) || ::pread(fd, &header, sizeof(header), 0) != ssize_t(sizeof(header)) ||
      std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64) {
    return "";
  }
  if (header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phnum == 0 || header.e_phnum > 1024 ||
      header.e_phoff > size || uint64_t(header.e_phnum) * sizeof(Elf64_Phdr) > size - header.e_phoff) {
    return "ELF program header table is damaged or past the end of the file";
  }
  std::vector<Elf64_Phdr> segments(header.e_phnum);
  const ssize_t want = ssize_t(segments.size() * sizeof(Elf64_Phdr));
  if (::pread(fd, segments.data(), size_t(want), off_t(header.e_phoff)) != want) {
    return "cannot read the ELF program headers";
  }
  for (size_t i = 0; i < segments.size(); ++i) {
    const Elf64_Phdr& p = segments[i];
    if (p.p_filesz > 0 && (p.p_offset > size || p.p_filesz > size - p.p_offset)) {
      return "ELF segment " + std::to_string(i) + " (offset " + std::to_string(p.p_offset) +
             " + size " + std::to_string(p.p_filesz) + ") is past the end of the file (" +
             std::to_string(size) + " bytes; truncated?)";
    }
  }
  return "";
}

struct FileEntry {
  int64_t size = 0;
  std::string sha256;
};

struct SignatureSpec {
  std::string name;
  int32_t dtype = 0;
  std::vector<int64_t> shape;
  int64_t value = 0;
};

}  // namespace

ListedFile::ListedFile(const std::string& path, const std::string& name, int64_t size)
    : name_(name), size_(size) {
  // O_NONBLOCK: a FIFO must not block the open (fstat below refuses it).
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) {
    if (errno == ENOENT) throw invalid(name + ": missing file");
    throw invalid(name + ": cannot open: " + std::strerror(errno));
  }
  struct stat info;
  if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw invalid(name + ": not a regular file");
  }
  if (int64_t(info.st_size) != size) {
    ::close(fd_);
    throw invalid(name + ": size " + std::to_string(info.st_size) + " != " +
                  std::to_string(size) + " in manifest");
  }
}

ListedFile::~ListedFile() { ::close(fd_); }

void ListedFile::hash_into(Sha256& hasher) const {
  std::vector<uint8_t> chunk(size_t(1) << 20);
  int64_t done = 0;
  while (done < size_) {
    ssize_t n = ::read(fd_, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw invalid(name_ + ": read failed");
    hasher.update(chunk.data(), size_t(n));
    done += n;
  }
  if (done != size_) throw invalid(name_ + ": changed while loading");
}

void set_python_resolver(odc_python_kernel_resolver resolver, void* user_data) {
  std::lock_guard<std::mutex> lock(g_resolver_mutex);
  g_resolver = resolver;
  g_resolver_data = user_data;
}

class Loader {
 public:
  Loader(const std::string& directory, uint32_t flags)
      : dir_(directory),
        verify_(!(flags & ODC_LOAD_SKIP_CHECKSUMS)),
        flags_(flags),
        module_(new Module()) {}

  // Every check of the format (manifest, each file's size and SHA-256, plan, signature),
  // before any kernel is resolved, memory allocated or driver opened. A multi-target index
  // (format_version 3) is only read as far as its header: is_index() then says so and index()
  // holds its manifest (multi_target.cpp checks the rest).
  void validate() {
    struct stat info;
    if (::stat(dir_.c_str(), &info) != 0) {
      throw Error("cannot open module " + show(dir_) + ": " + std::strerror(errno));
    }
    if (!S_ISDIR(info.st_mode)) throw Error("cannot open module " + show(dir_) + ": not a directory");
    if (char* resolved = ::realpath(dir_.c_str(), nullptr)) {
      root_ = std::string(resolved) + "/";
      std::free(resolved);
    }
    check_inside("manifest.json");
    std::vector<uint8_t> manifest_bytes;
    try {
      manifest_bytes = read_file(path("manifest.json"), "manifest.json", kMaxJsonBytes);
    } catch (const Error& e) {
      throw invalid(e.what());
    }
    json manifest = parse_json(manifest_bytes, "manifest.json");
    manifest_bytes = std::vector<uint8_t>();
    check_manifest_header(manifest);
    if (version_ == kIndexFormatVersion) {
      index_ = std::move(manifest);
      return;
    }
    read_files_table(manifest);
    read_signature(manifest, "inputs", &inputs_);
    read_signature(manifest, "outputs", &outputs_);
    read_kernel_table(manifest);
    verify_files();
    json plan = parse_json(plan_bytes_, "plan.json");
    plan_bytes_.clear();
    read_plan(plan);
    for (Step& step : module_->steps) {  // final addresses: the steps no longer move
      step.tactic_seconds.assign(1 + step.tactics.size(), -1.0);
      step.tactic_names.push_back(step.tactic_name.c_str());
      for (const Tactic& tactic : step.tactics) step.tactic_names.push_back(tactic.name.c_str());
    }
    bind_signature(inputs_, "inputs", Storage::kInput, &module_->inputs);
    bind_signature(outputs_, "outputs", Storage::kOutput, &module_->outputs);
    module_->targets = module_->device == Device::kCuda ? "cuda" : "cpu";
  }

  bool is_index() const { return version_ == kIndexFormatVersion; }
  const json& index() const { return index_; }
  const std::string& root() const { return root_; }
  const Module& module() const { return *module_; }

  // After validate(): resolves the kernels and prepares the module to run (allocates its
  // memory; a cuda module opens the driver, uploads its weights and loads its cubins).
  std::unique_ptr<Module> finish() {
    resolve_kernels();
    module_->directory_ = dir_;
    module_->plan_sha256 = files_["plan.json"].sha256;
    const char* tune = std::getenv("ODC_CUDA_TUNE");
    module_->cuda_tune = (flags_ & ODC_LOAD_CUDA_TUNE) ||
                         (tune != nullptr && std::strcmp(tune, "1") == 0);
    const char* graphs = std::getenv("ODC_CUDA_GRAPHS");
    module_->cuda_graphs = !(flags_ & ODC_LOAD_NO_CUDA_GRAPHS) &&
                           !(graphs != nullptr && std::strcmp(graphs, "0") == 0);
    module_->prepare();
    return std::move(module_);
  }

 private:
  std::string path(const std::string& relative) const { return dir_ + "/" + relative; }

  // A file of the module must not be a symlink to something outside the module directory
  // (a missing or unreadable file is left to the open that follows, which names it).
  void check_inside(const std::string& relative) const {
    if (root_.empty()) return;
    char* resolved = ::realpath(path(relative).c_str(), nullptr);
    if (resolved == nullptr) return;
    const std::string target(resolved);
    std::free(resolved);
    if (target.compare(0, root_.size(), root_) != 0) {
      throw invalid(relative + ": a symlink to " + show(target) + ", outside the module");
    }
  }

  void check_manifest_header(const json& manifest) {
    expect_object(manifest, "manifest.json");
    const json* format = optional_member(manifest, "format");
    if (format == nullptr) throw invalid("manifest.json: missing 'format' (not a compiled module?)");
    if (!format->is_string() || format->get<std::string>() != ODC_MODULE_FORMAT_NAME) {
      throw invalid("manifest.json: format " +
                    (format->is_string() ? show(format->get<std::string>()) : type_name(*format)) +
                    " is not '" ODC_MODULE_FORMAT_NAME "'");
    }
    int64_t version = int_member(manifest, "format_version", "manifest.json");
    if (version > ODC_MODULE_FORMAT_VERSION) {
      throw invalid("manifest.json: format_version " + std::to_string(version) +
                    " is newer than this runtime (" + std::to_string(ODC_MODULE_FORMAT_VERSION) +
                    ")");
    }
    if (version < 1) {
      throw invalid("manifest.json: format_version " + std::to_string(version) + " is not valid");
    }
    const json& producer = member(manifest, "producer", "manifest.json");
    expect_object(producer, "manifest.json: producer");
    string_member(producer, "name", "manifest.json: producer");
    string_member(producer, "version", "manifest.json: producer");
    if (const json* hash = optional_member(manifest, "source_model_sha256")) {
      if (!hash->is_string()) throw invalid("manifest.json: source_model_sha256 must be a string");
    }
    version_ = version;
    if (version == kIndexFormatVersion) return;  // a multi-target index: multi_target.cpp
    std::vector<std::string> targets;
    const json* targets_json = optional_member(manifest, "targets");
    if (targets_json != nullptr) {
      if (!targets_json->is_array()) throw invalid("manifest.json: targets must be an array");
      for (const json& target : *targets_json) {
        if (!target.is_string()) throw invalid("manifest.json: targets must hold strings");
        targets.push_back(target.get<std::string>());
      }
    }
    const bool cuda = std::find(targets.begin(), targets.end(), "cuda") != targets.end();
    if (version < 2) {
      if (cuda) throw invalid("manifest.json: target 'cuda' needs format_version 2 (this is 1)");
      return;
    }
    // Version 2: exactly one target, and a cuda module names the architecture it was built for.
    if (targets_json == nullptr) throw invalid("manifest.json: missing 'targets'");
    if (targets.size() != 1 || (targets[0] != "cpu" && targets[0] != "cuda")) {
      std::string list;
      for (const std::string& t : targets) list += (list.empty() ? "" : ", ") + show(t);
      throw invalid("manifest.json: targets [" + list +
                    "] must be exactly one of 'cpu', 'cuda' (one module per target)");
    }
    if (!cuda) {
      if (optional_member(manifest, "cuda") != nullptr) {
        throw invalid("manifest.json: a 'cuda' section in a module that targets cpu");
      }
      return;
    }
    module_->device = Device::kCuda;
    const json& section = member(manifest, "cuda", "manifest.json");
    expect_object(section, "manifest.json: cuda");
    const std::string arch = string_member(section, "arch", "manifest.json: cuda");
    bool arch_ok = arch.size() >= 5 && arch.size() <= 8 && arch.compare(0, 3, "sm_") == 0;
    size_t digits = 0;
    for (size_t k = 3; arch_ok && k < arch.size(); ++k) {
      if (arch[k] >= '0' && arch[k] <= '9' && k == 3 + digits) {
        ++digits;
      } else if (!(k == arch.size() - 1 && (arch[k] == 'a' || arch[k] == 'f') && digits >= 2)) {
        arch_ok = false;
      }
    }
    if (!arch_ok || digits < 2) {
      throw invalid("manifest.json: cuda: arch " + show(arch) +
                    " is not a CUDA architecture like 'sm_90'");
    }
    module_->cuda_arch = arch;
  }

  void read_files_table(const json& manifest) {
    const json& files = member(manifest, "files", "manifest.json");
    expect_object(files, "manifest.json: files");
    for (auto it = files.begin(); it != files.end(); ++it) {
      const std::string where = "manifest.json: files: " + show(it.key());
      if (!safe_relative_path(it.key())) {
        throw invalid(where + ": path must be relative, inside the module, without '..'");
      }
      if (it.key() == "manifest.json") throw invalid(where + ": the manifest cannot list itself");
      expect_object(it.value(), where);
      FileEntry entry;
      entry.size = int_member(it.value(), "size", where);
      if (entry.size < 0) throw invalid(where + ": size " + std::to_string(entry.size) + " < 0");
      entry.sha256 = string_member(it.value(), "sha256", where);
      std::transform(entry.sha256.begin(), entry.sha256.end(), entry.sha256.begin(),
                     [](char c) { return char(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c); });
      if (entry.sha256.size() != 64 ||
          entry.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
        throw invalid(where + ": sha256 must be 64 hex digits");
      }
      files_[it.key()] = entry;
    }
    if (files_.find("plan.json") == files_.end()) {
      throw invalid("manifest.json: files: plan.json is not listed");
    }
  }

  void read_signature(const json& manifest, const char* key, std::vector<SignatureSpec>* out) {
    const json& list = array_member(manifest, key, "manifest.json");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = std::string("manifest.json: ") + key + "[" + std::to_string(i) + "]";
      expect_object(list[i], where);
      SignatureSpec spec;
      spec.name = string_member(list[i], "name", where);
      if (spec.name.empty() || spec.name.find('\0') != std::string::npos) {
        throw invalid(where + ": name must be a non-empty string");
      }
      for (const SignatureSpec& other : *out) {
        if (other.name == spec.name) throw invalid(where + ": duplicate name " + show(spec.name));
      }
      spec.dtype = dtype_member(list[i], where);
      spec.shape = shape_member(list[i], spec.dtype, where);
      spec.value = int_member(list[i], "value", where);
      out->push_back(std::move(spec));
    }
  }

  void read_kernel_table(const json& manifest) {
    const json& list = array_member(manifest, "kernels", "manifest.json");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = "kernels[" + std::to_string(i) + "]";
      const std::string mwhere = "manifest.json: " + where;
      expect_object(list[i], mwhere);
      Kernel kernel;
      kernel.id = int_member(list[i], "id", mwhere);
      if (!kernel_index_.emplace(kernel.id, int32_t(i)).second) {
        throw invalid(mwhere + ": duplicate id " + std::to_string(kernel.id));
      }
      kernel.name = string_member(list[i], "name", mwhere);
      kernel.backend = string_member(list[i], "backend", mwhere);
      kernel.kind = string_member(list[i], "kind", mwhere);
      kernel.entry = string_member(list[i], "entry", mwhere);
      if (kernel.entry.empty() || kernel.entry.find('\0') != std::string::npos) {
        throw invalid(mwhere + ": entry must be a non-empty string");
      }
      if (const json* version = optional_member(list[i], "version")) {
        as_int(*version, mwhere + ": version");
      }
      const bool cuda = module_->device == Device::kCuda;
      if (kernel.kind == "cubin" && !cuda) {
        throw invalid(mwhere + ": kind 'cubin' needs a module that targets cuda (format_version 2)");
      }
      if (cuda && kernel.kind != "cubin" &&
          (kernel.kind == "builtin" || kernel.kind == "shared_library" || kernel.kind == "python")) {
        throw invalid(mwhere + ": kind " + show(kernel.kind) +
                      " runs on the CPU; every kernel of a cuda module is a 'cubin'");
      }
      if (kernel.kind == "cubin") read_launch(list[i], mwhere, &kernel);
      if (kernel.kind == "shared_library" || kernel.kind == "cubin") {
        const json* file = optional_member(list[i], "file");
        if (file == nullptr || !file->is_string()) {
          throw invalid(mwhere + ": kind " + show(kernel.kind) + " needs a 'file'");
        }
        kernel.file = file->get<std::string>();
        if (!safe_relative_path(kernel.file)) {
          throw invalid(mwhere + ": file " + show(kernel.file) +
                        " must be relative, inside the module, without '..'");
        }
        struct stat info;
        if (::stat(path(kernel.file).c_str(), &info) != 0) {
          throw invalid(where + ": missing file " + kernel.file);
        }
        if (files_.find(kernel.file) == files_.end()) {
          throw invalid(where + ": file " + kernel.file + " is not listed in manifest.json files");
        }
      } else if (kernel.kind != "builtin" && kernel.kind != "python") {
        throw invalid(mwhere + ": unknown kind " + show(kernel.kind) +
                      " (this runtime knows builtin, shared_library, python, cubin)");
      }
      module_->kernels.push_back(std::move(kernel));
    }
  }

  // A cubin kernel's launch metadata: block of num_warps * 32 threads, dynamic shared memory,
  // the function's parameter types in order (Triton's hidden trailing pointers included).
  void read_launch(const json& entry, const std::string& where, Kernel* kernel) {
    const json& launch = member(entry, "launch", where);
    const std::string lwhere = where + ": launch";
    expect_object(launch, lwhere);
    const int64_t warps = int_member(launch, "num_warps", lwhere);
    if (warps < 1 || warps > 32) {
      throw invalid(lwhere + ": num_warps " + std::to_string(warps) +
                    " must be in [1, 32] (at most 1024 threads per block)");
    }
    kernel->num_warps = int32_t(warps);
    kernel->shared = int_member(launch, "shared", lwhere);
    if (kernel->shared < 0 || kernel->shared > kMaxSharedBytes) {
      throw invalid(lwhere + ": shared " + std::to_string(kernel->shared) + " must be in [0, " +
                    std::to_string(kMaxSharedBytes) + "] bytes");
    }
    const json& params = array_member(launch, "params", lwhere);
    if (params.size() > kMaxLaunchParams) {
      throw invalid(lwhere + ": " + std::to_string(params.size()) + " params (at most " +
                    std::to_string(kMaxLaunchParams) + ")");
    }
    for (size_t k = 0; k < params.size(); ++k) {
      const std::string name = params[k].is_string() ? params[k].get<std::string>() : "";
      if (name == "ptr") {
        kernel->params.push_back(ParamType::kPtr);
      } else if (name == "i32") {
        kernel->params.push_back(ParamType::kI32);
      } else if (name == "i64") {
        kernel->params.push_back(ParamType::kI64);
      } else if (name == "f32") {
        kernel->params.push_back(ParamType::kF32);
      } else {
        throw invalid(lwhere + ": params[" + std::to_string(k) + "] " +
                      (params[k].is_string() ? show(name) : std::string(type_name(params[k]))) +
                      " is not one of 'ptr', 'i32', 'i64', 'f32'");
      }
    }
  }

  // Sizes and SHA-256 of every listed file; keeps plan.json's bytes and maps weights.bin.
  void verify_files() {
    for (const auto& [name, entry] : files_) {
      check_inside(name);
      const ListedFile file(path(name), name, entry.size);
      const int fd = file.fd();
      Sha256 hasher;
      if (name == "plan.json") {
        if (entry.size > kMaxJsonBytes) throw invalid("plan.json: larger than 256 MiB");
        try {
          plan_bytes_ = read_file(path(name), name, kMaxJsonBytes);
        } catch (const Error& e) {
          throw invalid(e.what());
        }
        if (int64_t(plan_bytes_.size()) != entry.size) throw invalid(name + ": changed while loading");
        hasher.update(plan_bytes_.data(), plan_bytes_.size());
      } else if (name == "weights.bin") {
        has_weights_ = true;
        if (entry.size > 0) {
          void* map = ::mmap(nullptr, size_t(entry.size), PROT_READ, MAP_PRIVATE, fd, 0);
          if (map == MAP_FAILED) {
            throw invalid(std::string("weights.bin: mmap failed: ") + std::strerror(errno));
          }
          module_->weights_ = static_cast<uint8_t*>(map);
          module_->weights_size_ = size_t(entry.size);
          if (verify_) hasher.update(map, size_t(entry.size));
        }
      } else if (verify_) {
        file.hash_into(hasher);
      }
      if (verify_ && hasher.hex_digest() != entry.sha256) {
        throw invalid(name + ": sha256 differs from the manifest (file edited or corrupt)");
      }
    }
  }

  void read_plan(const json& plan) {
    expect_object(plan, "plan.json");
    Module& m = *module_;
    m.alignment = int_member(plan, "alignment", "plan.json");
    if (m.alignment < 64 || m.alignment > 4096 || (m.alignment & (m.alignment - 1)) != 0) {
      throw invalid("plan.json: alignment " + std::to_string(m.alignment) +
                    " must be a power of two in [64, 4096]");
    }
    m.arena_size = int_member(plan, "arena_size", "plan.json");
    // Device memory is known only once the driver is open (allocation failures name it then);
    // here a cuda plan's sizes are only held to a sane bound.
    const int64_t memory = m.device == Device::kCuda ? kMaxDeviceBytes : physical_memory();
    if (m.arena_size < 0 || m.arena_size > memory) {
      throw invalid("plan.json: arena_size " + std::to_string(m.arena_size) +
                    (m.arena_size < 0 ? " < 0"
                     : m.device == Device::kCuda ? " exceeds 1 TiB"
                                                 : " exceeds this machine's memory"));
    }
    const json& values = array_member(plan, "values", "plan.json");
    for (size_t i = 0; i < values.size(); ++i) read_value(values[i], i);
    const json& steps = array_member(plan, "steps", "plan.json");
    std::vector<bool> written(m.values.size(), false);
    for (size_t i = 0; i < steps.size(); ++i) read_step(steps[i], i, &written);
    for (size_t i = 0; i < m.values.size(); ++i) {
      if (m.values[i].storage == Storage::kOutput && !written[i]) {
        throw invalid("plan.json: values[" + std::to_string(i) + "] " + show(m.values[i].name) +
                      ": output is never written by any step");
      }
    }
  }

  void read_value(const json& entry, size_t i) {
    const std::string where = "plan.json: values[" + std::to_string(i) + "]";
    expect_object(entry, where);
    Value value;
    value.id = int_member(entry, "id", where);
    if (!value_index_.emplace(value.id, int32_t(i)).second) {
      throw invalid(where + ": duplicate id " + std::to_string(value.id));
    }
    value.name = string_member(entry, "name", where);
    value.dtype = dtype_member(entry, where);
    value.shape = shape_member(entry, value.dtype, where);
    const std::string storage = string_member(entry, "storage", where);
    if (storage == "input") {
      value.storage = Storage::kInput;
    } else if (storage == "output") {
      value.storage = Storage::kOutput;
    } else if (storage == "weights") {
      value.storage = Storage::kWeights;
    } else if (storage == "arena") {
      value.storage = Storage::kArena;
    } else {
      throw invalid(where + ": unknown storage " + show(storage));
    }
    if (const json* device = optional_member(entry, "device")) {
      const char* want = module_->device == Device::kCuda ? "cuda" : "cpu";
      if (!device->is_string() || device->get<std::string>() != want) {
        const std::string got =
            device->is_string() ? show(device->get<std::string>()) : type_name(*device);
        if (device->is_string() && (device->get<std::string>() == "cpu" ||
                                    device->get<std::string>() == "cuda")) {
          throw invalid(where + ": device " + got + " in a module that targets " + want +
                        (version_ < 2 ? " (format_version 1 is cpu only)" : ""));
        }
        throw invalid(where + ": unknown device " + got + " (cpu, cuda)");
      }
    }
    const int64_t expected = byte_size(value.shape, value.dtype);
    if (value.storage == Storage::kWeights || value.storage == Storage::kArena) {
      value.offset = int_member(entry, "offset", where);
      value.nbytes = int_member(entry, "nbytes", where);
      const bool in_weights = value.storage == Storage::kWeights;
      const char* region = in_weights ? "weights.bin size" : "arena_size";
      const int64_t region_size = in_weights ? int64_t(module_->weights_size_) : module_->arena_size;
      if (in_weights && !has_weights_) {
        throw invalid(where + ": storage 'weights' but weights.bin is not listed in the manifest");
      }
      if (value.offset < 0) throw invalid(where + ": offset " + std::to_string(value.offset) + " < 0");
      if (value.offset % module_->alignment != 0) {
        throw invalid(where + ": offset " + std::to_string(value.offset) +
                      " is not a multiple of alignment " + std::to_string(module_->alignment));
      }
      if (value.nbytes != expected) {
        throw invalid(where + ": nbytes " + std::to_string(value.nbytes) + " != " +
                      std::to_string(expected) + " for shape " + shape_string(value.shape) + " " +
                      find_dtype(value.dtype)->name);
      }
      if (value.offset > region_size || value.nbytes > region_size - value.offset) {
        throw invalid(where + ": offset " + std::to_string(value.offset) + " + nbytes " +
                      std::to_string(value.nbytes) + " exceeds " + region + " " +
                      std::to_string(region_size));
      }
    } else {
      value.nbytes = expected;
      if (const json* nbytes = optional_member(entry, "nbytes")) {
        if (as_int(*nbytes, where + ": nbytes") != expected) {
          throw invalid(where + ": nbytes " + std::to_string(as_int(*nbytes, where)) + " != " +
                        std::to_string(expected) + " for shape " + shape_string(value.shape));
        }
      }
    }
    module_->values.push_back(std::move(value));
  }

  int32_t value_ref(const json& entry, const std::string& what) {
    int64_t id = as_int(entry, what);
    auto it = value_index_.find(id);
    if (it == value_index_.end()) throw invalid(what + ": value " + std::to_string(id) + " does not exist");
    return it->second;
  }

  void read_step(const json& entry, size_t i, std::vector<bool>* written) {
    const std::string where = "plan.json: steps[" + std::to_string(i) + "]";
    expect_object(entry, where);
    Module& m = *module_;
    Step step;
    int64_t kernel_id = int_member(entry, "kernel", where);
    auto kernel = kernel_index_.find(kernel_id);
    if (kernel == kernel_index_.end()) {
      throw invalid(where + ": kernel " + std::to_string(kernel_id) + " is not in the kernel table");
    }
    step.kernel = kernel->second;
    if (const json* node = optional_member(entry, "node")) {
      if (!node->is_string()) throw invalid(where + ": 'node' must be a string");
      step.node = one_line(node->get<std::string>());
    }
    const json& inputs = array_member(entry, "inputs", where);
    for (size_t k = 0; k < inputs.size(); ++k) {
      const std::string what = where + ": inputs[" + std::to_string(k) + "]";
      if (inputs[k].is_number_integer() && as_int(inputs[k], what) == -1) {
        step.inputs.push_back(-1);
        continue;
      }
      int32_t index = value_ref(inputs[k], what);
      const Value& value = m.values[size_t(index)];
      if ((value.storage == Storage::kArena || value.storage == Storage::kOutput) &&
          !(*written)[size_t(index)]) {
        throw invalid(what + ": value " + std::to_string(value.id) + " " + show(value.name) +
                      " is read before any step writes it");
      }
      step.inputs.push_back(index);
    }
    const json& outputs = array_member(entry, "outputs", where);
    for (size_t k = 0; k < outputs.size(); ++k) {
      const std::string what = where + ": outputs[" + std::to_string(k) + "]";
      int32_t index = value_ref(outputs[k], what);
      const Value& value = m.values[size_t(index)];
      if (value.storage == Storage::kWeights || value.storage == Storage::kInput) {
        throw invalid(what + ": value " + std::to_string(value.id) + " " + show(value.name) +
                      " has storage '" + storage_name(value.storage) + "' and cannot be written");
      }
      step.outputs.push_back(index);
      (*written)[size_t(index)] = true;
    }
    if (const json* iparams = optional_member(entry, "iparams")) {
      if (!iparams->is_array() || iparams->size() > kMaxEntries) {
        throw invalid(where + ": 'iparams' must be an array of integers");
      }
      for (size_t k = 0; k < iparams->size(); ++k) {
        step.iparams.push_back(as_int((*iparams)[k], where + ": iparams[" + std::to_string(k) + "]"));
      }
    }
    if (const json* fparams = optional_member(entry, "fparams")) {
      if (!fparams->is_array() || fparams->size() > kMaxEntries) {
        throw invalid(where + ": 'fparams' must be an array of numbers");
      }
      for (size_t k = 0; k < fparams->size(); ++k) {
        if (!(*fparams)[k].is_number()) {
          throw invalid(where + ": fparams[" + std::to_string(k) + "] must be a number, got " +
                        type_name((*fparams)[k]));
        }
        step.fparams.push_back((*fparams)[k].get<double>());
      }
    }
    if (const json* workspace = optional_member(entry, "workspace")) {
      step.workspace = as_int(*workspace, where + ": workspace");
      const int64_t limit = m.device == Device::kCuda ? kMaxDeviceBytes : physical_memory();
      if (step.workspace < 0 || step.workspace > limit) {
        throw invalid(where + ": workspace " + std::to_string(step.workspace) + " is not a sane size");
      }
    }
    if (m.kernels[size_t(step.kernel)].kind == "cubin") {
      read_launch(entry, where, step, step.kernel, step.workspace, step.grid, &step.args);
      read_tactics(entry, where, &step);
    } else if (optional_member(entry, "tactics") != nullptr) {
      throw invalid(where + ": 'tactics' are for steps of cubin kernels only");
    }
    m.workspace_size = std::max(m.workspace_size, step.workspace);
    for (const Tactic& tactic : step.tactics) {
      m.workspace_size = std::max(m.workspace_size, tactic.workspace);
    }
    m.steps.push_back(std::move(step));
  }

  // A cubin step's alternative launches ("tactics"), each checked exactly like the step's own
  // launch (its kernel a cubin of the table, its grid, its args against that kernel's params
  // and the step's inputs / outputs / the alternative's own workspace).
  void read_tactics(const json& entry, const std::string& where, Step* step) {
    for (const char* key : {"tactic_key", "tactic_name"}) {
      if (const json* text = optional_member(entry, key)) {
        if (!text->is_string() || text->get<std::string>().size() > 1024) {
          throw invalid(where + ": '" + key + "' must be a string of at most 1024 bytes");
        }
        (std::string(key) == "tactic_key" ? step->tactic_key : step->tactic_name) =
            one_line(text->get<std::string>());
      }
    }
    const json* tactics = optional_member(entry, "tactics");
    if (tactics == nullptr) return;
    constexpr size_t kMaxTactics = 16;
    if (!tactics->is_array() || tactics->empty() || tactics->size() > kMaxTactics) {
      throw invalid(where + ": 'tactics' must be an array of 1 to " +
                    std::to_string(kMaxTactics) + " alternative launches");
    }
    for (size_t t = 0; t < tactics->size(); ++t) {
      const json& item = (*tactics)[t];
      const std::string twhere = where + ": tactics[" + std::to_string(t) + "]";
      expect_object(item, twhere);
      Tactic tactic;
      const int64_t kernel_id = int_member(item, "kernel", twhere);
      auto kernel = kernel_index_.find(kernel_id);
      if (kernel == kernel_index_.end()) {
        throw invalid(twhere + ": kernel " + std::to_string(kernel_id) +
                      " is not in the kernel table");
      }
      tactic.kernel = kernel->second;
      const Kernel& k = module_->kernels[size_t(tactic.kernel)];
      if (k.kind != "cubin") {
        throw invalid(twhere + ": kernel " + std::to_string(kernel_id) + " " + show(k.name) +
                      " has kind " + show(k.kind) + "; a tactic launches a 'cubin'");
      }
      tactic.workspace = int_member(item, "workspace", twhere);
      if (tactic.workspace < 0 || tactic.workspace > kMaxDeviceBytes) {
        throw invalid(twhere + ": workspace " + std::to_string(tactic.workspace) +
                      " is not a sane size");
      }
      if (const json* name = optional_member(item, "name")) {
        if (!name->is_string() || name->get<std::string>().size() > 256) {
          throw invalid(twhere + ": 'name' must be a string of at most 256 bytes");
        }
        tactic.name = one_line(name->get<std::string>());
      }
      read_launch(item, twhere, *step, tactic.kernel, tactic.workspace, tactic.grid, &tactic.args);
      step->tactics.push_back(std::move(tactic));
    }
  }

  // A cubin launch's grid and one argument per launch parameter of kernel `kernel_index`, each
  // checked against the parameter's type and the step's inputs / outputs / the workspace.
  void read_launch(const json& entry, const std::string& where, const Step& step_io,
                   int32_t kernel_index, int64_t workspace, uint32_t* grid_out,
                   std::vector<LaunchArg>* args_out) {
    const Step* step = &step_io;
    const Kernel& kernel = module_->kernels[size_t(kernel_index)];
    const std::string kwhere = "kernels[" + std::to_string(kernel_index) + "] " + show(kernel.name);
    const json& grid = member(entry, "grid", where);
    if (!grid.is_array() || grid.size() != 3) {
      throw invalid(where + ": 'grid' must be an array [gx, gy, gz]");
    }
    static const int64_t kGridLimit[3] = {2147483647, 65535, 65535};
    for (size_t d = 0; d < 3; ++d) {
      const std::string what = where + ": grid[" + std::to_string(d) + "]";
      const int64_t extent = as_int(grid[d], what);
      if (extent < 1 || extent > kGridLimit[d]) {
        throw invalid(what + " " + std::to_string(extent) + " must be in [1, " +
                      std::to_string(kGridLimit[d]) + "]");
      }
      grid_out[d] = uint32_t(extent);
    }
    const json& args = array_member(entry, "args", where);
    if (args.size() != kernel.params.size()) {
      throw invalid(where + ": " + std::to_string(args.size()) + " args for the " +
                    std::to_string(kernel.params.size()) + " launch params of " + kwhere);
    }
    static const char* kTypeNames[] = {"ptr", "i32", "i64", "f32"};
    for (size_t k = 0; k < args.size(); ++k) {
      const std::string what = where + ": args[" + std::to_string(k) + "]";
      if (!args[k].is_object() || args[k].size() != 1) {
        throw invalid(what + " must be an object with one member, like {\"in\": 0}");
      }
      const std::string key = args[k].begin().key();
      const json& value = args[k].begin().value();
      const ParamType type = kernel.params[k];
      LaunchArg arg;
      ParamType want;
      if (key == "in" || key == "out") {
        want = ParamType::kPtr;
        arg.kind = key == "in" ? ArgKind::kIn : ArgKind::kOut;
        arg.integer = as_int(value, what + ": " + key);
        const size_t count = key == "in" ? step->inputs.size() : step->outputs.size();
        if (arg.integer < 0 || size_t(arg.integer) >= count) {
          throw invalid(what + ": " + key + " " + std::to_string(arg.integer) +
                        " is out of range (the step has " + std::to_string(count) + " " +
                        (key == "in" ? "inputs" : "outputs") + ")");
        }
      } else if (key == "i32" || key == "i64") {
        want = key == "i32" ? ParamType::kI32 : ParamType::kI64;
        arg.kind = key == "i32" ? ArgKind::kI32 : ArgKind::kI64;
        arg.integer = as_int(value, what + ": " + key);
        if (key == "i32" && (arg.integer < INT32_MIN || arg.integer > INT32_MAX)) {
          throw invalid(what + ": i32 " + std::to_string(arg.integer) + " is out of int32 range");
        }
      } else if (key == "f32") {
        want = ParamType::kF32;
        arg.kind = ArgKind::kF32;
        if (!value.is_number()) throw invalid(what + ": f32 must be a number, got " + type_name(value));
        arg.real = value.get<double>();
        if (!(std::fabs(arg.real) <= 3.4028234663852886e38)) {
          throw invalid(what + ": f32 " + value.dump() + " is out of float32 range");
        }
      } else if (key == "null" || key == "workspace") {
        want = ParamType::kPtr;
        arg.kind = key == "null" ? ArgKind::kNull : ArgKind::kWorkspace;
        if (as_int(value, what + ": " + key) != 0) throw invalid(what + ": " + key + " must be 0");
        if (key == "workspace" && workspace == 0) {
          throw invalid(what + ": workspace argument but the step's workspace is 0 bytes");
        }
      } else {
        throw invalid(what + ": unknown argument kind " + show(key) +
                      " (in, out, i32, i64, f32, null, workspace)");
      }
      if (type != want) {
        throw invalid(what + ": " + key + " argument for launch param " + std::to_string(k) +
                      " of type '" + kTypeNames[int(type)] + "' of " + kwhere);
      }
      args_out->push_back(arg);
    }
  }

  void bind_signature(const std::vector<SignatureSpec>& specs, const char* key, Storage storage,
                      std::vector<SignatureEntry>* out) {
    Module& m = *module_;
    for (size_t i = 0; i < specs.size(); ++i) {
      const SignatureSpec& spec = specs[i];
      const std::string where =
          std::string("manifest.json: ") + key + "[" + std::to_string(i) + "] " + show(spec.name);
      auto it = value_index_.find(spec.value);
      if (it == value_index_.end()) {
        throw invalid(where + ": value " + std::to_string(spec.value) + " is not in plan.json");
      }
      Value& value = m.values[size_t(it->second)];
      if (value.storage != storage) {
        throw invalid(where + ": value " + std::to_string(spec.value) + " has storage '" +
                      storage_name(value.storage) + "' in plan.json, not '" +
                      storage_name(storage) + "'");
      }
      if (value.signature_index >= 0) {
        throw invalid(where + ": value " + std::to_string(spec.value) + " is already " + key +
                      "[" + std::to_string(value.signature_index) + "]");
      }
      if (value.dtype != spec.dtype || value.shape != spec.shape) {
        throw invalid(where + ": " + find_dtype(spec.dtype)->name + " " + shape_string(spec.shape) +
                      " != plan.json value " + std::to_string(spec.value) + ": " +
                      find_dtype(value.dtype)->name + " " + shape_string(value.shape));
      }
      value.signature_index = int32_t(i);
      out->push_back({spec.name, it->second});
    }
    for (size_t i = 0; i < m.values.size(); ++i) {
      if (m.values[i].storage == storage && m.values[i].signature_index < 0) {
        throw invalid("plan.json: values[" + std::to_string(i) + "] " + show(m.values[i].name) +
                      ": storage '" + storage_name(storage) + "' but no manifest " + key +
                      " entry refers to it");
      }
    }
  }

  void resolve_kernels() {
    for (size_t i = 0; i < module_->kernels.size(); ++i) {
      Kernel& kernel = module_->kernels[i];
      const std::string where = "kernels[" + std::to_string(i) + "] " + show(kernel.name);
      if (kernel.kind == "builtin") {
        kernel.fn = find_builtin(kernel.entry);
        if (kernel.fn == nullptr) {
          throw invalid(where + ": builtin " + show(kernel.entry) +
                        " is not registered in this runtime");
        }
      } else if (kernel.kind == "cubin") {
        continue;  // loaded by the driver in prepare_cuda(), after every check here
      } else if (kernel.kind == "shared_library") {
        const std::string problem = elf_segments_problem(path(kernel.file));
        if (!problem.empty()) throw invalid(where + ": cannot load " + kernel.file + ": " + problem);
        void* handle = ::dlopen(path(kernel.file).c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
          const char* message = ::dlerror();
          throw invalid(where + ": cannot load " + kernel.file + ": " +
                        one_line(message ? message : "dlopen failed"));
        }
        module_->libraries_.push_back(handle);
        ::dlerror();
        void* symbol = ::dlsym(handle, kernel.entry.c_str());
        if (symbol == nullptr) {
          throw invalid(where + ": " + kernel.file + " has no symbol " + show(kernel.entry));
        }
        kernel.fn = reinterpret_cast<odc_kernel_fn>(symbol);
      } else {  // python
        odc_python_kernel_resolver resolver;
        void* data;
        {
          std::lock_guard<std::mutex> lock(g_resolver_mutex);
          resolver = g_resolver;
          data = g_resolver_data;
        }
        if (resolver == nullptr) {
          throw Error("module needs Python: " + where + " has kind 'python' (entry " +
                      show(kernel.entry) +
                      "); load it from Python with optimizer.runtime.load()");
        }
        char error[1024] = {0};
        odc_kernel_fn fn = nullptr;
        int32_t status = resolver(kernel.entry.c_str(), data, &fn, error, sizeof(error));
        error[sizeof(error) - 1] = '\0';
        if (status != 0 || fn == nullptr) {
          throw invalid(where + ": python entry " + show(kernel.entry) + ": " +
                        (error[0] ? one_line(error) : "resolver returned no function"));
        }
        kernel.fn = fn;
      }
    }
  }

  std::string dir_;
  std::string root_;  // the module directory's real path, with a trailing '/'
  bool verify_;
  uint32_t flags_;
  std::unique_ptr<Module> module_;
  std::map<std::string, FileEntry> files_;
  std::vector<SignatureSpec> inputs_, outputs_;
  std::unordered_map<int64_t, int32_t> kernel_index_, value_index_;
  std::vector<uint8_t> plan_bytes_;
  bool has_weights_ = false;
  int64_t version_ = 1;
  json index_;  // format_version 3: the multi-target index manifest
};

ValidatedModule::ValidatedModule(const std::string& directory, uint32_t flags)
    : loader_(new Loader(directory, flags)) {
  try {
    loader_->validate();
  } catch (const json::exception& e) {  // a type check we missed: still one clean line
    throw invalid(std::string("unexpected JSON content: ") + one_line(e.what()));
  } catch (const std::bad_alloc&) {
    throw invalid("out of memory while loading");
  }
}

ValidatedModule::~ValidatedModule() = default;

bool ValidatedModule::is_index() const { return loader_->is_index(); }
const nlohmann::json& ValidatedModule::index() const { return loader_->index(); }
const std::string& ValidatedModule::root() const { return loader_->root(); }
const Module& ValidatedModule::module() const { return loader_->module(); }

std::unique_ptr<Module> ValidatedModule::finish() {
  try {
    return loader_->finish();
  } catch (const json::exception& e) {
    throw invalid(std::string("unexpected JSON content: ") + one_line(e.what()));
  } catch (const std::bad_alloc&) {
    throw invalid("out of memory while loading");
  }
}

}  // namespace odc
