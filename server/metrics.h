// Server metrics in the Prometheus text exposition format (version 0.0.4), served over plain
// HTTP on a local port (`gradzoo-server --metrics-port 9551` serves 127.0.0.1:9551; scrape GET
// /metrics).
//
// What is exported:
//   gradzoo_rpc_requests_total{method,code}           counter: finished RPCs
//   gradzoo_rpc_duration_seconds{method,code}         histogram: server-side latency, from the
//                                                     call's arrival to its status being sent
//                                                     (buckets kRpcBuckets, seconds)
//   <gauges and counters added with AddGauge/AddCounter>, e.g. gradzoo_job_queue_depth,
//   gradzoo_stored_bytes, gradzoo_auth_rejected_calls_total (callbacks, read at scrape time)
//   process_resident_memory_bytes, process_open_fds, process_start_time_seconds
//
// `method` is the gRPC path ("/gradzoo.v1.ZooService/ListZoos"); `code` the status name
// ("OK", "NOT_FOUND", ...). Label cardinality is bounded: after Options::max_methods distinct
// methods, further ones are counted under method="other" (a client cannot grow the registry by
// inventing method names).
//
// MetricsRegistry is thread-safe: RecordRpc takes one short lock (a map lookup and a few adds);
// Render copies the series under the lock and formats outside it, so a scrape never holds up
// RPCs. Callbacks run on the scraping thread and must be thread-safe and quick.
//
// MetricsHttpServer: one thread serving one connection at a time. Each connection gets
// Options::io_timeout in all to send its request (at most max_request_bytes) and receive the
// answer; slow or oversize clients are cut off (408 / 431), so a stuck scraper delays the next
// scrape by at most io_timeout and never touches gRPC threads. HTTP/1.1 GET and HEAD of
// /metrics; 404 for other paths, 405 for other methods; every response closes the connection.
#ifndef GRADZOO_SERVER_METRICS_H_
#define GRADZOO_SERVER_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gradzoo::server {

// Upper bounds (seconds) of the latency histogram buckets; +Inf is implied.
inline constexpr std::array<double, 16> kRpcBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,   0.5,   1,      2.5,   5,     10,   30,   120};

class MetricsRegistry {
 public:
  struct Options {
    // Distinct RPC methods tracked before the rest go to method="other".
    size_t max_methods = 256;
  };
  MetricsRegistry() : MetricsRegistry(Options()) {}
  explicit MetricsRegistry(Options options);

  // One finished RPC. `seconds` < 0 or NaN counts as 0.
  void RecordRpc(absl::string_view method, grpc::StatusCode code, double seconds);

  // A value read at each scrape (type gauge / counter). `name` must match
  // [a-zA-Z_:][a-zA-Z0-9_:]* and be new; `help` is one line. INVALID_ARGUMENT /
  // ALREADY_EXISTS otherwise.
  absl::Status AddGauge(std::string name, std::string help, std::function<double()> value);
  absl::Status AddCounter(std::string name, std::string help, std::function<double()> value);

  // The exposition text (ends with a newline).
  std::string Render() const;

  // The status name Prometheus labels use ("OK", "INVALID_ARGUMENT", ...).
  static absl::string_view CodeName(grpc::StatusCode code);

 private:
  struct Series {
    uint64_t count = 0;
    double sum = 0;
    std::array<uint64_t, kRpcBuckets.size()> buckets{};  // non-cumulative
  };
  struct Callback {
    std::string type, help;
    std::function<double()> value;
  };
  absl::Status AddCallback(std::string name, std::string type, std::string help,
                           std::function<double()> value);

  const Options options_;
  const double start_time_;  // unix seconds
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, int>, Series> rpcs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> methods_ ABSL_GUARDED_BY(mu_);  // method -> 1 (distinct set)
  std::map<std::string, Callback> callbacks_ ABSL_GUARDED_BY(mu_);
};

// A server interceptor factory recording every RPC into `registry` (which must outlive it):
// install it with ServerBuilder::experimental().SetInterceptorCreators.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeMetricsInterceptorFactory(MetricsRegistry* registry);

class MetricsHttpServer {
 public:
  struct Options {
    // IPv4 host:port ("localhost" means 127.0.0.1); port 0 picks a free one (see port()).
    std::string listen = "127.0.0.1:9551";
    // Time a connection gets in all (request and response).
    absl::Duration io_timeout = absl::Seconds(2);
    // Largest request head accepted.
    size_t max_request_bytes = 8192;
  };
  // Binds and starts the serving thread. INVALID_ARGUMENT for a malformed address,
  // UNAVAILABLE when it cannot be bound. `registry` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const MetricsRegistry* registry,
                                                                   const Options& options);
  // Stops the thread (within io_timeout) and closes the socket.
  ~MetricsHttpServer();

  int port() const { return port_; }
  // Connections served so far.
  int64_t connections() const { return connections_.load(); }

 private:
  MetricsHttpServer(const MetricsRegistry* registry, Options options, int listen_fd, int port,
                    int wake_read, int wake_write);
  void Loop();
  void Serve(int fd);

  const MetricsRegistry* const registry_;
  const Options options_;
  const int listen_fd_;
  const int port_;
  const int wake_read_, wake_write_;
  std::atomic<int64_t> connections_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_METRICS_H_
