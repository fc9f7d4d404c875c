// Transport credentials for gradzoo-server: plaintext (the loopback default), TLS, or mutual
// TLS, with token authentication (server/auth.h) attached to any of them.
//
//   --tls-cert FILE       PEM certificate chain, leaf first (the server's identity)
//   --tls-key FILE        PEM private key of the leaf (PKCS#8 or traditional; unencrypted)
//   --tls-client-ca FILE  PEM CA bundle: turns on mutual TLS; a client must present a
//                         certificate chaining to one of these CAs or its handshake fails
//
// Fails closed: any file that cannot be read or parsed, a key that does not match the
// certificate, a certificate outside its validity period, a client CA bundle holding a
// non-CA certificate, or a half configuration (cert without key, client CA without cert) is an
// error naming the file and the problem, and the server must refuse to start. These checks run
// here, with OpenSSL, before gRPC sees the files: gRPC itself would only fail later, when the
// port is added, with no reason given.
//
// Thread-safe (stateless).
#ifndef GRADZOO_SERVER_TLS_H_
#define GRADZOO_SERVER_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/auth.h"

namespace gradzoo::server {

struct TlsOptions {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  // True when any TLS file is set (then cert_file and key_file are required).
  bool enabled() const {
    return !cert_file.empty() || !key_file.empty() || !client_ca_file.empty();
  }
};

// Credentials for grpc::ServerBuilder::AddListeningPort: plaintext when `tls` is not enabled,
// otherwise TLS (mutual with a client CA). With `auth` (may be null), every call except the
// health service must carry a valid token (Authenticator::Install). INVALID_ARGUMENT /
// FAILED_PRECONDITION naming the file when a TLS file is missing, unreadable or bad.
//
// The returned object wraps gRPC's core credentials; its SetAuthMetadataProcessor (the C++
// processor interface) is not supported and aborts: pass `auth` here instead.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& tls, std::shared_ptr<const Authenticator> auth);

// The checks MakeServerCredentials runs on the TLS files, without building credentials.
absl::Status ValidateTlsFiles(const TlsOptions& tls);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_TLS_H_
