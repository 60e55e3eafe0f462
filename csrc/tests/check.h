// A minimal test harness for the runtime's C++ tests (no test framework dependency).
#ifndef ODC_TESTS_CHECK_H_
#define ODC_TESTS_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace odc_test {
// A whole file's bytes ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
// Replaces a file's content with `data`.
inline void write_text(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}
inline int& failures() {
  static int count = 0;
  return count;
}
inline int& checks() {
  static int count = 0;
  return count;
}
inline int finish(const char* name) {
  std::printf("%s: %d checks, %d failures\n", name, checks(), failures());
  return failures() == 0 ? 0 : 1;
}
}  // namespace odc_test

#define CHECK(cond)                                                              \
  do {                                                                           \
    ++odc_test::checks();                                                        \
    if (!(cond)) {                                                               \
      ++odc_test::failures();                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                            \
  } while (0)

// CHECK that `text` (a std::string) contains `part`, printing both otherwise.
#define CHECK_CONTAINS(text, part)                                                         \
  do {                                                                                     \
    ++odc_test::checks();                                                                  \
    const std::string odc_text_ = (text);                                                  \
    if (odc_text_.find(part) == std::string::npos) {                                       \
      ++odc_test::failures();                                                              \
      std::fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__,     \
                   odc_text_.c_str(), std::string(part).c_str());                          \
    }                                                                                      \
  } while (0)

#endif  // ODC_TESTS_CHECK_H_
