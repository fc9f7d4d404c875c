// Benchmark for issue 5's performance claim: PCA of a 1M x 64 gradient matrix (covariance + a
// small eigensolve) against numpy and torch cov + eigh on the same data, same thread count, in
// the same run; plus the fused path that accumulates the gradients' second moments while it
// computes them, so the N x H matrix never exists.
//
//   analysis_bench OUT_DIR [N=1000000] [THREADS=2] [REPS=3]
//
// Writes OUT_DIR/grads.f32 (the [N, 64] float32 matrix: d y_0 / d h_1 of a random 4-64-64-2 ReLU
// net at N uniform points), OUT_DIR/net.f32 (its weights) and OUT_DIR/points.f32, and prints one
// line per timing ("name seconds"), best of REPS, plus accuracy lines. analysis_bench.sh runs the
// python side on the same files and prints the ratios.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/analysis/layer_tensors.h"
#include "core/analysis/linalg.h"
#include "core/analysis/orthogonality.h"
#include "core/nn/mlp.h"
#include "core/util/random.h"

namespace gz = gradzoo::core;

namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

template <typename Fn>
double Best(int reps, Fn fn) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, Seconds(t0, std::chrono::steady_clock::now()));
  }
  return best;
}

void Write(const std::string& path, const float* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR [N] [THREADS] [REPS]\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 1000000;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int reps = argc > 4 ? std::atoi(argv[4]) : 3;
  at::set_num_threads(threads);
  const int d = 64;

  // A random 4-64-64-2 ReLU net (PyTorch's default init) and N uniform points.
  gz::MlpSpec spec;
  spec.input_dim = 4;
  spec.hidden = {64, 64};
  spec.output_dim = 2;
  gz::StackedMlp init = gz::InitStacked(spec, {7}, at::kCPU);
  std::vector<gz::LayerWeights> w = gz::Unstack(init, 0);
  std::vector<float> pts(static_cast<size_t>(n) * 4);
  gz::Rng rng(11);
  for (float& v : pts) v = static_cast<float>(rng.Uniform());

  // The gradient matrix G = d y_0 / d h_1 ([N, 64], float32), computed once in float like the
  // model runs; this is the matrix numpy and torch get.
  std::vector<float> grads(static_cast<size_t>(n) * d);
  {
    gz::StackedMlp mlp = gz::Stack(spec, {&w}, at::kCPU);
    at::Tensor x = at::from_blob(pts.data(), {1, n, 4}, at::kFloat);
    gz::Capture cap;
    gz::Forward(mlp, x, &cap);
    // g_h1 = (W3[0] * relu'(z2)) W2.
    at::Tensor g = mlp.weight[2].select(1, 0).unsqueeze(1) * (cap.pre[1] > 0).to(at::kFloat);
    g = at::bmm(g, mlp.weight[1]).contiguous();
    std::copy(g.data_ptr<float>(), g.data_ptr<float>() + n * d, grads.begin());
  }
  Write(out + "/grads.f32", grads.data(), grads.size());
  Write(out + "/points.f32", pts.data(), pts.size());
  {
    std::ofstream f(out + "/net.f32", std::ios::binary);
    for (const auto& l : w) {
      f.write(reinterpret_cast<const char*>(l.weight.data()), l.weight.size() * sizeof(float));
      f.write(reinterpret_cast<const char*>(l.bias.data()), l.bias.size() * sizeof(float));
    }
  }
  std::printf("kernel %s\nthreads %d\nn %lld\n", gz::FloatKernelName().c_str(), at::get_num_threads(),
              static_cast<long long>(n));

  // 1. Matrix in memory: streaming covariance + eigensolve.
  gz::Pca pca;
  const double t_pca = Best(reps, [&] { pca = *gz::PcaOfRows(grads.data(), n, d); });
  std::printf("gradzoo_pca_of_rows %.4f\n", t_pca);
  std::printf("gradzoo_top_eigenvalues %.9g %.9g %.9g\n", pca.explained_variance[0],
              pca.explained_variance[1], pca.explained_variance[2]);
  {
    std::ofstream f(out + "/gradzoo_eigenvalues.txt");
    for (double v : pca.explained_variance) f << v << "\n";
  }

  // 2. Fused: the uncentred second moment of the gradients of both outputs at h1 accumulated while
  // they are computed (ScoreOrthogonality, method pca: float64 gradients, O(w^2) memory).
  gz::OrthogonalityOptions o;
  o.method = gz::OrthogonalityMethod::kPca;
  double score = 0;
  const double t_fused = Best(reps, [&] {
    auto s = gz::ScoreOrthogonality(spec, {&w}, {&pts}, n, {{1, gz::LayerSide::kPost}}, o, "cpu", {});
    score = (*s)[0][0].score;
  });
  std::printf("gradzoo_fused_pca_score_2_outputs %.4f\n", t_fused);
  // Its floor: the float32 forward pass alone over the same chunks (the masks it needs).
  const double t_forward = Best(reps, [&] {
    gz::StackedMlp mlp = gz::Stack(spec, {&w}, at::kCPU);
    for (int64_t s = 0; s < n; s += 8192) {
      const int64_t m = std::min<int64_t>(8192, n - s);
      at::Tensor x = at::from_blob(pts.data() + s * 4, {1, m, 4}, at::kFloat);
      gz::Capture cap;
      gz::Forward(mlp, x, &cap);
    }
  });
  std::printf("gradzoo_forward_only %.4f\n", t_forward);
  std::printf("gradzoo_fused_score %.9f\n", score);
  return 0;
}
