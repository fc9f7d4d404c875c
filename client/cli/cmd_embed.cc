// gradzoo embedder / embed / neighbors / probe / embedding-map: network embeddings (seed 003).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"
#include "client/cli/svg_embedding.h"
#include "client/embedding_client.h"

namespace gradzoo::client::cli {

namespace {

std::string EmbedderNameOf(const std::string& s) {
  return s.rfind("embedders/", 0) == 0 ? s : "embedders/" + s;
}

std::vector<std::string> ZooList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view z : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    out.push_back(ZooNameOf(std::string(z)));
  }
  return out;
}

void PrintEmbedder(const v1::Embedder& e) {
  std::cout << absl::StrFormat(
      "%s  zoos %s  size %d  points %d  mask %s %.2f  steps %d  seed %d\n"
      "  validation cloze MSE %.4g | mean-gradient baseline %.4g | interpolation baseline %.4g\n",
      e.name(), absl::StrJoin(e.zoos(), ","), e.embedding_size(), e.points_per_sample(),
      e.mask_shape() == v1::MASK_SHAPE_GROUPS ? "groups" : "spans", e.mask_rate(), e.steps(),
      e.seed(), e.validation_cloze_loss(),
      e.mean_gradient_baseline_loss(), e.interpolation_baseline_loss());
  if (e.members() > 1) {
    std::cout << absl::StrFormat("  members %d (seeds %d..%d), embeddings %d wide\n", e.members(),
                                 e.seed(), e.seed() + e.members() - 1,
                                 e.members() * e.embedding_size());
  }
  if (e.distance_weight() > 0) {
    std::cout << absl::StrFormat("  function-distance weight %g\n", e.distance_weight());
  }
  if (e.from_layer() != 0 || e.to_layer() != 0) {
    std::cout << absl::StrFormat("  sub-network: layer %d activations -> layer %s (%d -> %d)\n",
                                 e.from_layer(),
                                 e.to_layer() == 0 ? "output" : absl::StrCat(e.to_layer()),
                                 e.input_dim(), e.output_dim());
  }
}

absl::Status Embedder(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() < 2) throw UsageError{"embedder takes train|list|get|delete"};
  EmbeddingClient emb(*c.client);
  const std::string& verb = p[1];
  if (verb == "list") {
    auto all = emb.ListEmbedders();
    if (!all.ok()) return all.status();
    if (c.json) {  // one JSON document, as every --json output
      v1::ListEmbeddersResponse r;
      for (const v1::Embedder& e : *all) *r.add_embedders() = e;
      std::cout << ToJson(r);
      return absl::OkStatus();
    }
    for (const v1::Embedder& e : *all) PrintEmbedder(e);
    if (all->empty()) std::cout << "(no embedders)\n";
    return absl::OkStatus();
  }
  if (p.size() != 3) throw UsageError{absl::StrCat("embedder ", verb, " takes one ID")};
  if (verb == "get") {
    auto e = emb.GetEmbedder(EmbedderNameOf(p[2]));
    if (!e.ok()) return e.status();
    if (c.json) {
      std::cout << ToJson(*e);
    } else {
      PrintEmbedder(*e);
    }
    return absl::OkStatus();
  }
  if (verb == "delete") return emb.DeleteEmbedder(EmbedderNameOf(p[2]));
  if (verb != "train") throw UsageError{absl::StrCat("unknown embedder verb \"", verb, "\"")};
  if (!c.args.Has("zoo")) throw UsageError{"embedder train needs --zoo Z[,Z...]"};
  v1::EmbedderTraining t;
  t.set_embedder_id(p[2]);
  for (const std::string& z : ZooList(c.args.Get("zoo"))) t.add_zoos(z);
  if (c.args.Has("points")) t.set_points_per_sample(ParseOne<int>("points", c.args.Get("points")));
  if (c.args.Has("mask-rate")) t.set_mask_rate(ParseOne<double>("mask-rate", c.args.Get("mask-rate")));
  if (c.args.Has("mask-shape")) {
    const std::string shape = c.args.Get("mask-shape");
    if (shape == "spans") {
      t.set_mask_shape(v1::MASK_SHAPE_SPANS);
    } else if (shape == "groups") {
      t.set_mask_shape(v1::MASK_SHAPE_GROUPS);
    } else {
      throw UsageError{absl::StrCat("--mask-shape must be spans or groups, got \"", shape, "\"")};
    }
  }
  if (c.args.Has("size")) t.set_embedding_size(ParseOne<int>("size", c.args.Get("size")));
  if (c.args.Has("steps")) t.set_steps(ParseOne<int>("steps", c.args.Get("steps")));
  if (c.args.Has("seed")) t.set_seed(ParseOne<int64_t>("seed", c.args.Get("seed")));
  if (c.args.Has("batch-models")) t.set_batch_models(ParseOne<int>("batch-models", c.args.Get("batch-models")));
  if (c.args.Has("hidden")) t.set_hidden(ParseOne<int>("hidden", c.args.Get("hidden")));
  if (c.args.Has("members")) t.set_members(ParseOne<int>("members", c.args.Get("members")));
  if (c.args.Has("distance-weight")) {
    t.set_distance_weight(ParseOne<double>("distance-weight", c.args.Get("distance-weight")));
  }
  if (c.args.Has("lr")) t.set_learning_rate(ParseOne<double>("lr", c.args.Get("lr")));
  if (c.args.Has("from-layer")) t.set_from_layer(ParseOne<int>("from-layer", c.args.Get("from-layer")));
  if (c.args.Has("to-layer")) t.set_to_layer(ParseOne<int>("to-layer", c.args.Get("to-layer")));
  auto job = emb.CreateEmbedderTrainingJob(t, c.args.Get("request-id"));
  if (!job.ok()) return job.status();
  if (!c.args.Has("wait")) {
    c.Say(job->name(), ToJson(*job));
    return absl::OkStatus();
  }
  absl::Status s = WatchJob(c, job->name());
  if (!s.ok()) return s;
  auto e = emb.GetEmbedder(EmbedderNameOf(p[2]));
  if (!e.ok()) return e.status();
  if (!c.json) PrintEmbedder(*e);
  return absl::OkStatus();
}

absl::Status Embed(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() < 3) throw UsageError{"embed takes EMBEDDER MODEL..."};
  std::vector<std::string> models;
  for (size_t i = 2; i < p.size(); ++i) models.push_back(ModelNameOf(p[i]));
  EmbeddingClient emb(*c.client);
  v1::EmbedModelsRequest req;
  req.set_embedder(EmbedderNameOf(p[1]));
  for (const std::string& m : models) req.add_models(m);
  if (c.args.Has("samples")) req.set_samples(ParseOne<int>("samples", c.args.Get("samples")));
  if (c.args.Has("seed")) req.set_seed(ParseOne<int64_t>("seed", c.args.Get("seed")));
  if (c.args.Has("from-layer")) {
    req.set_from_layer(ParseOne<int>("from-layer", c.args.Get("from-layer")));
  }
  if (c.args.Has("to-layer")) req.set_to_layer(ParseOne<int>("to-layer", c.args.Get("to-layer")));
  auto r = emb.EmbedModels(req);
  if (!r.ok()) return r.status();
  const int64_t dim = r->shape.size() == 2 ? r->shape[1] : 0;
  // --json: one document {"embeddings": [{"model": ..., "embedding": [...]}, ...]} (%.9g: float
  // round trip); text: one line per model.
  if (c.json) std::cout << "{\"embeddings\": [";
  for (size_t i = 0; i < models.size(); ++i) {
    std::vector<std::string> v;
    for (int64_t j = 0; j < dim; ++j) {
      v.push_back(absl::StrFormat(c.json ? "%.9g" : "%.6g", r->data[i * dim + j]));
    }
    if (c.json) {
      std::cout << (i > 0 ? ",\n  " : "\n  ") << "{\"model\": \"" << models[i]
                << "\", \"embedding\": [" << absl::StrJoin(v, ", ") << "]}";
    } else {
      std::cout << models[i] << "  " << absl::StrJoin(v, " ") << "\n";
    }
  }
  if (c.json) std::cout << "\n]}\n";
  return absl::OkStatus();
}

absl::Status Neighbors(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() != 3) throw UsageError{"neighbors takes EMBEDDER MODEL"};
  EmbeddingClient emb(*c.client);
  auto r = emb.FindNeighbors(EmbedderNameOf(p[1]), ModelNameOf(p[2]),
                             c.args.Has("k") ? ParseOne<int>("k", c.args.Get("k")) : 5,
                             ZooList(c.args.Get("zoos")));
  if (!r.ok()) return r.status();
  if (c.json) {
    v1::FindNeighborsResponse out;
    for (const v1::Neighbor& n : *r) *out.add_neighbors() = n;
    std::cout << ToJson(out);
    return absl::OkStatus();
  }
  for (const v1::Neighbor& n : *r) {
    std::cout << absl::StrFormat("%-40s %.4f  %s\n", n.model(), n.similarity(), n.label());
  }
  return absl::OkStatus();
}

absl::Status Probe(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() != 2 || !c.args.Has("zoo")) throw UsageError{"probe takes EMBEDDER --zoo Z[,Z...]"};
  EmbeddingClient emb(*c.client);
  auto r = emb.RunProbe(EmbedderNameOf(p[1]), ZooList(c.args.Get("zoo")),
                        c.args.Get("target", "label"),
                        c.args.Has("k") ? ParseOne<int>("k", c.args.Get("k")) : 0);
  if (!r.ok()) return r.status();
  if (c.json) {
    v1::RunProbeResponse out;
    for (const v1::ProbeScores& s : *r) *out.add_scores() = s;
    std::cout << ToJson(out);
    return absl::OkStatus();
  }
  // p: exact McNemar tests against the embedding's row (proto ProbeScores.linear_p_value).
  std::cout << "representation       linear    k-NN  separation  p(linear)  p(k-NN)   "
               "(validation models, classes)\n";
  for (const v1::ProbeScores& s : *r) {
    const bool own = &s == &r->front();
    std::cout << absl::StrFormat(
        "%-20s %6.3f  %6.3f  %10.3f  %9s  %7s   (%d, %d)\n", s.representation(),
        s.linear_accuracy(), s.knn_accuracy(), s.separation(),
        own ? "-" : absl::StrFormat("%.3g", s.linear_p_value()),
        own ? "-" : absl::StrFormat("%.3g", s.knn_p_value()), s.validation_models(),
        s.classes());
  }
  std::cout << "p: how likely a gap this size is by chance alone (exact McNemar test against the "
               "embedding on the same validation models)\n";
  return absl::OkStatus();
}

absl::Status EmbeddingMap(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() != 2 || !c.args.Has("zoo") || !c.args.Has("out")) {
    throw UsageError{"embedding-map takes EMBEDDER --zoo Z[,Z...] --out FILE.svg"};
  }
  std::vector<std::string> models, labels;
  for (const std::string& z : ZooList(c.args.Get("zoo"))) {
    auto zoo_models = c.client->ListModels(z, false);
    if (!zoo_models.ok()) return zoo_models.status();
    for (const v1::Model& m : *zoo_models) {
      models.push_back(m.name());
      labels.push_back(m.label());
    }
  }
  if (models.empty()) return absl::FailedPreconditionError("the zoos hold no models");
  EmbeddingClient emb(*c.client);
  auto r = emb.EmbedModels(EmbedderNameOf(p[1]), models);
  if (!r.ok()) return r.status();
  const int dim = static_cast<int>(r->shape[1]);
  std::string doc = svg::EmbeddingMap(r->data, static_cast<int>(models.size()), dim, labels,
                                      absl::StrCat("Embeddings of ", c.args.Get("zoo"), " (",
                                                   EmbedderNameOf(p[1]), "), PCA"));
  absl::Status s = svg::WriteFile(c.args.Get("out"), doc);
  if (!s.ok()) return s;
  c.Say(absl::StrCat("wrote ", c.args.Get("out"), " (", models.size(), " models)"),
        absl::StrCat("{\"out\": \"", c.args.Get("out"), "\", \"models\": ", models.size(), "}"));
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("wait") &&
    RegisterCommand({"embedder", 80,
                     "  embedder train ID --zoo Z[,Z] [options] [--wait]   train a network embedder (job)\n"
                     "      --points N  --mask-rate R  --size E  --steps S  --seed N\n"
                     "      --mask-shape spans|groups   mask runs of neighbouring linear pieces\n"
                     "                                  (default) or independent ones\n"
                     "      --batch-models B  --hidden H  --lr X\n"
                     "      --members K   K encoders (seeds N..N+K-1) side by side, K x E wide\n"
                     "      --distance-weight W   also fit embedding distances to the networks'\n"
                     "                            function distances (0 = cloze only; 1-10)\n"
                     "      --from-layer L --to-layer M   a sub-network: layer L activations to\n"
                     "                                    layer M pre-activations (0 = output)\n"
                     "  embedder list | get ID | delete ID\n",
                     Embedder}) &&
    RegisterCommand({"embed", 81,
                     "  embed EMBEDDER MODEL... [--samples S] [--seed N]   embeddings of models\n"
                     "      [--from-layer L] [--to-layer M]  a sub-network: layer L activations\n"
                     "                                       to layer M pre-activations (0 = output)\n",
                     Embed}) &&
    RegisterCommand({"neighbors", 82,
                     "  neighbors EMBEDDER MODEL [--k K] [--zoos Z,...]    nearest models (cosine)\n",
                     Neighbors}) &&
    RegisterCommand({"probe", 83,
                     "  probe EMBEDDER --zoo Z[,Z] [--target label|task|variant|lambda] [--k K]\n"
                     "                               linear / k-NN accuracy and separation, with baselines\n"
                     "                               and McNemar p-values against the embedding\n",
                     Probe}) &&
    RegisterCommand({"embedding-map", 84,
                     "  embedding-map EMBEDDER --zoo Z[,Z] --out FILE.svg  2-D PCA map coloured by label\n",
                     EmbeddingMap});

}  // namespace
}  // namespace gradzoo::client::cli
