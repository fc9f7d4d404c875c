#include "core/store/acl_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/store/sqlite_util.h"

namespace gradzoo::core {
namespace {

using sqlite_util::Stmt;

absl::Status SqlError(sqlite3* db, const char* what) {
  return sqlite_util::Error(db, "acl store", what);
}

void Normalise(Acl* acl) {
  std::sort(acl->readers.begin(), acl->readers.end());
  acl->readers.erase(std::unique(acl->readers.begin(), acl->readers.end()), acl->readers.end());
  acl->readers.erase(std::remove(acl->readers.begin(), acl->readers.end(), acl->owner),
                     acl->readers.end());
  acl->readers.erase(std::remove(acl->readers.begin(), acl->readers.end(), std::string()),
                     acl->readers.end());
}

}  // namespace

absl::StatusOr<std::unique_ptr<AclStore>> AclStore::Open(const std::string& data_dir) {
  if (data_dir.empty()) return std::unique_ptr<AclStore>(new AclStore(nullptr));
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  const std::string path = data_dir + "/acl.sqlite";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  if (sqlite3_exec(db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                   "CREATE TABLE IF NOT EXISTS acl (kind TEXT NOT NULL, id TEXT NOT NULL,"
                   " owner TEXT NOT NULL, readers TEXT NOT NULL DEFAULT '',"
                   " PRIMARY KEY (kind, id));",
                   nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot initialise ", path, ": ", msg));
  }
  std::unique_ptr<AclStore> store(new AclStore(db));
  absl::MutexLock lock(&store->mu_);
  if (absl::Status s = store->LoadLocked(); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", path, ": ", s.message()));
  }
  return store;
}

AclStore::~AclStore() {
  if (db_ != nullptr) sqlite3_close(db_);
}

absl::Status AclStore::LoadLocked() {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "SELECT kind, id, owner, readers FROM acl", -1, &st.s, nullptr) !=
      SQLITE_OK) {
    return SqlError(db_, "prepare");
  }
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    Acl acl;
    acl.owner = sqlite_util::ColumnText(st.s, 2);
    acl.readers = absl::StrSplit(sqlite_util::ColumnText(st.s, 3), ',', absl::SkipEmpty());
    Normalise(&acl);
    rows_[{sqlite_util::ColumnText(st.s, 0), sqlite_util::ColumnText(st.s, 1)}] = std::move(acl);
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "read");
  return absl::OkStatus();
}

std::optional<Acl> AclStore::Get(const std::string& kind, const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = rows_.find({kind, id});
  if (it == rows_.end()) return std::nullopt;
  return it->second;
}

absl::Status AclStore::Put(const std::string& kind, const std::string& id, Acl acl) {
  Normalise(&acl);
  absl::MutexLock lock(&mu_);
  if (db_ != nullptr) {
    Stmt st;
    if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO acl VALUES (?1, ?2, ?3, ?4)", -1, &st.s,
                           nullptr) != SQLITE_OK) {
      return SqlError(db_, "prepare");
    }
    const std::string readers = absl::StrJoin(acl.readers, ",");
    sqlite3_bind_text(st.s, 1, kind.data(), static_cast<int>(kind.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 2, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 3, acl.owner.data(), static_cast<int>(acl.owner.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 4, readers.data(), static_cast<int>(readers.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE) return SqlError(db_, "write");
  }
  rows_[{kind, id}] = std::move(acl);
  return absl::OkStatus();
}

absl::Status AclStore::Erase(const std::string& kind, const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (db_ != nullptr) {
    Stmt st;
    if (sqlite3_prepare_v2(db_, "DELETE FROM acl WHERE kind = ?1 AND id = ?2", -1, &st.s,
                           nullptr) != SQLITE_OK) {
      return SqlError(db_, "prepare");
    }
    sqlite3_bind_text(st.s, 1, kind.data(), static_cast<int>(kind.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 2, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE) return SqlError(db_, "delete");
  }
  rows_.erase({kind, id});
  return absl::OkStatus();
}

}  // namespace gradzoo::core
