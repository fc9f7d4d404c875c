// ZooStore: the embedded default store. A data directory holding a SQLite catalog and one
// checksummed blob per zoo version.
//
//   DIR/catalog.sqlite         table zoos(id PRIMARY KEY, blob, sha256, bytes, create_time_ms)
//   DIR/blobs/<sha256>.gzoo    zoo archives (core/store/zoo_codec.h), content-addressed
//
// Writes are crash-safe: blob to a temp file -> fsync -> rename -> fsync dir, and only then the
// catalog row is committed (SQLite transaction, WAL, synchronous=FULL); the replaced blob is
// unlinked last, once no row names it. A crash at any point leaves either the old version or the
// new one. Open removes what a crash can leave behind: stray temp files (*.tmp) and blobs no
// catalog row names. Load verifies the SHA-256 and answers DATA_LOSS for that zoo alone when it
// does not match.
//
// One ZooStore per data directory at a time (Open's clean-up would take another process's
// in-flight files for debris).
//
// Thread-safe: every method may be called concurrently. Writers (Save, Delete) are serialised
// end to end; a short-held mutex guards the catalog connection; blob reads in Load run outside
// both. Loads wait for a Save's catalog commit, never for its blob write and fsync.
#ifndef GRADZOO_CORE_STORE_ZOO_STORE_H_
#define GRADZOO_CORE_STORE_ZOO_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model.h"

namespace gradzoo::core {

// The file-system calls ZooStore makes for its blobs, behind one small interface so tests can
// inject the faults a disk produces (ENOSPC, a failed fsync or rename), as leveldb's
// fault_injection_test does with its Env. The SQLite catalog does its own I/O and does not go
// through it.
//
// Errors carry the path and strerror text, with codes chosen from errno: RESOURCE_EXHAUSTED for
// ENOSPC and EDQUOT, NOT_FOUND for ENOENT, UNAVAILABLE for EAGAIN, EBUSY, EMFILE and ENFILE,
// INTERNAL for everything else. Implementations must be thread-safe.
class FileOps {
 public:
  // A file open for writing. Not thread-safe. Destroying it unclosed closes it, ignoring errors.
  class WritableFile {
   public:
    virtual ~WritableFile() = default;
    // Writes all of `data` at the end of the file (short writes are retried).
    virtual absl::Status Append(absl::string_view data) = 0;
    // fsync(2): what was appended is durable once this returns OK.
    virtual absl::Status Sync() = 0;
    virtual absl::Status Close() = 0;
  };

  virtual ~FileOps() = default;

  // The real file system (POSIX calls). Stateless; one shared instance.
  static std::shared_ptr<FileOps> Posix();

  // Creates directory `path` and any missing parents; OK if it exists.
  virtual absl::Status CreateDirs(const std::string& path) = 0;
  // Creates `path`, or truncates it if it exists, for writing.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;
  // The whole content of `path`.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // rename(2): atomically replaces `to` with `from`.
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // unlink(2).
  virtual absl::Status Remove(const std::string& path) = 0;
  // fsyncs directory `dir`, making the renames and unlinks in it durable.
  virtual absl::Status SyncDir(const std::string& dir) = 0;
  // Names (not paths) of the entries of `dir`, in no particular order.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) = 0;
};

class ZooStore {
 public:
  struct Options {
    // Directory of the store; created (with parents) if missing.
    std::string data_dir;
    // Blob I/O. Null means FileOps::Posix(); tests pass a fault-injecting fake. (Every member
    // after data_dir has a default member initialiser, so `ZooStore::Open({dir})` stays quiet
    // under -Wmissing-field-initializers.)
    std::shared_ptr<FileOps> file_ops = nullptr;
    // How long a catalog statement waits on a lock held by another connection, e.g. a backup
    // tool reading the catalog.
    int busy_timeout_ms = 5000;
  };

  // Opens or creates the store and removes crash debris (see above). INVALID_ARGUMENT if
  // data_dir is empty; FAILED_PRECONDITION if the directory cannot be created or the catalog
  // cannot be opened.
  static absl::StatusOr<std::unique_ptr<ZooStore>> Open(const Options& options);

  virtual ~ZooStore();

  // Writes `zoo` (replacing any zoo of the same id) and returns the bytes stored (the archive's
  // size). INVALID_ARGUMENT, with nothing written, if the zoo could not be loaded back (see
  // DecodeZoo). On an I/O error the previous version, if any, is kept and Load still returns it:
  // RESOURCE_EXHAUSTED when the disk is full, the file system's code otherwise (see FileOps), or
  // the catalog's (SQLITE_FULL is RESOURCE_EXHAUSTED, SQLITE_BUSY is UNAVAILABLE, else INTERNAL).
  absl::StatusOr<int64_t> Save(const Zoo& zoo);

  // Ids of every catalogued zoo, sorted.
  absl::StatusOr<std::vector<std::string>> ListIds();

  // Reads and verifies one zoo; its stored_bytes is the blob's size. INVALID_ARGUMENT for a
  // malformed id; NOT_FOUND if absent; DATA_LOSS, naming the zoo, if its blob is missing,
  // corrupt or fails its checksum. A Save or Delete racing the read is not data loss: Load
  // answers for the zoo as it is after them (UNAVAILABLE if it was replaced 8 times meanwhile).
  absl::StatusOr<Zoo> Load(const std::string& id);

  // Removes a zoo from the catalog, then its blob. NOT_FOUND if absent. Once the row is gone
  // the zoo is deleted: a blob that cannot be unlinked is left for the next Open to remove.
  absl::Status Delete(const std::string& id);

  const std::string& data_dir() const;

 private:
  class Impl;
  explicit ZooStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_STORE_ZOO_STORE_H_
