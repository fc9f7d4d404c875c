#include "server/convert_embedding.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/convert.h"

namespace gradzoo::server {
namespace {
constexpr char kEmbedderPrefix[] = "embedders/";
constexpr int kMaxNames = 100000;
}  // namespace

absl::StatusOr<std::string> ParseEmbedderName(const std::string& name, const char* field) {
  if (!absl::StartsWith(name, kEmbedderPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", name.substr(0, 80),
                     "\" is not an embedder name of the form embedders/{embedder}"));
  }
  std::string id = name.substr(sizeof(kEmbedderPrefix) - 1);
  RETURN_IF_ERROR(core::ValidateResourceId(id, field));
  return id;
}

std::string EmbedderName(const std::string& id) { return absl::StrCat(kEmbedderPrefix, id); }

absl::StatusOr<EmbedderTrainingWork> EmbedderTrainingFromProto(const v1::EmbedderTraining& t) {
  EmbedderTrainingWork w;
  w.id = t.embedder_id();
  RETURN_IF_ERROR(core::ValidateResourceId(w.id, "job.embedder_training.embedder_id"));
  if (t.zoos_size() == 0) {
    return absl::InvalidArgumentError("job.embedder_training.zoos: name at least one zoo");
  }
  if (t.zoos_size() > 1000) {
    return absl::InvalidArgumentError("job.embedder_training.zoos: at most 1000 zoos");
  }
  for (const std::string& z : t.zoos()) {
    ASSIGN_OR_RETURN(std::string id, ParseZooName(z, "job.embedder_training.zoos"));
    w.zoos.push_back(std::move(id));
  }
  core::EmbedderOptions& o = w.options;
  if (t.points_per_sample() != 0) o.points_per_sample = t.points_per_sample();
  if (t.mask_rate() != 0) o.mask_rate = t.mask_rate();
  switch (t.mask_shape()) {
    case v1::MASK_SHAPE_UNSPECIFIED:
    case v1::MASK_SHAPE_SPANS:
      o.mask_shape = core::MaskShape::kSpans;
      break;
    case v1::MASK_SHAPE_GROUPS:
      o.mask_shape = core::MaskShape::kGroups;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "job.embedder_training.mask_shape: unknown value ", static_cast<int>(t.mask_shape()),
          "; use MASK_SHAPE_GROUPS or MASK_SHAPE_SPANS"));
  }
  if (t.embedding_size() != 0) o.embedding_size = t.embedding_size();
  if (t.steps() != 0) o.steps = t.steps();
  if (t.batch_models() != 0) o.batch_models = t.batch_models();
  if (t.hidden() != 0) o.hidden = t.hidden();
  if (t.learning_rate() != 0) o.learning_rate = t.learning_rate();
  if (t.members() != 0) o.members = t.members();
  o.distance_weight = t.distance_weight();
  o.seed = t.seed();
  o.from_layer = t.from_layer();
  o.to_layer = t.to_layer();
  absl::Status s = core::ValidateEmbedderOptions(o);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("job.embedder_training.", s.message()));
  }
  return w;
}

void EmbedderToProto(const core::EmbedderInfo& i, v1::Embedder* out) {
  out->set_name(EmbedderName(i.id));
  for (const std::string& z : i.zoos) out->add_zoos(ZooName(z));
  out->set_embedding_size(i.options.embedding_size);
  out->set_validation_cloze_loss(i.validation_cloze_loss);
  out->set_mean_gradient_baseline_loss(i.mean_gradient_baseline_loss);
  out->set_interpolation_baseline_loss(i.interpolation_baseline_loss);
  out->mutable_create_time()->set_seconds(i.create_time_ms / 1000);
  out->mutable_create_time()->set_nanos(static_cast<int32_t>(i.create_time_ms % 1000) * 1000000);
  out->set_input_dim(i.input_dim);
  out->set_output_dim(i.output_dim);
  out->set_points_per_sample(i.options.points_per_sample);
  out->set_mask_rate(i.options.mask_rate);
  out->set_steps(i.options.steps);
  out->set_seed(i.options.seed);
  out->set_train_models(i.train_models);
  out->set_validation_models(i.validation_models);
  out->set_gradient_scale(i.gradient_scale);
  out->set_from_layer(i.options.from_layer);
  out->set_to_layer(i.options.to_layer);
  out->set_mask_shape(i.options.mask_shape == core::MaskShape::kGroups ? v1::MASK_SHAPE_GROUPS
                                                                       : v1::MASK_SHAPE_SPANS);
  out->set_hidden(i.options.hidden);
  out->set_members(i.options.members);
  out->set_distance_weight(i.options.distance_weight);
}

absl::StatusOr<core::EmbedQuery> EmbedQueryFromProto(const v1::EmbedModelsRequest& r) {
  core::EmbedQuery q;
  if (r.models_size() == 0) return absl::InvalidArgumentError("models: name at least one model");
  if (r.models_size() > kMaxNames) {
    return absl::ResourceExhaustedError(
        absl::StrCat("models: at most ", kMaxNames, " per call; split the request"));
  }
  for (const std::string& m : r.models()) {
    ASSIGN_OR_RETURN(core::ModelRef ref, ParseModelName(m, "models"));
    q.models.push_back(std::move(ref));
  }
  if (r.samples() < 0 || r.samples() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples must be in [0, 64] (0 = 4), got ", r.samples()));
  }
  q.samples = r.samples() == 0 ? 4 : r.samples();
  q.seed = r.seed();
  if (r.has_from_layer()) {
    if (r.from_layer() < 0 || r.from_layer() > core::MlpSpec::kMaxLayers) {
      return absl::InvalidArgumentError(absl::StrCat(
          "from_layer must be in [0, ", core::MlpSpec::kMaxLayers, "], got ", r.from_layer()));
    }
    q.from_layer = r.from_layer();
  }
  if (r.has_to_layer()) {
    if (r.to_layer() < 0 || r.to_layer() > core::MlpSpec::kMaxLayers + 1) {
      return absl::InvalidArgumentError(absl::StrCat("to_layer must be in [0, ",
                                                     core::MlpSpec::kMaxLayers + 1,
                                                     "] (0 = the output), got ", r.to_layer()));
    }
    q.to_layer = r.to_layer();
  }
  return q;
}

absl::StatusOr<core::NeighborQuery> NeighborQueryFromProto(const v1::FindNeighborsRequest& r) {
  core::NeighborQuery q;
  ASSIGN_OR_RETURN(q.model, ParseModelName(r.model(), "model"));
  if (r.k() < 0 || r.k() > 10000) {
    return absl::InvalidArgumentError(absl::StrCat("k must be in [0, 10000] (0 = 5), got ", r.k()));
  }
  q.k = r.k() == 0 ? 5 : r.k();
  if (r.zoos_size() > 1000) return absl::InvalidArgumentError("zoos: at most 1000 zoos");
  for (const std::string& z : r.zoos()) {
    ASSIGN_OR_RETURN(std::string id, ParseZooName(z, "zoos"));
    q.zoos.push_back(std::move(id));
  }
  return q;
}

absl::StatusOr<core::ProbeQuery> ProbeQueryFromProto(const v1::RunProbeRequest& r) {
  core::ProbeQuery q;
  if (r.zoos_size() == 0) return absl::InvalidArgumentError("zoos: name at least one zoo");
  if (r.zoos_size() > 1000) return absl::InvalidArgumentError("zoos: at most 1000 zoos");
  for (const std::string& z : r.zoos()) {
    ASSIGN_OR_RETURN(std::string id, ParseZooName(z, "zoos"));
    q.zoos.push_back(std::move(id));
  }
  q.target = r.target().empty() ? "label" : r.target();
  if (r.k() < 0 || r.k() > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("k must be in [0, 1000] (0 = 5), got ", r.k()));
  }
  q.k = r.k() == 0 ? 5 : r.k();
  return q;
}

void NeighborsToProto(const std::vector<core::EmbedNeighbor>& n, v1::FindNeighborsResponse* out) {
  for (const core::EmbedNeighbor& x : n) {
    v1::Neighbor* p = out->add_neighbors();
    p->set_model(ModelName(x.model.zoo_id, x.model.model_id));
    p->set_similarity(x.similarity);
    p->set_label(x.label);
  }
}

void ProbeScoresToProto(const std::vector<core::ProbeScore>& s, v1::RunProbeResponse* out) {
  for (const core::ProbeScore& x : s) {
    v1::ProbeScores* p = out->add_scores();
    p->set_representation(x.representation);
    p->set_linear_accuracy(x.linear_accuracy);
    p->set_knn_accuracy(x.knn_accuracy);
    p->set_separation(x.separation);
    p->set_linear_p_value(x.linear_p_value);
    p->set_knn_p_value(x.knn_p_value);
    p->set_classes(x.classes);
    p->set_train_models(x.train_models);
    p->set_validation_models(x.validation_models);
  }
}

}  // namespace gradzoo::server
