// The project's one pair of absl::Status propagation macros (used by runtime/ and server/).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CORESERVE_CONCAT_INNER(a, b) a##b
#define CORESERVE_CONCAT(a, b) CORESERVE_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status coreserve_status_ = (expr);         \
    if (!coreserve_status_.ok()) return coreserve_status_; \
  } while (false)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(CORESERVE_CONCAT(coreserve_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
