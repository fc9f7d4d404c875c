// Linear regions and "unique gradients" of one model on a set of points (seeds 000/001).
//
// ReLU networks (exact): a point's region is its activation pattern (one bit per hidden unit,
// z > 0), packed as in core/grad/bit_keys.h and hashed exactly (equal keys are confirmed word by
// word), so no float rounding is involved. Per output o, two regions share an input gradient
// exactly when their live sets for o agree (bit_keys.h explains why and the measure-zero
// exception); the gradient of o w.r.t. hidden layer l's post-activations h_l depends only on the
// live units of layers l+1.., and w.r.t. its pre-activations z_l additionally on which units of
// layer l are active and reach o. Counting keys therefore counts unique gradients exactly.
//
// Smooth activations (GELU, tanh; `clustered` is set): there are no linear regions, so gradients
// are clustered on a grid: with s = max over points of max_i |g_i| for that quantity and output,
// and eps = tolerance * s, a gradient g maps to the cell (round(g_i / eps))_i and each occupied
// cell is one cluster (what torch.unique on rounded gradients does, without float keys).
// "Regions" are then the clusters of the whole input Jacobian (all outputs jointly).
//
// Saturation: `saturated` is set when more than half of the points lie alone in their region,
// i.e. the sampling is too coarse for the counts to mean much.
//
// Torch-free header. Functions are thread-compatible and poll `cancel` between chunks.
#ifndef GRADZOO_CORE_GRAD_REGIONS_H_
#define GRADZOO_CORE_GRAD_REGIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/grad/field.h"
#include "core/grad/points.h"
#include "core/model.h"

namespace gradzoo::core {

struct RegionOptions {
  // Clustering tolerance for smooth activations, relative (see above); 0 = 1e-3. Must be in
  // [0, 1). Ignored for ReLU.
  double tolerance = 0.0;
  // Also count unique gradients w.r.t. every hidden layer's pre- and post-activations.
  bool per_layer = false;
  // At most this many region sizes are returned (largest first); 0 = 1000. At most 100000.
  int64_t max_region_sizes = 0;
};

// Unique gradients of each output w.r.t. one hidden layer.
struct LayerSplintering {
  int layer = 0;                     // 0 = first hidden layer
  std::vector<int64_t> unique_pre;   // per output, w.r.t. z_l
  std::vector<int64_t> unique_post;  // per output, w.r.t. h_l
};

struct RegionCounts {
  int64_t points = 0;
  // Distinct activation patterns (ReLU) or Jacobian clusters (smooth activations).
  int64_t regions = 0;
  std::vector<int64_t> unique_gradients_per_output;
  // Distinct tuples (g_1, ..., g_out) of all outputs' gradients.
  int64_t unique_gradient_combinations = 0;
  // Every per-output count equals the combination count (seed 001's observation).
  bool outputs_coincide = false;
  // Points per region, largest first, at most max_region_sizes of them.
  std::vector<int64_t> region_sizes;
  bool region_sizes_truncated = false;
  // Regions holding exactly one point.
  int64_t singleton_regions = 0;
  bool saturated = false;
  bool clustered = false;
  // The tolerance used when clustered (0 otherwise).
  double tolerance = 0.0;
  std::vector<LayerSplintering> layers;  // when per_layer
};

// Counts regions of one model at `points` ([n, spec.input_dim]) on `device`.
absl::StatusOr<RegionCounts> CountRegions(const MlpSpec& spec,
                                          const std::vector<LayerWeights>& layers,
                                          const std::vector<float>& points, int64_t n,
                                          const std::string& device,
                                          const RegionOptions& options, const CancelFn& cancel);

// Activation patterns of every point, [n, PatternWordOffsets(spec.hidden).back()] words in the
// layout of bit_keys.h (activity bit act'(z) > 0.5; z > 0 for ReLU), from a float32 forward
// pass on `device`.
absl::StatusOr<std::vector<uint64_t>> ActivationPatterns(const MlpSpec& spec,
                                                         const std::vector<LayerWeights>& layers,
                                                         const std::vector<float>& points,
                                                         int64_t n, const std::string& device,
                                                         const CancelFn& cancel);

// CountLinearRegions through the engine: one stored model and a point spec.
struct RegionQuery {
  ModelRef model;
  PointSpec points;
  RegionOptions options;
};
// Cheap checks before any allocation: the model exists (NOT_FOUND), the points and options are
// valid (INVALID_ARGUMENT) and within the engine's per-query limit (RESOURCE_EXHAUSTED).
// Returns the number of points.
absl::StatusOr<int64_t> ValidateRegionQuery(const Engine& engine, const RegionQuery& query);
absl::StatusOr<RegionCounts> CountLinearRegions(const Engine& engine, const RegionQuery& query,
                                                const CancelFn& cancel);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_GRAD_REGIONS_H_
