// Stacked MLP ensembles: K networks of one MlpSpec held as [K, out, in] weight tensors, so a
// whole zoo runs forward and backward as a few batched matmuls (bmm).
//
// Internal to core (includes ATen). Layer l computes z_l = h_{l-1} W_l^T + b_l, and for hidden
// layers h_l = act(z_l); the last layer is linear. Inputs are [K, N, in] (one point set per
// model) and every captured tensor is [K, N, width].
//
// Not thread-safe to mutate; const use from several threads is fine.
#ifndef GRADZOO_CORE_NN_MLP_H_
#define GRADZOO_CORE_NN_MLP_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "core/model.h"

namespace gradzoo::core {

struct StackedMlp {
  MlpSpec spec;
  int64_t k = 0;
  std::vector<at::Tensor> weight;  // per layer [K, out, in]
  std::vector<at::Tensor> bias;    // per layer [K, 1, out] (broadcasts over points)
};

// Pre- and post-activations of every hidden layer; pre.back() is the network output.
struct Capture {
  std::vector<at::Tensor> pre;   // z_1 .. z_L
  std::vector<at::Tensor> post;  // h_1 .. h_{L-1}
};

// PyTorch's nn.Linear default init, U(-1/sqrt(in), 1/sqrt(in)) for weights and biases, drawn
// from Rng::ForStream(seed, kWeightStream) so every model's start is reproducible anywhere.
StackedMlp InitStacked(const MlpSpec& spec, const std::vector<int64_t>& seeds,
                       const at::Device& device);
inline constexpr uint64_t kWeightStream = 7;

// Stacks models of one spec (each given as its layers) onto `device`.
StackedMlp Stack(const MlpSpec& spec, const std::vector<const std::vector<LayerWeights>*>& models,
                 const at::Device& device);

// Copies model `index` back into plain layers.
std::vector<LayerWeights> Unstack(const StackedMlp& mlp, int64_t index);

// Activation and its derivative, elementwise.
at::Tensor Activate(const at::Tensor& z, Activation a);
at::Tensor ActivationDerivative(const at::Tensor& z, Activation a);

// Forward pass of x [K, N, in]; returns the output [K, N, out]. Fills `capture` if non-null.
at::Tensor Forward(const StackedMlp& mlp, const at::Tensor& x, Capture* capture);

// Input gradients of every output at once: [K, N, out, in], J[k,n,o,i] = d y_o / d x_i of model
// k at point n. Computes J = W_L D_{L-1} W_{L-1} ... D_1 W_1 (D = diag act'(z)) from the
// forward pass, in reverse mode when out <= in and forward mode otherwise. `capture` must hold
// the forward pass of the same x. For ReLU nets on large float32 CPU point sets the product
// depends only on each point's activation pattern, so it is formed once per distinct pattern
// (hashed exactly, core/grad/bit_keys.h) and gathered: the same numbers, far less work when
// points share regions (grids, data sets); models whose points are mostly in distinct regions
// take the direct product.
at::Tensor InputJacobian(const StackedMlp& mlp, const Capture& capture);

// Gradients of the per-model MSE losses L_k = mean_{n,o} (y_hat - y)^2, summed over k, w.r.t.
// every weight and bias, by hand (no autograd graph):
//   dz_L = 2 (z_L - y) / (N * out),  dW_l = dz_l^T h_{l-1},  db_l = sum_n dz_l,
//   dz_{l-1} = (dz_l W_l) * act'(z_{l-1}).
// Returns {dW_1, db_1, dW_2, db_2, ...} shaped like the parameters. `capture` and `pred` come
// from Forward(mlp, x, &capture).
std::vector<at::Tensor> MseBackward(const StackedMlp& mlp, const at::Tensor& x,
                                    const at::Tensor& y, const Capture& capture,
                                    const at::Tensor& pred);

// The same for softmax cross-entropy L_k = mean_n -sum_o y log softmax(z_L)_o (y one-hot or
// a distribution): dz_L = (softmax(z_L) - y) / N.
std::vector<at::Tensor> CrossEntropyBackward(const StackedMlp& mlp, const at::Tensor& x,
                                             const at::Tensor& y, const Capture& capture,
                                             const at::Tensor& pred);

// Backpropagates dz_L (the loss gradient w.r.t. the output pre-activations) to every weight
// and bias.
std::vector<at::Tensor> BackwardFromOutput(const StackedMlp& mlp, const at::Tensor& x,
                                           const Capture& capture, at::Tensor dz);

// The same, writing into `grads`: preallocated {dW_1, db_1, dW_2, ...} shaped like the
// parameters (contiguous views into one buffer are fine), so a training loop allocates no
// gradients per step.
void BackwardFromOutputInto(const StackedMlp& mlp, const at::Tensor& x, const Capture& capture,
                            at::Tensor dz, std::vector<at::Tensor>& grads);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_NN_MLP_H_
