#include "core/grad/grad_internal.h"

#include <ATen/Parallel.h>

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/grad/bit_keys.h"
#include "core/util/status_macros.h"

namespace gradzoo::core::grad_internal {

namespace {

// y[0..n) += a * x[0..n), four floats at a time (SSE2 is the x86-64 baseline; -O2 leaves the
// plain loop scalar). Each y[k] gets the same single rounding of a * x[k] + y[k] either way.
inline void Axpy(float a, const float* x, float* y, int n) {
  int k = 0;
#if defined(__SSE2__)
  const __m128 av = _mm_set1_ps(a);
  for (; k + 4 <= n; k += 4) {
    _mm_storeu_ps(y + k, _mm_add_ps(_mm_loadu_ps(y + k), _mm_mul_ps(av, _mm_loadu_ps(x + k))));
  }
#endif
  for (; k < n; ++k) y[k] += a * x[k];
}

// The same in float64.
inline void Axpy(double a, const double* x, double* y, int n) {
  int k = 0;
#if defined(__SSE2__)
  const __m128d av = _mm_set1_pd(a);
  for (; k + 2 <= n; k += 2) {
    _mm_storeu_pd(y + k, _mm_add_pd(_mm_loadu_pd(y + k), _mm_mul_pd(av, _mm_loadu_pd(x + k))));
  }
#endif
  for (; k < n; ++k) y[k] += a * x[k];
}

}  // namespace

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
        Axpy(xi, wr, row, static_cast<int>(w));
      }
    }
  });
  return z;
}

struct SecondLayerMaps::Impl {
  int in = 0, w1 = 0, w2 = 0;
  int64_t stride = 0;         // (in + 1) * w2 floats per map: A^T [in, w2] then c [w2]
  int64_t max_maps = 0;       // persistent maps kept at most (memory budget)
  std::vector<double> w2t;    // W_2^T [w1, w2]
  std::vector<double> w1b;    // [w1, in + 1]: row u of W_1, then b_1[u]
  std::vector<double> b2;     // [w2]
  std::vector<double> acc;    // scratch [(in + 1) * w2]
  BitKeySet keys{1};
  std::vector<float> maps;    // keys.size() * stride

  explicit Impl(const StackedMlp& mlp) {
    in = mlp.spec.input_dim;
    w1 = mlp.spec.hidden[0];
    w2 = mlp.spec.hidden[1];
    stride = int64_t{in + 1} * w2;
    constexpr int64_t kBudgetFloats = 16 << 20;  // 64 MiB of maps
    max_maps = kBudgetFloats / stride;
    keys = BitKeySet((w1 + 63) / 64);
    const at::Tensor wa = mlp.weight[0][0].to(at::kCPU, at::kFloat).contiguous();
    const at::Tensor ba = mlp.bias[0][0][0].to(at::kCPU, at::kFloat).contiguous();
    const at::Tensor wb = mlp.weight[1][0].to(at::kCPU, at::kFloat).contiguous();
    const at::Tensor bb = mlp.bias[1][0][0].to(at::kCPU, at::kFloat).contiguous();
    const float* w1p = wa.data_ptr<float>();
    const float* b1p = ba.data_ptr<float>();
    const float* w2p = wb.data_ptr<float>();
    const float* b2p = bb.data_ptr<float>();
    w2t.resize(static_cast<size_t>(w1) * w2);
    for (int v = 0; v < w2; ++v) {
      for (int u = 0; u < w1; ++u) w2t[static_cast<size_t>(u) * w2 + v] = w2p[static_cast<int64_t>(v) * w1 + u];
    }
    w1b.resize(static_cast<size_t>(w1) * (in + 1));
    for (int u = 0; u < w1; ++u) {
      for (int i = 0; i < in; ++i) w1b[static_cast<size_t>(u) * (in + 1) + i] = w1p[static_cast<int64_t>(u) * in + i];
      w1b[static_cast<size_t>(u) * (in + 1) + in] = b1p[u];
    }
    b2.assign(b2p, b2p + w2);
    acc.resize(stride);
  }

  // The map of first-layer pattern `pattern` into `map`: for each (i, v) the float64 sum over
  // the active units u, in increasing order, of W_2[v, u] * W_1[u, i] (b_1[u] for i = in).
  void Build(const uint64_t* pattern, float* map) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int u = 0; u < w1; ++u) {
      if (!((pattern[u / 64] >> (u % 64)) & 1)) continue;
      const double* wt = w2t.data() + static_cast<size_t>(u) * w2;
      for (int i = 0; i <= in; ++i) {
        const double a = w1b[static_cast<size_t>(u) * (in + 1) + i];
        Axpy(a, wt, acc.data() + static_cast<size_t>(i) * w2, w2);
      }
    }
    for (int64_t k = 0; k < static_cast<int64_t>(in) * w2; ++k) map[k] = static_cast<float>(acc[k]);
    for (int v = 0; v < w2; ++v) {
      map[static_cast<int64_t>(in) * w2 + v] = static_cast<float>(acc[static_cast<size_t>(in) * w2 + v] + b2[v]);
    }
  }
};

SecondLayerMaps::SecondLayerMaps(const StackedMlp& mlp, int64_t max_maps)
    : impl_(std::make_unique<Impl>(mlp)) {
  if (max_maps >= 0) impl_->max_maps = max_maps;
}
SecondLayerMaps::~SecondLayerMaps() = default;
int64_t SecondLayerMaps::size() const { return impl_->keys.size(); }

at::Tensor CollapsedSecondLayer(const StackedMlp& mlp, const at::Tensor& x, const uint64_t* bits,
                                int words, SecondLayerMaps* maps) {
  std::unique_ptr<SecondLayerMaps> local_maps;
  if (maps == nullptr) {  // chunk-local maps only
    local_maps = std::make_unique<SecondLayerMaps>(mlp, 0);
    maps = local_maps.get();
  }
  SecondLayerMaps::Impl& c = *maps->impl_;
  const int64_t m = x.size(0);
  const int in = c.in, w2 = c.w2;
  const int64_t stride = c.stride;
  // ids >= 0: persistent maps; -1 - j: chunk-local map j. Maps are built after the scan, so a
  // chunk that falls back to the GEMM builds only its new persistent maps.
  BitKeySet local(c.keys.words());
  std::vector<int64_t> ids(m);
  const int64_t old_size = c.keys.size();
  for (int64_t p = 0; p < m; ++p) {
    const uint64_t* key = bits + p * words;
    int64_t id = c.keys.Find(key);
    if (id < 0 && c.keys.size() < c.max_maps) id = c.keys.Insert(key);
    if (id < 0) {
      id = -1 - local.Insert(key);
      if (8 * local.size() > m) break;
    }
    ids[p] = id;
  }
  c.maps.resize(static_cast<size_t>(c.keys.size()) * stride);
  for (int64_t r = old_size; r < c.keys.size(); ++r) c.Build(c.keys.key(r), c.maps.data() + r * stride);
  if (8 * local.size() > m) return at::Tensor();
  std::vector<float> local_maps_data(static_cast<size_t>(local.size()) * stride);
  for (int64_t j = 0; j < local.size(); ++j) c.Build(local.key(j), local_maps_data.data() + j * stride);
  at::Tensor z = at::empty({m, w2}, at::kFloat);
  const float* xp = x.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  const float* persistent = c.maps.data();
  const float* chunk_local = local_maps_data.data();
  at::parallel_for(0, m, 512, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const float* map = ids[p] >= 0 ? persistent + ids[p] * stride : chunk_local + (-1 - ids[p]) * stride;
      float* row = zp + p * w2;
      std::copy(map + static_cast<int64_t>(in) * w2, map + stride, row);
      for (int i = 0; i < in; ++i) {
        const float xi = xp[p * in + i];
        const float* a = map + static_cast<int64_t>(i) * w2;
        Axpy(xi, a, row, w2);
      }
    }
  });
  return z;
}

void ChunkPatterns(const StackedMlp& mlp, const at::Tensor& x, uint64_t* out,
                   SecondLayerMaps* maps) {
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
      z = CollapsedSecondLayer(mlp, x.contiguous(), out, words, maps);
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
