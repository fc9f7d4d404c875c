// Server: assembles gradzoo-server from its parts and owns them.
//
//   Start():    Engine (opens the store, loads zoos) -> pools -> JobManager -> gRPC services,
//               health (NOT_SERVING until ready, then SERVING), reflection, one log line per RPC;
//               with Options::tokens_file every call but health needs a token (server/auth.h);
//               with Options::tls_cert/tls_key it serves TLS, mutual with tls_client_ca
//               (server/tls.h; bad files refuse the start); with Options::metrics_listen a
//               Prometheus endpoint (server/metrics.h) on a loopback port
//   Shutdown(): health NOT_SERVING -> jobs cancelled -> gRPC shutdown within the deadline ->
//               pools drained -> engine closed (destructor order)
//
// Thread-safe: Shutdown may be called from any thread (e.g. a signal watcher), once or more.
#ifndef GRADZOO_SERVER_SERVER_H_
#define GRADZOO_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gradzoo::server {

class Server {
 public:
  struct Options {
    // host:port to listen on; port 0 picks a free port (see port()). Loopback by default.
    std::string listen = "127.0.0.1:50551";
    // Embedded store directory.
    std::string data_dir = "gradzoo-data";
    // Default tensor device: auto | cpu | cuda:N.
    std::string device = "auto";
    // Workers answering gradient queries, and how many may wait.
    int query_threads = 2;
    size_t max_queued_queries = 64;
    // Training jobs that run at once, and how many may wait.
    int job_workers = 1;
    size_t max_queued_jobs = 16;
    // Largest request message accepted (bytes), and largest response sent.
    int max_receive_message_bytes = 32 << 20;
    int max_send_message_bytes = 8 << 20;
    // Upper bound on points x models per query.
    int64_t max_points_per_query = 4'000'000;

    // Tokens file (format: server/auth.h). Empty: no authentication (every caller is the
    // local admin; keep `listen` on loopback then).
    std::string tokens_file;
    // PEM files for TLS (server/tls.h): certificate chain and key; a client CA bundle turns on
    // mutual TLS. All empty: plaintext.
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
    // host:port of the Prometheus endpoint (GET /metrics); empty: off. Must be a loopback
    // or explicit IPv4 address; port 0 picks a free port (see metrics_port()).
    std::string metrics_listen;

    // Per-user quotas (0 = none), counted per authenticated user (server/tenancy.h); without
    // authentication everything belongs to one user. Jobs running at once and waiting; bytes of
    // stored zoos owned (checked before a new zoo is trained or imported). Points per query are
    // bounded for every user by max_points_per_query.
    int max_running_jobs_per_user = 0;
    size_t max_queued_jobs_per_user = 0;
    int64_t max_stored_bytes_per_user = 0;
    // Computation budget of a query whose client sets no deadline (a client's own deadline
    // always applies); zero = unbounded.
    absl::Duration default_deadline = absl::Seconds(300);
  };

  // Builds everything and starts listening. FAILED_PRECONDITION / UNAVAILABLE with a clear
  // message when the store cannot be opened or the address cannot be bound (port taken).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Options& options);
  ~Server();

  // The bound port (useful with port 0).
  int port() const;
  // The bound metrics port, or 0 when metrics are off.
  int metrics_port() const;
  // Graceful shutdown: calls in flight get until `deadline` to finish, then are cancelled.
  void Shutdown(absl::Duration deadline);
  // Blocks until the gRPC server has shut down.
  void Wait();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_SERVER_H_
