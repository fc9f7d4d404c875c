#include "server/services.h"

#include "server/services/common.h"

namespace gradzoo::server {

std::vector<std::unique_ptr<grpc::Service>> MakeServices(const ServiceDeps& deps) {
  std::vector<std::unique_ptr<grpc::Service>> s;
  s.push_back(MakeZooService(deps));
  s.push_back(MakeTrainingJobService(deps));
  s.push_back(MakeGradientService(deps));
  s.push_back(MakeAnalysisService(deps));
  s.push_back(MakeEmbeddingService(deps));
  s.push_back(MakeInfoService(deps));
  return s;
}

}  // namespace gradzoo::server
