// The loader's two phases, for multi_target.cpp: validate a module directory completely (no
// kernel resolved, no memory allocated, no driver opened), then, for the one target that will
// run, finish it (resolve kernels, allocate, open the driver).
#ifndef ODC_LOADER_H_
#define ODC_LOADER_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "module.h"

namespace odc {

class Loader;  // loader.cpp

class ValidatedModule {
 public:
  // Runs every check of docs/module-format.md on `directory`; throws odc::Error with the
  // one-line message. A multi-target index (format_version 3) is only read as far as its header.
  ValidatedModule(const std::string& directory, uint32_t flags);
  ~ValidatedModule();
  ValidatedModule(const ValidatedModule&) = delete;
  ValidatedModule& operator=(const ValidatedModule&) = delete;

  bool is_index() const;               // format_version 3
  const nlohmann::json& index() const;  // its manifest (is_index() only)
  const std::string& root() const;      // the directory's real path with a trailing '/'
  const Module& module() const;         // the validated module (not is_index())
  // Resolves the kernels and prepares the module to run; once only.
  std::unique_ptr<Module> finish();

 private:
  std::unique_ptr<Loader> loader_;
};

// "" when GPU 0 can run cubins built for `arch` (the NVIDIA driver opens, a device exists, its
// compute capability fits), else why not, in one line ("NVIDIA driver not found (libcuda.so.1)").
std::string cuda_unusable_reason(const std::string& arch);
// Whether a cubin built for `arch` ("sm_90", "sm_90a", "sm_100f") runs on compute capability
// major.minor: the same major and a minor at least its own ('a': exactly its own).
bool cubin_runs_on(const std::string& arch, int major, int minor);

class Sha256;  // sha256.h

// A file a manifest lists, opened for reading: `name` is how errors call it ("invalid module:
// weights.bin: missing file"). Never blocks on a FIFO, refuses anything but a regular file and
// a size other than `size`. Closes itself.
class ListedFile {
 public:
  ListedFile(const std::string& path, const std::string& name, int64_t size);
  ~ListedFile();
  ListedFile(const ListedFile&) = delete;
  ListedFile& operator=(const ListedFile&) = delete;
  int fd() const { return fd_; }
  // Feeds the file's `size` bytes to `hasher`, reading them in 1 MiB chunks.
  void hash_into(Sha256& hasher) const;

 private:
  int fd_ = -1;
  std::string name_;
  int64_t size_ = 0;
};

}  // namespace odc

#endif  // ODC_LOADER_H_
