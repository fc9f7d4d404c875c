// Internals of the network embedder (core/embed/embedder.h explains the method): the encoder /
// decoder network, model gradients at shared points, unique-gradient groups, cloze masks and
// the two baselines. Includes ATen; only core/embed/*.cc and core tests include it.
#ifndef GRADZOO_CORE_EMBED_EMBED_INTERNAL_H_
#define GRADZOO_CORE_EMBED_EMBED_INTERNAL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model.h"
#include "core/util/random.h"

namespace gradzoo::core::embed_internal {

// Parameters in order: phi (3 layers), rho (2), psi (3); each a weight [out, in] then bias [out].
// With the gradient path, then: V [R, G] (no bias), U1 [hidden, in] + bias, U2 [hidden * R,
// hidden] + bias, and rho's first layer reads 2 x hidden.
//
// The gradient path gives the encoder, per point, hidden features LINEAR in the gradient:
//   q(x, g) = U(x) (V g),  U(x) = reshape(U2 relu(U1 x + b1) + b2) [hidden, R], R = min(G, 16),
// so that their mean over the points is a set of projections of the gradient field onto
// learned functions of x (sum_n U(x_n) V g_n ~ integral U(x) V g(x) dx): what integrating a
// gradient field takes, and what a ReLU MLP of (x, g) only approximates. The encoding is then
// rho(concat(mean_n phi(feat_n), mean_n q(x_n, g_n))).
struct EncoderNet {
  static constexpr int kMaxGradientRank = 16;
  int in = 0, out = 0, embedding = 0, hidden = 0;
  bool gradient_path = false;
  std::vector<at::Tensor> params;

  int GradDim() const { return in * out; }
  int GradRank() const { return GradDim() < kMaxGradientRank ? GradDim() : kMaxGradientRank; }
  int FeatureDim() const { return in + GradDim() + 1; }
  // Weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from Rng::ForStream(seed, 11), except
  // V, which starts as the identity when it is square (G <= 16).
  static EncoderNet Init(int in, int out, int embedding, int hidden, int64_t seed,
                         bool gradient_path = true);
  // feat [B, N, FeatureDim()] -> e [B, embedding]: rho(mean_n phi(feat_n)) (with the gradient
  // path: rho(concat(mean_n phi(feat_n), mean_n q(x_n, g_n)))).
  at::Tensor Encode(const at::Tensor& feat) const;
  // The same with the means over the visible points only (mask [B, N], 1 = masked):
  // sum_n (1 - m_n) f_n / max(1, sum_n (1 - m_n)).
  at::Tensor Encode(const at::Tensor& feat, const at::Tensor& mask) const;
  // x [B, N, in] (scaled), e [B, embedding] -> predicted scaled gradients [B, N, GradDim()].
  at::Tensor Decode(const at::Tensor& x, const at::Tensor& e) const;

  int64_t ParamCount() const;
};

// [B, N, in + G + 1]: (x, g * (1 - m), m), x broadcast from [N, in] when it has 2 dims.
at::Tensor Features(const at::Tensor& x, const at::Tensor& g, const at::Tensor& mask);

// Sub-networks (seed 003: "apply the same method within the layers of a larger model").
// Layers are numbered 0 = the input x, 1..H = the hidden layers' activations h_l, H+1 = the
// output. Sub-network (from, to), 0 <= from < to <= H+1, is the map from h_from (x when
// from = 0) to z_to, layer to's PRE-activation (the network output when to = H+1):
//   z_to = W_to act(... act(W_{from+1} h_from + b_{from+1}) ...) + b_to,
// itself an MLP with a linear last layer, so (0, H+1) is the whole network.
// Width of layer l of `spec` (0 = input, H+1 = output).
int LayerWidth(const MlpSpec& spec, int layer);
// Resolves to_layer 0 (= the output, H+1) and checks 0 <= from < to <= H+1;
// INVALID_ARGUMENT naming `from_field` / `to_field` otherwise. Returns {from, to}.
absl::StatusOr<std::pair<int, int>> ResolveLayers(const MlpSpec& spec, int from, int to,
                                                  const char* from_field,
                                                  const char* to_field);
// The sub-network (from, to) of m as a model of its own (spec and a copy of its layers).
ModelRecord SubModel(const ModelRecord& m, int from, int to);

// Points and input Jacobians of the sub-networks (from, to) of `models` (to 0 = each model's
// output; the caller has checked that every model has those layers and the same sub-network
// widths), at the full networks' input points x [N, in]:
// returns {points [M, N, width(from)]: h_from of each model at x (x itself when from = 0);
// gradients [M, N, width(to) * width(from)]: d z_to / d h_from, row o*in + i}, CPU float.
// Forward pass and Jacobian from core/nn/mlp.h, per architecture.
// With `outputs`, also *outputs = z_to of each model at its points [M, N, width(to)], CPU float.
std::pair<at::Tensor, at::Tensor> SubnetGradients(const std::vector<const ModelRecord*>& models,
                                                  int from, int to, const at::Tensor& x,
                                                  const at::Device& device,
                                                  at::Tensor* outputs = nullptr);

// The function-distance term (EmbedderOptions::distance_weight). From the models' outputs at
// their points, y [B, N, O]: the squared distances between their centred functions,
//   D_ij = mean_{n, o} ((y_ino - mean_n y_i.o) - (y_jno - mean_n y_j.o))^2,
// over their mean over all B x B entries (all zero when every D_ij is 0). [B, B].
at::Tensor FunctionDistances(const at::Tensor& y);
// mean_ij (E_ij / mean E - target_ij)^2 with E_ij = |e_i - e_j|^2 of the embeddings e [B, E]
// (E / mean E taken as 0 when every E_ij is 0), computed in double, returned in e's type.
// Differentiable in e.
at::Tensor DistanceLoss(const at::Tensor& e, const at::Tensor& target);

// Group id (0..groups-1, in order of first appearance) of each of n gradients g [n, dim]:
// gradients whose entries agree to within rel_tol * max |g| fall in one grid cell
// round(g / (rel_tol * max |g|)), as core/grad/regions.h does for smooth activations.
std::vector<int> UniqueGradientGroups(const float* g, int64_t n, int dim, int* groups,
                                      double rel_tol = 1e-5);

// Masks each group with probability `rate`; with >= 2 groups at least one is masked and one
// stays visible. Returns a mask per point (1 = masked). One group: nothing is masked.
std::vector<float> DrawMask(const std::vector<int>& group, int groups, double rate, Rng& rng);

// Span mask (EmbedderOptions::mask_shape kSpans): a direction u ~ N(0, I) over the scaled
// inputs x [n, in] (each in [-1, 1]), the points' projections t_i = u.x_i / |u| spanning
// [lo, hi], a slab [s, s + w (hi - lo)] with w ~ U[0, min(2 rate, 1)) and s uniform where the
// slab fits; every group with a point in the slab is masked (so a slab in 1-D masks a run of
// neighbouring linear pieces). With >= 2 groups at least one is masked and one stays visible.
// One group: nothing is masked.
std::vector<float> DrawSpanMask(const std::vector<int>& group, int groups, const float* x,
                                int in, double rate, Rng& rng);

// Sums of squared errors over the masked points of one model (x [n, in], g [n, dim]):
// predicting the mean visible gradient; and interpolating between the nearest visible points
// (embedder.h gives the rule). Returns {sse_mean, sse_interp}; entries counted = masked * dim.
std::pair<double, double> BaselineSse(const float* x, const float* g, const float* mask,
                                      int64_t n, int in, int dim);

// Uniform points on `domain` (per input), [n, in] original units.
std::vector<float> SamplePoints(const std::vector<std::pair<double, double>>& domain, int64_t n,
                                Rng& rng);
// Latin hypercube points on `domain`, [n, in] original units: for each input k an independent
// random permutation pi_k of 0..n-1 and x_ik = lo_k + (hi_k - lo_k) (pi_k(i) + u_ik) / n with
// u_ik ~ U[0, 1): every point is still uniform on the domain, but each input's n values fall
// one in each of n equal strata, so a mean over the points varies far less between samples.
std::vector<float> SampleStratified(const std::vector<std::pair<double, double>>& domain,
                                    int64_t n, Rng& rng);
// Maps x to [-1, 1] per input.
at::Tensor ScaleInputs(const at::Tensor& x, const std::vector<std::pair<double, double>>& domain);

}  // namespace gradzoo::core::embed_internal

#endif  // GRADZOO_CORE_EMBED_EMBED_INTERNAL_H_
