// Adjacent-layer Jacobians (seed 002's "backprop between layers", seed 001's intra-layer dots).
//
// Layers are numbered as activations: a_0 = x (the input), a_j = h_j = act(z_j) for hidden
// layers j = 1..H, a_{H+1} = y (the linear output). For source layer l in [0, H] and example n,
//   J_n = d a_{l+1} / d a_l = diag(act'(z_{l+1})) W_{l+1}     (W_{H+1} alone for the output),
// a [width(l+1), width(l)] matrix. With principal components the rows are instead those of the
// components of a_{l+1}: p = V^T (a_{l+1} - mean), so d p / d a_l = V^T J_n, V = the top
// `num_components` eigenvectors (columns) of the covariance of a_{l+1} over the examples,
//   C = sum_n (a_n - mean)(a_n - mean)^T / (N - 1),
// each with its largest-magnitude entry made positive (a deterministic sign). Normalising
// divides every row by its Euclidean norm (zero rows stay zero), which keeps edge weights
// layer-wise rather than output-wise (seed 001).
//
// Unique Jacobians: for ReLU, J_n depends on the example only through which units of layer l+1
// with a nonzero weight row are active, so those bits are hashed exactly (distinct bit sets give
// distinct J; with components, V^T D W is distinct for distinct D except on a measure-zero set).
// For GELU/tanh the rows are clustered on a grid of spacing tolerance * max |J| (as in
// regions.h) and `clustered` is set.
//
// Intra-layer dots: D[i, j] = mean_n <row_i(J_n), row_j(J_n)> (with normalisation: the mean
// cosine between the gradients of downstream units/components i and j).
//
// Torch-free header; thread-compatible; `cancel` is polled between chunks.
#ifndef GRADZOO_CORE_GRAD_LAYER_JACOBIANS_H_
#define GRADZOO_CORE_GRAD_LAYER_JACOBIANS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/grad/field.h"
#include "core/grad/points.h"
#include "core/model.h"

namespace gradzoo::core {

struct LayerJacobianOptions {
  int layer = 0;  // source layer l in [0, H]
  bool use_principal_components = false;
  int num_components = 0;  // 0 = width(l+1); at most width(l+1)
  bool normalize = false;
  bool include_jacobians = true;  // false: only the summary (no per-example matrices)
  double tolerance = 0.0;         // smooth activations; 0 = 1e-3, must be in [0, 1)
};

// A principal-component basis of one layer's activations.
struct LayerPca {
  int width = 0;
  int components = 0;
  std::vector<double> mean;                // [width]
  std::vector<double> vectors;             // [components, width], one component per row
  std::vector<double> explained_variance;  // [components], eigenvalues of C, descending
  double total_variance = 0.0;             // trace of C
};

struct LayerJacobians {
  int64_t n = 0;
  int rows = 0;  // width(l+1), or the number of components
  int cols = 0;  // width(l)
  std::vector<float> jacobians;  // [n, rows, cols] when include_jacobians
  int64_t unique_jacobians = 0;
  bool clustered = false;
  double tolerance = 0.0;                // used when clustered
  std::vector<double> intra_layer_dots;  // [rows, rows]
  bool has_pca = false;
  LayerPca pca;  // of layer l+1, when use_principal_components
};

// Largest n * rows * cols a request may ask to return (256 MiB of float32).
inline constexpr int64_t kMaxLayerJacobianFloats = int64_t{64} << 20;

absl::StatusOr<LayerJacobians> ComputeAdjacentJacobians(const MlpSpec& spec,
                                                        const std::vector<LayerWeights>& layers,
                                                        const std::vector<float>& points,
                                                        int64_t n, const std::string& device,
                                                        const LayerJacobianOptions& options,
                                                        const CancelFn& cancel);

// PCA of activation layer `layer` (0 = input .. H+1 = output) over `points` [n, in], keeping
// `components` (0 = all) components. INVALID_ARGUMENT for fewer than 2 points.
absl::StatusOr<LayerPca> ComputeLayerActivationPca(const MlpSpec& spec,
                                                   const std::vector<LayerWeights>& layers,
                                                   const std::vector<float>& points, int64_t n,
                                                   const std::string& device, int layer,
                                                   int components, const CancelFn& cancel);

// ComputeLayerJacobians through the engine.
struct LayerJacobianQuery {
  ModelRef model;
  PointSpec points;
  LayerJacobianOptions options;
};
// Cheap checks before allocation: model (NOT_FOUND), layer/components/tolerance
// (INVALID_ARGUMENT), points and the returned size (RESOURCE_EXHAUSTED). Returns n.
absl::StatusOr<int64_t> ValidateLayerJacobianQuery(const Engine& engine,
                                                   const LayerJacobianQuery& query);
absl::StatusOr<LayerJacobians> ComputeLayerJacobians(const Engine& engine,
                                                     const LayerJacobianQuery& query,
                                                     const CancelFn& cancel);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_GRAD_LAYER_JACOBIANS_H_
