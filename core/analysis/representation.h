// Layer structure (seed 002) on plain weights and points: PCA of a layer's activations and the
// covariance between two layers' principal-component activations; PLSR from one layer to the
// principal components of a later one; linear CKA; "scaffold" backprop (gradients of one
// later-layer principal component with respect to an earlier layer, their PCA and the clusters
// of their directions). Torch-free header; numerics in plsr.h, cka.h, cluster.h.
//
// All activations are computed in float64 (core/analysis/layer_tensors.h) in point chunks and
// streamed into moment accumulators, so memory is O(width^2) whatever the number of points
// (scaffold keeps the per-point gradients, O(n width), for clustering).
//
// PCA here is scikit-learn's: centred, covariance with ddof = 1, components with their
// largest-magnitude entry positive (linalg.h). PC activations of layer a are
// p_a = U_a (a - mean_a); the covariance between the PCs of layers a and b is
// U_a C_ab U_b^T with C_ab the (ddof = 1) cross-covariance of the activations.
//
// Thread-compatible: no shared state.
#ifndef GRADZOO_CORE_ANALYSIS_REPRESENTATION_H_
#define GRADZOO_CORE_ANALYSIS_REPRESENTATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/analysis/cka.h"
#include "core/analysis/cluster.h"
#include "core/analysis/layers.h"
#include "core/analysis/linalg.h"
#include "core/analysis/orthogonality.h"
#include "core/analysis/plsr.h"
#include "core/model.h"

namespace gradzoo::core {

// The model a representation query runs on, with its points ([n, spec.input_dim]).
struct ModelInput {
  const MlpSpec* spec = nullptr;
  const std::vector<LayerWeights>* weights = nullptr;
  const std::vector<float>* points = nullptr;
  int64_t n = 0;
};

struct LayerPcaResult {
  LayerRef layer;
  Pca pca;  // all components; callers truncate
  bool has_second = false;
  LayerRef second_layer;
  Pca second;
  // [d_a, d_b] covariance and correlation of the PC activations (all components); correlation
  // is 0 where a PC has zero variance.
  std::vector<double> pc_covariance;
  std::vector<double> pc_correlation;
  int64_t points_used = 0;
};

// PCA of `layer` (and of `second`, with the PC cross-covariance, when given).
absl::StatusOr<LayerPcaResult> ActivationPca(const ModelInput& in, const LayerRef& layer,
                                        const LayerRef* second, const std::string& device,
                                        const CancelFn& cancel);

struct LayerPlsrResult {
  PlsrResult plsr;
  Pca source_pca;  // PCA of the source layer (for the overlap)
  Pca target_pca;  // PCA of the target layer
  int targets = 0;  // target PCs regressed on
  // |cos| between each PLS x weight (column) and each source-layer PC, [components, d_source].
  std::vector<double> pc_overlap;
  int64_t points_used = 0;
};

// PLSR from the activations of `source` (X) to the first `target_components` principal
// components of `target` (Y = U_t (a_t - mean_t), 0 = enough PCs for 99% of the variance),
// fitted by NIPALS on the streamed moments (plsr.h).
absl::StatusOr<LayerPlsrResult> LayerPlsr(const ModelInput& in, const LayerRef& source,
                                          const LayerRef& target, int target_components,
                                          const PlsrOptions& options, const std::string& device,
                                          const CancelFn& cancel);

// Linear CKA between layer_a of model a and layer_b of model b on the same points (model b may
// be model a). With `all_layers`, also the matrix over every layer of a and b (x, h_1..h_{L-1},
// y): matrix[i * layers_b + j].
struct CkaResult {
  CkaValue value;
  bool has_matrix = false;
  std::vector<LayerRef> layers_a, layers_b;
  std::vector<double> matrix;
  int64_t points_used = 0;
};
absl::StatusOr<CkaResult> LayerCka(const ModelInput& a, const LayerRef& layer_a,
                                   const ModelInput& b, const LayerRef& layer_b, bool all_layers,
                                   const std::string& device, const CancelFn& cancel);

struct ScaffoldOptions {
  int component = 0;              // target PC index (0 = largest)
  double cluster_cosine = 0.99;   // see cluster.h
  bool keep_gradients = false;    // return the [n, w] gradients
};

struct ScaffoldResult {
  std::vector<double> target_direction;  // u_c, [width(target)]
  double target_variance = 0.0;          // eigenvalue of u_c
  Pca gradient_pca;                      // centred PCA of the gradients
  DirectionClusters clusters;
  int64_t zero_gradients = 0;
  int64_t distinct_gradients = 0;        // distinct non-zero gradients (float32 bits)
  std::vector<float> gradients;          // [n, width(source)] when keep_gradients
  int64_t points_used = 0;
};

// Scaffold backprop: s_c(x) = u_c . (a_t(x) - mean_t) for the c-th PC u_c of the target layer;
// gradients d s_c / d a_s at every point (exact, by the masks for ReLU), their centred PCA,
// clusters of their directions (cluster.h) and the count of distinct gradients.
absl::StatusOr<ScaffoldResult> ScaffoldGradients(const ModelInput& in, const LayerRef& source,
                                                 const LayerRef& target,
                                                 const ScaffoldOptions& options,
                                                 const std::string& device,
                                                 const CancelFn& cancel);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_REPRESENTATION_H_
