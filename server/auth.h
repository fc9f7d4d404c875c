// Token authentication for gradzoo-server: who is calling, checked before any handler runs.
//
// Tokens file (`--tokens-file`), loaded once at start-up; one entry per line:
//
//   # comment lines start with '#' (after optional blanks); blank lines are ignored
//   alice  3f6c0e...64 hex chars...  user
//   bob    9a81d2...                 admin
//
//   user   1-64 characters of [A-Za-z0-9._-], starting with a letter or digit
//   token  32-1024 printable ASCII characters without blanks, at least 10 distinct ones
//          (generate one with `openssl rand -hex 32`); a token may appear on one line only
//   role   `user` or `admin` (tenancy: an admin sees every user's resources)
//
// A user may have several lines (several tokens, e.g. while rotating one), all with the same
// role. Anything else (a weak or repeated token, a bad name or role, a fourth field, an empty
// file) refuses the whole file with the line number; messages never quote a token. The file
// should be mode 0600 and owned by the server's user: a group- or world-readable file is loaded
// with a warning.
//
// On the wire: call metadata `authorization: Bearer <token>` (RFC 6750 scheme, case-insensitive).
// Every RPC needs one except the gRPC health service (grpc.health.v1.Health), so probes and
// load balancers work without secrets. A call without a valid token fails UNAUTHENTICATED before
// it reaches the service (the check runs as the transport's auth metadata processor, so no
// handler, interceptor or log line sees the call).
//
// Tokens are kept only as SHA-256 digests; a presented token is hashed and compared with every
// stored digest by CRYPTO_memcmp, visiting all of them, so neither the token's length nor which
// entry matched shows in the timing. Tokens are never logged.
//
// Identity in handlers: gRPC 1.51 shares one auth context among every call of a connection, so
// a per-call identity cannot be stored there; IdentityOf re-reads the call's own metadata
// instead (one SHA-256 and a few comparisons, ~1 us).
//
// Thread-safe: immutable after Load; the rejection counter is atomic.
#ifndef GRADZOO_SERVER_AUTH_H_
#define GRADZOO_SERVER_AUTH_H_

#include <grpc/grpc_security.h>
#include <grpcpp/server_context.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gradzoo::server {

struct AuthOptions {
  // Path of the tokens file (format above). Empty: authentication is off.
  std::string tokens_file;
};

enum class Role { kUser, kAdmin };
// "user" / "admin".
absl::string_view RoleName(Role role);

// Who is calling.
struct Identity {
  std::string user;
  Role role = Role::kUser;
  bool is_admin() const { return role == Role::kAdmin; }
};

class Authenticator {
 public:
  // Reads and validates the tokens file. FAILED_PRECONDITION when it cannot be read,
  // INVALID_ARGUMENT naming the line for a bad entry.
  static absl::StatusOr<std::shared_ptr<const Authenticator>> Load(const AuthOptions& options);
  // The same from the file's text; `source` names it in messages.
  static absl::StatusOr<std::shared_ptr<const Authenticator>> FromText(absl::string_view text,
                                                                       absl::string_view source);

  // The identity behind an `authorization` metadata value ("Bearer <token>"); UNAUTHENTICATED
  // with advice otherwise. Does not count rejections.
  absl::StatusOr<Identity> Authenticate(absl::string_view authorization) const;

  // The identity of a call, from its own `authorization` metadata (exactly one entry).
  // UNAUTHENTICATED otherwise; for an exempt method (health) without a token as well.
  absl::StatusOr<Identity> IdentityOf(const grpc::ServerContextBase& context) const;

  // True for methods that need no token: "/grpc.health.v1.Health/...".
  static bool IsExempt(absl::string_view method_path);

  // Decision for one call, given its :path and its authorization values (what the transport
  // hook sees); counts rejections. Exposed for tests.
  absl::Status CheckCall(absl::string_view method_path,
                         const std::vector<absl::string_view>& authorization) const;

  // Installs this authenticator on core server credentials: every call on a port added with
  // `creds` passes CheckCall first. Keeps `self` alive as long as `creds`.
  static void Install(std::shared_ptr<const Authenticator> self, grpc_server_credentials* creds);

  // Distinct users, and calls rejected so far (for metrics).
  size_t user_count() const { return users_; }
  int64_t rejected_calls() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry {
    Digest digest;
    Identity identity;
  };
  explicit Authenticator(std::vector<Entry> entries, size_t users)
      : entries_(std::move(entries)), users_(users) {}

  const std::vector<Entry> entries_;
  const size_t users_;
  mutable std::atomic<int64_t> rejected_{0};
};

// The caller of `context` for tenancy decisions. With `auth` null (authentication off: a
// single-user, loopback setup) every caller is the local administrator {"local", kAdmin};
// otherwise auth->IdentityOf(*context).
absl::StatusOr<Identity> IdentityOf(const Authenticator* auth,
                                    const grpc::CallbackServerContext* context);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_AUTH_H_
