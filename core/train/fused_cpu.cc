#include "core/train/fused_cpu.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

namespace gradzoo::core::fused {
namespace {

// Epilogues of the broadcast kernel (fused_cpu_kernels.inc).
enum { kEpiStore, kEpiRelu, kEpiMask };

// dst[i, c] = x[row(c), i] for c < n (row(c) = rows[start + c], or start + c without rows);
// zero for the padding columns n <= c < cols.
void Gather(const float* x, int dim, const int64_t* rows, int64_t start, int n, int cols,
            float* dst) {
  for (int c = 0; c < n; ++c) {
    const int64_t r = rows != nullptr ? rows[start + c] : start + c;
    const float* xr = x + r * dim;
    for (int i = 0; i < dim; ++i) dst[int64_t{i} * cols + c] = xr[i];
  }
  for (int i = 0; i < dim; ++i) {
    std::fill(dst + int64_t{i} * cols + n, dst + int64_t{i} * cols + cols, 0.0f);
  }
}

// Loss of the n valid columns of the prediction z [out, cols] against y, summed over columns
// (MSE: sum_o (z - y)^2 / out per column; cross-entropy: -sum_o y log softmax(z)). With dz,
// also writes the loss gradient times `scale` (MSE: (z - y) scale, with scale = 2 / (B out);
// CE: (softmax(z) - y) scale, scale = 1 / B) and zeroes its padding columns. With correct,
// counts the columns whose first argmax of z equals that of y.
double LossRows(LossKind loss, int out, const float* z, const float* y, int n, int cols,
                float scale, float* dz, int64_t* correct) {
  double sum = 0.0;
  if (loss == LossKind::kMse) {
    for (int o = 0; o < out; ++o) {
      const float* zr = z + int64_t{o} * cols;
      const float* yr = y + int64_t{o} * cols;
      double row = 0.0;
      for (int c = 0; c < n; ++c) {
        const float d = zr[c] - yr[c];
        row += static_cast<double>(d) * d;
        if (dz != nullptr) dz[int64_t{o} * cols + c] = d * scale;
      }
      sum += row / out;
    }
  } else {
    for (int c = 0; c < n; ++c) {
      float mx = -std::numeric_limits<float>::infinity();
      for (int o = 0; o < out; ++o) mx = std::max(mx, z[int64_t{o} * cols + c]);
      double se = 0.0;
      for (int o = 0; o < out; ++o) se += std::exp(static_cast<double>(z[int64_t{o} * cols + c] - mx));
      const double lse = mx + std::log(se);
      for (int o = 0; o < out; ++o) {
        const double zo = z[int64_t{o} * cols + c], yo = y[int64_t{o} * cols + c];
        sum -= yo * (zo - lse);
        if (dz != nullptr) {
          dz[int64_t{o} * cols + c] = static_cast<float>(std::exp(zo - lse) - yo) * scale;
        }
      }
    }
  }
  if (dz != nullptr) {
    for (int o = 0; o < out; ++o) std::fill(dz + int64_t{o} * cols + n, dz + int64_t{o} * cols + cols, 0.0f);
  }
  if (correct != nullptr) {
    for (int c = 0; c < n; ++c) {
      int pz = 0, py = 0;
      for (int o = 1; o < out; ++o) {
        if (z[int64_t{o} * cols + c] > z[int64_t{pz} * cols + c]) pz = o;
        if (y[int64_t{o} * cols + c] > y[int64_t{py} * cols + c]) py = o;
      }
      *correct += pz == py;
    }
  }
  return sum;
}

// h = act(z), elementwise over n floats (smooth activations; ReLU is fused into Bcast).
void ActivateRows(Activation a, const float* z, float* h, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
  for (int64_t i = 0; i < n; ++i) {
    h[i] = a == Activation::kTanh ? std::tanh(z[i])
           : a == Activation::kGelu ? 0.5f * z[i] * (1.0f + std::erf(z[i] * kInvSqrt2))
                                    : std::max(z[i], 0.0f);
  }
}

// d *= act'(z): tanh' = 1 - h^2, GELU' = Phi(z) + z phi(z), ReLU' = [h > 0].
void ScaleByDerivative(Activation a, const float* z, const float* h, float* d, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
  constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
  for (int64_t i = 0; i < n; ++i) {
    switch (a) {
      case Activation::kTanh:
        d[i] *= 1.0f - h[i] * h[i];
        break;
      case Activation::kGelu:
        d[i] *= 0.5f * (1.0f + std::erf(z[i] * kInvSqrt2)) + z[i] * kInvSqrt2Pi * std::exp(-0.5f * z[i] * z[i]);
        break;
      case Activation::kRelu:
        d[i] = h[i] > 0.0f ? d[i] : 0.0f;
        break;
    }
  }
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
namespace avx512 {
#define GZ_W 16
#define GZ_RB 4
#define GZ_VB 4
#define GZ_DJ 4
#define GZ_DI 4
// (The masked form: GCC 12 warns about the unmasked one's undefined source operand.)
#define GZ_SQRT(x) ((V)_mm512_mask_sqrt_ps((__m512)(x), 0xFFFF, (__m512)(x)))
#include "core/train/fused_cpu_kernels.inc"
#undef GZ_W
#undef GZ_RB
#undef GZ_VB
#undef GZ_DJ
#undef GZ_DI
#undef GZ_SQRT
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#define GZ_W 8
#define GZ_RB 4
#define GZ_VB 2
#define GZ_DJ 4
#define GZ_DI 2
#define GZ_SQRT(x) ((V)_mm256_sqrt_ps((__m256)(x)))
#include "core/train/fused_cpu_kernels.inc"
#undef GZ_W
#undef GZ_RB
#undef GZ_VB
#undef GZ_DJ
#undef GZ_DI
#undef GZ_SQRT
}  // namespace avx2
#pragma GCC pop_options

// Baseline x86-64 (SSE2): no target pragma needed.
namespace sse2 {
#define GZ_W 4
#define GZ_RB 4
#define GZ_VB 2
#define GZ_DJ 2
#define GZ_DI 2
#define GZ_SQRT(x) ((V)_mm_sqrt_ps((__m128)(x)))
#include "core/train/fused_cpu_kernels.inc"
#undef GZ_W
#undef GZ_RB
#undef GZ_VB
#undef GZ_DJ
#undef GZ_DI
#undef GZ_SQRT
}  // namespace sse2

int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

}  // namespace

Isa BestIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kSse2;
}

bool Suits(const MlpSpec& spec) {
  const std::vector<int> w = spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    if (int64_t{w[l]} * w[l + 1] > 65536) return false;
  }
  return true;
}

Net Net::Make(const MlpSpec& spec, LossKind loss, Isa isa) {
  Net net;
  net.widths = spec.Widths();
  net.activation = spec.activation;
  net.loss = loss;
  net.isa = isa == Isa::kAuto ? BestIsa() : isa;
  int64_t off = 0;
  for (int l = 0; l < net.layers(); ++l) {
    net.w_offset.push_back(off);
    off += int64_t{net.widths[l]} * net.widths[l + 1];
    net.b_offset.push_back(off);
    off += net.widths[l + 1];
  }
  net.params = off;
  net.stride = RoundUp(off, 16);
  return net;
}

Workspace::Workspace(const Net& net) {
  const int layers = net.layers();
  const int64_t chunk = kChunk;
  const int max_width = *std::max_element(net.widths.begin(), net.widths.end());
  // Every buffer starts on a 64-byte boundary.
  std::vector<int64_t> sizes = {net.stride};
  for (int l = 0; l < layers; ++l) sizes.push_back(net.widths[l] * chunk);       // h
  for (int l = 1; l <= layers; ++l) sizes.push_back(net.widths[l] * chunk);      // z
  sizes.push_back(net.widths.back() * chunk);                                     // y
  sizes.push_back(max_width * chunk);                                             // d[0]
  sizes.push_back(max_width * chunk);                                             // d[1]
  int64_t total = 16;
  for (int64_t s : sizes) total += RoundUp(s, 16);
  storage_.assign(static_cast<size_t>(total), 0.0f);
  float* p = storage_.data();
  p += (16 - (reinterpret_cast<uintptr_t>(p) / sizeof(float)) % 16) % 16;
  auto take = [&](int64_t n) {
    float* q = p;
    p += RoundUp(n, 16);
    return q;
  };
  size_t s = 0;
  grad = take(sizes[s++]);
  for (int l = 0; l < layers; ++l) h.push_back(take(sizes[s++]));
  z.push_back(nullptr);
  for (int l = 1; l <= layers; ++l) z.push_back(take(sizes[s++]));
  y = take(sizes[s++]);
  d[0] = take(sizes[s++]);
  d[1] = take(sizes[s++]);
}

double TrainStep(const Net& net, float* params, float* m, float* v, const float* x,
                 const float* y, const int64_t* rows, int64_t b, const AdamStep& adam,
                 Workspace& ws) {
  switch (net.isa) {
    case Isa::kAvx512:
      return avx512::TrainStepImpl(net, params, m, v, x, y, rows, b, adam, ws);
    case Isa::kAvx2:
      return avx2::TrainStepImpl(net, params, m, v, x, y, rows, b, adam, ws);
    default:
      return sse2::TrainStepImpl(net, params, m, v, x, y, rows, b, adam, ws);
  }
}

double Gradient(const Net& net, const float* params, const float* x, const float* y,
                const int64_t* rows, int64_t b, float* grad, Workspace& ws) {
  switch (net.isa) {
    case Isa::kAvx512:
      return avx512::GradientImpl(net, params, x, y, rows, b, grad, ws);
    case Isa::kAvx2:
      return avx2::GradientImpl(net, params, x, y, rows, b, grad, ws);
    default:
      return sse2::GradientImpl(net, params, x, y, rows, b, grad, ws);
  }
}

LossSum Evaluate(const Net& net, const float* params, const float* x, const float* y,
                 const int64_t* rows, int64_t n, Workspace& ws) {
  switch (net.isa) {
    case Isa::kAvx512:
      return avx512::EvaluateImpl(net, params, x, y, rows, n, ws);
    case Isa::kAvx2:
      return avx2::EvaluateImpl(net, params, x, y, rows, n, ws);
    default:
      return sse2::EvaluateImpl(net, params, x, y, rows, n, ws);
  }
}

}  // namespace gradzoo::core::fused
