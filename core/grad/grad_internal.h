// Helpers shared by core/grad's analyses (regions, partitions, layer Jacobians, graph).
// Internal to core: includes ATen; only .cc files include it.
#ifndef GRADZOO_CORE_GRAD_GRAD_INTERNAL_H_
#define GRADZOO_CORE_GRAD_GRAD_INTERNAL_H_

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/grad/points.h"
#include "core/model.h"
#include "core/nn/mlp.h"

namespace gradzoo::core::grad_internal {

// The activity bit of a unit with pre-activation z (bit_keys.h): act'(z) > 0.5, i.e. z > 0 for
// ReLU and GELU, |z| < atanh(1/sqrt(2)) = 0.8813736 for tanh.
inline bool ActiveBit(float z, Activation a) {
  if (a == Activation::kTanh) return z < 0.88137358702f && z > -0.88137358702f;
  return z > 0.0f;
}

// Points per chunk so that `floats_per_point` floats per point stay within ~64 MiB.
int64_t ChunkFor(int64_t floats_per_point);

// Activity bits of the first model of `mlp` at the m points of `x` ([m, in], on the model's
// device) into `out` ([m, words] in the bit_keys.h layout). A lean forward pass: hidden layers
// only, each layer's bits packed while its pre-activations are hot in cache, activations in
// place.
// `maps` (optional; a ReLU net with >= 2 hidden layers and <= kSmallInputs inputs) keeps the
// second layer's affine maps (CollapsedSecondLayer) across the chunks of one call.
class SecondLayerMaps;
void ChunkPatterns(const StackedMlp& mlp, const at::Tensor& x, uint64_t* out,
                   SecondLayerMaps* maps = nullptr);

// z = x W^T + b for a layer with few inputs (x [m, in] contiguous float on the CPU, wt = W^T
// [in, w] contiguous, b [w]): a direct loop, several times cheaper than a BLAS call whose inner
// dimension is tiny (in <= kSmallInputs). Returns [m, w].
constexpr int kSmallInputs = 8;
at::Tensor SmallInputLayer(const at::Tensor& x, const at::Tensor& wt, const at::Tensor& b);

// Affine maps of the second hidden layer (CollapsedSecondLayer below) kept across the chunks of
// one call: first-layer patterns repeat over a whole point set even where one chunk sees too
// many to pay for its own maps (1M random points of [0,1]^4 through a 4-64-64 net: ~4000
// first-layer patterns, > 1024 in each 8192-point chunk).
class SecondLayerMaps {
 public:
  // For the first model of `mlp` (ReLU, >= 2 hidden layers, on the CPU). At most `max_maps`
  // persistent maps (< 0: as many as fit in 64 MiB).
  explicit SecondLayerMaps(const StackedMlp& mlp, int64_t max_maps = -1);
  ~SecondLayerMaps();
  // Persistent maps held.
  int64_t size() const;

 private:
  friend at::Tensor CollapsedSecondLayer(const StackedMlp&, const at::Tensor&, const uint64_t*,
                                         int, SecondLayerMaps*);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The second hidden layer's pre-activations of a ReLU net as affine maps of the inputs, one per
// distinct first-layer pattern: z_2 = A_r x + c_r with A_r = W_2 D_r W_1, c_r = W_2 D_r b_1 +
// b_2 (D_r = diag of the pattern's bits; each entry a float64 sum over the active units in
// increasing order, then rounded to float32), so each point costs in * w_2 multiply-adds
// instead of w_1 * w_2. For the first model of `mlp`; x [m, in] contiguous float on the CPU;
// `bits` the chunk's patterns ([m, words], first layer's bits filled). Without `maps` the maps
// are the chunk's own; with `maps`, a pattern already there reuses its map, new patterns are
// added while under the cap, and those beyond it get chunk-local maps. Returns [m, w_2], or an
// undefined tensor when the chunk needs more than m / 8 chunk-local maps (the GEMM is cheaper
// then). The maps do not depend on where they are kept, so neither does the result.
at::Tensor CollapsedSecondLayer(const StackedMlp& mlp, const at::Tensor& x, const uint64_t* bits,
                                int words, SecondLayerMaps* maps = nullptr);

// Reverse sweep for the first model of `mlp`: for every hidden layer l, d y / d h_l (post) and
// d y / d z_l (pre), each [m, out, w_l] on the capture's device:
//   post_{H-1} = W_L,  pre_l = post_l * act'(z_l),  post_{l-1} = pre_l W_l.
struct LayerGradients {
  std::vector<at::Tensor> post;
  std::vector<at::Tensor> pre;
};
LayerGradients OutputLayerGradients(const StackedMlp& mlp, const Capture& capture);

// Activation layer j (0 = the input x, 1..H = hidden post-activations, H+1 = the output) of
// the first model for the chunk `x` ([1, m, in]) whose forward pass is `capture`: [m, width].
at::Tensor LayerActivation(const at::Tensor& x, const Capture& capture, int j);

// d a_{l+1} / d a_l for the first model, [m, width(l+1), width(l)] (layer_jacobians.h):
// diag(act'(z_{l+1})) W_{l+1} for a hidden target, W_{H+1} (broadcast) for the output.
at::Tensor AdjacentJacobian(const StackedMlp& mlp, const Capture& capture, int l);

// A stored model and the number of points a spec denotes for it, checked against the engine's
// per-query limit before anything is allocated.
struct ResolvedModel {
  std::shared_ptr<const Zoo> zoo;  // keeps `model` alive
  const ModelRecord* model = nullptr;
  int64_t n = 0;
};
absl::StatusOr<ResolvedModel> ResolveModel(const Engine& engine, const ModelRef& ref,
                                           const PointSpec& points);

// Rounds g / eps to an integer cell coordinate stored in a uint64 key word (eps > 0).
inline uint64_t CellOf(double g, double eps) {
  return static_cast<uint64_t>(static_cast<int64_t>(std::llround(g / eps)));
}

}  // namespace gradzoo::core::grad_internal

#endif  // GRADZOO_CORE_GRAD_GRAD_INTERNAL_H_
