#include "core/store/job_log.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "core/store/sqlite_util.h"

namespace gradzoo::core {

namespace {

using sqlite_util::Stmt;

absl::Status SqlError(sqlite3* db, const char* what) {
  return sqlite_util::Error(db, "job log", what);
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobLog>> JobLog::Open(const std::string& data_dir) {
  const std::string path = data_dir + "/jobs.sqlite";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 5000);
  const char* schema =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind INTEGER, state INTEGER,"
      " target TEXT, request_id TEXT, error TEXT, payload BLOB, create_ms INTEGER,"
      " start_ms INTEGER, end_ms INTEGER, owner TEXT NOT NULL DEFAULT '');";
  char* err = nullptr;
  if (sqlite3_exec(db, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot initialise ", path, ": ", msg));
  }
  // Logs from before the owner column: add it (existing rows read back with owner '').
  bool has_owner = false;
  {
    Stmt info;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(jobs)", -1, &info.s, nullptr) == SQLITE_OK) {
      while (sqlite3_step(info.s) == SQLITE_ROW) {
        const unsigned char* name = sqlite3_column_text(info.s, 1);
        if (name && std::string(reinterpret_cast<const char*>(name)) == "owner") has_owner = true;
      }
    }
  }
  if (!has_owner &&
      sqlite3_exec(db, "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''", nullptr,
                   nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot upgrade ", path, ": ", msg));
  }
  return std::unique_ptr<JobLog>(new JobLog(db));
}

JobLog::~JobLog() { sqlite3_close(db_); }

absl::Status JobLog::Put(const JobRecord& r) {
  absl::MutexLock lock(&mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_,
                         "INSERT OR REPLACE INTO jobs (id, kind, state, target, request_id, error,"
                         " payload, create_ms, start_ms, end_ms, owner) VALUES (?1, ?2, ?3, ?4,"
                         " ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                         -1, &st.s, nullptr) != SQLITE_OK) {
    return SqlError(db_, "prepare");
  }
  sqlite3_bind_text(st.s, 1, r.id.data(), static_cast<int>(r.id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(st.s, 2, r.kind);
  sqlite3_bind_int(st.s, 3, r.state);
  sqlite3_bind_text(st.s, 4, r.target.data(), static_cast<int>(r.target.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 5, r.request_id.data(), static_cast<int>(r.request_id.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 6, r.error.data(), static_cast<int>(r.error.size()), SQLITE_TRANSIENT);
  sqlite3_bind_blob(st.s, 7, r.payload.data(), static_cast<int>(r.payload.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 8, r.create_ms);
  sqlite3_bind_int64(st.s, 9, r.start_ms);
  sqlite3_bind_int64(st.s, 10, r.end_ms);
  sqlite3_bind_text(st.s, 11, r.owner.data(), static_cast<int>(r.owner.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return SqlError(db_, "write");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JobRecord>> JobLog::LoadAll() {
  absl::MutexLock lock(&mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, "SELECT id, kind, state, target, request_id, error, payload, create_ms,"
                          " start_ms, end_ms, owner FROM jobs ORDER BY create_ms, id", -1, &st.s, nullptr) !=
      SQLITE_OK) {
    return SqlError(db_, "prepare");
  }
  std::vector<JobRecord> out;
  int rc;
  auto text = [&](int col) { return sqlite_util::ColumnText(st.s, col); };
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    JobRecord r;
    r.id = text(0);
    r.kind = sqlite3_column_int(st.s, 1);
    r.state = sqlite3_column_int(st.s, 2);
    r.target = text(3);
    r.request_id = text(4);
    r.error = text(5);
    const void* blob = sqlite3_column_blob(st.s, 6);
    r.payload.assign(static_cast<const char*>(blob ? blob : ""), sqlite3_column_bytes(st.s, 6));
    r.create_ms = sqlite3_column_int64(st.s, 7);
    r.start_ms = sqlite3_column_int64(st.s, 8);
    r.end_ms = sqlite3_column_int64(st.s, 9);
    r.owner = text(10);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "read");
  return out;
}

absl::Status JobLog::Remove(const std::vector<std::string>& ids) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : ids) {
    Stmt st;
    if (sqlite3_prepare_v2(db_, "DELETE FROM jobs WHERE id = ?1", -1, &st.s, nullptr) !=
        SQLITE_OK) {
      return SqlError(db_, "prepare");
    }
    sqlite3_bind_text(st.s, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE) return SqlError(db_, "delete");
  }
  return absl::OkStatus();
}

}  // namespace gradzoo::core
