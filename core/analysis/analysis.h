// Subspace analysis of stored models (seeds 001, 002): the engine-level queries the server's
// AnalysisService calls. Each resolves model names through the Engine's immutable snapshots,
// picks the points, checks sizes arithmetically before allocating, and calls the numerics in
// orthogonality.h / representation.h. Torch-free header.
//
// Points: a query either names points (a grid or explicit rows, shared by every model) or uses
// each model's own validation inputs, regenerated from its zoo's task config, variant, lambda
// and seed (Task::Data(kValidation, ...)), exactly the rows its training validated on. Models
// without a stored task (imported) need explicit points (FAILED_PRECONDITION otherwise).
//
// Size limits: points x models <= Engine::Options::max_points_per_query (RESOURCE_EXHAUSTED
// with advice otherwise), checked by the Validate* functions before anything request-sized is
// allocated; the compute functions re-check.
//
// Thread-safety: every function is safe to call concurrently (the Engine is thread-safe and
// snapshots are immutable). Compute functions are heavy: run them on a worker pool; they poll
// `cancel` between point chunks and models (CANCELLED).
#ifndef GRADZOO_CORE_ANALYSIS_ANALYSIS_H_
#define GRADZOO_CORE_ANALYSIS_ANALYSIS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/analysis/layers.h"
#include "core/analysis/orthogonality.h"
#include "core/analysis/representation.h"
#include "core/engine.h"
#include "core/grad/points.h"

namespace gradzoo::core {

// Where a query's points come from.
struct PointSource {
  bool validation = true;  // each model's own validation inputs
  PointSpec spec;          // used when !validation (shared by every model)
};

// --- Task orthogonality -----------------------------------------------------------------------

struct ModelOrthogonalityQuery {
  ModelRef model;
  LayerRef layer;
  OrthogonalityOptions options;
  PointSource points;
};

absl::Status ValidateModelOrthogonality(const Engine& engine, const ModelOrthogonalityQuery& q);
absl::StatusOr<OrthogonalityScore> ScoreModelOrthogonality(const Engine& engine,
                                                           const ModelOrthogonalityQuery& q,
                                                           const CancelFn& cancel);

struct ZooOrthogonalityQuery {
  std::string zoo_id;
  std::vector<LayerRef> layers;  // empty = every hidden layer, post-activation
  OrthogonalityOptions options;
  PointSource points;
};

struct ModelScoreEntry {
  std::string model_id;
  int64_t seed = 0;
  OrthogonalityScore score;
};

// The distribution of one (task, variant, lambda) setting at one layer.
struct SettingDistribution {
  std::string task;
  int variant = 0;
  double lambda = 0.0;
  LayerRef layer;
  std::vector<ModelScoreEntry> models;  // seed order
  std::vector<double> scores;           // non-degenerate models, seed order
  double mean = 0.0;                    // of `scores` (0 when empty)
  double stddev = 0.0;                  // population (ddof = 0)
  int degenerate_count = 0;
};

struct ZooOrthogonalityResult {
  std::vector<LayerRef> layers;
  std::vector<SettingDistribution> settings;  // by layer, then task, variant, lambda
  // Spearman correlation of score with lambda over every non-degenerate model, per layer.
  std::vector<double> spearman_with_lambda;
  // Spearman correlation of the setting means with their lambdas, per layer.
  std::vector<double> spearman_of_means;
  int models_scored = 0;
};

absl::Status ValidateZooOrthogonality(const Engine& engine, const ZooOrthogonalityQuery& q);
// Scores every model of the zoo (stacked per architecture, one program per group).
absl::StatusOr<ZooOrthogonalityResult> ScoreZooOrthogonality(const Engine& engine,
                                                             const ZooOrthogonalityQuery& q,
                                                             const CancelFn& cancel);

// --- Layer structure (seed 002) -------------------------------------------------------------

struct LayerPcaQuery {
  ModelRef model;
  LayerRef layer;
  int components = 0;  // 0 = all
  bool has_second = false;
  LayerRef second;
  PointSource points;
};
absl::Status ValidateLayerPca(const Engine& engine, const LayerPcaQuery& q);
absl::StatusOr<LayerPcaResult> ComputeLayerPca(const Engine& engine, const LayerPcaQuery& q,
                                               const CancelFn& cancel);

struct PlsrQuery {
  ModelRef model;
  LayerRef layer;
  bool has_target = false;
  LayerRef target;  // default: layer.index + 1, same side
  int target_components = 0;  // 0 = enough target PCs for 99% of its variance
  PlsrOptions options;
  PointSource points;
};
absl::Status ValidatePlsr(const Engine& engine, const PlsrQuery& q);
absl::StatusOr<LayerPlsrResult> ComputeLayerPlsr(const Engine& engine, const PlsrQuery& q,
                                                 const CancelFn& cancel);

struct CkaQuery {
  ModelRef model_a;
  LayerRef layer_a;
  ModelRef model_b;  // empty model_id = model_a
  LayerRef layer_b;
  bool all_layers = false;
  PointSource points;  // validation = model_a's
};
absl::Status ValidateCka(const Engine& engine, const CkaQuery& q);
absl::StatusOr<CkaResult> ComputeLayerCka(const Engine& engine, const CkaQuery& q,
                                          const CancelFn& cancel);

struct ScaffoldQuery {
  ModelRef model;
  LayerRef layer;
  bool has_target = false;
  LayerRef target;  // default: layer.index + 1, post-activation
  ScaffoldOptions options;
  PointSource points;
};
absl::Status ValidateScaffold(const Engine& engine, const ScaffoldQuery& q);
absl::StatusOr<ScaffoldResult> ComputeScaffold(const Engine& engine, const ScaffoldQuery& q,
                                               const CancelFn& cancel);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_ANALYSIS_H_
