// The security and operations options of server::Server, end to end through Server::Start and
// the real client: --tokens-file (every gradzoo.v1 method refuses calls without a token, health
// answers), TLS from Options (and refusing to start on bad files), the Prometheus endpoint
// (request counts, latency histograms, queue depth, stored bytes).
#include <arpa/inet.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor_database.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/analysis_client.h"
#include "client/gradzoo_client.h"
#include "gradzoo/v1/info.grpc.pb.h"
#include "server/server.h"
#include "tests/server/secure_fixture.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

using ::gradzoo::testing::kAliceToken;
using ::gradzoo::testing::kBobToken;
using ::gradzoo::testing::HasCode;
using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// Calls `method` as a generic unary call with an empty request message.
grpc::Status CallEmpty(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                       const std::string& authorization) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  grpc::ByteBuffer request, response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  // A bidi call is the wire form of every RPC kind: one message, half-close, read to the end.
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  call->Write(request, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  for (;;) {
    call->Read(&response, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    if (!ok) break;
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

std::vector<std::string> AllGradzooMethods(std::set<std::string>* services) {
  std::vector<std::string> files;
  google::protobuf::DescriptorPool::internal_generated_database()->FindAllFileNames(&files);
  std::vector<std::string> methods;
  for (const std::string& f : files) {
    const google::protobuf::FileDescriptor* fd =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(f);
    if (fd == nullptr || fd->package() != "gradzoo.v1") continue;
    for (int s = 0; s < fd->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* sd = fd->service(s);
      services->insert(sd->full_name());
      for (int m = 0; m < sd->method_count(); ++m) {
        methods.push_back(absl::StrCat("/", sd->full_name(), "/", sd->method(m)->name()));
      }
    }
  }
  return methods;
}

// GET `path` from 127.0.0.1:port over a raw socket; returns the whole HTTP response.
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// The value of the first sample line starting with `series` ("name{labels}"), or -1.
double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.size() > series.size() && line.substr(0, series.size()) == series &&
        line[series.size()] == ' ') {
      double v;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  return -1;
}

class SecureServerTest : public testing::SecureServerFixture {};

TEST_F(SecureServerTest, EveryGradzooMethodNeedsATokenAndHealthDoesNot) {
  std::set<std::string> services;
  std::vector<std::string> methods = AllGradzooMethods(&services);
  for (const char* s : {"gradzoo.v1.ZooService", "gradzoo.v1.TrainingJobService",
                        "gradzoo.v1.GradientService", "gradzoo.v1.AnalysisService",
                        "gradzoo.v1.EmbeddingService", "gradzoo.v1.InfoService"}) {
    EXPECT_EQ(services.count(s), 1u) << s;
  }
  ASSERT_GE(methods.size(), 30u);
  auto channel = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
  for (const std::string& m : methods) {
    SCOPED_TRACE(m);
    const grpc::Status none = CallEmpty(channel, m, "");
    EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED) << none.error_message();
    const grpc::Status bad = CallEmpty(channel, m, "Bearer 0123456789abcdef0123456789abcdefXX");
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    // With a token the call reaches its handler (whatever it says about the empty request).
    const grpc::Status good = CallEmpty(channel, m, absl::StrCat("Bearer ", kAliceToken));
    EXPECT_NE(good.error_code(), grpc::StatusCode::UNAUTHENTICATED) << good.error_message();
  }
  // Health needs no token, through the server's own health service.
  EXPECT_TRUE(CallEmpty(channel, "/grpc.health.v1.Health/Check", "").ok());
  ASSERT_OK_AND_ASSIGN(auto anon, client::Client::Connect(address()));
  ASSERT_OK_AND_ASSIGN(bool serving, anon->CheckHealth());
  EXPECT_TRUE(serving);
}

TEST_F(SecureServerTest, ClientsSendTheirTokenOnEveryCall) {
  EXPECT_OK(alice_->GetServerInfo().status());
  EXPECT_OK(alice_->ListZoos().status());
  // Area clients share the channel, and with it the token.
  client::AnalysisClient analysis(*alice_);
  EXPECT_THAT(analysis.ComputeCka(v1::ComputeCkaRequest()).status(),
              Not(HasCode(absl::StatusCode::kUnauthenticated)));
  ASSERT_OK_AND_ASSIGN(auto anon, client::Client::Connect(address()));
  EXPECT_THAT(anon->ListZoos(), StatusIs(absl::StatusCode::kUnauthenticated,
                                         HasSubstr("missing token")));
  client::Client::Options wrong;
  wrong.token = std::string(kAliceToken).substr(1) + "0";
  ASSERT_OK_AND_ASSIGN(auto w, client::Client::Connect(address(), wrong));
  EXPECT_THAT(w->GetServerInfo(), StatusIs(absl::StatusCode::kUnauthenticated,
                                           HasSubstr("invalid token")));
  client::Client::Options blank;
  blank.token = "abc def";
  EXPECT_THAT(client::Client::Connect(address(), blank),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("blank")));
}

TEST_F(SecureServerTest, MetricsCountRequestsLatencyQueueDepthAndStoredBytes) {
  ASSERT_GT(server_->metrics_port(), 0);
  for (int i = 0; i < 3; ++i) ASSERT_OK(alice_->GetServerInfo().status());
  EXPECT_THAT(alice_->GetZoo("zoos/nope"), HasCode(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(auto anon, client::Client::Connect(address()));
  EXPECT_FALSE(anon->ListZoos().ok());
  TrainZoo(*alice_, "m1", SmallSpec(50));

  const std::string http = HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_THAT(http, HasSubstr("200 OK"));
  const std::string info = "method=\"/gradzoo.v1.InfoService/GetServerInfo\",code=\"OK\"";
  EXPECT_EQ(Sample(http, absl::StrCat("gradzoo_rpc_requests_total{", info, "}")), 3);
  EXPECT_EQ(Sample(http, absl::StrCat("gradzoo_rpc_duration_seconds_count{", info, "}")), 3);
  EXPECT_EQ(Sample(http, absl::StrCat("gradzoo_rpc_duration_seconds_bucket{", info,
                                      ",le=\"+Inf\"}")),
            3);
  EXPECT_EQ(Sample(http, "gradzoo_rpc_requests_total{method=\"/gradzoo.v1.ZooService/GetZoo\","
                         "code=\"NOT_FOUND\"}"),
            1);
  EXPECT_GE(Sample(http, "gradzoo_auth_rejected_calls_total"), 1);
  EXPECT_EQ(Sample(http, "gradzoo_job_queue_depth"), 0);
  EXPECT_EQ(Sample(http, "gradzoo_query_queue_depth"), 0);
  ASSERT_OK_AND_ASSIGN(v1::Zoo zoo, alice_->GetZoo("zoos/m1"));
  EXPECT_GT(zoo.stored_bytes(), 0);
  EXPECT_EQ(Sample(http, "gradzoo_stored_bytes"), static_cast<double>(zoo.stored_bytes()));
  EXPECT_THAT(HttpGet(server_->metrics_port(), "/other"), HasSubstr("404"));
}

TEST_F(SecureServerTest, BadTokensFileRefusesToStart) {
  Server::Options o = options_;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.tokens_file = (dir_ / "missing.txt").string();
  EXPECT_THAT(Server::Start(o), StatusIs(absl::StatusCode::kFailedPrecondition,
                                         HasSubstr("missing.txt")));
  const std::string weak = (dir_ / "weak.txt").string();
  std::ofstream(weak) << "carol short user\n";
  o.tokens_file = weak;
  EXPECT_THAT(Server::Start(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
}

// TLS through Server::Options, with a self-signed certificate made by the openssl CLI.
TEST_F(SecureServerTest, TlsFromOptionsAndRefusalOnBadCertificates) {
  const std::string cert = (dir_ / "tls.pem").string(), key = (dir_ / "tls.key").string();
  const std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ", key,
      " -out ", cert, " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost "
      ">/dev/null 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl CLI missing?";
  Server::Options o = options_;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.data_dir = (dir_ / "tls-data").string();
  o.tls_cert = cert;
  o.tls_key = key;
  ASSERT_OK_AND_ASSIGN(auto tls_server, Server::Start(o));
  const std::string addr = absl::StrCat("127.0.0.1:", tls_server->port());
  std::ifstream in(cert);
  std::stringstream pem;
  pem << in.rdbuf();
  client::Client::Options co;
  co.token = kBobToken;
  co.tls_root_certs = pem.str();
  co.tls_server_name = "localhost";
  co.timeout = absl::Seconds(10);
  ASSERT_OK_AND_ASSIGN(auto tls_client, client::Client::Connect(addr, co));
  EXPECT_OK(tls_client->GetServerInfo().status());
  // Plaintext to a TLS port fails; TLS without the token is still UNAUTHENTICATED.
  client::Client::Options plain;
  plain.token = kBobToken;
  plain.timeout = absl::Seconds(3);
  ASSERT_OK_AND_ASSIGN(auto plain_client, client::Client::Connect(addr, plain));
  EXPECT_THAT(plain_client->GetServerInfo(), HasCode(absl::StatusCode::kUnavailable));
  co.token.clear();
  ASSERT_OK_AND_ASSIGN(auto no_token, client::Client::Connect(addr, co));
  EXPECT_THAT(no_token->GetServerInfo(), HasCode(absl::StatusCode::kUnauthenticated));
  tls_server.reset();

  // Fail closed: a key that is not a key, a certificate without a key.
  const std::string junk = (dir_ / "junk.key").string();
  std::ofstream(junk) << "not a key\n";
  o.tls_key = junk;
  absl::StatusOr<std::unique_ptr<Server>> refused = Server::Start(o);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("junk.key"));
  o.tls_key = "";
  EXPECT_THAT(Server::Start(o), Not(HasCode(absl::StatusCode::kOk)));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Mutual TLS through Server::Options::tls_client_ca: a client certificate from the CA is
// required, and the token still is.
TEST_F(SecureServerTest, MutualTlsFromOptions) {
  const std::string d = dir_.string();
  {
    std::ofstream sh(d + "/pki.sh");
    sh << R"SH(set -e
q() { "$@" >/dev/null 2>&1; }
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
q openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > s.ext
printf 'extendedKeyUsage=clientAuth\n' > c.ext
for n in srv cli; do q openssl req $ec -keyout $n.key -out $n.csr -subj /CN=$n; done
q openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 1 -extfile s.ext -out srv.pem
q openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -set_serial 8 -days 1 -extfile c.ext -out cli.pem
)SH";
  }
  ASSERT_EQ(std::system(("cd " + d + " && bash pki.sh").c_str()), 0) << "openssl CLI missing?";
  Server::Options o = options_;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.data_dir = (dir_ / "mtls-data").string();
  o.tls_cert = d + "/srv.pem";
  o.tls_key = d + "/srv.key";
  o.tls_client_ca = d + "/ca.pem";
  ASSERT_OK_AND_ASSIGN(auto mtls, Server::Start(o));
  const std::string addr = absl::StrCat("127.0.0.1:", mtls->port());
  client::Client::Options co;
  co.token = kAliceToken;
  co.tls_root_certs = ReadAll(d + "/ca.pem");
  co.tls_server_name = "localhost";
  co.timeout = absl::Seconds(10);
  co.tls_client_cert = ReadAll(d + "/cli.pem");
  co.tls_client_key = ReadAll(d + "/cli.key");
  ASSERT_OK_AND_ASSIGN(auto with_cert, client::Client::Connect(addr, co));
  EXPECT_OK(with_cert->GetServerInfo().status());
  client::Client::Options no_cert = co;
  no_cert.tls_client_cert.clear();
  no_cert.tls_client_key.clear();
  no_cert.timeout = absl::Seconds(3);
  ASSERT_OK_AND_ASSIGN(auto without, client::Client::Connect(addr, no_cert));
  EXPECT_THAT(without->GetServerInfo(), HasCode(absl::StatusCode::kUnavailable));
  client::Client::Options half = co;
  half.tls_client_key.clear();
  EXPECT_THAT(client::Client::Connect(addr, half), HasCode(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace gradzoo::server
