#include "core/analysis/analysis.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/tasks/task.h"
#include "core/util/status_macros.h"

namespace gradzoo::core {

namespace {

using ModelPtr = std::pair<std::shared_ptr<const Zoo>, const ModelRecord*>;

// Upper bound on per-point values a scaffold query keeps (its gradients, for clustering).
constexpr int64_t kMaxScaffoldValues = int64_t{32} << 20;

std::string NameOf(const Zoo& zoo, const ModelRecord& m) {
  return absl::StrCat("\"zoos/", zoo.id, "/models/", m.id, "\"");
}

// The task that made `m`, for regenerating its validation inputs.
absl::StatusOr<std::shared_ptr<const Task>> ValidationTask(const Zoo& zoo, const ModelRecord& m,
                                                           bool load_data) {
  if (!zoo.has_spec || zoo.spec.task.name != m.task) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model ", NameOf(zoo, m), " has no stored task data to take validation points from; "
        "send points (a grid or explicit rows)"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Task> task, MakeTask(zoo.spec.task, load_data));
  if (task->input_dim() != m.spec.input_dim) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model ", NameOf(zoo, m), " does not match its task's input width; send points"));
  }
  return task;
}

// Points the source gives for `m` without making them: -1 when only loading a dataset can tell.
absl::StatusOr<int64_t> CountFor(const Engine& engine, const Zoo& zoo, const ModelRecord& m,
                                 const PointSource& src) {
  const int64_t limit = engine.options().max_points_per_query;
  if (!src.validation) return CountPoints(src.spec, m.spec.input_dim, limit);
  ASSIGN_OR_RETURN(std::shared_ptr<const Task> task, ValidationTask(zoo, m, /*load_data=*/false));
  if (task->SharedData()) return -1;
  return static_cast<int64_t>(zoo.spec.task.validation_examples);
}

absl::StatusOr<std::vector<float>> PointsFor(const Engine& engine, const Zoo& zoo,
                                             const ModelRecord& m, const PointSource& src) {
  const int64_t limit = engine.options().max_points_per_query;
  if (!src.validation) return MakePoints(src.spec, m.spec.input_dim, limit);
  ASSIGN_OR_RETURN(std::shared_ptr<const Task> task, ValidationTask(zoo, m, /*load_data=*/true));
  ASSIGN_OR_RETURN(Dataset d, task->Data(DataSplit::kValidation, m.variant, m.lambda,
                                         static_cast<uint64_t>(m.seed),
                                         zoo.spec.task.validation_examples));
  if (d.n > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the validation set of ", NameOf(zoo, m), " has ", d.n, " points; the limit is ", limit,
        " per query: send fewer points explicitly"));
  }
  return std::move(d.x);
}

absl::Status CheckTotal(int64_t points, int64_t models, int64_t limit) {
  if (points > 0 && points > limit / std::max<int64_t>(1, models)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        points, " points x ", models, " models exceeds the limit of ", limit,
        " per query: use fewer points (explicit rows or a coarser grid)"));
  }
  return absl::OkStatus();
}

// Validates and counts points for a single model.
absl::StatusOr<ModelPtr> ResolveOne(const Engine& engine, const ModelRef& ref,
                                    const PointSource& src, int64_t* n) {
  ASSIGN_OR_RETURN(ModelPtr m, engine.GetModel(ref));
  ASSIGN_OR_RETURN(*n, CountFor(engine, *m.first, *m.second, src));
  RETURN_IF_ERROR(CheckTotal(*n, 1, engine.options().max_points_per_query));
  return m;
}

ModelInput InputOf(const ModelRecord& m, const std::vector<float>& points) {
  ModelInput in;
  in.spec = &m.spec;
  in.weights = &m.layers;
  in.points = &points;
  in.n = static_cast<int64_t>(points.size()) / std::max(1, m.spec.input_dim);
  return in;
}

std::vector<LayerRef> DefaultLayers(const MlpSpec& spec) {
  std::vector<LayerRef> out;
  for (int l = 1; l < spec.NumLayers(); ++l) out.push_back({l, LayerSide::kPost});
  return out;
}

}  // namespace

// --- orthogonality ----------------------------------------------------------------------------

absl::Status ValidateModelOrthogonality(const Engine& engine, const ModelOrthogonalityQuery& q) {
  int64_t n = 0;
  ASSIGN_OR_RETURN(ModelPtr m, ResolveOne(engine, q.model, q.points, &n));
  return ValidateOrthogonality(m.second->spec, {q.layer}, q.options);
}

absl::StatusOr<OrthogonalityScore> ScoreModelOrthogonality(const Engine& engine,
                                                           const ModelOrthogonalityQuery& q,
                                                           const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateModelOrthogonality(engine, q));
  ASSIGN_OR_RETURN(ModelPtr m, engine.GetModel(q.model));
  ASSIGN_OR_RETURN(std::vector<float> pts, PointsFor(engine, *m.first, *m.second, q.points));
  const int64_t n = static_cast<int64_t>(pts.size()) / m.second->spec.input_dim;
  ASSIGN_OR_RETURN(auto scores, ScoreOrthogonality(m.second->spec, {&m.second->layers}, {&pts}, n,
                                                   {q.layer}, q.options, engine.device(), cancel));
  return scores[0][0];
}

absl::Status ValidateZooOrthogonality(const Engine& engine, const ZooOrthogonalityQuery& q) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Zoo> zoo, engine.GetZoo(q.zoo_id));
  if (zoo->models.empty()) return absl::FailedPreconditionError("the zoo has no models");
  const int in = zoo->models.front().spec.input_dim;
  int64_t total = 0;
  for (const ModelRecord& m : zoo->models) {
    if (!q.points.validation && m.spec.input_dim != in) {
      return absl::InvalidArgumentError(
          "the zoo's models have different input widths; shared points cannot serve them all");
    }
    const std::vector<LayerRef> layers = q.layers.empty() ? DefaultLayers(m.spec) : q.layers;
    if (layers.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model ", NameOf(*zoo, m), " has no hidden layer to score"));
    }
    absl::Status s = ValidateOrthogonality(m.spec, layers, q.options);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("model ", NameOf(*zoo, m), ": ", s.message()));
    }
    ASSIGN_OR_RETURN(int64_t n, CountFor(engine, *zoo, m, q.points));
    if (!q.points.validation) {
      // Shared points: the same n for every model.
      RETURN_IF_ERROR(CheckTotal(n, static_cast<int64_t>(zoo->models.size()),
                                 engine.options().max_points_per_query));
    } else if (n > 0) {
      total += n;
    }
  }
  if (total > engine.options().max_points_per_query) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "scoring every model on its validation set touches ", total,
        " points in all; the limit is ", engine.options().max_points_per_query,
        " per query: send shared points instead"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ZooOrthogonalityResult> ScoreZooOrthogonality(const Engine& engine,
                                                             const ZooOrthogonalityQuery& q,
                                                             const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateZooOrthogonality(engine, q));
  ASSIGN_OR_RETURN(std::shared_ptr<const Zoo> zoo, engine.GetZoo(q.zoo_id));
  const std::vector<LayerRef> layers =
      q.layers.empty() ? DefaultLayers(zoo->models.front().spec) : q.layers;
  for (const ModelRecord& m : zoo->models) {
    if (q.layers.empty() && DefaultLayers(m.spec).size() != layers.size()) {
      return absl::InvalidArgumentError(
          "the zoo's models have different depths; name the layers to score");
    }
  }
  // Points: one shared set, or each model's validation inputs (identical datasets shared).
  std::vector<std::vector<float>> storage;
  std::vector<size_t> points_of(zoo->models.size());
  {
    std::map<std::tuple<std::string, int, double, int64_t>, size_t> seen;
    for (size_t i = 0; i < zoo->models.size(); ++i) {
      if (cancel && cancel()) return absl::CancelledError("zoo scoring cancelled");
      const ModelRecord& m = zoo->models[i];
      if (!q.points.validation && !storage.empty()) {
        points_of[i] = 0;
        continue;
      }
      std::tuple<std::string, int, double, int64_t> key{m.task, m.variant, m.lambda, m.seed};
      if (q.points.validation) {
        ASSIGN_OR_RETURN(std::shared_ptr<const Task> task, ValidationTask(*zoo, m, false));
        if (task->SharedData()) key = {m.task, 0, 0.0, 0};
      }
      auto it = seen.find(key);
      if (it != seen.end()) {
        points_of[i] = it->second;
        continue;
      }
      ASSIGN_OR_RETURN(std::vector<float> pts, PointsFor(engine, *zoo, m, q.points));
      storage.push_back(std::move(pts));
      points_of[i] = storage.size() - 1;
      seen[key] = points_of[i];
    }
  }
  // Score per architecture group; scores[i][layer].
  std::vector<std::vector<OrthogonalityScore>> scores(zoo->models.size());
  std::map<std::tuple<std::vector<int>, int, int64_t>, std::vector<size_t>> groups;
  for (size_t i = 0; i < zoo->models.size(); ++i) {
    const ModelRecord& m = zoo->models[i];
    const int64_t n = static_cast<int64_t>(storage[points_of[i]].size()) / m.spec.input_dim;
    groups[{m.spec.Widths(), static_cast<int>(m.spec.activation), n}].push_back(i);
  }
  for (const auto& [key, idx] : groups) {
    if (cancel && cancel()) return absl::CancelledError("zoo scoring cancelled");
    const MlpSpec& spec = zoo->models[idx.front()].spec;
    std::vector<const std::vector<LayerWeights>*> weights;
    std::vector<const std::vector<float>*> pts;
    bool all_same = true;
    for (size_t i : idx) {
      weights.push_back(&zoo->models[i].layers);
      pts.push_back(&storage[points_of[i]]);
      all_same = all_same && points_of[i] == points_of[idx.front()];
    }
    if (all_same) pts.resize(1);
    ASSIGN_OR_RETURN(auto s, ScoreOrthogonality(spec, weights, pts, std::get<2>(key), layers,
                                                q.options, engine.device(), cancel));
    for (size_t j = 0; j < idx.size(); ++j) scores[idx[j]] = std::move(s[j]);
  }
  // Distributions per (layer, task, variant, lambda); models in seed order.
  ZooOrthogonalityResult r;
  r.layers = layers;
  r.models_scored = static_cast<int>(zoo->models.size());
  for (size_t li = 0; li < layers.size(); ++li) {
    std::map<std::tuple<std::string, int, double>, std::vector<size_t>> settings;
    for (size_t i = 0; i < zoo->models.size(); ++i) {
      const ModelRecord& m = zoo->models[i];
      settings[{m.task, m.variant, m.lambda}].push_back(i);
    }
    std::vector<double> lam_all, score_all, lam_means, means;
    for (auto& [key, idx] : settings) {
      std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        return zoo->models[a].seed < zoo->models[b].seed;
      });
      SettingDistribution d;
      d.task = std::get<0>(key);
      d.variant = std::get<1>(key);
      d.lambda = std::get<2>(key);
      d.layer = layers[li];
      for (size_t i : idx) {
        const OrthogonalityScore& s = scores[i][li];
        d.models.push_back({zoo->models[i].id, zoo->models[i].seed, s});
        if (s.degeneracy.degenerate) {
          ++d.degenerate_count;
        } else {
          d.scores.push_back(s.score);
          lam_all.push_back(d.lambda);
          score_all.push_back(s.score);
        }
      }
      if (!d.scores.empty()) {
        double sum = 0, sq = 0;
        for (double v : d.scores) sum += v;
        d.mean = sum / d.scores.size();
        for (double v : d.scores) sq += (v - d.mean) * (v - d.mean);
        d.stddev = std::sqrt(sq / d.scores.size());
        lam_means.push_back(d.lambda);
        means.push_back(d.mean);
      }
      r.settings.push_back(std::move(d));
    }
    r.spearman_with_lambda.push_back(SpearmanCorrelation(lam_all, score_all));
    r.spearman_of_means.push_back(SpearmanCorrelation(lam_means, means));
  }
  return r;
}

// --- layer structure --------------------------------------------------------------------------

absl::Status ValidateLayerPca(const Engine& engine, const LayerPcaQuery& q) {
  int64_t n = 0;
  ASSIGN_OR_RETURN(ModelPtr m, ResolveOne(engine, q.model, q.points, &n));
  RETURN_IF_ERROR(ValidateLayer(m.second->spec, q.layer, true, "layer"));
  if (q.has_second) RETURN_IF_ERROR(ValidateLayer(m.second->spec, q.second, true, "second_layer"));
  if (q.components < 0) return absl::InvalidArgumentError("components must be >= 0");
  return absl::OkStatus();
}

absl::StatusOr<LayerPcaResult> ComputeLayerPca(const Engine& engine, const LayerPcaQuery& q,
                                               const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateLayerPca(engine, q));
  ASSIGN_OR_RETURN(ModelPtr m, engine.GetModel(q.model));
  ASSIGN_OR_RETURN(std::vector<float> pts, PointsFor(engine, *m.first, *m.second, q.points));
  return ActivationPca(InputOf(*m.second, pts), q.layer, q.has_second ? &q.second : nullptr,
                  engine.device(), cancel);
}

namespace {
LayerRef NextLayer(const LayerRef& l, bool post) {
  return LayerRef{l.index + 1, post ? LayerSide::kPost : l.side};
}
}  // namespace

absl::Status ValidatePlsr(const Engine& engine, const PlsrQuery& q) {
  int64_t n = 0;
  ASSIGN_OR_RETURN(ModelPtr m, ResolveOne(engine, q.model, q.points, &n));
  RETURN_IF_ERROR(ValidateLayer(m.second->spec, q.layer, true, "layer"));
  const LayerRef target = q.has_target ? q.target : NextLayer(q.layer, false);
  RETURN_IF_ERROR(ValidateLayer(m.second->spec, target, true, "target_layer"));
  const int ds = LayerWidth(m.second->spec, q.layer);
  if (q.options.components < 1 || q.options.components > ds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "components must be in [1, ", ds, "] (the source layer's width), got ", q.options.components));
  }
  return absl::OkStatus();
}

absl::StatusOr<LayerPlsrResult> ComputeLayerPlsr(const Engine& engine, const PlsrQuery& q,
                                                 const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidatePlsr(engine, q));
  ASSIGN_OR_RETURN(ModelPtr m, engine.GetModel(q.model));
  ASSIGN_OR_RETURN(std::vector<float> pts, PointsFor(engine, *m.first, *m.second, q.points));
  const LayerRef target = q.has_target ? q.target : NextLayer(q.layer, false);
  return LayerPlsr(InputOf(*m.second, pts), q.layer, target, q.target_components, q.options,
                   engine.device(), cancel);
}

absl::Status ValidateCka(const Engine& engine, const CkaQuery& q) {
  int64_t n = 0;
  ASSIGN_OR_RETURN(ModelPtr a, ResolveOne(engine, q.model_a, q.points, &n));
  const ModelRef rb = q.model_b.model_id.empty() ? q.model_a : q.model_b;
  ASSIGN_OR_RETURN(ModelPtr b, engine.GetModel(rb));
  if (a.second->spec.input_dim != b.second->spec.input_dim) {
    return absl::InvalidArgumentError("model_a and model_b have different input widths");
  }
  RETURN_IF_ERROR(CheckTotal(n, 2, engine.options().max_points_per_query));
  RETURN_IF_ERROR(ValidateLayer(a.second->spec, q.layer_a, true, "layer_a"));
  RETURN_IF_ERROR(ValidateLayer(b.second->spec, q.layer_b, true, "layer_b"));
  if (q.all_layers) {
    int64_t width = 0;
    for (const ModelPtr* m : {&a, &b}) {
      for (int w : m->second->spec.Widths()) width += w;
    }
    if (width > 8192) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "all_layers would accumulate ", width, " x ", width,
          " moments; the limit is 8192 features: compare single layers"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CkaResult> ComputeLayerCka(const Engine& engine, const CkaQuery& q,
                                          const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateCka(engine, q));
  ASSIGN_OR_RETURN(ModelPtr a, engine.GetModel(q.model_a));
  const ModelRef rb = q.model_b.model_id.empty() ? q.model_a : q.model_b;
  ASSIGN_OR_RETURN(ModelPtr b, engine.GetModel(rb));
  ASSIGN_OR_RETURN(std::vector<float> pts, PointsFor(engine, *a.first, *a.second, q.points));
  return LayerCka(InputOf(*a.second, pts), q.layer_a, InputOf(*b.second, pts), q.layer_b,
                  q.all_layers, engine.device(), cancel);
}

absl::Status ValidateScaffold(const Engine& engine, const ScaffoldQuery& q) {
  int64_t n = 0;
  ASSIGN_OR_RETURN(ModelPtr m, ResolveOne(engine, q.model, q.points, &n));
  const MlpSpec& spec = m.second->spec;
  RETURN_IF_ERROR(ValidateLayer(spec, q.layer, true, "layer"));
  const LayerRef target = q.has_target ? q.target : NextLayer(q.layer, true);
  RETURN_IF_ERROR(ValidateLayer(spec, target, true, "target_layer"));
  if (LayerPosition(spec, target) <= LayerPosition(spec, q.layer)) {
    return absl::InvalidArgumentError("target_layer must come after layer");
  }
  const int dt = LayerWidth(spec, target);
  if (q.options.component < 0 || q.options.component >= dt) {
    return absl::InvalidArgumentError(
        absl::StrCat("component must be in [0, ", dt, "), got ", q.options.component));
  }
  if (!(q.options.cluster_cosine > 0 && q.options.cluster_cosine <= 1)) {
    return absl::InvalidArgumentError("cluster_cosine must be in (0, 1]");
  }
  if (n > 0 && n > kMaxScaffoldValues / LayerWidth(spec, q.layer)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "scaffold gradients keep ", n, " x ", LayerWidth(spec, q.layer),
        " values for clustering; the limit is ", kMaxScaffoldValues, ": use fewer points"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ScaffoldResult> ComputeScaffold(const Engine& engine, const ScaffoldQuery& q,
                                               const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateScaffold(engine, q));
  ASSIGN_OR_RETURN(ModelPtr m, engine.GetModel(q.model));
  ASSIGN_OR_RETURN(std::vector<float> pts, PointsFor(engine, *m.first, *m.second, q.points));
  const int64_t n = static_cast<int64_t>(pts.size()) / m.second->spec.input_dim;
  if (n > kMaxScaffoldValues / LayerWidth(m.second->spec, q.layer)) {
    return absl::ResourceExhaustedError("scaffold gradients: too many points for clustering");
  }
  const LayerRef target = q.has_target ? q.target : NextLayer(q.layer, true);
  return ScaffoldGradients(InputOf(*m.second, pts), q.layer, target, q.options, engine.device(),
                           cancel);
}

}  // namespace gradzoo::core
