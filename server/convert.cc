#include "server/convert.h"

#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/util/status_macros.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gradzoo's wire tensors are little-endian; this converter assumes a little-endian host"
#endif

namespace gradzoo::server {

namespace {
constexpr char kZooPrefix[] = "zoos/";
constexpr char kModelsInfix[] = "/models/";
}  // namespace

absl::StatusOr<std::string> ParseZooName(const std::string& name, const char* field) {
  if (!absl::StartsWith(name, kZooPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " \"", name.substr(0, 80),
                                                   "\" is not a zoo name of the form zoos/{zoo}"));
  }
  std::string id = name.substr(sizeof(kZooPrefix) - 1);
  RETURN_IF_ERROR(core::ValidateResourceId(id, field));
  return id;
}

absl::StatusOr<core::ModelRef> ParseModelName(const std::string& name, const char* field) {
  const size_t infix = name.find(kModelsInfix);
  if (!absl::StartsWith(name, kZooPrefix) || infix == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", name.substr(0, 80),
                     "\" is not a model name of the form zoos/{zoo}/models/{model}"));
  }
  core::ModelRef ref;
  ref.zoo_id = name.substr(sizeof(kZooPrefix) - 1, infix - (sizeof(kZooPrefix) - 1));
  ref.model_id = name.substr(infix + sizeof(kModelsInfix) - 1);
  RETURN_IF_ERROR(core::ValidateResourceId(ref.zoo_id, field));
  RETURN_IF_ERROR(core::ValidateResourceId(ref.model_id, field));
  return ref;
}

std::string ZooName(const std::string& zoo_id) { return absl::StrCat(kZooPrefix, zoo_id); }
std::string ModelName(const std::string& zoo_id, const std::string& model_id) {
  return absl::StrCat(kZooPrefix, zoo_id, kModelsInfix, model_id);
}

void FloatTensorToProto(const std::vector<int64_t>& shape, const float* data, v1::Tensor* out) {
  int64_t n = 1;
  out->clear_shape();
  for (int64_t d : shape) {
    out->add_shape(d);
    n *= d;
  }
  out->set_dtype(v1::D_TYPE_FLOAT32);
  out->set_data(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * sizeof(float));
}

absl::StatusOr<std::vector<float>> FloatTensorFromProto(const v1::Tensor& t, const char* field,
                                                        int64_t max_elements,
                                                        std::vector<int64_t>* shape) {
  int64_t n = 1;
  shape->clear();
  for (int64_t d : t.shape()) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat(field, ".shape has a negative extent"));
    if (d > 0 && n > max_elements / d) {
      return absl::ResourceExhaustedError(absl::StrCat(field, " has more than ", max_elements,
                                                       " elements, the limit for this field"));
    }
    n *= d;
    shape->push_back(d);
  }
  size_t elem = 0;
  switch (t.dtype()) {
    case v1::D_TYPE_FLOAT32:
      elem = 4;
      break;
    case v1::D_TYPE_FLOAT64:
      elem = 8;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".dtype must be D_TYPE_FLOAT32 or D_TYPE_FLOAT64"));
  }
  if (t.data().size() != static_cast<size_t>(n) * elem) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": shape implies ", n * elem,
                                                   " bytes of data, got ", t.data().size()));
  }
  std::vector<float> out(static_cast<size_t>(n));
  if (n == 0) return out;  // (memcpy from/to null is undefined even for 0 bytes)
  if (elem == 4) {
    std::memcpy(out.data(), t.data().data(), t.data().size());
  } else {
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, t.data().data() + i * 8, 8);
      out[i] = static_cast<float>(v);
    }
  }
  return out;
}

absl::StatusOr<core::Activation> ActivationFromProto(v1::Activation a) {
  switch (a) {
    case v1::ACTIVATION_UNSPECIFIED:
    case v1::ACTIVATION_RELU:
      return core::Activation::kRelu;
    case v1::ACTIVATION_GELU:
      return core::Activation::kGelu;
    case v1::ACTIVATION_TANH:
      return core::Activation::kTanh;
    default:
      return absl::InvalidArgumentError("architecture.activation is not a known value");
  }
}

v1::Activation ActivationToProto(core::Activation a) {
  switch (a) {
    case core::Activation::kRelu:
      return v1::ACTIVATION_RELU;
    case core::Activation::kGelu:
      return v1::ACTIVATION_GELU;
    case core::Activation::kTanh:
      return v1::ACTIVATION_TANH;
  }
  return v1::ACTIVATION_UNSPECIFIED;
}

absl::StatusOr<core::ZooSpec> ZooSpecFromProto(const v1::ZooSpec& p) {
  core::ZooSpec s;
  if (!p.task().name().empty()) s.task.name = p.task().name();
  if (p.task().lambdas_size() > 0) {
    s.task.lambdas.assign(p.task().lambdas().begin(), p.task().lambdas().end());
  }
  if (p.task().train_examples() < 0 || p.task().validation_examples() < 0) {
    return absl::InvalidArgumentError("task.train_examples and validation_examples must be >= 0");
  }
  if (p.task().train_examples() > 0) s.task.train_examples = p.task().train_examples();
  s.task.families = p.task().families();
  s.task.similarity = p.task().similarity();
  s.task.family_seed = p.task().family_seed();
  s.task.data_path = p.task().data_path();
  if (p.task().has_custom_inputs() || p.task().has_custom_targets()) {
    std::vector<int64_t> xs, ys;
    constexpr int64_t kMaxCustomElements = 16'000'000;
    ASSIGN_OR_RETURN(s.task.custom_x, FloatTensorFromProto(p.task().custom_inputs(),
                                                           "task.custom_inputs",
                                                           kMaxCustomElements, &xs));
    ASSIGN_OR_RETURN(s.task.custom_y, FloatTensorFromProto(p.task().custom_targets(),
                                                           "task.custom_targets",
                                                           kMaxCustomElements, &ys));
    if (xs.size() != 2 || ys.size() != 2 || xs[0] != ys[0]) {
      return absl::InvalidArgumentError(
          "task.custom_inputs and task.custom_targets must have shapes [N, in] and [N, out] "
          "with the same N");
    }
    s.task.custom_input_dim = static_cast<int>(std::min<int64_t>(xs[1], INT32_MAX));
    s.task.custom_output_dim = static_cast<int>(std::min<int64_t>(ys[1], INT32_MAX));
  }
  if (p.task().validation_examples() > 0) s.task.validation_examples = p.task().validation_examples();
  if (p.architecture().hidden_widths_size() > 0) {
    s.hidden.assign(p.architecture().hidden_widths().begin(), p.architecture().hidden_widths().end());
  }
  ASSIGN_OR_RETURN(s.activation, ActivationFromProto(p.architecture().activation()));
  if (p.seeds_size() > 0) s.seeds.assign(p.seeds().begin(), p.seeds().end());
  s.validation_seeds.assign(p.validation_seeds().begin(), p.validation_seeds().end());
  const v1::TrainingConfig& t = p.training();
  if (t.steps() != 0) s.training.steps = t.steps();
  s.training.batch_size = t.batch_size();
  if (t.learning_rate() != 0.0) s.training.learning_rate = t.learning_rate();
  s.training.eval_every = t.eval_every();
  s.training.early_stopping_patience = t.early_stopping_patience();
  s.training.device = t.device();
  switch (t.schedule()) {
    case v1::LEARNING_RATE_SCHEDULE_UNSPECIFIED:
    case v1::LEARNING_RATE_SCHEDULE_COSINE:
      s.training.cosine_schedule = true;
      break;
    case v1::LEARNING_RATE_SCHEDULE_CONSTANT:
      s.training.cosine_schedule = false;
      break;
    default:
      return absl::InvalidArgumentError("training.schedule is not a known value");
  }
  return s;
}

void ZooSpecToProto(const core::ZooSpec& s, v1::ZooSpec* out) {
  out->mutable_task()->set_name(s.task.name);
  for (double l : s.task.lambdas) out->mutable_task()->add_lambdas(l);
  out->mutable_task()->set_train_examples(s.task.train_examples);
  out->mutable_task()->set_validation_examples(s.task.validation_examples);
  out->mutable_task()->set_families(s.task.families);
  out->mutable_task()->set_similarity(s.task.similarity);
  out->mutable_task()->set_family_seed(s.task.family_seed);
  out->mutable_task()->set_data_path(s.task.data_path);
  for (int h : s.hidden) out->mutable_architecture()->add_hidden_widths(h);
  out->mutable_architecture()->set_activation(ActivationToProto(s.activation));
  for (int64_t v : s.seeds) out->add_seeds(v);
  for (int64_t v : s.validation_seeds) out->add_validation_seeds(v);
  v1::TrainingConfig* t = out->mutable_training();
  t->set_steps(s.training.steps);
  t->set_batch_size(s.training.batch_size);
  t->set_learning_rate(s.training.learning_rate);
  t->set_eval_every(s.training.eval_every);
  t->set_early_stopping_patience(s.training.early_stopping_patience);
  t->set_device(s.training.device);
  t->set_schedule(s.training.cosine_schedule ? v1::LEARNING_RATE_SCHEDULE_COSINE
                                             : v1::LEARNING_RATE_SCHEDULE_CONSTANT);
}

void ZooToProto(const core::Zoo& zoo, v1::Zoo* out) {
  out->set_name(ZooName(zoo.id));
  if (zoo.has_spec) ZooSpecToProto(zoo.spec, out->mutable_spec());
  out->set_state(v1::ZOO_STATE_READY);
  out->set_model_count(static_cast<int32_t>(zoo.models.size()));
  if (!zoo.models.empty()) {
    out->set_input_dim(zoo.models.front().spec.input_dim);
    out->set_output_dim(zoo.models.front().spec.output_dim);
  }
  out->set_stored_bytes(zoo.stored_bytes);
  out->mutable_create_time()->set_seconds(zoo.create_time_ms / 1000);
  out->mutable_create_time()->set_nanos(static_cast<int32_t>(zoo.create_time_ms % 1000) * 1000000);
  out->set_owner(zoo.owner);
}

void ModelToProto(const std::string& zoo_id, const core::ModelRecord& m, bool include_weights,
                  v1::Model* out) {
  out->set_name(ModelName(zoo_id, m.id));
  out->set_task(m.task);
  out->set_lambda(m.lambda);
  out->set_seed(m.seed);
  out->set_split(m.split == core::Split::kValidation ? v1::SPLIT_VALIDATION : v1::SPLIT_TRAIN);
  out->set_train_loss(m.train_loss);
  out->set_validation_loss(m.validation_loss);
  out->set_steps(m.steps);
  out->set_label(m.label);
  out->set_variant(m.variant);
  if (!std::isnan(m.test_loss)) out->set_test_loss(m.test_loss);
  if (!std::isnan(m.test_accuracy)) out->set_test_accuracy(m.test_accuracy);
  for (int h : m.spec.hidden) out->mutable_architecture()->add_hidden_widths(h);
  out->mutable_architecture()->set_activation(ActivationToProto(m.spec.activation));
  if (include_weights) {
    for (const core::LayerWeights& l : m.layers) {
      v1::Layer* pl = out->add_layers();
      FloatTensorToProto({l.out, l.in}, l.weight.data(), pl->mutable_weight());
      FloatTensorToProto({l.out}, l.bias.data(), pl->mutable_bias());
    }
  }
}

absl::StatusOr<core::ModelRecord> ModelFromProto(const v1::Model& p) {
  core::ModelRecord m;
  if (p.layers_size() == 0) {
    return absl::InvalidArgumentError("model.layers: give at least one layer (weight and bias)");
  }
  if (p.layers_size() > core::MlpSpec::kMaxLayers + 1) {
    return absl::InvalidArgumentError(absl::StrCat("model.layers: at most ",
                                                   core::MlpSpec::kMaxLayers + 1, " layers"));
  }
  constexpr int64_t kMaxLayerElements = int64_t{core::MlpSpec::kMaxWidth} * core::MlpSpec::kMaxWidth;
  for (int l = 0; l < p.layers_size(); ++l) {
    const std::string field = absl::StrCat("model.layers[", l, "]");
    std::vector<int64_t> ws, bs;
    core::LayerWeights lw;
    ASSIGN_OR_RETURN(lw.weight, FloatTensorFromProto(p.layers(l).weight(), (field + ".weight").c_str(),
                                                     kMaxLayerElements, &ws));
    ASSIGN_OR_RETURN(lw.bias, FloatTensorFromProto(p.layers(l).bias(), (field + ".bias").c_str(),
                                                   core::MlpSpec::kMaxWidth, &bs));
    if (ws.size() != 2 || bs.size() != 1 || bs[0] != ws[0] || ws[0] < 1 || ws[1] < 1 ||
        ws[0] > core::MlpSpec::kMaxWidth || ws[1] > core::MlpSpec::kMaxWidth) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": weight must be [out, in] and bias [out], each dimension in [1, ",
          core::MlpSpec::kMaxWidth, "]"));
    }
    lw.out = static_cast<int>(ws[0]);
    lw.in = static_cast<int>(ws[1]);
    if (l > 0 && lw.in != m.layers.back().out) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".weight has ", lw.in,
                                                     " inputs but the layer before has ",
                                                     m.layers.back().out, " outputs"));
    }
    m.layers.push_back(std::move(lw));
  }
  m.spec.input_dim = m.layers.front().in;
  m.spec.output_dim = m.layers.back().out;
  for (size_t l = 0; l + 1 < m.layers.size(); ++l) m.spec.hidden.push_back(m.layers[l].out);
  ASSIGN_OR_RETURN(m.spec.activation, ActivationFromProto(p.architecture().activation()));
  if (p.architecture().hidden_widths_size() > 0 &&
      std::vector<int>(p.architecture().hidden_widths().begin(),
                       p.architecture().hidden_widths().end()) != m.spec.hidden) {
    return absl::InvalidArgumentError(
        "model.architecture.hidden_widths does not match the layers' shapes");
  }
  if (!p.name().empty()) {
    // Only the last segment matters: the id inside the target zoo.
    const size_t slash = p.name().rfind('/');
    m.id = slash == std::string::npos ? p.name() : p.name().substr(slash + 1);
    RETURN_IF_ERROR(core::ValidateResourceId(m.id, "model.name"));
  }
  m.task = p.task().empty() ? "imported" : p.task();
  m.lambda = p.lambda();
  m.seed = p.seed();
  m.split = p.split() == v1::SPLIT_VALIDATION ? core::Split::kValidation : core::Split::kTrain;
  m.label = p.label();
  m.variant = p.variant();
  m.train_loss = p.train_loss();
  m.validation_loss = p.validation_loss();
  m.steps = p.steps();
  return m;
}

absl::StatusOr<core::PointSpec> PointSetFromProto(const v1::PointSet& p, int64_t max_points) {
  core::PointSpec s;
  switch (p.points_case()) {
    case v1::PointSet::kGrid:
      for (const v1::GridAxis& a : p.grid().axes()) {
        s.axes.push_back({a.input_index(), a.min(), a.max(), a.steps()});
      }
      s.fixed_values.assign(p.grid().fixed_values().begin(), p.grid().fixed_values().end());
      return s;
    case v1::PointSet::kExplicitPoints: {
      std::vector<int64_t> shape;
      // Element limit: points x a generous input width, checked before the copy.
      ASSIGN_OR_RETURN(s.explicit_points,
                       FloatTensorFromProto(p.explicit_points(), "points.explicit_points",
                                            max_points * 4096, &shape));
      if (shape.size() != 2) {
        return absl::InvalidArgumentError("points.explicit_points must have shape [N, input_dim]");
      }
      s.explicit_n = shape[0];
      return s;
    }
    default:
      return absl::InvalidArgumentError("points: set grid or explicit_points");
  }
}

absl::StatusOr<core::FieldRequest> FieldRequestFromProto(const v1::ComputeGradientFieldRequest& r,
                                                         int64_t max_points) {
  core::FieldRequest f;
  for (const std::string& name : r.selection().models()) {
    ASSIGN_OR_RETURN(core::ModelRef ref, ParseModelName(name, "selection.models"));
    f.models.push_back(std::move(ref));
  }
  if (!r.selection().zoo().empty()) {
    ASSIGN_OR_RETURN(f.zoo_id, ParseZooName(r.selection().zoo(), "selection.zoo"));
  }
  if (f.models.empty() && f.zoo_id.empty()) {
    return absl::InvalidArgumentError("selection: name at least one model or a zoo");
  }
  if (r.chunk_points() < 0) return absl::InvalidArgumentError("chunk_points must be >= 0");
  ASSIGN_OR_RETURN(f.points, PointSetFromProto(r.points(), max_points));
  f.compare_with_theory = r.compare_with_theory();
  f.include_outputs = r.include_outputs();
  return f;
}

void ErrorSummaryToProto(const core::GradientErrorSummary& s, v1::GradientErrorSummary* out) {
  out->set_mean_relative_error(s.mean_relative_error);
  out->set_median_relative_error(s.median_relative_error);
  out->set_aggregate_relative_error(s.aggregate_relative_error);
  for (double v : s.per_output_mean_relative_error) out->add_per_output_mean_relative_error(v);
}

namespace {
void TimeToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

v1::JobState JobStateToProto(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case JobState::kCancelling:
      return v1::JOB_STATE_CANCELLING;
    case JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}
}  // namespace

void JobToProto(const JobSnapshot& job, v1::TrainingJob* out) {
  out->set_name(absl::StrCat("trainingJobs/", job.id));
  out->set_state(JobStateToProto(job.state));
  v1::JobProgress* p = out->mutable_progress();
  p->set_done(job.progress.models_done);
  p->set_total(job.progress.models_total);
  p->set_step(job.progress.step);
  p->set_total_steps(job.progress.total_steps);
  p->set_mean_train_loss(job.progress.mean_train_loss);
  p->set_mean_validation_loss(job.progress.mean_validation_loss);
  p->set_max_validation_loss(job.progress.max_validation_loss);
  p->set_eta_seconds(job.eta_seconds);
  out->set_error(job.error);
  out->set_owner(job.owner);
  // The submitted work, as stored with the job.
  if (job.kind == JobKind::kZooTraining) {
    (void)out->mutable_zoo_training()->ParseFromString(job.payload);
    if (job.state == JobState::kSucceeded) out->set_output(ZooName(job.target));
  } else {
    (void)out->mutable_embedder_training()->ParseFromString(job.payload);
    if (job.state == JobState::kSucceeded) out->set_output(absl::StrCat("embedders/", job.target));
  }
  TimeToProto(job.create_time, out->mutable_create_time());
  if (job.start_time != absl::InfinitePast()) TimeToProto(job.start_time, out->mutable_start_time());
  if (job.end_time != absl::InfinitePast()) TimeToProto(job.end_time, out->mutable_end_time());
  out->set_request_id(job.request_id);
}

namespace {
uint32_t TokenCheck(int64_t offset) {
  uint64_t z = static_cast<uint64_t>(offset) * 0x9E3779B97F4A7C15ULL + 0x6A09E667F3BCC909ULL;
  z ^= z >> 29;
  return static_cast<uint32_t>(z & 0xFFFFFF);
}
}  // namespace

std::string MakePageToken(int64_t offset) { return absl::StrCat(offset, ".", TokenCheck(offset)); }

absl::StatusOr<int64_t> ParsePageToken(const std::string& token) {
  if (token.empty()) return 0;
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  int64_t offset = 0;
  uint32_t check = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &offset) ||
      !absl::SimpleAtoi(parts[1], &check) || offset < 0 || check != TokenCheck(offset)) {
    return absl::InvalidArgumentError(
        "page_token is not one this server issued; pass next_page_token unchanged");
  }
  return offset;
}

absl::StatusOr<int> PageSize(int requested, int default_size, int max_size) {
  if (requested < 0) return absl::InvalidArgumentError("page_size must be >= 0");
  if (requested == 0) return default_size;
  return std::min(requested, max_size);
}

}  // namespace gradzoo::server
