#include "server/metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace gradzoo::server {
namespace {

constexpr absl::string_view kCodeNames[] = {
    "OK",           "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS",    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",    "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",       "DATA_LOSS",
    "UNAUTHENTICATED"};

bool ValidMetricName(absl::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = absl::ascii_isalpha(c) || c == '_' || c == ':' || (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

// Label values: backslash, double quote and newline escaped (exposition format 0.0.4).
std::string EscapeLabel(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// HELP text: backslash and newline escaped.
std::string EscapeHelp(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return absl::StrFormat("%.17g", v);
}

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return NAN;
  long pages = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  if (n != 2) return NAN;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return NAN;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(MetricsRegistry* registry, grpc::experimental::ServerRpcInfo* info)
      : registry_(registry), method_(info->method()), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      registry_->RecordRpc(method_, methods->GetSendStatus().error_code(), s);
    }
    methods->Proceed();
  }

 private:
  MetricsRegistry* const registry_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(MetricsRegistry* registry) : registry_(registry) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(registry_, info);
  }

 private:
  MetricsRegistry* const registry_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// MetricsRegistry
// ---------------------------------------------------------------------------------------------

MetricsRegistry::MetricsRegistry(Options options)
    : options_(options), start_time_(UnixNow()) {}

absl::string_view MetricsRegistry::CodeName(grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  if (c < 0 || c >= static_cast<int>(std::size(kCodeNames))) return "UNKNOWN";
  return kCodeNames[c];
}

void MetricsRegistry::RecordRpc(absl::string_view method, grpc::StatusCode code, double seconds) {
  if (!(seconds > 0)) seconds = 0;  // negative or NaN
  const size_t bucket =
      std::lower_bound(kRpcBuckets.begin(), kRpcBuckets.end(), seconds) - kRpcBuckets.begin();
  int c = static_cast<int>(code);
  if (c < 0 || c >= static_cast<int>(std::size(kCodeNames))) c = grpc::StatusCode::UNKNOWN;
  absl::MutexLock lock(&mu_);
  std::string key(method);
  if (methods_.find(key) == methods_.end()) {
    if (methods_.size() >= options_.max_methods) {
      key = "other";
    } else {
      methods_.emplace(key, 1);
    }
  }
  Series& s = rpcs_[{std::move(key), c}];
  ++s.count;
  s.sum += seconds;
  if (bucket < s.buckets.size()) ++s.buckets[bucket];
}

absl::Status MetricsRegistry::AddCallback(std::string name, std::string type, std::string help,
                                          std::function<double()> value) {
  if (!ValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("bad metric name '", name, "'"));
  }
  if (!value) return absl::InvalidArgumentError(absl::StrCat("metric ", name, " has no callback"));
  absl::MutexLock lock(&mu_);
  if (callbacks_.count(name) != 0 || absl::StartsWith(name, "gradzoo_rpc_") ||
      absl::StartsWith(name, "process_")) {
    return absl::AlreadyExistsError(absl::StrCat("metric ", name, " already exists"));
  }
  callbacks_.emplace(std::move(name), Callback{std::move(type), std::move(help), std::move(value)});
  return absl::OkStatus();
}

absl::Status MetricsRegistry::AddGauge(std::string name, std::string help,
                                       std::function<double()> value) {
  return AddCallback(std::move(name), "gauge", std::move(help), std::move(value));
}

absl::Status MetricsRegistry::AddCounter(std::string name, std::string help,
                                         std::function<double()> value) {
  return AddCallback(std::move(name), "counter", std::move(help), std::move(value));
}

std::string MetricsRegistry::Render() const {
  std::map<std::pair<std::string, int>, Series> rpcs;
  std::vector<std::pair<std::string, Callback>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    rpcs = rpcs_;
    callbacks.assign(callbacks_.begin(), callbacks_.end());
  }
  std::string out;
  out += "# HELP gradzoo_rpc_requests_total Finished RPCs by method and status code.\n";
  out += "# TYPE gradzoo_rpc_requests_total counter\n";
  for (const auto& [key, s] : rpcs) {
    absl::StrAppend(&out, "gradzoo_rpc_requests_total{method=\"", EscapeLabel(key.first),
                    "\",code=\"", kCodeNames[key.second], "\"} ", s.count, "\n");
  }
  out += "# HELP gradzoo_rpc_duration_seconds Server-side RPC latency by method and status code.\n";
  out += "# TYPE gradzoo_rpc_duration_seconds histogram\n";
  for (const auto& [key, s] : rpcs) {
    const std::string labels =
        absl::StrCat("method=\"", EscapeLabel(key.first), "\",code=\"", kCodeNames[key.second], "\"");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kRpcBuckets.size(); ++i) {
      cumulative += s.buckets[i];
      absl::StrAppend(&out, "gradzoo_rpc_duration_seconds_bucket{", labels, ",le=\"",
                      FormatValue(kRpcBuckets[i]), "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&out, "gradzoo_rpc_duration_seconds_bucket{", labels, ",le=\"+Inf\"} ",
                    s.count, "\n");
    absl::StrAppend(&out, "gradzoo_rpc_duration_seconds_sum{", labels, "} ", FormatValue(s.sum),
                    "\n");
    absl::StrAppend(&out, "gradzoo_rpc_duration_seconds_count{", labels, "} ", s.count, "\n");
  }
  for (const auto& [name, cb] : callbacks) {
    absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(cb.help), "\n# TYPE ", name, " ",
                    cb.type, "\n", name, " ", FormatValue(cb.value()), "\n");
  }
  absl::StrAppend(&out,
                  "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                  "# TYPE process_resident_memory_bytes gauge\n"
                  "process_resident_memory_bytes ",
                  FormatValue(ResidentBytes()), "\n",
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\n"
                  "process_open_fds ",
                  FormatValue(OpenFds()), "\n",
                  "# HELP process_start_time_seconds Start time of the process since the unix "
                  "epoch in seconds.\n"
                  "# TYPE process_start_time_seconds gauge\n"
                  "process_start_time_seconds ",
                  FormatValue(start_time_), "\n");
  return out;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeMetricsInterceptorFactory(MetricsRegistry* registry) {
  return std::make_unique<MetricsInterceptorFactory>(registry);
}

// ---------------------------------------------------------------------------------------------
// MetricsHttpServer
// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const MetricsRegistry* registry, const Options& options) {
  const size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", options.listen, "' is not host:port (e.g. 127.0.0.1:9551)"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", options.listen, "': host must be an IPv4 address or localhost"));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen for metrics on ", options.listen,
                                               ": ", std::strerror(err)));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(err)));
  }
  auto server = std::unique_ptr<MetricsHttpServer>(
      new MetricsHttpServer(registry, options, fd, ntohs(addr.sin_port), wake[0], wake[1]));
  spdlog::info("metrics on http://{}:{}/metrics", host, server->port());
  return server;
}

MetricsHttpServer::MetricsHttpServer(const MetricsRegistry* registry, Options options,
                                     int listen_fd, int port, int wake_read, int wake_write)
    : registry_(registry),
      options_(std::move(options)),
      listen_fd_(listen_fd),
      port_(port),
      wake_read_(wake_read),
      wake_write_(wake_write) {
  thread_ = std::thread([this] { Loop(); });
}

MetricsHttpServer::~MetricsHttpServer() {
  stop_.store(true);
  const char b = 1;
  (void)!::write(wake_write_, &b, 1);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void MetricsHttpServer::Loop() {
  while (!stop_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    const int r = ::poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the pending connection stays queued, so back off
        // instead of spinning on a listen socket that stays readable.
        pollfd wake{wake_read_, POLLIN, 0};
        ::poll(&wake, 1, 100);
      }
      continue;  // EAGAIN, ECONNABORTED: try again on the next event
    }
    connections_.fetch_add(1);
    Serve(conn);
    ::close(conn);
  }
}

void MetricsHttpServer::Serve(int fd) {
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(options_.io_timeout);
  // Waits until `fd` is ready for `events` or the deadline or a stop request; false if not.
  auto wait = [&](short events) {
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0 || stop_.load()) return false;
      pollfd fds[2] = {{fd, events, 0}, {wake_read_, POLLIN, 0}};
      const int r = ::poll(fds, 2, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0 || fds[1].revents != 0) return false;
      return true;
    }
  };
  auto send_all = [&](absl::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!wait(POLLOUT)) return;
      } else {
        return;
      }
    }
  };
  auto respond = [&](absl::string_view status, absl::string_view content_type,
                     absl::string_view body, bool head_only, absl::string_view extra = "") {
    std::string msg = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                                   "\r\nContent-Length: ", body.size(), "\r\n", extra,
                                   "Connection: close\r\n\r\n");
    if (!head_only) msg.append(body.data(), body.size());
    send_all(msg);
  };

  std::string request;
  char buf[2048];
  size_t head_end = std::string::npos;
  while (head_end == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      request.append(buf, static_cast<size_t>(n));
      head_end = request.find("\r\n\r\n");
      if (head_end == std::string::npos && request.size() > options_.max_request_bytes) {
        respond("431 Request Header Fields Too Large", "text/plain", "request too large\n", false);
        return;
      }
    } else if (n == 0) {
      return;  // closed before a full request
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (!wait(POLLIN)) {
        if (!stop_.load()) respond("408 Request Timeout", "text/plain", "request timeout\n", false);
        return;
      }
    } else {
      return;
    }
  }
  if (head_end > options_.max_request_bytes) {
    respond("431 Request Header Fields Too Large", "text/plain", "request too large\n", false);
    return;
  }
  const absl::string_view line = absl::string_view(request).substr(0, request.find("\r\n"));
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    respond("400 Bad Request", "text/plain", "bad request\n", false);
    return;
  }
  const bool head = parts[0] == "HEAD";
  if (parts[0] != "GET" && !head) {
    respond("405 Method Not Allowed", "text/plain", "only GET and HEAD\n", false,
            "Allow: GET, HEAD\r\n");
    return;
  }
  absl::string_view target = parts[1];
  target = target.substr(0, target.find('?'));
  if (target != "/metrics") {
    respond("404 Not Found", "text/plain", "not found: try /metrics\n", head);
    return;
  }
  const std::string body = registry_->Render();
  respond("200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head);
}

}  // namespace gradzoo::server
