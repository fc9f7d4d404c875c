#include "core/grad/grad_internal.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "core/grad/bit_keys.h"
#include "core/util/status_macros.h"

namespace gradzoo::core::grad_internal {

int64_t ChunkFor(int64_t floats_per_point) {
  constexpr int64_t kBudgetFloats = 16 << 20;  // 64 MiB
  return std::clamp<int64_t>(kBudgetFloats / std::max<int64_t>(1, floats_per_point), 256, 65536);
}

at::Tensor SmallInputLayer(const at::Tensor& x, const at::Tensor& wt, const at::Tensor& b) {
  const int64_t m = x.size(0), in = x.size(1), w = wt.size(1);
  at::Tensor z = at::empty({m, w}, at::kFloat);
  const float* xp = x.data_ptr<float>();
  const float* wp = wt.data_ptr<float>();
  const at::Tensor bc = b.contiguous();
  const float* bp = bc.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  at::parallel_for(0, m, 512, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      float* row = zp + p * w;
      std::copy(bp, bp + w, row);
      for (int64_t i = 0; i < in; ++i) {
        const float xi = xp[p * in + i];
        const float* wr = wp + i * w;
        for (int64_t u = 0; u < w; ++u) row[u] += xi * wr[u];  // vectorised axpy
      }
    }
  });
  return z;
}

at::Tensor CollapsedSecondLayer(const StackedMlp& mlp, const at::Tensor& x, const uint64_t* bits,
                                int words) {
  const int64_t m = x.size(0);
  const int in = mlp.spec.input_dim, w1 = mlp.spec.hidden[0], w2 = mlp.spec.hidden[1];
  const int first_words = (w1 + 63) / 64;
  BitKeySet first(first_words);
  std::vector<int64_t> ids(m), reps;
  for (int64_t p = 0; p < m; ++p) {
    ids[p] = first.Insert(bits + p * words);
    if (ids[p] == static_cast<int64_t>(reps.size())) {
      reps.push_back(p);
      if (8 * static_cast<int64_t>(reps.size()) > m) return at::Tensor();
    }
  }
  const at::Tensor wa = mlp.weight[0][0].contiguous(), ba = mlp.bias[0][0][0].contiguous();
  const at::Tensor wb = mlp.weight[1][0].contiguous(), bb = mlp.bias[1][0][0].contiguous();
  const float* w1p = wa.data_ptr<float>();
  const float* b1p = ba.data_ptr<float>();
  const float* w2p = wb.data_ptr<float>();
  const float* b2p = bb.data_ptr<float>();
  // Per pattern: A^T [in, w2] then c [w2].
  const int64_t stride = int64_t{in + 1} * w2;
  std::vector<float> maps(reps.size() * stride);
  std::vector<int> active;
  std::vector<double> acc(in + 1);
  for (size_t r = 0; r < reps.size(); ++r) {
    const uint64_t* pattern = first.key(static_cast<int64_t>(r));
    active.clear();
    for (int u = 0; u < w1; ++u) {
      if ((pattern[u / 64] >> (u % 64)) & 1) active.push_back(u);
    }
    float* map = maps.data() + r * stride;
    for (int v = 0; v < w2; ++v) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int u : active) {
        const double wvu = w2p[static_cast<int64_t>(v) * w1 + u];
        for (int i = 0; i < in; ++i) acc[i] += wvu * w1p[static_cast<int64_t>(u) * in + i];
        acc[in] += wvu * b1p[u];
      }
      for (int i = 0; i < in; ++i) map[static_cast<int64_t>(i) * w2 + v] = static_cast<float>(acc[i]);
      map[static_cast<int64_t>(in) * w2 + v] = static_cast<float>(acc[in] + b2p[v]);
    }
  }
  at::Tensor z = at::empty({m, w2}, at::kFloat);
  const float* xp = x.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  at::parallel_for(0, m, 512, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const float* map = maps.data() + ids[p] * stride;
      float* row = zp + p * w2;
      std::copy(map + static_cast<int64_t>(in) * w2, map + stride, row);
      for (int i = 0; i < in; ++i) {
        const float xi = xp[p * in + i];
        const float* a = map + static_cast<int64_t>(i) * w2;
        for (int v = 0; v < w2; ++v) row[v] += xi * a[v];  // vectorised axpy
      }
    }
  });
  return z;
}

void ChunkPatterns(const StackedMlp& mlp, const at::Tensor& x, uint64_t* out) {
  const MlpSpec& spec = mlp.spec;
  const std::vector<int> offsets = PatternWordOffsets(spec.hidden);
  const int words = offsets.back();
  const int64_t m = x.size(0);
  std::fill(out, out + m * words, 0);
  at::Tensor h = x;
  const bool small_cpu = x.is_cpu() && x.scalar_type() == at::kFloat && spec.input_dim <= kSmallInputs;
  for (size_t l = 0; l < spec.hidden.size(); ++l) {
    at::Tensor z;
    if (l == 0 && small_cpu) {
      z = SmallInputLayer(x.contiguous(), mlp.weight[0][0].t().contiguous(), mlp.bias[0][0][0]);
    } else if (l == 1 && small_cpu && spec.activation == Activation::kRelu) {
      z = CollapsedSecondLayer(mlp, x.contiguous(), out, words);
    }
    if (!z.defined()) z = at::addmm(mlp.bias[l][0][0], h, mlp.weight[l][0].t());  // [m, w]
    at::Tensor zc = z.to(at::kCPU, at::kFloat).contiguous();
    const int w = spec.hidden[l];
    const float* zp = zc.data_ptr<float>();
    const bool tanh = spec.activation == Activation::kTanh;
    at::parallel_for(0, m, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* row = zp + p * w;
        uint64_t* dst = out + p * words + offsets[l];
        if (!tanh) {
          PackPositive(row, w, dst);
          continue;
        }
        for (int base = 0; base < w; base += 64) {
          const int stop = std::min(w, base + 64);
          uint64_t word = 0;
          for (int u = base; u < stop; ++u) {
            word |= static_cast<uint64_t>(ActiveBit(row[u], Activation::kTanh)) << (u - base);
          }
          dst[base / 64] = word;
        }
      }
    });
    if (l + 1 == spec.hidden.size()) break;
    h = spec.activation == Activation::kRelu ? z.clamp_min_(0) : Activate(z, spec.activation);
  }
}

LayerGradients OutputLayerGradients(const StackedMlp& mlp, const Capture& capture) {
  LayerGradients g;
  const int64_t hidden = static_cast<int64_t>(mlp.spec.hidden.size());
  g.post.resize(hidden);
  g.pre.resize(hidden);
  if (hidden == 0) return g;
  const int64_t m = capture.pre.front().size(1);
  const int64_t out = mlp.spec.output_dim;
  at::Tensor post = mlp.weight[hidden][0].unsqueeze(0).expand({m, out, -1});  // [m, out, w]
  for (int64_t l = hidden - 1; l >= 0; --l) {
    g.post[l] = post.contiguous();
    at::Tensor d = ActivationDerivative(capture.pre[l][0], mlp.spec.activation);  // [m, w]
    g.pre[l] = (post * d.unsqueeze(1)).contiguous();
    if (l > 0) {
      const int64_t w = g.pre[l].size(2);
      post = at::mm(g.pre[l].view({m * out, w}), mlp.weight[l][0]).view({m, out, -1});
    }
  }
  return g;
}

at::Tensor LayerActivation(const at::Tensor& x, const Capture& capture, int j) {
  if (j == 0) return x[0];
  const int hidden = static_cast<int>(capture.post.size());
  if (j <= hidden) return capture.post[j - 1][0];
  return capture.pre.back()[0];
}

at::Tensor AdjacentJacobian(const StackedMlp& mlp, const Capture& capture, int l) {
  const int hidden = static_cast<int>(mlp.spec.hidden.size());
  const at::Tensor& w = mlp.weight[l][0];  // [width(l+1), width(l)]
  const int64_t m = capture.pre.front().size(1);
  if (l == hidden) return w.unsqueeze(0).expand({m, -1, -1});
  at::Tensor d = ActivationDerivative(capture.pre[l][0], mlp.spec.activation);  // [m, width(l+1)]
  return d.unsqueeze(2) * w.unsqueeze(0);
}

absl::StatusOr<ResolvedModel> ResolveModel(const Engine& engine, const ModelRef& ref,
                                           const PointSpec& points) {
  ResolvedModel r;
  ASSIGN_OR_RETURN(auto found, engine.GetModel(ref));
  r.zoo = std::move(found.first);
  r.model = found.second;
  ASSIGN_OR_RETURN(r.n, CountPoints(points, r.model->spec.input_dim,
                                    engine.options().max_points_per_query));
  return r;
}

}  // namespace gradzoo::core::grad_internal
