#include "server/tls.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "spdlog/spdlog.h"

namespace gradzoo::server {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

// grpc::ServerCredentials over a core grpc_server_credentials (insecure or SSL), which, unlike
// grpc::InsecureServerCredentials(), accepts an auth metadata processor. grpc::Server adds the
// port through AddPortToServer (a private virtual of ServerCredentials, overridden here).
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  CoreServerCredentials(grpc_server_credentials* creds, std::string key_pem)
      : creds_(creds), key_pem_(std::move(key_pem)) {}
  ~CoreServerCredentials() override {
    grpc_server_credentials_release(creds_);
    OPENSSL_cleanse(key_pem_.data(), key_pem_.size());
  }
  CoreServerCredentials(const CoreServerCredentials&) = delete;
  CoreServerCredentials& operator=(const CoreServerCredentials&) = delete;

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {
    spdlog::critical("CoreServerCredentials::SetAuthMetadataProcessor is not supported: pass the "
                     "Authenticator to MakeServerCredentials");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), creds_);
  }

  grpc_server_credentials* const creds_;
  std::string key_pem_;  // kept (then wiped) in case the core credentials refer to it
};

std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no detail" : out;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", path, ": cannot read: ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(flag, " ", path, ": not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": larger than ", kMaxPemBytes, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", path, ": cannot read: ", std::strerror(errno)));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": empty"));
  return text;
}

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

// Every certificate in `pem`; INVALID_ARGUMENT when there is none or one is malformed.
absl::StatusOr<std::vector<X509Ptr>> ParseCerts(const std::string& pem, const std::string& what) {
  ERR_clear_error();
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(x);
  // The loop ends with "no start line" at the end of the input; anything else is an error.
  const unsigned long err = ERR_peek_last_error();
  if (err != 0 && !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": malformed PEM certificate: ", OpenSslError()));
  }
  ERR_clear_error();
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no PEM certificate found"));
  }
  return certs;
}

absl::Status CheckValidity(X509* cert, const std::string& what) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": certificate not valid yet"));
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": certificate has expired"));
  }
  return absl::OkStatus();
}

int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

struct Pems {
  std::string cert, key, client_ca;
};

absl::StatusOr<Pems> LoadAndCheck(const TlsOptions& tls) {
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls-cert and --tls-key (and optionally --tls-client-ca for mutual TLS)");
  }
  Pems p;
  ASSIGN_OR_RETURN(p.cert, ReadPem(tls.cert_file, "--tls-cert"));
  ASSIGN_OR_RETURN(p.key, ReadPem(tls.key_file, "--tls-key"));
  const std::string cert_what = absl::StrCat("--tls-cert ", tls.cert_file);
  const std::string key_what = absl::StrCat("--tls-key ", tls.key_file);
  ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseCerts(p.cert, cert_what));
  RETURN_IF_ERROR(CheckValidity(chain[0].get(), cert_what));

  ERR_clear_error();
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(p.key.data(), static_cast<int>(p.key.size())));
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        key_what, ": no usable PEM private key (encrypted keys are not supported): ",
        OpenSslError()));
  }
  if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        key_what, " does not match the certificate in ", tls.cert_file));
  }
  struct stat st {};
  if (::stat(tls.key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    spdlog::warn("--tls-key {} has mode {:04o}: other users may read it; chmod 600 it",
                 tls.key_file, st.st_mode & 07777);
  }

  if (!tls.client_ca_file.empty()) {
    ASSIGN_OR_RETURN(p.client_ca, ReadPem(tls.client_ca_file, "--tls-client-ca"));
    const std::string ca_what = absl::StrCat("--tls-client-ca ", tls.client_ca_file);
    ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCerts(p.client_ca, ca_what));
    for (size_t i = 0; i < cas.size(); ++i) {
      if (X509_check_ca(cas[i].get()) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            ca_what, ": certificate ", i + 1, " is not a CA certificate (basicConstraints CA:TRUE)"));
      }
      RETURN_IF_ERROR(CheckValidity(cas[i].get(), absl::StrCat(ca_what, " certificate ", i + 1)));
    }
  }
  return p;
}

}  // namespace

absl::Status ValidateTlsFiles(const TlsOptions& tls) {
  if (!tls.enabled()) return absl::OkStatus();
  absl::StatusOr<Pems> p = LoadAndCheck(tls);
  if (!p.ok()) return p.status();
  OPENSSL_cleanse(p->key.data(), p->key.size());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& tls, std::shared_ptr<const Authenticator> auth) {
  grpc_server_credentials* creds = nullptr;
  std::string key_pem;
  if (!tls.enabled()) {
    creds = grpc_insecure_server_credentials_create();
  } else {
    ASSIGN_OR_RETURN(Pems p, LoadAndCheck(tls));
    grpc_ssl_pem_key_cert_pair pair{p.key.c_str(), p.cert.c_str()};
    creds = grpc_ssl_server_credentials_create_ex(
        p.client_ca.empty() ? nullptr : p.client_ca.c_str(), &pair, 1,
        p.client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
        nullptr);
    if (creds == nullptr) {
      OPENSSL_cleanse(p.key.data(), p.key.size());
      return absl::InvalidArgumentError(
          absl::StrCat("gRPC refused the TLS files ", tls.cert_file, " / ", tls.key_file));
    }
    key_pem = std::move(p.key);
    spdlog::info("TLS on ({}), certificate {}", p.client_ca.empty() ? "server-only" : "mutual",
                 tls.cert_file);
  }
  if (auth != nullptr) Authenticator::Install(std::move(auth), creds);
  return std::shared_ptr<grpc::ServerCredentials>(
      std::make_shared<CoreServerCredentials>(creds, std::move(key_pem)));
}

}  // namespace gradzoo::server
