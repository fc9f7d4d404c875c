// Status propagation macros for absl::Status / absl::StatusOr (this abseil ships none).
//
//   RETURN_IF_ERROR(DoThing());                 // returns the status if not ok
//   ASSIGN_OR_RETURN(auto value, MakeValue());  // unwraps a StatusOr or returns its status
#ifndef GRADZOO_CORE_UTIL_STATUS_MACROS_H_
#define GRADZOO_CORE_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GRADZOO_CONCAT_INNER_(a, b) a##b
#define GRADZOO_CONCAT_(a, b) GRADZOO_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status gradzoo_status_ = (expr);     \
    if (!gradzoo_status_.ok()) return gradzoo_status_; \
  } while (0)

#define GRADZOO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                   \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  GRADZOO_ASSIGN_OR_RETURN_IMPL_(GRADZOO_CONCAT_(gradzoo_statusor_, __LINE__), lhs, rexpr)

#endif  // GRADZOO_CORE_UTIL_STATUS_MACROS_H_
