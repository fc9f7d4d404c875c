#include "core/store/zoo_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/store/zoo_codec.h"
#include "core/util/status_macros.h"

namespace gradzoo::core {
namespace {

constexpr char kCatalogFile[] = "catalog.sqlite";
constexpr char kBlobsDir[] = "blobs";
constexpr char kBlobSuffix[] = ".gzoo";
constexpr char kTempSuffix[] = ".tmp";
// Load looks the row up again when a concurrent writer replaced the blob it was about to read,
// at most this many times before answering UNAVAILABLE.
constexpr int kMaxLoadAttempts = 8;

// Prefixes `s`'s message with `context`, keeping its code.
absl::Status WithContext(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

// ---------------------------------------------------------------------------------------------
// POSIX FileOps
// ---------------------------------------------------------------------------------------------

absl::Status ErrnoStatus(int err, absl::string_view op, absl::string_view path) {
  // std::error_code's message is strerror's text without strerror's shared buffer.
  const std::string msg =
      absl::StrCat(op, " ", path, ": ", std::error_code(err, std::generic_category()).message());
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case ENOENT:
      return absl::NotFoundError(msg);
    case EAGAIN:
    case EBUSY:
    case EMFILE:
    case ENFILE:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

class PosixWritableFile : public FileOps::WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(absl::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "write", path_);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (::fsync(fd_) != 0) return ErrnoStatus(errno, "fsync", path_);
    return absl::OkStatus();
  }

  absl::Status Close() override {
    const int fd = fd_;
    fd_ = -1;
    // No retry on EINTR: on Linux the descriptor is released whatever close returns.
    if (::close(fd) != 0) return ErrnoStatus(errno, "close", path_);
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  int fd_;
};

class PosixFileOps : public FileOps {
 public:
  absl::Status CreateDirs(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return ErrnoStatus(ec.value(), "mkdir -p", path);
    // create_directories succeeds quietly when `path` is an existing file's name on some
    // standard libraries; make sure we got a directory.
    if (!std::filesystem::is_directory(path, ec)) return ErrnoStatus(ENOTDIR, "mkdir -p", path);
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd;
    do {
      fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus(errno, "open", path);
    return std::make_unique<PosixWritableFile>(path, fd);
  }

  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus(errno, "open", path);
    std::string content;
    struct stat st;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) content.reserve(static_cast<size_t>(st.st_size));
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        return ErrnoStatus(err, "read", path);
      }
      if (n == 0) break;
      content.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return content;
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus(errno, "rename", absl::StrCat(from, " -> ", to));
    }
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus(errno, "unlink", path);
    return absl::OkStatus();
  }

  absl::Status SyncDir(const std::string& dir) override {
    int fd;
    do {
      fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus(errno, "open", dir);
    absl::Status status;
    if (::fsync(fd) != 0) status = ErrnoStatus(errno, "fsync", dir);
    ::close(fd);
    return status;
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    std::vector<std::string> names;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec) return ErrnoStatus(ec.value(), "list", dir);
    return names;
  }
};

// ---------------------------------------------------------------------------------------------
// SQLite helpers
// ---------------------------------------------------------------------------------------------

absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what) {
  std::string msg = absl::StrCat("catalog ", what, ": ", sqlite3_errstr(rc));
  if (db != nullptr && sqlite3_errcode(db) == rc) {
    absl::StrAppend(&msg, " (", sqlite3_errmsg(db), ")");
  }
  switch (rc & 0xFF) {  // the primary result code
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    default:
      return absl::InternalError(msg);
  }
}

struct StmtDeleter {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// Uses a cached prepared statement for one execution: resets it and clears its bindings on
// scope exit, so the next user starts clean and no read transaction is left open.
class StmtUse {
 public:
  explicit StmtUse(const StmtPtr& stmt) : stmt_(stmt.get()) {}
  ~StmtUse() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

void BindText(sqlite3_stmt* stmt, int index, const std::string& value) {
  sqlite3_bind_text(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}

std::string ColumnText(sqlite3_stmt* stmt, int column) {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
}

// One catalog row.
struct CatalogRow {
  std::string blob;  // file name under blobs/
  std::string sha256;
  int64_t bytes = 0;
};

}  // namespace

std::shared_ptr<FileOps> FileOps::Posix() {
  static const std::shared_ptr<FileOps>* const posix =
      new std::shared_ptr<FileOps>(std::make_shared<PosixFileOps>());
  return *posix;
}

// ---------------------------------------------------------------------------------------------
// ZooStore::Impl
// ---------------------------------------------------------------------------------------------

class ZooStore::Impl {
 public:
  Impl(std::string data_dir, std::shared_ptr<FileOps> fs)
      : data_dir_(std::move(data_dir)),
        blobs_dir_(absl::StrCat(data_dir_, "/", kBlobsDir)),
        fs_(std::move(fs)) {}

  ~Impl() {
    absl::MutexLock lock(&mu_);
    // Statements must be finalised before the connection closes.
    select_.reset();
    upsert_.reset();
    delete_.reset();
    list_.reset();
    count_refs_.reset();
    if (db_ != nullptr) sqlite3_close(db_);
  }

  const std::string& data_dir() const { return data_dir_; }

  // Opens the catalog and removes crash debris. Called once, before the store is shared.
  absl::Status Init(int busy_timeout_ms) ABSL_LOCKS_EXCLUDED(mu_, write_mu_) {
    RETURN_IF_ERROR(WithContext(fs_->CreateDirs(blobs_dir_), "creating the store's directory"));
    // Makes a just-created blobs/ durable before any blob is written into it.
    RETURN_IF_ERROR(fs_->SyncDir(data_dir_));
    {
      absl::MutexLock lock(&mu_);
      RETURN_IF_ERROR(OpenCatalogLocked(busy_timeout_ms));
    }
    return RemoveDebris();
  }

  absl::StatusOr<int64_t> Save(const Zoo& zoo) ABSL_LOCKS_EXCLUDED(mu_, write_mu_) {
    RETURN_IF_ERROR(ValidateResourceId(zoo.id, "zoo id"));
    const std::string bytes = EncodeZoo(zoo);
    // Never store what Load would refuse: check the very bytes about to be written.
    if (absl::StatusOr<Zoo> check = DecodeZoo(bytes); !check.ok()) {
      if (check.status().code() == absl::StatusCode::kInvalidArgument) {
        return WithContext(check.status(), absl::StrCat("zoos/", zoo.id));
      }
      return absl::InternalError(
          absl::StrCat("zoos/", zoo.id,
                       ": the encoder wrote an unreadable archive: ", check.status().message()));
    }
    const std::string sha = Sha256Hex(bytes);
    const std::string blob = absl::StrCat(sha, kBlobSuffix);
    const std::string context = absl::StrCat("saving zoos/", zoo.id);

    absl::MutexLock writer(&write_mu_);
    bool renamed = false;
    absl::Status status = WriteBlob(blob, bytes, &renamed);
    std::optional<std::string> old_blob;
    if (status.ok()) {
      absl::StatusOr<std::optional<std::string>> committed =
          CommitRow(zoo.id, blob, sha, static_cast<int64_t>(bytes.size()), zoo.create_time_ms);
      if (committed.ok()) {
        old_blob = *std::move(committed);
      } else {
        status = committed.status();
      }
    }
    if (!status.ok()) {
      // The catalog still names the old version; drop the new blob unless it is that version.
      if (renamed) RemoveBlobIfUnreferenced(blob);
      return WithContext(status, context);
    }
    if (old_blob.has_value() && *old_blob != blob) RemoveBlobIfUnreferenced(*old_blob);
    return static_cast<int64_t>(bytes.size());
  }

  absl::StatusOr<std::vector<std::string>> ListIds() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    StmtUse use(list_);
    std::vector<std::string> ids;
    int rc;
    while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) ids.push_back(ColumnText(use.get(), 0));
    if (rc != SQLITE_DONE) return SqliteStatus(db_, rc, "listing zoos");
    return ids;
  }

  absl::StatusOr<Zoo> Load(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_) {
    RETURN_IF_ERROR(ValidateResourceId(id, "zoo id"));
    const std::string name = absl::StrCat("zoos/", id);
    for (int attempt = 1;; ++attempt) {
      ASSIGN_OR_RETURN(std::optional<CatalogRow> row, LookUp(id));
      if (!row.has_value()) return absl::NotFoundError(absl::StrCat(name, " not found"));
      if (row->blob != absl::StrCat(row->sha256, kBlobSuffix)) {
        return absl::DataLossError(absl::StrCat(name, ": catalog row names blob \"", row->blob,
                                                "\", which does not match its sha256"));
      }
      const std::string path = BlobPath(row->blob);
      absl::StatusOr<std::string> bytes = fs_->ReadFile(path);  // outside every lock
      if (absl::IsNotFound(bytes.status())) {
        // A concurrent Save or Delete may have replaced the row and unlinked this blob after
        // our lookup. Only a blob missing under an unchanged row is lost.
        ASSIGN_OR_RETURN(std::optional<CatalogRow> now, LookUp(id));
        if (!now.has_value()) return absl::NotFoundError(absl::StrCat(name, " not found"));
        if (now->blob == row->blob) {
          return absl::DataLossError(absl::StrCat(name, ": blob ", path, " is missing"));
        }
        if (attempt < kMaxLoadAttempts) continue;
        return absl::UnavailableError(
            absl::StrCat(name, " was replaced ", attempt, " times while loading it; try again"));
      }
      if (!bytes.ok()) return WithContext(bytes.status(), absl::StrCat("loading ", name));
      if (static_cast<int64_t>(bytes->size()) != row->bytes) {
        return absl::DataLossError(absl::StrCat(name, ": blob ", path, " has ", bytes->size(),
                                                " bytes; the catalog recorded ", row->bytes));
      }
      if (Sha256Hex(*bytes) != row->sha256) {
        return absl::DataLossError(
            absl::StrCat(name, ": blob ", path, " fails its SHA-256 checksum"));
      }
      absl::StatusOr<Zoo> zoo = DecodeZoo(*bytes);
      if (!zoo.ok()) {
        // Stored data that does not decode is corrupt, whatever the decoder calls it.
        return absl::DataLossError(absl::StrCat(name, ": ", zoo.status().message()));
      }
      if (zoo->id != id) {
        return absl::DataLossError(
            absl::StrCat(name, ": blob ", path, " holds zoo \"", zoo->id, "\""));
      }
      zoo->stored_bytes = static_cast<int64_t>(bytes->size());
      return *std::move(zoo);
    }
  }

  absl::Status Delete(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_, write_mu_) {
    RETURN_IF_ERROR(ValidateResourceId(id, "zoo id"));
    absl::MutexLock writer(&write_mu_);
    std::string blob;
    {
      absl::MutexLock lock(&mu_);
      RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE", "deleting"));
      absl::Status status = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        ASSIGN_OR_RETURN(std::optional<CatalogRow> row, LookUpLocked(id));
        if (!row.has_value()) return absl::NotFoundError(absl::StrCat("zoos/", id, " not found"));
        blob = row->blob;
        StmtUse use(delete_);
        BindText(use.get(), 1, id);
        if (const int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
          return SqliteStatus(db_, rc, "deleting a row");
        }
        return ExecLocked("COMMIT", "deleting");
      }();
      if (!status.ok()) {
        RollbackLocked();
        return status;
      }
    }
    RemoveBlobIfUnreferenced(blob);
    return absl::OkStatus();
  }

 private:
  std::string BlobPath(absl::string_view blob) const { return absl::StrCat(blobs_dir_, "/", blob); }

  absl::Status OpenCatalogLocked(int busy_timeout_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string path = absl::StrCat(data_dir_, "/", kCatalogFile);
    // NOMUTEX: mu_ already serialises every use of the connection.
    const int rc =
        sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open catalog ", path, ": ",
                       db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
    }
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    absl::Status status = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
      // WAL: readers never block the writer; synchronous=FULL: a commit is durable once it
      // returns, which the blob clean-up after it relies on.
      RETURN_IF_ERROR(ExecLocked("PRAGMA journal_mode=WAL", "setup"));
      RETURN_IF_ERROR(ExecLocked("PRAGMA synchronous=FULL", "setup"));
      RETURN_IF_ERROR(
          ExecLocked("CREATE TABLE IF NOT EXISTS zoos ("
                     "  id TEXT PRIMARY KEY NOT NULL,"
                     "  blob TEXT NOT NULL,"
                     "  sha256 TEXT NOT NULL,"
                     "  bytes INTEGER NOT NULL,"
                     "  create_time_ms INTEGER NOT NULL)",
                     "setup"));
      RETURN_IF_ERROR(Prepare("SELECT blob, sha256, bytes FROM zoos WHERE id = ?1", &select_));
      RETURN_IF_ERROR(Prepare(
          "INSERT INTO zoos (id, blob, sha256, bytes, create_time_ms) VALUES (?1, ?2, ?3, ?4, ?5) "
          "ON CONFLICT (id) DO UPDATE SET blob = excluded.blob, sha256 = excluded.sha256, "
          "bytes = excluded.bytes, create_time_ms = excluded.create_time_ms",
          &upsert_));
      RETURN_IF_ERROR(Prepare("DELETE FROM zoos WHERE id = ?1", &delete_));
      RETURN_IF_ERROR(Prepare("SELECT id FROM zoos ORDER BY id", &list_));
      RETURN_IF_ERROR(Prepare("SELECT COUNT(*) FROM zoos WHERE blob = ?1", &count_refs_));
      return absl::OkStatus();
    }();
    if (!status.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open catalog ", path, ": ", status.message()));
    }
    return absl::OkStatus();
  }

  absl::Status Prepare(const char* sql, StmtPtr* stmt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(db_, rc, absl::StrCat("preparing \"", sql, "\""));
    stmt->reset(raw);
    return absl::OkStatus();
  }

  // Runs a statement that needs no parameters (transaction control, pragmas, schema).
  absl::Status ExecLocked(const char* sql, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(db_, rc, absl::StrCat(what, ": ", sql));
    return absl::OkStatus();
  }

  void RollbackLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // SQLite may already have rolled back (e.g. after SQLITE_FULL); then this is a no-op error.
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  absl::StatusOr<std::optional<CatalogRow>> LookUp(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return LookUpLocked(id);
  }

  absl::StatusOr<std::optional<CatalogRow>> LookUpLocked(const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StmtUse use(select_);
    BindText(use.get(), 1, id);
    const int rc = sqlite3_step(use.get());
    if (rc == SQLITE_DONE) return std::optional<CatalogRow>();
    if (rc != SQLITE_ROW) return SqliteStatus(db_, rc, "looking up a zoo");
    CatalogRow row;
    row.blob = ColumnText(use.get(), 0);
    row.sha256 = ColumnText(use.get(), 1);
    row.bytes = sqlite3_column_int64(use.get(), 2);
    return std::optional<CatalogRow>(std::move(row));
  }

  // Number of rows naming `blob`.
  absl::StatusOr<int64_t> CountRefsLocked(const std::string& blob)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StmtUse use(count_refs_);
    BindText(use.get(), 1, blob);
    const int rc = sqlite3_step(use.get());
    if (rc != SQLITE_ROW) return SqliteStatus(db_, rc, "counting blob references");
    return sqlite3_column_int64(use.get(), 0);
  }

  // Temp file -> write all -> fsync -> close -> rename -> fsync the directory. `*renamed` says
  // whether the blob reached its final name (it may then exist even though this failed).
  absl::Status WriteBlob(const std::string& blob, absl::string_view bytes, bool* renamed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    const std::string path = BlobPath(blob);
    const std::string temp = absl::StrCat(path, kTempSuffix);
    absl::Status status = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::unique_ptr<FileOps::WritableFile> file, fs_->NewWritableFile(temp));
      RETURN_IF_ERROR(file->Append(bytes));
      RETURN_IF_ERROR(file->Sync());
      RETURN_IF_ERROR(file->Close());
      return fs_->Rename(temp, path);
    }();
    if (!status.ok()) {
      fs_->Remove(temp).IgnoreError();  // Open removes it if this fails too
      return status;
    }
    *renamed = true;
    return fs_->SyncDir(blobs_dir_);
  }

  // Upserts the row for `id` in one transaction. Returns the blob the row named before, if any.
  absl::StatusOr<std::optional<std::string>> CommitRow(const std::string& id,
                                                       const std::string& blob,
                                                       const std::string& sha, int64_t bytes,
                                                       int64_t create_time_ms)
      ABSL_LOCKS_EXCLUDED(mu_) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE", "saving"));
    std::optional<std::string> old_blob;
    absl::Status status = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
      ASSIGN_OR_RETURN(std::optional<CatalogRow> old, LookUpLocked(id));
      if (old.has_value()) old_blob = std::move(old->blob);
      StmtUse use(upsert_);
      BindText(use.get(), 1, id);
      BindText(use.get(), 2, blob);
      BindText(use.get(), 3, sha);
      sqlite3_bind_int64(use.get(), 4, bytes);
      sqlite3_bind_int64(use.get(), 5, create_time_ms);
      if (const int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
        return SqliteStatus(db_, rc, "writing a row");
      }
      return ExecLocked("COMMIT", "saving");
    }();
    if (!status.ok()) {
      RollbackLocked();
      return status;
    }
    return old_blob;
  }

  // Unlinks `blob` unless a row names it. Best effort: a blob left behind is debris that the
  // next Open removes, never an error for the caller.
  void RemoveBlobIfUnreferenced(const std::string& blob) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
      ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<int64_t> refs = CountRefsLocked(blob);
      if (!refs.ok() || *refs != 0) return;
    }
    // write_mu_ is held, so no writer can start referencing `blob` before it is gone.
    fs_->Remove(BlobPath(blob)).IgnoreError();
  }

  // Removes temp files and blobs that no row names: what a crash between the steps of Save can
  // leave behind. Errors other than listing the directory are ignored (the next Open retries).
  absl::Status RemoveDebris() ABSL_LOCKS_EXCLUDED(mu_, write_mu_) {
    absl::MutexLock writer(&write_mu_);
    std::set<std::string> referenced;
    {
      absl::MutexLock lock(&mu_);
      StmtPtr all_blobs;
      RETURN_IF_ERROR(WithContext(Prepare("SELECT blob FROM zoos", &all_blobs), "opening"));
      StmtUse use(all_blobs);
      int rc;
      while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
        referenced.insert(ColumnText(use.get(), 0));
      }
      if (rc != SQLITE_DONE) {
        return absl::FailedPreconditionError(SqliteStatus(db_, rc, "reading blob names").message());
      }
    }
    ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->ListDir(blobs_dir_));
    for (const std::string& name : names) {
      const bool temp = absl::EndsWith(name, kTempSuffix);
      const bool orphan = absl::EndsWith(name, kBlobSuffix) && referenced.count(name) == 0;
      if (temp || orphan) fs_->Remove(BlobPath(name)).IgnoreError();
    }
    return absl::OkStatus();
  }

  const std::string data_dir_;
  const std::string blobs_dir_;
  const std::shared_ptr<FileOps> fs_;

  // Serialises writers (Save, Delete, Open's clean-up) end to end, across their file I/O, so a
  // blob is never unlinked while another writer is about to name it. Load never takes it.
  absl::Mutex write_mu_;
  // Guards the connection and its cached statements; held only while statements run, never
  // across blob I/O.
  absl::Mutex mu_ ABSL_ACQUIRED_AFTER(write_mu_);
  sqlite3* db_ ABSL_GUARDED_BY(mu_) = nullptr;
  StmtPtr select_ ABSL_GUARDED_BY(mu_);
  StmtPtr upsert_ ABSL_GUARDED_BY(mu_);
  StmtPtr delete_ ABSL_GUARDED_BY(mu_);
  StmtPtr list_ ABSL_GUARDED_BY(mu_);
  StmtPtr count_refs_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// ZooStore
// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ZooStore>> ZooStore::Open(const Options& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data_dir is empty");
  std::shared_ptr<FileOps> fs = options.file_ops ? options.file_ops : FileOps::Posix();
  auto impl = std::make_unique<Impl>(options.data_dir, std::move(fs));
  if (absl::Status s = impl->Init(options.busy_timeout_ms); !s.ok()) {
    if (s.code() == absl::StatusCode::kFailedPrecondition) return s;
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the zoo store in ", options.data_dir, ": ", s.message()));
  }
  return std::unique_ptr<ZooStore>(new ZooStore(std::move(impl)));
}

ZooStore::ZooStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ZooStore::~ZooStore() = default;

absl::StatusOr<int64_t> ZooStore::Save(const Zoo& zoo) { return impl_->Save(zoo); }

absl::StatusOr<std::vector<std::string>> ZooStore::ListIds() { return impl_->ListIds(); }

absl::StatusOr<Zoo> ZooStore::Load(const std::string& id) { return impl_->Load(id); }

absl::Status ZooStore::Delete(const std::string& id) { return impl_->Delete(id); }

const std::string& ZooStore::data_dir() const { return impl_->data_dir(); }

}  // namespace gradzoo::core
