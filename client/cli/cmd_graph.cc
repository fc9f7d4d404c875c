// gradzoo graph: the layer-by-layer computational graph (seed 001) as a table, DOT, JSON and
// (with graphviz) SVG; the sub-graph and path rarity of query inputs. gradzoo rarity: path
// rarity of query inputs against a reference point set.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"
#include "client/gradient_analysis.h"

namespace gradzoo::client::cli {
namespace {

// Path of an executable found on $PATH, or "".
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Runs `dot -Tsvg -o svg dot_file` without a shell; true on exit status 0.
bool RunDot(const std::string& dot, const std::string& dot_file, const std::string& svg) {
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    std::vector<std::string> args = {dot, "-Tsvg", "-o", svg, dot_file};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(dot.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string RarityLine(const v1::PathRarity& r) {
  return absl::StrFormat("surprisal %.3f bits (percentile %.1f), same pattern in %d reference "
                         "examples, nearest reference pattern %d bits away",
                         r.surprisal_bits(), r.percentile(), r.same_pattern_count(),
                         r.nearest_hamming_distance());
}

std::string ReferenceLine(const v1::RarityDistribution& d) {
  std::vector<std::string> q;
  for (int i = 0; i < d.levels_size() && i < d.quantiles_size(); ++i) {
    q.push_back(absl::StrFormat("%g%%: %.3f", 100 * d.levels(i), d.quantiles(i)));
  }
  return absl::StrFormat("reference: %d examples, %d distinct patterns, mean surprisal %.3f bits\n"
                         "  quantiles  %s",
                         d.examples(), d.distinct_patterns(), d.mean_surprisal_bits(),
                         absl::StrJoin(q, "  "));
}

absl::Status Graph(Context& c) {
  if (c.args.positional.size() != 2) throw UsageError{"graph takes one MODEL"};
  v1::BuildComputationalGraphRequest req;
  req.set_model(ModelNameOf(c.args.positional[1]));
  absl::StatusOr<v1::PointSet> points = ParsePointSet(
      c.args.Get("grid", "0:0:1:21,1:0:1:21,2:0:1:5,3:0:1:5"), c.args.Get("fixed"),
      c.args.Get("points"));
  if (!points.ok()) throw UsageError{std::string(points.status().message())};
  *req.mutable_points() = *std::move(points);
  if (c.args.Has("pca") && c.args.Has("clusters")) throw UsageError{"graph: --pca or --clusters, not both"};
  if (c.args.Has("pca")) req.set_basis(v1::GRAPH_BASIS_PRINCIPAL_COMPONENTS);
  if (c.args.Has("clusters")) req.set_basis(v1::GRAPH_BASIS_GRADIENT_CLUSTERS);
  if (c.args.Has("components")) req.set_num_components(ParseOne<int>("components", c.args.Get("components")));
  if (c.args.Has("min-weight")) req.set_min_abs_weight(ParseOne<double>("min-weight", c.args.Get("min-weight")));
  if (c.args.Has("max-edges")) req.set_max_edges(ParseOne<int>("max-edges", c.args.Get("max-edges")));
  if (c.args.Has("query")) {
    absl::StatusOr<v1::Tensor> q = ParsePoints(c.args.Get("query"));
    if (!q.ok()) throw UsageError{absl::StrCat("--query: ", q.status().message())};
    *req.mutable_query_points()->mutable_explicit_points() = *std::move(q);
  }
  req.set_include_dot(c.args.Has("dot") || c.args.Has("svg"));
  req.set_include_json(c.args.Has("graph-json"));
  absl::StatusOr<v1::BuildComputationalGraphResponse> g = BuildComputationalGraph(*c.client, req);
  if (!g.ok()) return g.status();

  if (c.json) {
    std::cout << ToJson(*g);
  } else {
    std::map<int, int> per_layer;
    for (const v1::GraphNode& n : g->nodes()) ++per_layer[n.layer()];
    std::vector<std::string> layers;
    for (auto [l, k] : per_layer) layers.push_back(absl::StrCat(k));
    std::cout << absl::StrFormat("model               %s\nnodes               %d  (per layer: %s)\n"
                                 "edges               %d  (%d dropped by --max-edges)\n",
                                 req.model(), g->nodes_size(), absl::StrJoin(layers, " -> "),
                                 g->edges_size(), g->dropped_edges());
    std::vector<const v1::GraphEdge*> top;
    for (const v1::GraphEdge& e : g->edges()) top.push_back(&e);
    std::sort(top.begin(), top.end(), [](const auto* a, const auto* b) { return a->weight() > b->weight(); });
    std::map<std::string, std::string> label;
    for (const v1::GraphNode& n : g->nodes()) label[n.id()] = n.label();
    std::cout << "strongest edges     (mean |normalised gradient|, signed mean)\n";
    for (size_t i = 0; i < std::min<size_t>(10, top.size()); ++i) {
      std::cout << absl::StrFormat("  %-8s -> %-8s %8.4f %9.4f\n", label[top[i]->from()],
                                   label[top[i]->to()], top[i]->weight(), top[i]->signed_weight());
    }
    for (int q = 0; q < g->subgraphs_size(); ++q) {
      const v1::ActiveSubgraph& s = g->subgraphs(q);
      std::cout << absl::StrFormat("query %d             %d of %d nodes and %d of %d edges active\n  %s\n",
                                   q + 1, s.node_ids_size(), g->nodes_size(), s.edge_indices_size(),
                                   g->edges_size(), RarityLine(s.rarity()));
    }
    if (g->subgraphs_size() > 0) std::cout << ReferenceLine(g->reference()) << "\n";
  }
  auto say = [&](const std::string& text) {
    if (!c.json) std::cout << text << "\n";
  };
  if (c.args.Has("dot")) {
    absl::Status s = svg::WriteFile(c.args.Get("dot"), g->dot());
    if (!s.ok()) return s;
    say(absl::StrCat("wrote ", c.args.Get("dot")));
  }
  if (c.args.Has("graph-json")) {
    absl::Status s = svg::WriteFile(c.args.Get("graph-json"), g->json());
    if (!s.ok()) return s;
    say(absl::StrCat("wrote ", c.args.Get("graph-json")));
  }
  if (c.args.Has("svg")) {
    const std::string out = c.args.Get("svg");
    std::string dot_file = out;
    if (dot_file.size() > 4 && dot_file.substr(dot_file.size() - 4) == ".svg") dot_file.resize(dot_file.size() - 4);
    dot_file += ".dot";
    absl::Status s = svg::WriteFile(dot_file, g->dot());
    if (!s.ok()) return s;
    const std::string dot = FindOnPath("dot");
    if (dot.empty()) {
      // Not an error: the DOT file is the portable result.
      std::cerr << "graphviz `dot` was not found on PATH; wrote " << dot_file
                << " instead (render it with: dot -Tsvg " << dot_file << " -o " << out << ")\n";
    } else if (RunDot(dot, dot_file, out)) {
      say(absl::StrCat("wrote ", out, " (graphviz) and ", dot_file));
    } else {
      return absl::InternalError(absl::StrCat("graphviz dot failed to render ", dot_file));
    }
  }
  return absl::OkStatus();
}

absl::Status Rarity(Context& c) {
  if (c.args.positional.size() != 2) throw UsageError{"rarity takes one MODEL"};
  if (!c.args.Has("query")) throw UsageError{"rarity needs --query X,..;X,.."};
  v1::ScorePathRarityRequest req;
  req.set_model(ModelNameOf(c.args.positional[1]));
  absl::StatusOr<v1::PointSet> ref = ParsePointSet(
      c.args.Get("grid", "0:0:1:21,1:0:1:21,2:0:1:5,3:0:1:5"), c.args.Get("fixed"),
      c.args.Get("points"));
  if (!ref.ok()) throw UsageError{std::string(ref.status().message())};
  *req.mutable_reference_points() = *std::move(ref);
  absl::StatusOr<v1::Tensor> q = ParsePoints(c.args.Get("query"));
  if (!q.ok()) throw UsageError{absl::StrCat("--query: ", q.status().message())};
  *req.mutable_query_points()->mutable_explicit_points() = *std::move(q);
  absl::StatusOr<v1::ScorePathRarityResponse> r = ScorePathRarity(*c.client, req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
    return absl::OkStatus();
  }
  for (int i = 0; i < r->scores_size(); ++i) {
    std::cout << absl::StrFormat("query %d: %s\n", i + 1, RarityLine(r->scores(i)));
  }
  std::cout << ReferenceLine(r->reference()) << "\n";
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("clusters") &&
    RegisterCommand({"graph", 58,
                     "  graph MODEL [options]        computational graph over a dataset (edges: mean |normalised gradient|)\n"
                     "      --grid I:MIN:MAX:STEPS,... | --points X,..;X,..   the dataset (default a 21x21x5x5 grid)\n"
                     "      --pca [--components K]   principal components as the hidden-layer nodes\n"
                     "      --clusters [--components K]   unique-gradient clusters (the K most frequent, default\n"
                     "                               16, + other) as nodes; weights = fraction of examples\n"
                     "      --min-weight X, --max-edges N   keep edges with weight >= X, at most N (default 20000)\n"
                     "      --query X,..;X,..        active sub-graph and path rarity of these inputs\n"
                     "      --dot FILE, --graph-json FILE   write the graph as DOT / node-link JSON\n"
                     "      --svg FILE               render with graphviz `dot` (writes FILE's .dot when dot is missing)\n",
                     [](Context& c) { return Graph(c); }}) &&
    RegisterCommand({"rarity", 59,
                     "  rarity MODEL --query X,..;X,.. [--grid ...|--points ...]\n"
                     "                               how unusual the inputs' activation paths are vs the reference points\n",
                     [](Context& c) { return Rarity(c); }});

}  // namespace
}  // namespace gradzoo::client::cli
