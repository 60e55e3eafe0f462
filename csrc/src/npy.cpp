#include "npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "dtype.h"
#include "odc/abi.h"

namespace odc {
namespace {

constexpr size_t kMaxHeader = 1 << 20;

// Parses the header, a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const char* text, size_t size) : p_(text), end_(text + size) {}

  void parse(std::string* descr, bool* fortran, std::vector<int64_t>* shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      std::string key = parse_string();
      expect(':');
      if (key == "descr") {
        *descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        *fortran = parse_bool();
        have_fortran = true;
      } else if (key == "shape") {
        *shape = parse_tuple();
        have_shape = true;
      } else {
        throw Error("header: unexpected key '" + one_line(key) + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      skip_space();
      if (peek() != '}') throw Error("header: expected ',' or '}'");
    }
    if (!have_descr || !have_fortran || !have_shape) {
      throw Error("header: needs 'descr', 'fortran_order' and 'shape'");
    }
  }

 private:
  char peek() const { return p_ < end_ ? *p_ : '\0'; }
  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) throw Error(std::string("header: expected '") + c + "'");
    ++p_;
  }
  std::string parse_string() {
    skip_space();
    char quote = peek();
    if (quote != '\'' && quote != '"') throw Error("header: expected a quoted string");
    ++p_;
    const char* start = p_;
    while (p_ < end_ && *p_ != quote) ++p_;
    if (p_ >= end_) throw Error("header: unterminated string");
    std::string out(start, p_);
    ++p_;
    return out;
  }
  bool parse_bool() {
    skip_space();
    if (end_ - p_ >= 4 && std::memcmp(p_, "True", 4) == 0) {
      p_ += 4;
      return true;
    }
    if (end_ - p_ >= 5 && std::memcmp(p_, "False", 5) == 0) {
      p_ += 5;
      return false;
    }
    throw Error("header: expected True or False");
  }
  std::vector<int64_t> parse_tuple() {
    std::vector<int64_t> dims;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') {
        ++p_;
        return dims;
      }
      if (peek() < '0' || peek() > '9') throw Error("header: bad shape entry");
      int64_t value = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (!checked_mul(value, 10, &value) || !checked_add(value, peek() - '0', &value)) {
          throw Error("header: shape dimension overflows int64");
        }
        ++p_;
      }
      if (peek() == 'L') ++p_;
      dims.push_back(value);
      if (dims.size() > ODC_MAX_RANK) {
        throw Error("header: rank exceeds " + std::to_string(ODC_MAX_RANK));
      }
      skip_space();
      if (peek() == ',') {
        ++p_;
      } else if (peek() != ')') {
        throw Error("header: expected ',' or ')' in shape");
      }
    }
  }

  const char* p_;
  const char* end_;
};

}  // namespace

NpyArray parse_npy(const uint8_t* bytes, size_t size) {
  static const uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(bytes, kMagic, 6) != 0) throw Error("not a .npy file");
  const int major = bytes[6];
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = size_t(bytes[8]) | (size_t(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw Error("truncated .npy header");
    header_len = size_t(bytes[8]) | (size_t(bytes[9]) << 8) | (size_t(bytes[10]) << 16) |
                 (size_t(bytes[11]) << 24);
    header_start = 12;
  } else {
    throw Error(".npy format version " + std::to_string(major) + " is not supported");
  }
  if (header_len > kMaxHeader || header_len > size - header_start) {
    throw Error("truncated .npy header");
  }
  std::string descr;
  bool fortran = false;
  NpyArray array;
  HeaderParser(reinterpret_cast<const char*>(bytes + header_start), header_len)
      .parse(&descr, &fortran, &array.shape);
  if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '|' && descr[0] != '=')) {
    throw Error("dtype '" + one_line(descr) + "' is not supported (little-endian numbers only)");
  }
  const DtypeInfo* info = find_dtype_by_npy(descr.c_str() + 1);
  if (info == nullptr) throw Error("dtype '" + one_line(descr) + "' is not supported");
  if (fortran && array.shape.size() > 1) {
    throw Error("fortran_order arrays are not supported (save np.ascontiguousarray(x))");
  }
  array.dtype = info->dtype;
  int64_t numel = element_count(array.shape.data(), int32_t(array.shape.size()));
  int64_t nbytes = 0;
  if (numel < 0 || !checked_mul(numel, info->size, &nbytes)) {
    throw Error("shape " + shape_string(array.shape) + " overflows");
  }
  const size_t data_start = header_start + header_len;
  if (uint64_t(nbytes) != uint64_t(size - data_start)) {
    throw Error("data is " + std::to_string(size - data_start) + " bytes, shape " +
                shape_string(array.shape) + " " + info->name + " needs " +
                std::to_string(nbytes) + " (truncated file?)");
  }
  array.data = AlignedBuffer(size_t(nbytes), 64);
  if (nbytes > 0) std::memcpy(array.data.data(), bytes + data_start, size_t(nbytes));
  return array;
}

NpyArray read_npy(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path, path, int64_t(1) << 40);  // "PATH: missing file"
  try {
    return parse_npy(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

void write_npy(const std::string& path, int32_t dtype, const std::vector<int64_t>& shape,
               const void* data, size_t nbytes) {
  const DtypeInfo* info = find_dtype(dtype);
  if (info == nullptr || info->npy[0] == '\0') {
    throw Error(path + ": dtype cannot be written to .npy");
  }
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  // "(2, 3)" but "(4,)" and "()"
  if (!shape.empty()) dims.resize(dims.size() - (shape.size() == 1 ? 1 : 2));
  std::string header = std::string("{'descr': '") + (info->size == 1 ? "|" : "<") + info->npy +
                       "', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw Error(path + ": cannot write: " + std::strerror(errno));
  const uint8_t preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                uint8_t(header.size() & 0xff), uint8_t(header.size() >> 8)};
  bool ok = std::fwrite(preamble, 1, 10, file) == 10 &&
            std::fwrite(header.data(), 1, header.size(), file) == header.size() &&
            (nbytes == 0 || std::fwrite(data, 1, nbytes, file) == nbytes);
  ok = (std::fclose(file) == 0) && ok;
  if (!ok) throw Error(path + ": write failed");
}

}  // namespace odc
