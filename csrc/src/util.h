// Small internal helpers shared by the runtime, the runner and the tests.
#ifndef ODC_UTIL_H_
#define ODC_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace odc {

// The one exception type inside the runtime; its message is the one-line error the C API
// reports. Never crosses the C API.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Owned memory with a given power-of-two alignment; empty when size is 0.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // Throws odc::Error when the allocation fails.
  AlignedBuffer(size_t size, size_t alignment);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Overflow-checked arithmetic on non-negative int64 values: false on overflow.
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checked_add(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

// Element count of a shape (all dims >= 0), or -1 on overflow past INT64_MAX.
int64_t element_count(const int64_t* shape, int32_t ndim);

// "[1, 3, 224, 224]"
std::string shape_string(const int64_t* shape, int32_t ndim);
inline std::string shape_string(const std::vector<int64_t>& shape) {
  return shape_string(shape.data(), int32_t(shape.size()));
}

// One line of valid UTF-8: control characters become spaces, invalid bytes '?'.
std::string one_line(std::string text);

// Reads a whole regular file of at most max_size bytes. Throws odc::Error with `label` first.
std::vector<uint8_t> read_file(const std::string& path, const std::string& label,
                               int64_t max_size);

}  // namespace odc

#endif  // ODC_UTIL_H_
