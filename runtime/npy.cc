#include "runtime/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace coreserve::runtime {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

struct Dtype {
  const char* descr;
  DataType type;
};
// '<' little-endian, '|' not applicable (one byte).
constexpr Dtype kDtypes[] = {
    {"<f4", DataType::kFloat32}, {"<f8", DataType::kFloat64}, {"<f2", DataType::kFloat16},
    {"<i8", DataType::kInt64},   {"<i4", DataType::kInt32},   {"<i2", DataType::kInt16},
    {"|i1", DataType::kInt8},    {"|u1", DataType::kUInt8},   {"<u2", DataType::kUInt16},
    {"<u4", DataType::kUInt32},  {"<u8", DataType::kUInt64},  {"|b1", DataType::kBool},
};

// The value text after `'key':` in the header dict.
bool FindValue(const std::string& header, const std::string& key, std::string* value) {
  const std::size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return false;
  const std::size_t colon = header.find(':', k);
  if (colon == std::string::npos) return false;
  *value = header.substr(colon + 1);
  return true;
}

}  // namespace

absl::StatusOr<Tensor> ReadNpy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  auto bad = [&](const std::string& why) { return absl::InvalidArgumentError(absl::StrCat(path, ": not a supported .npy file: ", why)); };
  char magic[8];
  if (!file.read(magic, 8) || std::memcmp(magic, kMagic, 6) != 0) return bad("bad magic");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!file.read(reinterpret_cast<char*>(b), 2)) return bad("truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!file.read(reinterpret_cast<char*>(b), 4)) return bad("truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    return bad(absl::StrCat("format version ", major));
  }
  if (header_len > (1u << 20)) return bad("header too long");
  std::string header(header_len, '\0');
  if (!file.read(header.data(), header_len)) return bad("truncated header");

  std::string descr_text, order_text, shape_text;
  if (!FindValue(header, "descr", &descr_text) || !FindValue(header, "fortran_order", &order_text) ||
      !FindValue(header, "shape", &shape_text)) {
    return bad("header lacks descr, fortran_order or shape");
  }
  if (order_text.find("True") < order_text.find_first_of(",}")) return bad("Fortran order");
  DataType type = DataType::kUndefined;
  for (const Dtype& d : kDtypes) {
    const std::string quoted = absl::StrCat("'", d.descr, "'");
    const std::string alt = absl::StrCat("'<", d.descr + 1, "'");  // numpy may write '<i1' style too
    const std::size_t end = descr_text.find_first_of(",}");
    const std::string value = descr_text.substr(0, end);
    if (value.find(quoted) != std::string::npos || (d.descr[0] == '|' && value.find(alt) != std::string::npos)) {
      type = d.type;
      break;
    }
  }
  if (type == DataType::kUndefined) return bad(absl::StrCat("dtype ", descr_text.substr(0, descr_text.find(','))));
  const std::size_t open = shape_text.find('('), close = shape_text.find(')');
  if (open == std::string::npos || close == std::string::npos) return bad("shape is not a tuple");
  Shape shape;
  std::stringstream dims(shape_text.substr(open + 1, close - open - 1));
  std::string item;
  while (std::getline(dims, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    try {
      const long long d = std::stoll(item);
      if (d < 0) return bad("negative dimension");
      shape.push_back(d);
    } catch (...) {
      return bad("shape is not a tuple of integers");
    }
  }
  Tensor t = Tensor::Allocate(type, shape);
  if (!file.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.bytes()))) {
    return bad(absl::StrCat("data shorter than ", t.bytes(), " bytes"));
  }
  return t;
}

absl::Status WriteNpy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  for (const Dtype& d : kDtypes) {
    if (d.type == t.type()) descr = d.descr;
  }
  if (descr == nullptr) return absl::InvalidArgumentError(absl::StrCat("cannot write ", DataTypeName(t.type()), " to .npy"));
  std::string shape = "(";
  for (std::size_t i = 0; i < t.shape().size(); ++i) absl::StrAppend(&shape, t.shape()[i], t.shape().size() == 1 ? "," : (i + 1 < t.shape().size() ? ", " : ""));
  shape += ")";
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': ", shape, ", }");
  // Pad with spaces so the data starts on a 64-byte boundary, ending the header with a newline (version 1.0).
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream file(path, std::ios::binary);
  if (!file) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  file.write(kMagic, 6);
  const char version[2] = {1, 0};
  file.write(version, 2);
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff), static_cast<unsigned char>(header.size() >> 8)};
  file.write(reinterpret_cast<const char*>(len), 2);
  file.write(header.data(), static_cast<std::streamsize>(header.size()));
  file.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.bytes()));
  if (!file) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace coreserve::runtime
