// The model-control API's credential: a bearer token kept in a file (e.g. a Kubernetes Secret mounted as a
// volume). The file is read on every check, so rotating the secret needs no restart; the token is compared in
// constant time and never logged.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace coreserve {

// Tokens shorter than this are refused at start: a guessable token protects nothing.
inline constexpr std::size_t kMinTokenLength = 16;

// The token in `path`: its contents without surrounding whitespace (files written by `echo` end in a newline).
// InvalidArgument naming `key` and the path when it cannot be read, is empty or shorter than kMinTokenLength.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, const std::string& key);

// Checks an HTTP Authorization header value (or gRPC "authorization" metadata) against the token in `path`:
// OK for "Bearer <token>"; Unauthenticated when it is missing, malformed or wrong; Unavailable when the file
// can no longer be read.
absl::Status CheckBearer(std::string_view authorization, const std::string& path);

}  // namespace coreserve
