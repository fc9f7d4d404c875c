#include "server/status_map.h"

#include <string>

namespace gradzoo::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  absl::StatusCode code = status.code();
  if (code == absl::StatusCode::kUnknown) code = absl::StatusCode::kInternal;
  return grpc::Status(static_cast<grpc::StatusCode>(code), std::string(status.message()));
}

}  // namespace gradzoo::server
