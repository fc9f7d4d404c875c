// Task orthogonality (seed 001): how independently a network processes two of its outputs
// ("tasks") at a layer, from the gradients of each output with respect to that layer's
// activations over a set of points. Torch-free header.
//
// Notation: at point n, g_a(n), g_b(n) in R^w are d y_a / d a_l and d y_b / d a_l for the
// activations a_l at the layer (x, z_l or h_l); G_a, G_b are [N, w] stacks of them. For ReLU
// networks they come from the forward masks: g = e_o^T W_L D_{L-1} W_{L-1} ... (layers.h).
// Every score lies in [0, 1] (1 = independent):
//
//   kCos         1 - mean_n |cos(g_a(n), g_b(n))|
//   kFunctional  as kCos after projecting each gradient onto col(A(n)), A(n) = d a_l / d x
//                ([w, in]): the directions the layer can move as the input changes. With the
//                thin eigendecomposition of the small Gram matrix, the projection's
//                coordinates in an orthonormal basis of col(A) are
//                  in <= w:  y_o = L^{-1/2} V^T (A^T g_o),  A^T A = V L V^T
//                  in >  w:  y_o = U^T g_o,                  A A^T = U L U^T
//                keeping eigenvalues > 1e-10 * the largest (singular values > 1e-5 s_max), so
//                cos(P g_a, P g_b) = cos(y_a, y_b). Note A^T g_o = d y_o / d x, so the score is the
//                cosine of the two input gradients in the metric (A^T A)^+. At the input layer
//                A = I and kFunctional equals kCos.
//   kGram        1 - <S_a, S_b>_F / (||S_a||_F ||S_b||_F),  S_o = G_o^T G_o / N (uncentred), or
//                the covariances of G_o when `center`.
//   kPca         S_o eigendecomposed; U_o = the top k_o eigenvectors, k_o the smallest k whose
//                eigenvalues hold >= variance_threshold of the trace; score
//                1 - ||U_a U_b^T||_F^2 / min(k_a, k_b), with the principal angles
//                acos(singular values of U_a U_b^T).
//
// Degenerate cases (never NaN): a point is left out of kCos / kFunctional when a gradient has
// norm <= 1e-200 (it vanishes, e.g. behind dead ReLUs) or, for kFunctional, when its projection
// has norm <= 1e-9 times its own (nothing the input can reach); `points_excluded` counts them.
// When no point is left, or S_o = 0 (zero variance), or the layer is dead (a hidden layer whose
// act'(z) is 0 for every unit at every point), the score is 0 with degenerate = true and flags.
//
// kCos and kFunctional run in float64. kGram and kPca compute the gradients in float32 (the
// models' own precision) and sum their outer products while they are made, in double over
// float32 blocks with the SIMD kernel of linalg.h (relative error ~1e-6; tests allow 1e-5), so
// the N x w gradient matrix never exists: O(K w^2) memory, O(K) for the per-point methods.
// Points are processed in chunks sized to a ~64 MiB budget.
// Thread-compatible: no shared state.
#ifndef GRADZOO_CORE_ANALYSIS_ORTHOGONALITY_H_
#define GRADZOO_CORE_ANALYSIS_ORTHOGONALITY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/analysis/layers.h"
#include "core/model.h"

namespace gradzoo::core {

// Polled between point chunks; true stops the computation with CANCELLED.
using CancelFn = std::function<bool()>;

enum class OrthogonalityMethod { kPca = 1, kCos = 2, kGram = 3, kFunctional = 4 };

const char* OrthogonalityMethodName(OrthogonalityMethod m);

struct OrthogonalityOptions {
  OrthogonalityMethod method = OrthogonalityMethod::kFunctional;
  int output_a = 0;
  int output_b = 1;
  double variance_threshold = 0.9;  // kPca, in (0, 1]
  bool center = false;              // kPca, kGram
};

// Why a score is not (fully) defined.
struct Degeneracy {
  bool degenerate = false;     // the score is undefined; `score` is 0
  bool zero_variance = false;  // a task's gradients vanish / have no variance
  bool dead_layer = false;     // the layer is dead on every point
  int64_t points_excluded = 0;
  std::string detail;
};

struct OrthogonalityScore {
  double score = 0.0;
  int64_t points_used = 0;
  std::vector<double> principal_angles;  // kPca: radians, ascending
  int components_a = 0;                  // kPca: k_a
  int components_b = 0;                  // kPca: k_b
  Degeneracy degeneracy;
};

// INVALID_ARGUMENT naming the field for outputs out of range or equal, thresholds out of
// (0, 1], or a layer that is the output.
absl::Status ValidateOrthogonality(const MlpSpec& spec, const std::vector<LayerRef>& layers,
                                   const OrthogonalityOptions& options);

// Scores every model of `models` (all of `spec`) at every layer of `layers`. `points` holds one
// shared point set or one per model, each row-major [n, spec.input_dim]. Returns
// scores[model][layer]. CANCELLED when `cancel` says so between chunks.
absl::StatusOr<std::vector<std::vector<OrthogonalityScore>>> ScoreOrthogonality(
    const MlpSpec& spec, const std::vector<const std::vector<LayerWeights>*>& models,
    const std::vector<const std::vector<float>*>& points, int64_t n,
    const std::vector<LayerRef>& layers, const OrthogonalityOptions& options,
    const std::string& device, const CancelFn& cancel);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_ORTHOGONALITY_H_
