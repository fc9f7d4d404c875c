// gradzoo embed-bench: lookup latency and throughput of EmbeddingService through the real
// server (tests/bench/embed_bench.sh drives it; tests/bench/embed_README.md has the figures).
//
// Every "client" is its own gradzoo Client (its own channel; gRPC may still multiplex them on
// one connection) on its own thread. Phases, each for every --clients value:
//   single-cached:   EmbedModels of one model with seed 0 after a warm-up pass, so every call
//                    is answered from the server's embedding cache: RPC + queue + cache cost.
//   single-uncached: one model per call with a seed never used before (a cache miss), so every
//                    call computes samples x points gradients and one encoder pass.
//   batch:           one call with every model of the zoo (fresh seed: computed; then the same
//                    seed again: cached), reported as embeddings per second.
// Latencies are wall-clock per call on the client: p50 / p99 over all calls of all clients.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/cli.h"
#include "client/embedding_client.h"

namespace gradzoo::client::cli {

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
  return v[i];
}

struct PhaseResult {
  std::vector<double> latencies_ms;
  double wall_s = 0.0;
  int errors = 0;
  std::string first_error;
};

// `clients` threads, each with its own connection, each making `per_client` calls of `make`.
PhaseResult RunPhase(const std::string& address, const Client::Options& options, int clients,
                     int per_client,
                     const std::function<v1::EmbedModelsRequest(int client, int call)>& make) {
  PhaseResult r;
  std::vector<std::unique_ptr<Client>> conns;
  for (int c = 0; c < clients; ++c) {
    auto conn = Client::Connect(address, options);
    if (!conn.ok()) {
      r.errors = clients * per_client;
      r.first_error = std::string(conn.status().message());
      return r;
    }
    conns.push_back(*std::move(conn));
  }
  std::vector<std::vector<double>> lat(clients);
  std::vector<int> errors(clients, 0);
  std::vector<std::string> first(clients);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      EmbeddingClient emb(*conns[c]);
      for (int i = 0; i < per_client; ++i) {
        const v1::EmbedModelsRequest req = make(c, i);
        const auto t0 = Clock::now();
        auto out = emb.EmbedModels(req);
        lat[c].push_back(Ms(Clock::now() - t0));
        if (!out.ok()) {
          if (errors[c]++ == 0) first[c] = std::string(out.status().message());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  r.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (int c = 0; c < clients; ++c) {
    r.latencies_ms.insert(r.latencies_ms.end(), lat[c].begin(), lat[c].end());
    r.errors += errors[c];
    if (r.first_error.empty()) r.first_error = first[c];
  }
  return r;
}

absl::Status EmbedBench(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() != 2 || !c.args.Has("zoo")) throw UsageError{"embed-bench takes EMBEDDER --zoo Z"};
  const std::string embedder = p[1].rfind("embedders/", 0) == 0 ? p[1] : "embedders/" + p[1];
  const std::vector<int> client_counts =
      ParseList<int>("clients", c.args.Get("clients", "1,4,16"));
  const int requests = ParseOne<int>("requests", c.args.Get("requests", "400"));
  const int samples = ParseOne<int>("samples", c.args.Get("samples", "4"));
  const int batch_reps = ParseOne<int>("batch-reps", c.args.Get("batch-reps", "3"));
  const char* env = std::getenv("GRADZOO_SERVER");
  const std::string address = c.args.Get("server", env && *env ? env : "127.0.0.1:50551");

  auto models = c.client->ListModels(ZooNameOf(c.args.Get("zoo")), false);
  if (!models.ok()) return models.status();
  std::vector<std::string> names;
  for (const v1::Model& m : *models) names.push_back(m.name());
  if (names.empty()) return absl::FailedPreconditionError("the zoo has no models");
  const int n = static_cast<int>(names.size());
  auto single = [&](const std::string& model, int64_t seed) {
    v1::EmbedModelsRequest req;
    req.set_embedder(embedder);
    req.add_models(model);
    req.set_samples(samples);
    req.set_seed(seed);
    return req;
  };

  // Warm the cache for seed 0 (one batch call), so single-cached phases only hit the cache.
  EmbeddingClient emb(*c.client);
  {
    v1::EmbedModelsRequest all = single(names[0], 0);
    for (int i = 1; i < n; ++i) all.add_models(names[i]);
    auto warm = emb.EmbedModels(all);
    if (!warm.ok()) return warm.status();
  }
  std::cout << absl::StrFormat("embed-bench %s: %d models, samples %d, %d calls per phase\n",
                               embedder, n, samples, requests);
  std::cout << "phase            clients   p50_ms   p99_ms   calls/s  errors\n";
  std::atomic<int64_t> next_seed{1'000'000};
  for (const std::string phase : {"single-cached", "single-uncached"}) {
    for (int clients : client_counts) {
      const int per_client = std::max(1, requests / clients);
      PhaseResult r = RunPhase(address, c.client->options(), clients, per_client,
                               [&](int client, int call) {
                                 const std::string& m = names[(client * 7919 + call * 31) % n];
                                 return single(m, phase == std::string("single-cached")
                                                      ? 0
                                                      : next_seed.fetch_add(1));
                               });
      std::cout << absl::StrFormat("%-16s %7d %8.3f %8.3f %9.1f  %d%s\n", phase, clients,
                                   Percentile(r.latencies_ms, 0.5),
                                   Percentile(r.latencies_ms, 0.99),
                                   r.latencies_ms.size() / std::max(r.wall_s, 1e-9), r.errors,
                                   r.errors ? " (" + r.first_error + ")" : "");
    }
  }
  for (const bool cached : {false, true}) {
    double best = 1e300;
    for (int rep = 0; rep < batch_reps; ++rep) {
      v1::EmbedModelsRequest all = single(names[0], cached ? 0 : next_seed.fetch_add(1));
      for (int i = 1; i < n; ++i) all.add_models(names[i]);
      const auto t0 = Clock::now();
      auto out = emb.EmbedModels(all);
      if (!out.ok()) return out.status();
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::cout << absl::StrFormat("batch-%-10s %7d models  best %.4f s  %.0f embeddings/s\n",
                                 cached ? "cached" : "uncached", n, best, n / best);
  }
  return absl::OkStatus();
}

const bool kRegistered = RegisterCommand(
    {"embed-bench", 85,
     "  embed-bench EMBEDDER --zoo Z [--clients 1,4,16] [--requests N] [--samples S]\n"
     "                               lookup latency p50/p99 and throughput (tests/bench)\n",
     EmbedBench});

}  // namespace
}  // namespace gradzoo::client::cli
