// Tensor plumbing shared by core/analysis: double-precision stacked networks, the activations
// a LayerRef names, gradients backpropagated between any two layer positions, and forward
// Jacobians d layer / d x. Internal to core (includes ATen). Tensors take the dtype of the
// stacked weights (float64 from StackDouble, float32 from core/nn's Stack) and are batched over
// K stacked models: activations [K, N, width].
//
// Backprop from position p down to q < p (positions as in layers.h) multiplies a row gradient
// g [K, N, R, width_p] by act'(z_l) when stepping from h_l to z_l and by W_l when stepping from
// z_l to h_{l-1} (or x). For ReLU act' is the 0/1 mask of the forward pass, so the result is
// exact (no autograd graph): tests compare with LibTorch autograd.
//
// Not thread-safe to mutate; const use from several threads is fine.
#ifndef GRADZOO_CORE_ANALYSIS_LAYER_TENSORS_H_
#define GRADZOO_CORE_ANALYSIS_LAYER_TENSORS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "core/analysis/layers.h"
#include "core/model.h"
#include "core/nn/mlp.h"

namespace gradzoo::core {

// Stacks `models` (all of `spec`) on `device` in float64.
StackedMlp StackDouble(const MlpSpec& spec,
                       const std::vector<const std::vector<LayerWeights>*>& models,
                       const at::Device& device);

// The points of one chunk as [K, m, in] of `dtype`: `points` holds either one shared set or one
// set per model, each row-major [n, in]; rows [start, start + m) are taken.
at::Tensor ChunkInputs(const std::vector<const std::vector<float>*>& points, int64_t k,
                       int64_t start, int64_t m, int in, const at::Device& device,
                       at::ScalarType dtype = at::kDouble);

// Activations at `ref` ([K, N, width]) from a forward pass of x with capture.
at::Tensor ActivationAt(const StackedMlp& mlp, const at::Tensor& x, const Capture& capture,
                        const LayerRef& ref);

// Backpropagates g ([K, N, R, width at position `from`]) to position `to` <= `from`; returns
// [K, N, R, width at `to`].
at::Tensor Backprop(const StackedMlp& mlp, const Capture& capture, at::Tensor g, int from,
                    int to);

// Gradients of outputs `outputs` w.r.t. the activations at each position in `positions`
// (sorted descending, all < the output's), in one reverse sweep: one [K, N, R, width] tensor per
// position, in the order given.
std::vector<at::Tensor> OutputGradientsAt(const StackedMlp& mlp, const Capture& capture,
                                          const std::vector<int64_t>& outputs,
                                          const std::vector<int>& positions);

// Forward Jacobians d a_p / d x ([K, N, width_p, in]) at each position in `positions` (sorted
// ascending), in one forward sweep. Position 0 gives the identity.
std::vector<at::Tensor> InputJacobiansAt(const StackedMlp& mlp, const Capture& capture,
                                         const std::vector<int>& positions);

// Bytes of float64 activations one point of one model needs for a forward capture.
int64_t CaptureBytesPerPoint(const MlpSpec& spec);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_LAYER_TENSORS_H_
