#include "server/services/common.h"

#include "gradzoo/v1/analysis.grpc.pb.h"

namespace gradzoo::server {
namespace {

class AnalysisServiceImpl final : public v1::AnalysisService::CallbackService {
 public:
  GRADZOO_UNIMPLEMENTED_UNARY(ScoreOrthogonality, "task-orthogonality scores")
  GRADZOO_UNIMPLEMENTED_UNARY(ScoreZooOrthogonality, "zoo-wide orthogonality scores")
  GRADZOO_UNIMPLEMENTED_UNARY(ComputeLayerPca, "layer PCA")
  GRADZOO_UNIMPLEMENTED_UNARY(ComputePlsr, "PLSR between layers")
  GRADZOO_UNIMPLEMENTED_UNARY(ComputeCka, "linear CKA")
};

}  // namespace

std::unique_ptr<grpc::Service> MakeAnalysisService(const ServiceDeps& deps) { return std::make_unique<AnalysisServiceImpl>(); }

}  // namespace gradzoo::server
