// In-process side of the lookup benchmark (tests/bench/embed_bench.sh, embed_README.md): the
// same embedder and zoo the server used, opened from its data directory after it stopped, and
// the same calls made straight on core::EmbedderRegistry: what a lookup costs without gRPC.
//   usage: embed_bench DATA_DIR EMBEDDER ZOO [SAMPLES=4] [CALLS=400] [BATCH_REPS=3]
// Prints one line per phase: p50 / p99 ms per call, or embeddings per second for batches.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/embed/embedder.h"
#include "core/engine.h"

using gradzoo::core::EmbedderRegistry;
using gradzoo::core::EmbedQuery;
using gradzoo::core::Engine;
using Clock = std::chrono::steady_clock;

namespace {

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: embed_bench DATA_DIR EMBEDDER ZOO [SAMPLES] [CALLS] [BATCH_REPS]\n");
    return 2;
  }
  const std::string dir = argv[1], id = argv[2], zoo_id = argv[3];
  const int samples = argc > 4 ? std::atoi(argv[4]) : 4;
  const int calls = argc > 5 ? std::atoi(argv[5]) : 400;
  const int reps = argc > 6 ? std::atoi(argv[6]) : 3;
  auto engine = Engine::Create({dir, "cpu"});
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
    return 1;
  }
  auto reg = EmbedderRegistry::Create({dir, "cpu"});
  if (!reg.ok()) {
    std::fprintf(stderr, "%s\n", reg.status().ToString().c_str());
    return 1;
  }
  auto zoo = (*engine)->GetZoo(zoo_id);
  if (!zoo.ok()) {
    std::fprintf(stderr, "%s\n", zoo.status().ToString().c_str());
    return 1;
  }
  std::vector<gradzoo::core::ModelRef> models;
  for (const auto& m : (*zoo)->models) models.push_back({zoo_id, m.id});
  const int n = static_cast<int>(models.size());
  auto run = [&](const EmbedQuery& q) {
    auto out = (*reg)->Embed(**engine, id, q, {});
    if (!out.ok()) {
      std::fprintf(stderr, "%s\n", out.status().ToString().c_str());
      std::exit(1);
    }
  };
  EmbedQuery all;
  all.models = models;
  all.samples = samples;
  all.seed = 0;
  run(all);  // warm: seed 0 cached for every model
  int64_t seed = 1'000'000;
  for (const bool cached : {true, false}) {
    std::vector<double> ms;
    for (int i = 0; i < calls; ++i) {
      EmbedQuery q;
      q.models = {models[(i * 31) % n]};
      q.samples = samples;
      q.seed = cached ? 0 : seed++;
      const auto t0 = Clock::now();
      run(q);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::printf("inprocess-single-%-8s p50_ms %.4f p99_ms %.4f\n", cached ? "cached" : "uncached",
                Percentile(ms, 0.5), Percentile(ms, 0.99));
  }
  for (const bool cached : {false, true}) {
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
      EmbedQuery q = all;
      q.seed = cached ? 0 : seed++;
      const auto t0 = Clock::now();
      run(q);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::printf("inprocess-batch-%-9s %d models best %.4f s %.0f embeddings/s\n",
                cached ? "cached" : "uncached", n, best, n / best);
  }
  return 0;
}
