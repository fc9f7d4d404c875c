// Metrics: the exposition text against a hand-computed reference, the interceptor on a real
// gRPC server, and the HTTP endpoint through real sockets, including slow, oversize and bad
// requests.
#include "server/metrics.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// "name{labels} value" lines of the exposition -> value, keyed by "name{labels}".
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &v)) << line;
    out[std::string(line.substr(0, space))] = v;
  }
  return out;
}

TEST(MetricsRegistryTest, CountsAndHistogramsMatchAHandComputedReference) {
  MetricsRegistry r;
  const std::string m = "/gradzoo.v1.ZooService/ListZoos";
  // Latencies and the bucket (upper bound) each falls in: le is inclusive.
  const std::vector<double> ok_latencies = {0.0001, 0.001, 0.003, 0.003, 0.7, 200.0};
  for (double s : ok_latencies) r.RecordRpc(m, grpc::StatusCode::OK, s);
  r.RecordRpc(m, grpc::StatusCode::NOT_FOUND, 0.02);
  r.RecordRpc("/gradzoo.v1.InfoService/GetServerInfo", grpc::StatusCode::OK, -1.0);  // -> 0
  const std::string text = r.Render();
  const auto s = Samples(text);
  const std::string ok = absl::StrCat("method=\"", m, "\",code=\"OK\"");
  EXPECT_EQ(s.at(absl::StrCat("gradzoo_rpc_requests_total{", ok, "}")), 6);
  EXPECT_EQ(s.at(absl::StrCat("gradzoo_rpc_duration_seconds_count{", ok, "}")), 6);
  EXPECT_NEAR(s.at(absl::StrCat("gradzoo_rpc_duration_seconds_sum{", ok, "}")),
              0.0001 + 0.001 + 0.003 + 0.003 + 0.7 + 200.0, 1e-9);
  // Cumulative counts per bound, by a slow loop over the latencies.
  for (double le : kRpcBuckets) {
    int expected = 0;
    for (double x : ok_latencies) expected += x <= le ? 1 : 0;
    const std::string key = absl::StrCat("gradzoo_rpc_duration_seconds_bucket{", ok, ",le=\"",
                                         absl::StrFormat("%.17g", le), "\"}");
    ASSERT_TRUE(s.count(key)) << key << "\n" << text;
    EXPECT_EQ(s.at(key), expected) << key;
  }
  EXPECT_EQ(s.at(absl::StrCat("gradzoo_rpc_duration_seconds_bucket{", ok, ",le=\"+Inf\"}")), 6);
  EXPECT_EQ(s.at(absl::StrCat("gradzoo_rpc_requests_total{method=\"", m,
                              "\",code=\"NOT_FOUND\"}")),
            1);
  EXPECT_EQ(s.at("gradzoo_rpc_duration_seconds_sum{method=\"/gradzoo.v1.InfoService/"
                 "GetServerInfo\",code=\"OK\"}"),
            0);
  EXPECT_THAT(text, HasSubstr("# TYPE gradzoo_rpc_duration_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE gradzoo_rpc_requests_total counter\n"));
  EXPECT_GT(s.at("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(s.at("process_open_fds"), 2);
  EXPECT_GT(s.at("process_start_time_seconds"), 1.6e9);
}

TEST(MetricsRegistryTest, CallbacksAreReadAtScrapeTime) {
  MetricsRegistry r;
  double depth = 3;
  ASSERT_OK(r.AddGauge("gradzoo_job_queue_depth", "Jobs waiting.", [&] { return depth; }));
  ASSERT_OK(r.AddCounter("gradzoo_auth_rejected_calls_total", "Calls refused.", [] { return 7.0; }));
  EXPECT_EQ(Samples(r.Render()).at("gradzoo_job_queue_depth"), 3);
  depth = 5;
  const std::string text = r.Render();
  EXPECT_EQ(Samples(text).at("gradzoo_job_queue_depth"), 5);
  EXPECT_THAT(text, HasSubstr("# HELP gradzoo_job_queue_depth Jobs waiting.\n"
                              "# TYPE gradzoo_job_queue_depth gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE gradzoo_auth_rejected_calls_total counter\n"));
  EXPECT_THAT(r.AddGauge("gradzoo_job_queue_depth", "again", [] { return 0.0; }),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already exists")));
  EXPECT_THAT(r.AddGauge("process_open_fds", "builtin", [] { return 0.0; }),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already exists")));
  for (const char* bad : {"", "1abc", "with space", "dash-ed", "é"}) {
    EXPECT_THAT(r.AddGauge(bad, "h", [] { return 0.0; }),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad metric name")));
  }
  EXPECT_THAT(r.AddGauge("ok_name", "h", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no callback")));
}

TEST(MetricsRegistryTest, MethodLabelsAreBoundedAndEscaped) {
  MetricsRegistry r(MetricsRegistry::Options{2});
  r.RecordRpc("/a/One", grpc::StatusCode::OK, 0);
  r.RecordRpc("/a/Two\"\\\n", grpc::StatusCode::OK, 0);
  for (int i = 0; i < 100; ++i) r.RecordRpc(absl::StrCat("/made/up", i), grpc::StatusCode::UNIMPLEMENTED, 0);
  r.RecordRpc("/a/One", static_cast<grpc::StatusCode>(99), 0);  // out of range -> UNKNOWN
  const std::string text = r.Render();
  const auto s = Samples(text);
  EXPECT_EQ(s.at("gradzoo_rpc_requests_total{method=\"other\",code=\"UNIMPLEMENTED\"}"), 100);
  EXPECT_EQ(s.at("gradzoo_rpc_requests_total{method=\"/a/One\",code=\"UNKNOWN\"}"), 1);
  EXPECT_EQ(s.at("gradzoo_rpc_requests_total{method=\"/a/Two\\\"\\\\\\n\",code=\"OK\"}"), 1);
  EXPECT_THAT(text, Not(HasSubstr("made/up")));
}

TEST(MetricsInterceptorTest, RecordsEveryRpcOfARealServer) {
  MetricsRegistry registry;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(MakeMetricsInterceptorFactory(&registry));
  builder.experimental().SetInterceptorCreators(std::move(creators));
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto call = [&](const std::string& method, const std::string& body) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice slice(body);
    grpc::ByteBuffer req(&slice, 1), resp;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
      std::lock_guard<std::mutex> l(mu);
      status = s;
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
    return status.error_code();
  };
  EXPECT_EQ(call("/grpc.health.v1.Health/Check", ""), grpc::StatusCode::OK);
  EXPECT_EQ(call("/grpc.health.v1.Health/Check", ""), grpc::StatusCode::OK);
  // HealthCheckRequest{service: "nope"} (field 1, length 4): NOT_FOUND.
  EXPECT_EQ(call("/grpc.health.v1.Health/Check", std::string("\x0a\x04nope", 6)),
            grpc::StatusCode::NOT_FOUND);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  const auto s = Samples(registry.Render());
  EXPECT_EQ(s.at("gradzoo_rpc_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"OK\"}"), 2);
  EXPECT_EQ(s.at("gradzoo_rpc_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"NOT_FOUND\"}"), 1);
  EXPECT_GT(s.at("gradzoo_rpc_duration_seconds_sum{method=\"/grpc.health.v1.Health/Check\",code=\"OK\"}"), 0);
}

// --- HTTP ----------------------------------------------------------------------------------------

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

// Sends `request` (unless empty), then reads until the server closes (at most 10 s).
std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  if (!request.empty()) {
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
  }
  std::string out;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.RecordRpc("/gradzoo.v1.InfoService/GetServerInfo", grpc::StatusCode::OK, 0.001);
    MetricsHttpServer::Options o;
    o.listen = "127.0.0.1:0";
    o.io_timeout = absl::Milliseconds(300);
    o.max_request_bytes = 1024;
    ASSERT_OK_AND_ASSIGN(http_, MetricsHttpServer::Start(&registry_, o));
    ASSERT_GT(http_->port(), 0);
  }
  MetricsRegistry registry_;
  std::unique_ptr<MetricsHttpServer> http_;
};

TEST_F(MetricsHttpTest, ServesTheExpositionOnGetMetrics) {
  const std::string r = Exchange(http_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  const size_t body_at = r.find("\r\n\r\n") + 4;
  const std::string body = r.substr(body_at);
  EXPECT_THAT(r, HasSubstr(absl::StrCat("Content-Length: ", body.size(), "\r\n")));
  EXPECT_THAT(body, HasSubstr("gradzoo_rpc_requests_total{method=\"/gradzoo.v1.InfoService/"
                              "GetServerInfo\",code=\"OK\"} 1\n"));
  // A query string is ignored; HEAD has the headers only.
  EXPECT_THAT(Exchange(http_->port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  const std::string head = Exchange(http_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
}

TEST_F(MetricsHttpTest, AnswersBadRequestsWithoutHarm) {
  EXPECT_THAT(Exchange(http_->port(), "GET / HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404"));
  const std::string post = Exchange(http_->port(), "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_THAT(Exchange(http_->port(), "garbage\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(Exchange(http_->port(), "GET /metrics FTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  // A request head larger than max_request_bytes is cut off.
  const std::string big = absl::StrCat("GET /metrics HTTP/1.1\r\nX: ", std::string(5000, 'a'), "\r\n\r\n");
  EXPECT_THAT(Exchange(http_->port(), big), StartsWith("HTTP/1.1 431"));
  // Still serving.
  EXPECT_THAT(Exchange(http_->port(), "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200"));
}

TEST_F(MetricsHttpTest, ASilentClientIsCutOffAndOthersAreServedAfterIt) {
  const auto t0 = std::chrono::steady_clock::now();
  const int silent = Connect(http_->port());  // never sends a byte
  const std::string r = Exchange(http_->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200"));
  EXPECT_LT(waited, 5.0);  // io_timeout is 0.3 s
  std::string got;
  char buf[256];
  pollfd p{silent, POLLIN, 0};
  if (::poll(&p, 1, 5000) > 0) {
    const ssize_t n = ::recv(silent, buf, sizeof(buf), 0);
    if (n > 0) got.assign(buf, static_cast<size_t>(n));
  }
  EXPECT_THAT(got, StartsWith("HTTP/1.1 408"));
  ::close(silent);
  EXPECT_GE(http_->connections(), 2);
}

TEST_F(MetricsHttpTest, StopsPromptlyWithAClientConnected) {
  const int silent = Connect(http_->port());
  // Let the server accept it and block on reading.
  for (int i = 0; i < 200 && http_->connections() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto t0 = std::chrono::steady_clock::now();
  http_.reset();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  ::close(silent);
}

TEST(MetricsHttpStartTest, RejectsBadAddressesAndTakenPorts) {
  MetricsRegistry r;
  for (const char* bad : {"nonsense", "127.0.0.1:99999", "example.com:80", "127.0.0.1:x"}) {
    MetricsHttpServer::Options o;
    o.listen = bad;
    EXPECT_THAT(MetricsHttpServer::Start(&r, o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bad)));
  }
  MetricsHttpServer::Options o;
  o.listen = "localhost:0";
  ASSERT_OK_AND_ASSIGN(auto first, MetricsHttpServer::Start(&r, o));
  o.listen = absl::StrCat("127.0.0.1:", first->port());
  EXPECT_THAT(MetricsHttpServer::Start(&r, o),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot listen")));
}

}  // namespace
}  // namespace gradzoo::server
