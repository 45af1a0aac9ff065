#include "server/bearer_token.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace coreserve {
namespace {

// Equal contents, in time that depends on the lengths only, so the reply time tells nothing of how much of a
// guess was right.
bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, const std::string& key) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::InvalidArgumentError(absl::StrCat(key, ": cannot read '", path, "': ", std::strerror(errno)));
  std::stringstream text;
  text << file.rdbuf();
  const std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": the token in '", path, "' is ",
                                                   token.empty() ? "empty" : "too short", "; it needs at least ",
                                                   kMinTokenLength, " characters"));
  }
  return token;
}

absl::Status CheckBearer(std::string_view authorization, const std::string& path) {
  auto token = ReadTokenFile(path, "model_control_token_file");
  if (!token.ok()) return absl::UnavailableError("model control cannot read its token file");
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.empty()) {
    return absl::UnauthenticatedError("model control needs an 'Authorization: Bearer <token>' header");
  }
  // This Abseil's string_view is its own type, not std::string_view: convert before calling it.
  const absl::string_view header(authorization.data(), authorization.size());
  if (header.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(header.substr(0, kScheme.size()), absl::string_view(kScheme.data(), kScheme.size()))) {
    return absl::UnauthenticatedError("the Authorization header is not 'Bearer <token>'");
  }
  const absl::string_view offered = absl::StripAsciiWhitespace(header.substr(kScheme.size()));
  if (!ConstantTimeEqual(std::string_view(offered.data(), offered.size()), *token)) {
    return absl::UnauthenticatedError("the bearer token is not the one model control accepts");
  }
  return absl::OkStatus();
}

}  // namespace coreserve
