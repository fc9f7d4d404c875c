#include "core/nn/mlp.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "core/grad/bit_keys.h"
#include "core/util/random.h"

namespace gradzoo::core {

StackedMlp InitStacked(const MlpSpec& spec, const std::vector<int64_t>& seeds,
                       const at::Device& device) {
  StackedMlp m;
  m.spec = spec;
  m.k = static_cast<int64_t>(seeds.size());
  const std::vector<int> w = spec.Widths();
  std::vector<Rng> rngs;
  rngs.reserve(seeds.size());
  for (int64_t s : seeds) rngs.push_back(Rng::ForStream(static_cast<uint64_t>(s), kWeightStream));
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    const int in = w[l], out = w[l + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    at::Tensor wt = at::empty({m.k, out, in}, at::kFloat);
    at::Tensor bt = at::empty({m.k, 1, out}, at::kFloat);
    float* wp = wt.data_ptr<float>();
    float* bp = bt.data_ptr<float>();
    for (int64_t k = 0; k < m.k; ++k) {
      for (int64_t j = 0; j < int64_t{out} * in; ++j) {
        wp[k * out * in + j] = static_cast<float>(rngs[k].Uniform(-bound, bound));
      }
      for (int j = 0; j < out; ++j) bp[k * out + j] = static_cast<float>(rngs[k].Uniform(-bound, bound));
    }
    m.weight.push_back(wt.to(device));
    m.bias.push_back(bt.to(device));
  }
  return m;
}

StackedMlp Stack(const MlpSpec& spec, const std::vector<const std::vector<LayerWeights>*>& models,
                 const at::Device& device) {
  StackedMlp m;
  m.spec = spec;
  m.k = static_cast<int64_t>(models.size());
  const std::vector<int> w = spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    const int in = w[l], out = w[l + 1];
    at::Tensor wt = at::empty({m.k, out, in}, at::kFloat);
    at::Tensor bt = at::empty({m.k, 1, out}, at::kFloat);
    for (int64_t k = 0; k < m.k; ++k) {
      const LayerWeights& lw = (*models[k])[l];
      std::copy(lw.weight.begin(), lw.weight.end(), wt.data_ptr<float>() + k * out * in);
      std::copy(lw.bias.begin(), lw.bias.end(), bt.data_ptr<float>() + k * out);
    }
    m.weight.push_back(wt.to(device));
    m.bias.push_back(bt.to(device));
  }
  return m;
}

std::vector<LayerWeights> Unstack(const StackedMlp& mlp, int64_t index) {
  std::vector<LayerWeights> layers;
  for (size_t l = 0; l < mlp.weight.size(); ++l) {
    at::Tensor w = mlp.weight[l][index].to(at::kCPU, at::kFloat).contiguous();
    at::Tensor b = mlp.bias[l][index].to(at::kCPU, at::kFloat).contiguous();
    LayerWeights lw;
    lw.out = static_cast<int>(w.size(0));
    lw.in = static_cast<int>(w.size(1));
    lw.weight.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    lw.bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + b.numel());
    layers.push_back(std::move(lw));
  }
  return layers;
}

at::Tensor Activate(const at::Tensor& z, Activation a) {
  switch (a) {
    case Activation::kRelu:
      return at::relu(z);
    case Activation::kGelu:
      return at::gelu(z);
    case Activation::kTanh:
      return at::tanh(z);
  }
  return z;
}

at::Tensor ActivationDerivative(const at::Tensor& z, Activation a) {
  switch (a) {
    case Activation::kRelu:
      return (z > 0).to(z.scalar_type());
    case Activation::kGelu: {
      // d/dz [z Phi(z)] = Phi(z) + z phi(z).
      constexpr double kInvSqrt2 = 0.70710678118654752440;
      constexpr double kInvSqrt2Pi = 0.39894228040143267794;
      at::Tensor cdf = 0.5 * (1.0 + at::erf(z * kInvSqrt2));
      at::Tensor pdf = kInvSqrt2Pi * at::exp(-0.5 * z * z);
      return cdf + z * pdf;
    }
    case Activation::kTanh: {
      at::Tensor t = at::tanh(z);
      return 1.0 - t * t;
    }
  }
  return at::ones_like(z);
}

at::Tensor Forward(const StackedMlp& mlp, const at::Tensor& x, Capture* capture) {
  at::Tensor h = x;
  const size_t layers = mlp.weight.size();
  for (size_t l = 0; l < layers; ++l) {
    // baddbmm: bias + h @ W^T in one kernel.
    at::Tensor z = at::baddbmm(mlp.bias[l], h, mlp.weight[l].transpose(1, 2));
    if (capture != nullptr) capture->pre.push_back(z);
    if (l + 1 < layers) {
      h = Activate(z, mlp.spec.activation);
      if (capture != nullptr) capture->post.push_back(h);
    } else {
      h = z;
    }
  }
  return h;
}

namespace {

// The analytic product for the n points of `pre` (hidden pre-activations, [K, n, w] each).
at::Tensor DenseInputJacobian(const StackedMlp& mlp, const std::vector<at::Tensor>& pre,
                              int64_t n) {
  const int64_t layers = static_cast<int64_t>(mlp.weight.size());
  const int64_t k = mlp.k;
  const int64_t in = mlp.spec.input_dim;
  const int64_t out = mlp.spec.output_dim;
  if (out <= in) {
    // Reverse mode: G starts as W_L [K, out, h]; per hidden layer (top down) scale columns by
    // act'(z_l) per point, then multiply by W_l.
    at::Tensor g = mlp.weight[layers - 1].unsqueeze(1).expand({k, n, out, -1});
    for (int64_t l = layers - 2; l >= 0; --l) {
      at::Tensor d = ActivationDerivative(pre[l], mlp.spec.activation);  // [K, N, h]
      g = g * d.unsqueeze(2);                                                    // [K, N, out, h]
      const int64_t h = g.size(3);
      g = at::bmm(g.reshape({k, n * out, h}), mlp.weight[l]).view({k, n, out, -1});
    }
    return g.contiguous();
  }
  // Forward mode: J starts as W_1 [K, h, in]; per hidden layer scale rows by act'(z_l), then
  // left-multiply by W_{l+1}. Cost ~ N * in * h^2, cheaper when in < out.
  at::Tensor j = mlp.weight[0].unsqueeze(1).expand({k, n, -1, in});
  for (int64_t l = 0; l + 1 < layers; ++l) {
    at::Tensor d = ActivationDerivative(pre[l], mlp.spec.activation);  // [K, N, h]
    j = j * d.unsqueeze(3);                                                    // [K, N, h, in]
    const int64_t h = j.size(2);
    // W_{l+1} [K, h', h] @ J [K, N, h, in]: fold N*in into columns.
    at::Tensor cols = j.permute({0, 2, 1, 3}).reshape({k, h, n * in});
    j = at::bmm(mlp.weight[l + 1], cols).view({k, -1, n, in}).permute({0, 2, 1, 3});
  }
  return j.contiguous();
}

// ReLU fast path: J is a function of the activation pattern, so the product is formed once per
// distinct pattern (hashed exactly, core/grad/bit_keys.h) and gathered to the points. Returns an
// undefined tensor for a model whose patterns are mostly distinct (no gain).
at::Tensor ReluJacobianByPattern(const StackedMlp& mlp, const Capture& capture, int64_t model) {
  const std::vector<int>& hidden = mlp.spec.hidden;
  const std::vector<int> offsets = PatternWordOffsets(hidden);
  const int words = offsets.back();
  const int64_t n = capture.pre.front().size(1);
  std::vector<at::Tensor> z(hidden.size());
  for (size_t l = 0; l < hidden.size(); ++l) z[l] = capture.pre[l][model].contiguous();
  std::vector<uint64_t> bits(static_cast<size_t>(n) * words, 0);
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (size_t l = 0; l < hidden.size(); ++l) {
      const int w = hidden[l];
      const float* zp = z[l].data_ptr<float>();
      for (int64_t p = begin; p < end; ++p) {
        PackPositive(zp + p * w, w, bits.data() + p * words + offsets[l]);
      }
    }
  });
  BitKeySet patterns(words);
  at::Tensor ids = at::empty({n}, at::kLong);
  int64_t* idp = ids.data_ptr<int64_t>();
  std::vector<int64_t> reps;
  for (int64_t p = 0; p < n; ++p) {
    idp[p] = patterns.Insert(bits.data() + p * words);
    if (idp[p] == static_cast<int64_t>(reps.size())) {
      reps.push_back(p);
      if (2 * static_cast<int64_t>(reps.size()) > n) return at::Tensor();
    }
  }
  const at::Device device = capture.pre.front().device();
  at::Tensor rep_index = at::from_blob(reps.data(), {static_cast<int64_t>(reps.size())}, at::kLong).to(device);
  StackedMlp one;  // model `model` alone, as views
  one.spec = mlp.spec;
  one.k = 1;
  for (size_t l = 0; l < mlp.weight.size(); ++l) one.weight.push_back(mlp.weight[l].narrow(0, model, 1));
  std::vector<at::Tensor> sub;
  for (size_t l = 0; l < hidden.size(); ++l) {
    sub.push_back(capture.pre[l].narrow(0, model, 1).index_select(1, rep_index));
  }
  at::Tensor per_pattern = DenseInputJacobian(one, sub, static_cast<int64_t>(reps.size()));
  return per_pattern.index_select(1, ids.to(device));
}

}  // namespace

at::Tensor InputJacobian(const StackedMlp& mlp, const Capture& capture) {
  const int64_t n = capture.pre.front().size(1);
  // Hashing pays off on large point sets of ReLU nets (grids, data sets: many points share a
  // region); small ones and smooth activations take the direct product.
  constexpr int64_t kMinPointsForPatterns = 4096;
  if (mlp.spec.activation == Activation::kRelu && !mlp.spec.hidden.empty() &&
      n >= kMinPointsForPatterns && capture.pre.front().is_cpu() &&
      capture.pre.front().scalar_type() == at::kFloat) {
    std::vector<at::Tensor> per_model;
    for (int64_t m = 0; m < mlp.k; ++m) {
      at::Tensor j = ReluJacobianByPattern(mlp, capture, m);
      if (!j.defined()) {
        std::vector<at::Tensor> pre;
        for (size_t l = 0; l + 1 < capture.pre.size(); ++l) pre.push_back(capture.pre[l].narrow(0, m, 1));
        StackedMlp one;
        one.spec = mlp.spec;
        one.k = 1;
        for (const at::Tensor& w : mlp.weight) one.weight.push_back(w.narrow(0, m, 1));
        j = DenseInputJacobian(one, pre, n);
      }
      per_model.push_back(j);
    }
    return per_model.size() == 1 ? per_model.front().contiguous() : at::cat(per_model, 0);
  }
  std::vector<at::Tensor> pre(capture.pre.begin(), capture.pre.end() - 1);
  return DenseInputJacobian(mlp, pre, n);
}

std::vector<at::Tensor> BackwardFromOutput(const StackedMlp& mlp, const at::Tensor& x,
                                           const Capture& capture, at::Tensor dz) {
  std::vector<at::Tensor> grads;
  for (size_t l = 0; l < mlp.weight.size(); ++l) {
    grads.push_back(at::empty_like(mlp.weight[l], at::MemoryFormat::Contiguous));
    grads.push_back(at::empty_like(mlp.bias[l], at::MemoryFormat::Contiguous));
  }
  BackwardFromOutputInto(mlp, x, capture, std::move(dz), grads);
  return grads;
}

void BackwardFromOutputInto(const StackedMlp& mlp, const at::Tensor& x, const Capture& capture,
                            at::Tensor dz, std::vector<at::Tensor>& grads) {
  const int64_t layers = static_cast<int64_t>(mlp.weight.size());
  for (int64_t l = layers - 1; l >= 0; --l) {
    const at::Tensor& h_prev = l == 0 ? x : capture.post[l - 1];
    at::bmm_out(grads[2 * l], dz.transpose(1, 2), h_prev);  // [K, out, in]
    at::sum_out(grads[2 * l + 1], dz, {1}, /*keepdim=*/true);  // [K, 1, out]
    if (l > 0) {
      at::Tensor back = at::bmm(dz, mlp.weight[l]);
      // ReLU: one masked pass (relu'(z) = [z > 0]) instead of building the derivative.
      dz = mlp.spec.activation == Activation::kRelu
               ? at::threshold_backward(back, capture.pre[l - 1], 0)
               : back.mul_(ActivationDerivative(capture.pre[l - 1], mlp.spec.activation));
    }
  }
}

std::vector<at::Tensor> MseBackward(const StackedMlp& mlp, const at::Tensor& x,
                                    const at::Tensor& y, const Capture& capture,
                                    const at::Tensor& pred) {
  const double scale = 2.0 / static_cast<double>(pred.size(1) * pred.size(2));
  return BackwardFromOutput(mlp, x, capture, (pred - y) * scale);
}

std::vector<at::Tensor> CrossEntropyBackward(const StackedMlp& mlp, const at::Tensor& x,
                                             const at::Tensor& y, const Capture& capture,
                                             const at::Tensor& pred) {
  const double scale = 1.0 / static_cast<double>(pred.size(1));
  return BackwardFromOutput(mlp, x, capture, (at::softmax(pred, 2) - y) * scale);
}

}  // namespace gradzoo::core
