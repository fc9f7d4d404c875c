// Helpers over the SQLite C API shared by the store's small databases (job_log, acl_store).
// Internal to core/store.
#ifndef GRADZOO_CORE_STORE_SQLITE_UTIL_H_
#define GRADZOO_CORE_STORE_SQLITE_UTIL_H_

#include <sqlite3.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace gradzoo::core::sqlite_util {

// INTERNAL "<component>: <what>: <sqlite's message>".
inline absl::Status Error(sqlite3* db, absl::string_view component, absl::string_view what) {
  return absl::InternalError(absl::StrCat(component, ": ", what, ": ", sqlite3_errmsg(db)));
}

// Finalizes a prepared statement when it goes out of scope.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

// Column `col` of the current row as a string ("" for NULL), embedded NULs kept.
inline std::string ColumnText(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s, col))
           : std::string();
}

}  // namespace gradzoo::core::sqlite_util

#endif  // GRADZOO_CORE_STORE_SQLITE_UTIL_H_
