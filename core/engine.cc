#include "core/engine.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/store/zoo_codec.h"
#include "core/tasks/task.h"
#include "core/util/runtime.h"
#include "core/util/status_macros.h"
#include "spdlog/spdlog.h"

#ifndef GRADZOO_VERSION
#define GRADZOO_VERSION "dev"
#endif

namespace gradzoo::core {

std::string ModelIdForIndex(size_t index) { return absl::StrFormat("m%04d", index); }

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const Options& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data_dir must be set");
  ASSIGN_OR_RETURN(std::string device, ResolveDevice(options.device));
  ASSIGN_OR_RETURN(std::unique_ptr<ZooStore> store, ZooStore::Open({options.data_dir}));
  ASSIGN_OR_RETURN(std::vector<std::string> ids, store->ListIds());
  auto engine = std::unique_ptr<Engine>(new Engine(options, device, std::move(store)));
  int loaded = 0, corrupt = 0;
  {
    absl::MutexLock lock(&engine->mu_);
    for (const std::string& id : ids) {
      ZooEntry entry;
      entry.id = id;
      absl::StatusOr<Zoo> zoo = engine->store_->Load(id);
      if (zoo.ok()) {
        entry.zoo = std::make_shared<const Zoo>(*std::move(zoo));
        ++loaded;
      } else {
        entry.status = zoo.status();
        ++corrupt;
        spdlog::error("zoo {} failed to load: {}", id, zoo.status().ToString());
      }
      engine->zoos_[id] = std::move(entry);
    }
  }
  spdlog::info("store {}: {} zoos loaded, {} unreadable", options.data_dir, loaded, corrupt);
  return engine;
}

Engine::Engine(Options options, std::string device, std::unique_ptr<ZooStore> store)
    : options_(std::move(options)), device_(std::move(device)), store_(std::move(store)) {}

std::vector<ZooEntry> Engine::ListZoos() const {
  std::vector<ZooEntry> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : zoos_) out.push_back(entry);
  }
  std::stable_sort(out.begin(), out.end(), [](const ZooEntry& a, const ZooEntry& b) {
    const int64_t ta = a.zoo ? a.zoo->create_time_ms : 0;
    const int64_t tb = b.zoo ? b.zoo->create_time_ms : 0;
    if (ta != tb) return ta > tb;
    return a.id < b.id;
  });
  return out;
}

absl::StatusOr<std::shared_ptr<const Zoo>> Engine::GetZoo(const std::string& id) const {
  RETURN_IF_ERROR(ValidateResourceId(id, "zoo id"));
  absl::MutexLock lock(&mu_);
  auto it = zoos_.find(id);
  if (it == zoos_.end()) return absl::NotFoundError(absl::StrCat("zoo \"zoos/", id, "\" not found"));
  if (!it->second.status.ok()) {
    return absl::DataLossError(absl::StrCat("zoo \"zoos/", id, "\" is unreadable: ",
                                            it->second.status.message()));
  }
  return it->second.zoo;
}

absl::Status Engine::DeleteZoo(const std::string& id) {
  RETURN_IF_ERROR(ValidateResourceId(id, "zoo id"));
  absl::MutexLock write_lock(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (zoos_.find(id) == zoos_.end()) {
      return absl::NotFoundError(absl::StrCat("zoo \"zoos/", id, "\" not found"));
    }
  }
  absl::Status s = store_->Delete(id);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  absl::MutexLock lock(&mu_);
  zoos_.erase(id);
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::shared_ptr<const Zoo>, const ModelRecord*>> Engine::GetModel(
    const ModelRef& ref) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const Zoo> zoo, GetZoo(ref.zoo_id));
  for (const ModelRecord& m : zoo->models) {
    if (m.id == ref.model_id) return std::make_pair(zoo, &m);
  }
  return absl::NotFoundError(
      absl::StrCat("model \"zoos/", ref.zoo_id, "/models/", ref.model_id, "\" not found"));
}

absl::Status Engine::ValidateTraining(const std::string& zoo_id, const ZooSpec& spec) const {
  RETURN_IF_ERROR(ValidateResourceId(zoo_id, "zoo_id"));
  ASSIGN_OR_RETURN(std::shared_ptr<const Task> task, MakeTask(spec.task, /*load_data=*/false));
  MlpSpec mlp{task->input_dim(), spec.hidden, task->output_dim(), spec.activation};
  RETURN_IF_ERROR(mlp.Validate());
  RETURN_IF_ERROR(ValidateTrainConfig(spec.training));
  if (!spec.training.device.empty()) RETURN_IF_ERROR(ResolveDevice(spec.training.device).status());
  if (spec.task.lambdas.empty()) return absl::InvalidArgumentError("task.lambdas must not be empty");
  for (double l : spec.task.lambdas) RETURN_IF_ERROR(task->ValidateLambda(l));
  if (spec.seeds.empty()) return absl::InvalidArgumentError("seeds must not be empty");
  std::set<int64_t> seeds(spec.seeds.begin(), spec.seeds.end());
  if (seeds.size() != spec.seeds.size()) return absl::InvalidArgumentError("seeds has duplicates");
  for (int64_t v : spec.validation_seeds) {
    if (!seeds.count(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("validation_seeds has ", v, ", which is not among seeds"));
    }
  }
  const int64_t models = static_cast<int64_t>(task->variants()) *
                        static_cast<int64_t>(spec.task.lambdas.size()) * spec.seeds.size();
  if (models > options_.max_models_per_zoo) {
    return absl::ResourceExhaustedError(absl::StrCat("the spec makes ", models,
                                                     " models; at most ",
                                                     options_.max_models_per_zoo, " per zoo"));
  }
  for (int64_t n : {int64_t{spec.task.train_examples}, int64_t{spec.task.validation_examples}}) {
    if (n < 1 || n > options_.max_examples_per_model) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task.train_examples and task.validation_examples must be in [1, ",
          options_.max_examples_per_model, "], got ", n));
    }
  }
  // Memory of the stacked data and activations: K * N * (in + out + sum widths) floats, x4
  // for forward + backward + Adam state; refuse what would not fit in a few GiB.
  int64_t width_sum = mlp.input_dim + mlp.output_dim;
  for (int h : mlp.hidden) width_sum += h;
  // Dataset tasks share one copy of their data, but minibatches and activations are per model.
  const double examples = task->SharedData() ? 60000.0 : spec.task.train_examples;
  const double batch = spec.training.batch_size > 0 ? std::min<double>(spec.training.batch_size, examples) : examples;
  const double bytes = 4.0 * (task->SharedData() ? examples * (mlp.input_dim + mlp.output_dim)
                                                 : models * examples * (mlp.input_dim + mlp.output_dim)) +
                       4.0 * models * batch * width_sum * 4 + 16.0 * models * mlp.ParamCount();
  if (bytes > 8.0 * (int64_t{1} << 30)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "training would need about %.1f GiB; lower models, examples or widths", bytes / (1 << 30)));
  }
  absl::MutexLock lock(&mu_);
  if (zoos_.count(zoo_id)) {
    return absl::AlreadyExistsError(absl::StrCat("zoo \"zoos/", zoo_id, "\" already exists"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Zoo>> Engine::TrainZoo(const std::string& zoo_id,
                                                            const ZooSpec& spec,
                                                            const ProgressFn& progress,
                                                            const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateTraining(zoo_id, spec));
  ASSIGN_OR_RETURN(std::shared_ptr<const Task> task, MakeTask(spec.task, /*load_data=*/true));
  std::string device = device_;
  if (!spec.training.device.empty()) {
    ASSIGN_OR_RETURN(device, ResolveDevice(spec.training.device));
  }

  TrainRequest req;
  req.spec = MlpSpec{task->input_dim(), spec.hidden, task->output_dim(), spec.activation};
  req.task = task.get();
  req.train_examples = spec.task.train_examples;
  req.validation_examples = spec.task.validation_examples;
  req.config = spec.training;
  req.device = device;
  std::set<int64_t> validation(spec.validation_seeds.begin(), spec.validation_seeds.end());
  for (int variant = 0; variant < task->variants(); ++variant) {
    for (double lambda : spec.task.lambdas) {
      for (int64_t seed : spec.seeds) {
        req.models.push_back({variant, lambda, seed,
                              validation.count(seed) ? Split::kValidation : Split::kTrain});
      }
    }
  }
  ASSIGN_OR_RETURN(std::vector<TrainedModel> trained, TrainEnsemble(req, progress, cancel));

  auto zoo = std::make_shared<Zoo>();
  zoo->id = zoo_id;
  zoo->has_spec = true;
  zoo->spec = spec;
  zoo->create_time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  for (size_t i = 0; i < trained.size(); ++i) {
    ModelRecord m;
    m.id = ModelIdForIndex(i);
    m.task = task->name();
    m.variant = trained[i].plan.variant;
    m.label = task->VariantLabel(m.variant);
    m.test_loss = trained[i].test_loss;
    m.test_accuracy = trained[i].test_accuracy;
    m.lambda = trained[i].plan.lambda;
    m.seed = trained[i].plan.seed;
    m.split = trained[i].plan.split;
    m.train_loss = trained[i].train_loss;
    m.validation_loss = trained[i].validation_loss;
    m.steps = trained[i].steps;
    m.spec = req.spec;
    m.layers = std::move(trained[i].layers);
    zoo->models.push_back(std::move(m));
  }
  if (cancel && cancel()) return absl::CancelledError("training cancelled before saving");
  absl::MutexLock write_lock(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (zoos_.count(zoo_id)) {
      return absl::AlreadyExistsError(
          absl::StrCat("zoo \"zoos/", zoo_id, "\" was created while this job ran"));
    }
  }
  return SaveAndPublish(std::move(zoo));
}

absl::StatusOr<std::shared_ptr<const Zoo>> Engine::SaveAndPublish(std::shared_ptr<Zoo> zoo) {
  ASSIGN_OR_RETURN(zoo->stored_bytes, store_->Save(*zoo));
  std::shared_ptr<const Zoo> published = zoo;
  absl::MutexLock lock(&mu_);
  zoos_[zoo->id] = ZooEntry{zoo->id, published, absl::OkStatus()};
  return published;
}

namespace {
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

absl::StatusOr<std::pair<std::shared_ptr<const Zoo>, std::string>> Engine::ImportModel(
    const std::string& zoo_id, ModelRecord model) {
  RETURN_IF_ERROR(ValidateResourceId(zoo_id, "parent"));
  RETURN_IF_ERROR(model.spec.Validate());
  RETURN_IF_ERROR(ValidateWeights(model.spec, model.layers));
  if (!std::isfinite(model.lambda)) return absl::InvalidArgumentError("model.lambda is not finite");
  absl::MutexLock write_lock(&write_mu_);
  auto zoo = std::make_shared<Zoo>();
  {
    absl::MutexLock lock(&mu_);
    auto it = zoos_.find(zoo_id);
    if (it != zoos_.end()) {
      if (!it->second.status.ok()) {
        return absl::DataLossError(absl::StrCat("zoo \"zoos/", zoo_id, "\" is unreadable: ",
                                                it->second.status.message()));
      }
      *zoo = *it->second.zoo;  // copy-on-write: the published snapshot stays untouched
    } else {
      zoo->id = zoo_id;
      zoo->create_time_ms = NowMs();
    }
  }
  if (!zoo->models.empty()) {
    const MlpSpec& first = zoo->models.front().spec;
    if (first.input_dim != model.spec.input_dim || first.output_dim != model.spec.output_dim) {
      return absl::FailedPreconditionError(absl::StrCat(
          "zoo \"zoos/", zoo_id, "\" holds models with ", first.input_dim, " inputs and ",
          first.output_dim, " outputs; this model has ", model.spec.input_dim, " and ",
          model.spec.output_dim, ": import it into another zoo"));
    }
  }
  if (static_cast<int64_t>(zoo->models.size()) >= options_.max_models_per_zoo) {
    return absl::ResourceExhaustedError(absl::StrCat("zoo \"zoos/", zoo_id, "\" is full (",
                                                     options_.max_models_per_zoo, " models)"));
  }
  std::set<std::string> taken;
  for (const ModelRecord& m : zoo->models) taken.insert(m.id);
  if (model.id.empty()) {
    for (size_t i = zoo->models.size();; ++i) {
      if (!taken.count(ModelIdForIndex(i))) {
        model.id = ModelIdForIndex(i);
        break;
      }
    }
  } else if (taken.count(model.id)) {
    return absl::AlreadyExistsError(absl::StrCat("model \"zoos/", zoo_id, "/models/", model.id,
                                                 "\" already exists"));
  }
  const std::string id = model.id;
  zoo->models.push_back(std::move(model));
  ASSIGN_OR_RETURN(auto published, SaveAndPublish(std::move(zoo)));
  return std::make_pair(published, id);
}

absl::StatusOr<std::string> Engine::ExportZoo(const std::string& zoo_id) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const Zoo> zoo, GetZoo(zoo_id));
  return EncodeZoo(*zoo);
}

absl::StatusOr<std::shared_ptr<const Zoo>> Engine::ImportZoo(const std::string& zoo_id,
                                                             const std::string& archive) {
  RETURN_IF_ERROR(ValidateResourceId(zoo_id, "name"));
  if (archive.rfind("PK\x03\x04", 0) == 0) {
    return absl::InvalidArgumentError(
        "this is a zip file (a TorchScript module?): executable formats are refused; send an "
        "archive written by ExportZoo, or import weights with ImportModel");
  }
  if (!archive.empty() && static_cast<unsigned char>(archive[0]) == 0x80) {
    return absl::InvalidArgumentError(
        "this looks like a Python pickle: executable formats are refused; send an archive "
        "written by ExportZoo, or import weights with ImportModel");
  }
  absl::StatusOr<Zoo> decoded = DecodeZoo(archive);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a valid gradzoo archive: ", decoded.status().message()));
  }
  auto zoo = std::make_shared<Zoo>(*std::move(decoded));
  zoo->id = zoo_id;
  absl::MutexLock write_lock(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (zoos_.count(zoo_id)) {
      return absl::AlreadyExistsError(absl::StrCat("zoo \"zoos/", zoo_id, "\" already exists"));
    }
  }
  return SaveAndPublish(std::move(zoo));
}

absl::StatusOr<std::vector<std::pair<std::shared_ptr<const Zoo>, const ModelRecord*>>>
Engine::ResolveSelection(const FieldRequest& request) const {
  std::vector<std::pair<std::shared_ptr<const Zoo>, const ModelRecord*>> out;
  for (const ModelRef& ref : request.models) {
    ASSIGN_OR_RETURN(auto m, GetModel(ref));
    out.push_back(std::move(m));
  }
  if (!request.zoo_id.empty()) {
    ASSIGN_OR_RETURN(std::shared_ptr<const Zoo> zoo, GetZoo(request.zoo_id));
    for (const ModelRecord& m : zoo->models) out.emplace_back(zoo, &m);
  }
  if (out.empty()) {
    return absl::InvalidArgumentError("selection: name at least one model or a zoo");
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const Task>> TheoryTask(const Zoo& zoo, const ModelRecord& m) {
  TaskConfig tc;
  if (zoo.has_spec && zoo.spec.task.name == m.task) {
    tc = zoo.spec.task;
  } else {
    tc.name = m.task;
  }
  absl::StatusOr<std::shared_ptr<const Task>> task = MakeTask(tc, /*load_data=*/false);
  if (!task.ok() || !(*task)->HasExactGradient() || (*task)->input_dim() != m.spec.input_dim ||
      (*task)->output_dim() != m.spec.output_dim || m.variant < 0 ||
      m.variant >= (*task)->variants()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "compare_with_theory: model \"zoos/", zoo.id, "/models/", m.id, "\" has task \"", m.task,
        "\", which has no exact gradient here"));
  }
  return task;
}

absl::StatusOr<int64_t> Engine::ValidateField(const FieldRequest& request) const {
  ASSIGN_OR_RETURN(auto selected, ResolveSelection(request));
  const int in = selected.front().second->spec.input_dim;
  for (const auto& [zoo, m] : selected) {
    if (m->spec.input_dim != in) {
      return absl::InvalidArgumentError(
          "selected models have different input dimensions; query them separately");
    }
  }
  ASSIGN_OR_RETURN(const int64_t n,
                   CountPoints(request.points, in, options_.max_points_per_query));
  const int64_t k = static_cast<int64_t>(selected.size());
  if (n > options_.max_points_per_query / k) {
    return absl::ResourceExhaustedError(absl::StrCat(
        n, " points x ", k, " models exceeds the limit of ", options_.max_points_per_query,
        " per query: query fewer models or points per call"));
  }
  return n * k;
}

absl::StatusOr<std::vector<NamedField>> Engine::ComputeGradientField(
    const FieldRequest& request, const CancelFn& cancel) const {
  RETURN_IF_ERROR(ValidateField(request).status());
  ASSIGN_OR_RETURN(auto selected, ResolveSelection(request));
  const int in = selected.front().second->spec.input_dim;
  ASSIGN_OR_RETURN(std::vector<float> points,
                   MakePoints(request.points, in, options_.max_points_per_query));
  const int64_t n = static_cast<int64_t>(points.size()) / in;

  std::vector<NamedField> results(selected.size());
  // Group by architecture so each group runs as one stacked program.
  std::map<std::pair<std::vector<int>, int>, std::vector<size_t>> groups;
  for (size_t i = 0; i < selected.size(); ++i) {
    const MlpSpec& s = selected[i].second->spec;
    groups[{s.Widths(), static_cast<int>(s.activation)}].push_back(i);
  }
  for (const auto& [key, indices] : groups) {
    const MlpSpec& spec = selected[indices.front()].second->spec;
    std::vector<const std::vector<LayerWeights>*> weights;
    for (size_t i : indices) weights.push_back(&selected[i].second->layers);
    ASSIGN_OR_RETURN(std::vector<ModelField> fields,
                     ComputeInputGradients(spec, weights, points, n, device_,
                                           request.include_outputs, cancel));
    for (size_t j = 0; j < indices.size(); ++j) {
      NamedField& r = results[indices[j]];
      const auto& [zoo, model] = selected[indices[j]];
      r.model = ModelRef{zoo->id, model->id};
      r.field = std::move(fields[j]);
    }
  }
  if (request.compare_with_theory) {
    for (size_t i = 0; i < selected.size(); ++i) {
      const Zoo& zoo = *selected[i].first;
      const ModelRecord& m = *selected[i].second;
      ASSIGN_OR_RETURN(std::shared_ptr<const Task> task, TheoryTask(zoo, m));
      std::vector<float> theory(static_cast<size_t>(n) * m.spec.output_dim * in);
      task->ExactGradient(m.variant, points.data(), n, m.lambda, theory.data());
      CompareWithTheory(std::move(theory), &results[i].field);
    }
  }
  if (!results.empty()) results.front().points = std::move(points);
  return results;
}

EngineFacts Engine::Facts() const {
  EngineFacts f;
  f.version = GRADZOO_VERSION;
  f.device = device_;
  BlasInfo blas = DetectBlas();
  f.blas = blas.name;
  f.blas_path = blas.library_path;
  f.torch_threads = TorchThreads();
  f.torch_version = TorchVersion();
  f.max_points_per_query = options_.max_points_per_query;
  f.data_dir = options_.data_dir;
  return f;
}

}  // namespace gradzoo::core
