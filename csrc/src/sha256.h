// SHA-256 (FIPS 180-4), small and dependency-free: the runtime checks the module's files
// against the manifest without linking a crypto library.
#ifndef ODC_SHA256_H_
#define ODC_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace odc {

class Sha256 {
 public:
  Sha256() noexcept;
  void update(const void* data, size_t size) noexcept;
  // The digest as 64 lower-case hex digits. Call once.
  std::string hex_digest() noexcept;

 private:
  void compress(const uint8_t* block) noexcept;
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const void* data, size_t size);

}  // namespace odc

#endif  // ODC_SHA256_H_
