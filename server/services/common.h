// Shared pieces of the gRPC service implementations (server/services/*.cc). Internal to
// server/: handlers only translate (STYLE rule 2); these helpers finish calls uniformly.
#ifndef GRADZOO_SERVER_SERVICES_COMMON_H_
#define GRADZOO_SERVER_SERVICES_COMMON_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/services.h"
#include "server/status_map.h"

namespace gradzoo::server {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// Finishes a unary call with `status`, inline.
inline ServerUnaryReactor* Reply(CallbackServerContext* ctx, const absl::Status& status) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A streaming reply that ends at once with `status` (errors before the first message).
template <typename T>
class FinishedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FinishedWriter(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename T>
class FinishedReader final : public grpc::ServerReadReactor<T> {
 public:
  explicit FinishedReader(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};


// One factory per service (server/services/<name>_service.cc).
std::unique_ptr<grpc::Service> MakeZooService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeTrainingJobService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeGradientService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeAnalysisService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeEmbeddingService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> MakeInfoService(const ServiceDeps& deps);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_SERVICES_COMMON_H_
