// grad_bench: times gradzoo's input-gradient field and linear-region count on 1M points of a
// 4-64-64-2 ReLU MLP, and the machine's float32 matmul rate, for tests/bench/run_grad_bench.sh.
//
//   grad_bench --threads T --out DIR [--points N] [--repeats R]
//
// Writes the model (DIR/model.f32: W1, b1, W2, b2, W3, b3 row-major float32, PyTorch's
// nn.Linear init drawn from core's seeded Rng) and the two point sets (DIR/grid.f32: a
// 1000 x 1000 grid over (x1, x2) with x3 = x4 = 0.5; DIR/random.f32: N uniform points in
// [0,1]^4) so grad_bench.py times PyTorch on exactly the same work, and prints one JSON object
// with best-of-R wall times (seconds) and the counts, for the driver to compare.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/grad/field.h"
#include "core/grad/points.h"
#include "core/grad/regions.h"
#include "core/model.h"
#include "core/util/random.h"

namespace {

using gradzoo::core::Activation;
using gradzoo::core::LayerWeights;
using gradzoo::core::MlpSpec;

// Best-of-`repeats` wall time, and the process CPU time (all threads) of that same run: on a
// shared machine the CPU time is the steadier measure of work.
struct Timing {
  double wall = 1e30;
  double cpu = 1e30;
};
Timing Best(int repeats, const std::function<void()>& fn) {
  Timing best;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    fn();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (wall < best.wall) best = {wall, static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC};
  }
  return best;
}

void Write(const std::string& path, const std::vector<float>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
}

// Float32 GEMM rate of C = A B with A [m, k], B [k, n], in GFLOP/s (2 m n k flops), per second
// of wall time and per second of CPU time (the latter is what a loaded machine leaves
// comparable: the field's CPU-time rate over it is the fraction of the machine's matmul rate).
struct Rate {
  double wall = 0;
  double cpu = 0;
};
Rate GemmRate(int64_t m, int64_t k, int64_t n, int repeats) {
  at::Tensor a = at::rand({m, k}), b = at::rand({k, n});
  at::mm(a, b);  // warm up
  const Timing t = Best(repeats, [&] { at::mm(a, b); });
  const double flops = 2.0 * m * n * k;
  return {flops / t.wall / 1e9, flops / t.cpu / 1e9};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, repeats = 3;
  int64_t n = 1'000'000;
  std::string out = ".";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--threads") threads = std::atoi(v.c_str());
    else if (k == "--out") out = v;
    else if (k == "--points") n = std::atoll(v.c_str());
    else if (k == "--repeats") repeats = std::atoi(v.c_str());
  }
  at::set_num_threads(threads);

  const MlpSpec spec{4, {64, 64}, 2, Activation::kRelu};
  std::vector<LayerWeights> layers;
  std::vector<float> flat;
  gradzoo::core::Rng rng(20240521);
  const std::vector<int> w = spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    LayerWeights lw{w[l + 1], w[l], std::vector<float>(w[l + 1] * w[l]), std::vector<float>(w[l + 1])};
    const double bound = 1.0 / std::sqrt(static_cast<double>(w[l]));
    for (auto& x : lw.weight) x = static_cast<float>(rng.Uniform(-bound, bound));
    for (auto& x : lw.bias) x = static_cast<float>(rng.Uniform(-bound, bound));
    flat.insert(flat.end(), lw.weight.begin(), lw.weight.end());
    flat.insert(flat.end(), lw.bias.begin(), lw.bias.end());
    layers.push_back(std::move(lw));
  }
  Write(out + "/model.f32", flat);

  gradzoo::core::PointSpec grid;
  grid.axes = {{0, 0.0, 1.0, 1000}, {1, 0.0, 1.0, n / 1000}};
  grid.fixed_values = {0.5, 0.5, 0.5, 0.5};
  std::vector<float> grid_points = *gradzoo::core::MakePoints(grid, 4, n);
  std::vector<float> random_points(static_cast<size_t>(n) * 4);
  for (auto& x : random_points) x = static_cast<float>(rng.Uniform(0.0, 1.0));
  Write(out + "/grid.f32", grid_points);
  Write(out + "/random.f32", random_points);

  std::string json = absl::StrFormat("{\"threads\": %d, \"points\": %d", threads, n);
  // FLOPs of one point's field: forward 4*64 + 64*64 + 64*2 multiply-adds, reverse-mode
  // Jacobian out * (64*64 + 64*4) more (the analytic W3 D2 W2 D1 W1 product).
  const double flops_per_point = 2.0 * (4 * 64 + 64 * 64 + 64 * 2 + 2 * (64 * 64 + 64 * 4));
  for (auto [name, pts] : {std::pair<const char*, const std::vector<float>*>{"grid", &grid_points},
                           {"random", &random_points}}) {
    gradzoo::core::ComputeInputGradients(spec, {&layers}, *pts, n, "cpu", false, {});  // warm up
    const Timing field = Best(repeats, [&] {
      auto f = gradzoo::core::ComputeInputGradients(spec, {&layers}, *pts, n, "cpu", false, {});
      if (!f.ok()) std::abort();
    });
    gradzoo::core::RegionCounts counts;
    const Timing regions = Best(repeats, [&] {
      auto r = gradzoo::core::CountRegions(spec, layers, *pts, n, "cpu", {}, {});
      if (!r.ok()) std::abort();
      counts = *r;
    });
    absl::StrAppendFormat(&json,
                          ", \"%s\": {\"field_s\": %.6f, \"field_cpu_s\": %.6f, \"field_gflops\": %.3f, "
                          "\"field_gflops_per_cpu_s\": %.3f, "
                          "\"regions_s\": %.6f, \"regions_cpu_s\": %.6f, \"regions\": %d, "
                          "\"unique_gradients\": %d}",
                          name, field.wall, field.cpu, flops_per_point * n / field.wall / 1e9,
                          flops_per_point * n / field.cpu / 1e9,
                          regions.wall, regions.cpu, counts.regions,
                          counts.unique_gradients_per_output[0]);
  }
  const Rate big = GemmRate(4096, 4096, 4096, repeats), tall = GemmRate(262144, 64, 64, repeats);
  absl::StrAppendFormat(&json,
                        ", \"gemm_gflops_4096\": %.3f, \"gemm_gflops_tall_64\": %.3f, "
                        "\"gemm_gflops_per_cpu_s_4096\": %.3f, \"gemm_gflops_per_cpu_s_tall_64\": %.3f}\n",
                        big.wall, tall.wall, big.cpu, tall.cpu);
  std::cout << json;
  return 0;
}
