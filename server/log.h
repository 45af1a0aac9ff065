// A minimal leveled logger: one line per message on stderr, written whole under a lock so lines from
// different threads never interleave. Never logs request payloads or secrets.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace coreserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug" | "info" | "warning" | "error"; InvalidArgument naming the allowed values otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);

}  // namespace coreserve

#define CS_LOG(level, ...)                                                              \
  do {                                                                                  \
    if (::coreserve::LogEnabled(::coreserve::LogLevel::level))                          \
      ::coreserve::LogLine(::coreserve::LogLevel::level, ::absl::StrCat(__VA_ARGS__)); \
  } while (false)
#define LOG_DEBUG(...) CS_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) CS_LOG(kInfo, __VA_ARGS__)
#define LOG_WARNING(...) CS_LOG(kWarning, __VA_ARGS__)
#define LOG_ERROR(...) CS_LOG(kError, __VA_ARGS__)
