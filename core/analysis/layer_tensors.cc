#include "core/analysis/layer_tensors.h"

#include <algorithm>

namespace gradzoo::core {

StackedMlp StackDouble(const MlpSpec& spec,
                       const std::vector<const std::vector<LayerWeights>*>& models,
                       const at::Device& device) {
  StackedMlp m = Stack(spec, models, at::kCPU);
  for (at::Tensor& w : m.weight) w = w.to(device, at::kDouble);
  for (at::Tensor& b : m.bias) b = b.to(device, at::kDouble);
  return m;
}

at::Tensor ChunkInputs(const std::vector<const std::vector<float>*>& points, int64_t k,
                       int64_t start, int64_t m, int in, const at::Device& device,
                       at::ScalarType dtype) {
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat);
  if (points.size() == 1) {
    at::Tensor all = at::from_blob(const_cast<float*>(points[0]->data()),
                                   {static_cast<int64_t>(points[0]->size()) / in, in}, f32);
    return all.narrow(0, start, m).to(device, dtype).unsqueeze(0).expand({k, m, in});
  }
  std::vector<at::Tensor> per;
  per.reserve(points.size());
  for (const std::vector<float>* p : points) {
    at::Tensor all =
        at::from_blob(const_cast<float*>(p->data()), {static_cast<int64_t>(p->size()) / in, in}, f32);
    per.push_back(all.narrow(0, start, m));
  }
  return at::stack(per).to(device, dtype);
}

at::Tensor ActivationAt(const StackedMlp& mlp, const at::Tensor& x, const Capture& capture,
                        const LayerRef& ref) {
  const int layers = mlp.spec.NumLayers();
  if (ref.index == 0) return x;
  if (ref.index >= layers) return capture.pre.back();
  return ref.side == LayerSide::kPre ? capture.pre[ref.index - 1] : capture.post[ref.index - 1];
}

at::Tensor Backprop(const StackedMlp& mlp, const Capture& capture, at::Tensor g, int from,
                    int to) {
  const int64_t k = g.size(0), n = g.size(1), r = g.size(2);
  for (int p = from; p > to; --p) {
    if (p % 2 == 0) {
      // h_l -> z_l: scale by act'(z_l).
      const int l = p / 2;
      at::Tensor d = ActivationDerivative(capture.pre[l - 1], mlp.spec.activation);  // [K, N, w]
      g = g * d.unsqueeze(2);
    } else {
      // z_l -> h_{l-1}: multiply by W_l [K, w_l, w_{l-1}].
      const int l = (p + 1) / 2;
      const int64_t w = g.size(3);
      g = at::bmm(g.reshape({k, n * r, w}), mlp.weight[l - 1]).view({k, n, r, -1});
    }
  }
  return g;
}

std::vector<at::Tensor> OutputGradientsAt(const StackedMlp& mlp, const Capture& capture,
                                          const std::vector<int64_t>& outputs,
                                          const std::vector<int>& positions) {
  const int layers = mlp.spec.NumLayers();
  const int64_t k = mlp.k;
  const int64_t n = capture.pre.back().size(1);
  const int64_t r = static_cast<int64_t>(outputs.size());
  const int64_t out = mlp.spec.output_dim;
  // d y_o / d y = e_o: rows of the identity, [K, N, R, out].
  at::Tensor idx = at::tensor(outputs, at::kLong);
  at::Tensor seed = at::eye(out, mlp.weight[0].options())
                        .index_select(0, idx.to(mlp.weight[0].device()));
  at::Tensor g = seed.unsqueeze(0).unsqueeze(0).expand({k, n, r, out});
  int at_pos = 2 * layers - 1;
  std::vector<at::Tensor> result;
  result.reserve(positions.size());
  for (int p : positions) {
    g = Backprop(mlp, capture, g, at_pos, p);
    at_pos = p;
    result.push_back(g);
  }
  return result;
}

std::vector<at::Tensor> InputJacobiansAt(const StackedMlp& mlp, const Capture& capture,
                                         const std::vector<int>& positions) {
  const int64_t k = mlp.k;
  const int64_t n = capture.pre.front().size(1);
  const int64_t in = mlp.spec.input_dim;
  const at::TensorOptions opts = mlp.weight[0].options();
  std::vector<at::Tensor> result;
  at::Tensor a = at::eye(in, opts).unsqueeze(0).unsqueeze(0).expand({k, n, in, in});
  int at_pos = 0;
  for (int p : positions) {
    for (int q = at_pos + 1; q <= p; ++q) {
      if (q % 2 == 1) {
        // h_{l-1} -> z_l: left-multiply by W_l: fold N * in into columns.
        const int l = (q + 1) / 2;
        const int64_t w = a.size(2);
        at::Tensor cols = a.permute({0, 2, 1, 3}).reshape({k, w, n * in});
        a = at::bmm(mlp.weight[l - 1], cols).view({k, -1, n, in}).permute({0, 2, 1, 3});
      } else {
        // z_l -> h_l: scale rows by act'(z_l).
        const int l = q / 2;
        at::Tensor d = ActivationDerivative(capture.pre[l - 1], mlp.spec.activation);
        a = a * d.unsqueeze(3);
      }
    }
    at_pos = p;
    result.push_back(a.contiguous());
  }
  return result;
}

int64_t CaptureBytesPerPoint(const MlpSpec& spec) {
  int64_t widths = spec.input_dim + spec.output_dim;
  for (int h : spec.hidden) widths += 2 * int64_t{h};
  return 8 * widths;
}

}  // namespace gradzoo::core
