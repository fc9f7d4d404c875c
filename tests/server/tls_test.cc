// TLS and mutual TLS: a throwaway CA, server and client certificates made with the openssl CLI
// at test time; real handshakes over loopback with and without client certificates; and every
// way a bad TLS configuration must stop the server from starting (fail closed).
#include "server/tls.h"

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef-tls-test-token";

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TlsTest : public ::testing::Test {
 protected:
  // Makes the PKI once: ca (trusted), rogue (untrusted), server/client leaves of each, an
  // expired leaf, an encrypted key.
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::path(::testing::TempDir()) /
                                     ("gradzoo_tls_" + std::to_string(::getpid())));
    std::filesystem::remove_all(*dir_);
    std::filesystem::create_directories(*dir_ / "db");
    const std::string script = R"SH(
set -e
q() { "$@" >/dev/null 2>&1; }
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
for ca in ca rogue; do
  q openssl req -x509 $ec -keyout $ca.key -out $ca.pem -days 3 -subj /CN=gradzoo-test-$ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
done
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
leaf() {  # leaf NAME CA EXT
  q openssl req $ec -keyout $1.key -out $1.csr -subj /CN=$1
  q openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -set_serial $RANDOM -days 2 \
    -extfile $3.ext -out $1.pem
}
leaf server ca server
leaf client ca client
leaf rogue-client rogue client
# Expired: valid for one day in 2020, signed by the trusted CA.
touch db/index.txt; echo 01 > db/serial
printf '[ca]\ndefault_ca=t\n[t]\ndatabase=db/index.txt\nnew_certs_dir=db\nserial=db/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\ncopy_extensions=copy\n[p]\ncommonName=supplied\n' > ca.cnf
q openssl req $ec -keyout expired.key -out expired.csr -subj /CN=localhost
q openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
  -startdate 20200101000000Z -enddate 20200102000000Z -notext
q openssl pkey -in server.key -aes256 -passout pass:secret -out encrypted.key
printf 'not a certificate\n' > garbage.pem
: > empty.pem
)SH";
    const std::string cmd =
        absl::StrCat("cd '", dir_->string(), "' && bash -c '", EscapeSingle(script), "'");
    ok_ = std::system(cmd.c_str()) == 0;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string EscapeSingle(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out;
  }
  static std::string F(const std::string& name) { return (*dir_ / name).string(); }

  void SetUp() override {
    ASSERT_TRUE(ok_) << "generating certificates with the openssl CLI failed (is the Debian "
                        "package openssl installed?)";
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  // A server with the health service only, on `creds`.
  void StartServer(std::shared_ptr<grpc::ServerCredentials> creds) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", creds, &port_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }

  static std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& root,
                                                       const std::string& client = "") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile(F(root + ".pem"));
    if (!client.empty()) {
      o.pem_cert_chain = ReadFile(F(client + ".pem"));
      o.pem_private_key = ReadFile(F(client + ".key"));
    }
    return grpc::SslCredentials(o);
  }

  // A unary generic call of `method` with an empty request; a fresh channel each time so
  // every call makes its own handshake.
  grpc::Status Call(std::shared_ptr<grpc::ChannelCredentials> creds,
                    const std::string& method = "/grpc.health.v1.Health/Check",
                    const std::string& authorization = "") {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), creds);
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    grpc::ByteBuffer request, response;
    grpc::Slice empty("");
    request = grpc::ByteBuffer(&empty, 1);
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      status = s;
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    return status;
  }

  static std::filesystem::path* dir_;
  static bool ok_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

std::filesystem::path* TlsTest::dir_ = nullptr;
bool TlsTest::ok_ = false;

TEST_F(TlsTest, ServerTlsAcceptsClientsTrustingItsCaOnly) {
  ASSERT_OK_AND_ASSIGN(auto creds,
                       MakeServerCredentials({F("server.pem"), F("server.key"), ""}, nullptr));
  StartServer(creds);
  EXPECT_TRUE(Call(Tls("ca")).ok());
  EXPECT_TRUE(Call(Tls("ca", "client")).ok());  // a client certificate is not required
  EXPECT_EQ(Call(Tls("rogue")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateFromTheClientCa) {
  ASSERT_OK_AND_ASSIGN(auto creds, MakeServerCredentials(
                                       {F("server.pem"), F("server.key"), F("ca.pem")}, nullptr));
  StartServer(creds);
  EXPECT_TRUE(Call(Tls("ca", "client")).ok());
  EXPECT_EQ(Call(Tls("ca")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(Tls("ca", "rogue-client")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, TokensAreCheckedOverMutualTls) {
  ASSERT_OK_AND_ASSIGN(auto auth,
                       Authenticator::FromText(absl::StrCat("carol ", kToken, " user\n"), "t"));
  ASSERT_OK_AND_ASSIGN(auto creds, MakeServerCredentials(
                                       {F("server.pem"), F("server.key"), F("ca.pem")}, auth));
  StartServer(creds);
  // Health needs no token; any other method does (an unregistered one answers UNIMPLEMENTED
  // once past authentication).
  EXPECT_TRUE(Call(Tls("ca", "client")).ok());
  EXPECT_EQ(Call(Tls("ca", "client"), "/gradzoo.v1.InfoService/GetServerInfo").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(Tls("ca", "client"), "/gradzoo.v1.InfoService/GetServerInfo",
                 absl::StrCat("Bearer ", kToken))
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(TlsTest, BadConfigurationsFailClosedNamingTheFile) {
  struct Case {
    TlsOptions tls;
    absl::StatusCode code;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{F("absent.pem"), F("server.key"), ""}, absl::StatusCode::kFailedPrecondition,
       "--tls-cert " + F("absent.pem") + ": cannot read"},
      {{F("server.pem"), F("absent.key"), ""}, absl::StatusCode::kFailedPrecondition,
       "--tls-key " + F("absent.key")},
      {{F("garbage.pem"), F("server.key"), ""}, absl::StatusCode::kInvalidArgument,
       "no PEM certificate"},
      {{F("empty.pem"), F("server.key"), ""}, absl::StatusCode::kInvalidArgument, "empty"},
      {{F("server.pem"), F("garbage.pem"), ""}, absl::StatusCode::kInvalidArgument,
       "no usable PEM private key"},
      {{F("server.pem"), F("encrypted.key"), ""}, absl::StatusCode::kInvalidArgument,
       "encrypted keys are not supported"},
      {{F("server.pem"), F("client.key"), ""}, absl::StatusCode::kInvalidArgument,
       "does not match the certificate"},
      {{F("expired.pem"), F("expired.key"), ""}, absl::StatusCode::kInvalidArgument, "expired"},
      {{F("server.pem"), "", ""}, absl::StatusCode::kInvalidArgument, "needs both"},
      {{"", "", F("ca.pem")}, absl::StatusCode::kInvalidArgument, "needs both"},
      {{F("server.pem"), F("server.key"), F("client.pem")}, absl::StatusCode::kInvalidArgument,
       "not a CA certificate"},
      {{F("server.pem"), F("server.key"), F("garbage.pem")}, absl::StatusCode::kInvalidArgument,
       "--tls-client-ca"},
      {{F("server.pem"), F("server.key"), F("absent-ca.pem")},
       absl::StatusCode::kFailedPrecondition, "absent-ca.pem"},
      {{F("server.pem"), F("server.key"), std::string(*dir_)},
       absl::StatusCode::kFailedPrecondition, "not a regular file"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expect);
    EXPECT_THAT(ValidateTlsFiles(c.tls), StatusIs(c.code, HasSubstr(c.expect)));
    EXPECT_THAT(MakeServerCredentials(c.tls, nullptr), StatusIs(c.code, HasSubstr(c.expect)));
  }
  EXPECT_OK(ValidateTlsFiles({F("server.pem"), F("server.key"), F("ca.pem")}));
  EXPECT_OK(ValidateTlsFiles({}));
}

TEST_F(TlsTest, PlaintextCredentialsWithoutTlsFiles) {
  ASSERT_OK_AND_ASSIGN(auto creds, MakeServerCredentials({}, nullptr));
  StartServer(creds);
  EXPECT_TRUE(Call(grpc::InsecureChannelCredentials()).ok());
  EXPECT_EQ(Call(Tls("ca")).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace gradzoo::server
