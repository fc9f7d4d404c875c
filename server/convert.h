// Converters between the gradzoo.v1 protos and core's types: the only place that knows both.
//
// Every *FromProto validates what it reads (enum values, ranges, tensor byte counts) before it
// allocates anything sized by the request, and answers INVALID_ARGUMENT naming the field.
// Defaults documented in the .proto files are applied here. Stateless and thread-safe.
#ifndef GRADZOO_SERVER_CONVERT_H_
#define GRADZOO_SERVER_CONVERT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/model.h"
#include "gradzoo/v1/gradient.pb.h"
#include "gradzoo/v1/job.pb.h"
#include "gradzoo/v1/tensor.pb.h"
#include "gradzoo/v1/zoo.pb.h"
#include "server/job_manager.h"

namespace gradzoo::server {

// Resource names.
absl::StatusOr<std::string> ParseZooName(const std::string& name, const char* field);
absl::StatusOr<core::ModelRef> ParseModelName(const std::string& name, const char* field);
std::string ZooName(const std::string& zoo_id);
std::string ModelName(const std::string& zoo_id, const std::string& model_id);

// Tensors: float32 [shape] from/to the wire (little-endian row-major bytes). FromProto accepts
// float32 and float64 and checks that the byte count matches the shape (with overflow checks)
// and that the element count is at most `max_elements`.
void FloatTensorToProto(const std::vector<int64_t>& shape, const float* data,
                        v1::Tensor* out);
absl::StatusOr<std::vector<float>> FloatTensorFromProto(const v1::Tensor& t, const char* field,
                                                        int64_t max_elements,
                                                        std::vector<int64_t>* shape);

// Specs (with the documented defaults applied).
absl::StatusOr<core::ZooSpec> ZooSpecFromProto(const v1::ZooSpec& spec);
void ZooSpecToProto(const core::ZooSpec& spec, v1::ZooSpec* out);
absl::StatusOr<core::Activation> ActivationFromProto(v1::Activation a);
v1::Activation ActivationToProto(core::Activation a);

// Zoos and models. ZooToProto writes metadata only.
void ZooToProto(const core::Zoo& zoo, v1::Zoo* out);
void ModelToProto(const std::string& zoo_id, const core::ModelRecord& m, bool include_weights,
                  v1::Model* out);

// A model sent for import (weights as data). Shapes chain, sizes are capped, the architecture
// follows from the layers; INVALID_ARGUMENT naming the field otherwise.
absl::StatusOr<core::ModelRecord> ModelFromProto(const v1::Model& model);

// Queries.
absl::StatusOr<core::PointSpec> PointSetFromProto(const v1::PointSet& points,
                                                  int64_t max_points);
absl::StatusOr<core::FieldRequest> FieldRequestFromProto(const v1::ComputeGradientFieldRequest& r,
                                                         int64_t max_points);
void ErrorSummaryToProto(const core::GradientErrorSummary& s, v1::GradientErrorSummary* out);

// Jobs.
void JobToProto(const JobSnapshot& job, v1::TrainingJob* out);

// Page tokens: opaque to clients; here an offset with a checksum so a forged or stale token is
// INVALID_ARGUMENT rather than silently wrong.
std::string MakePageToken(int64_t offset);
absl::StatusOr<int64_t> ParsePageToken(const std::string& token);
// page_size 0 -> default, clamped to max; negative -> INVALID_ARGUMENT.
absl::StatusOr<int> PageSize(int requested, int default_size, int max_size);

}  // namespace gradzoo::server

#endif  // GRADZOO_SERVER_CONVERT_H_
