// CLI commands for AnalysisService: orthogonality (one model, or a zoo's lambda sweep with an
// SVG of score against lambda), pca, plsr, cka and scaffold.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/analysis_client.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"

namespace gradzoo::client::cli {
namespace {

v1::LayerRef Layer(const Context& c, const std::string& flag, const std::string& def) {
  absl::StatusOr<v1::LayerRef> l = ParseLayerRef(c.args.Get(flag, def), flag.c_str());
  if (!l.ok()) throw UsageError{std::string(l.status().message())};
  return *l;
}

// --grid I:MIN:MAX:STEPS,... and --fixed V,... (the field command's syntax); nothing when
// --grid is absent (the server then uses each model's validation inputs).
void Points(const Context& c, v1::PointSet* out) {
  if (!c.args.Has("grid")) return;
  v1::Grid* grid = out->mutable_grid();
  for (absl::string_view axis : absl::StrSplit(c.args.Get("grid"), ',', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(axis, ':');
    int idx = 0, steps = 0;
    double lo = 0, hi = 0;
    if (f.size() != 4 || !absl::SimpleAtoi(f[0], &idx) || !absl::SimpleAtod(f[1], &lo) ||
        !absl::SimpleAtod(f[2], &hi) || !absl::SimpleAtoi(f[3], &steps)) {
      throw UsageError{absl::StrCat("--grid axis \"", axis, "\" is not INPUT:MIN:MAX:STEPS")};
    }
    v1::GridAxis* a = grid->add_axes();
    a->set_input_index(idx);
    a->set_min(lo);
    a->set_max(hi);
    a->set_steps(steps);
  }
  for (double v : ParseList<double>("fixed", c.args.Get("fixed", ""))) grid->add_fixed_values(v);
}

v1::OrthogonalityMethod Method(const Context& c) {
  const std::string m = absl::AsciiStrToLower(c.args.Get("method", "functional"));
  if (m == "functional") return v1::ORTHOGONALITY_METHOD_FUNCTIONAL;
  if (m == "cos") return v1::ORTHOGONALITY_METHOD_COS;
  if (m == "gram") return v1::ORTHOGONALITY_METHOD_GRAM;
  if (m == "pca") return v1::ORTHOGONALITY_METHOD_PCA;
  throw UsageError{absl::StrCat("--method \"", m, "\" is not functional, cos, gram or pca")};
}

const char* MethodName(v1::OrthogonalityMethod m) {
  switch (m) {
    case v1::ORTHOGONALITY_METHOD_PCA:
      return "pca";
    case v1::ORTHOGONALITY_METHOD_COS:
      return "cos";
    case v1::ORTHOGONALITY_METHOD_GRAM:
      return "gram";
    default:
      return "functional";
  }
}

std::pair<int, int> Outputs(const Context& c) {
  std::vector<int> o = ParseList<int>("outputs", c.args.Get("outputs", "0,1"));
  if (o.size() != 2) throw UsageError{"--outputs takes two output indices, e.g. 0,1"};
  return {o[0], o[1]};
}

std::string ModelArg(const Context& c, size_t i, const char* what) {
  if (c.args.positional.size() <= i) throw UsageError{absl::StrCat("name ", what)};
  return ModelNameOf(c.args.positional[i]);
}

absl::Status ZooSweep(Context& c, AnalysisClient& an) {
  v1::ScoreZooOrthogonalityRequest req;
  req.set_zoo(ZooNameOf(c.args.Get("zoo")));
  if (c.args.Has("layers")) {
    for (absl::string_view l : absl::StrSplit(c.args.Get("layers"), ',', absl::SkipEmpty())) {
      absl::StatusOr<v1::LayerRef> ref = ParseLayerRef(std::string(l), "layers");
      if (!ref.ok()) throw UsageError{std::string(ref.status().message())};
      *req.add_layers() = *ref;
    }
  }
  req.set_method(Method(c));
  auto [a, b] = Outputs(c);
  req.set_output_a(a);
  req.set_output_b(b);
  if (c.args.Has("threshold")) req.set_variance_threshold(ParseOne<double>("threshold", c.args.Get("threshold")));
  req.set_center(c.args.Has("center"));
  Points(c, req.mutable_points());
  auto r = an.ScoreZooOrthogonality(req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
  } else {
    std::cout << absl::StrFormat("%s task orthogonality of outputs %d and %d, %d models\n",
                                 MethodName(r->method()), a, b, r->models_scored());
    // One row per (task, variant, lambda); one column per layer: mean +- stddev (n).
    std::map<std::tuple<std::string, int, double>, std::vector<const v1::SettingScores*>> rows;
    for (const auto& s : r->settings()) rows[{s.task(), s.variant(), s.lambda()}].push_back(&s);
    std::string header = absl::StrFormat("%-10s %7s", "TASK", "LAMBDA");
    for (const auto& l : r->layers()) absl::StrAppend(&header, absl::StrFormat("  %-22s", LayerRefLabel(l)));
    std::cout << header << "\n";
    for (const auto& [key, settings] : rows) {
      std::string line = absl::StrFormat("%-10s %7.3f", std::get<1>(key) ? absl::StrCat(std::get<0>(key), "#", std::get<1>(key)) : std::get<0>(key), std::get<2>(key));
      for (const auto& l : r->layers()) {
        const v1::SettingScores* s = nullptr;
        for (const auto* x : settings) {
          if (x->layer().index() == l.index() && x->layer().side() == l.side()) s = x;
        }
        if (s == nullptr || s->scores().empty()) {
          absl::StrAppend(&line, absl::StrFormat("  %-22s", "degenerate"));
          continue;
        }
        std::string cell = absl::StrFormat("%.3f +- %.3f (%d)", s->mean(), s->stddev(), s->scores_size());
        if (s->degenerate_count() > 0) absl::StrAppend(&cell, absl::StrFormat(" %d!", s->degenerate_count()));
        absl::StrAppend(&line, absl::StrFormat("  %-22s", cell));
      }
      std::cout << line << "\n";
    }
    std::string rho = absl::StrFormat("%-18s", "spearman(lambda)");
    for (int i = 0; i < r->layers_size(); ++i) {
      absl::StrAppend(&rho, absl::StrFormat("  %-22s", absl::StrFormat("%.3f (means %.3f)", r->spearman_with_lambda(i), r->spearman_of_means(i))));
    }
    std::cout << rho << "\n";
  }
  if (c.args.Has("svg")) {
    svg::LinePlotData plot;
    plot.title = absl::StrCat(MethodName(r->method()), " task orthogonality vs lambda — ", req.zoo());
    plot.x_label = "lambda (soft task mixing)";
    plot.y_label = "orthogonality score (1 = independent)";
    std::map<std::tuple<int, int, std::string, int>, svg::LineSeries> series;
    for (const auto& s : r->settings()) {
      if (s.scores().empty()) continue;
      auto key = std::make_tuple(s.layer().index(), static_cast<int>(s.layer().side()), s.task(), s.variant());
      svg::LineSeries& ls = series[key];
      ls.name = LayerRefLabel(s.layer());
      if (s.variant() != 0) absl::StrAppend(&ls.name, " ", s.task(), "#", s.variant());
      ls.x.push_back(s.lambda());
      ls.y.push_back(s.mean());
      ls.yerr.push_back(s.stddev());
    }
    for (auto& [key, ls] : series) plot.series.push_back(std::move(ls));
    absl::Status s = svg::WriteFile(c.args.Get("svg"), svg::LinePlot(plot));
    if (!s.ok()) return s;
    if (!c.json) std::cout << "wrote " << c.args.Get("svg") << "\n";
  }
  return absl::OkStatus();
}

absl::Status Orthogonality(Context& c) {
  AnalysisClient an(*c.client);
  if (c.args.Has("zoo")) return ZooSweep(c, an);
  v1::ScoreOrthogonalityRequest req;
  req.set_model(ModelArg(c, 1, "a MODEL (zoo/model) or --zoo ZOO"));
  *req.mutable_layer() = Layer(c, "layer", "1");
  req.set_method(Method(c));
  auto [a, b] = Outputs(c);
  req.set_output_a(a);
  req.set_output_b(b);
  if (c.args.Has("threshold")) req.set_variance_threshold(ParseOne<double>("threshold", c.args.Get("threshold")));
  req.set_center(c.args.Has("center"));
  Points(c, req.mutable_points());
  auto r = an.ScoreOrthogonality(req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat("%s  layer %s  %s  outputs %d,%d\n", req.model(), LayerRefLabel(req.layer()),
                               MethodName(r->method()), a, b);
  if (r->degeneracy().degenerate()) {
    std::cout << "score      undefined (" << r->degeneracy().detail() << ")\n";
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat("score      %.4f  (1 = independent tasks, 0 = the same)\n", r->score());
  std::cout << absl::StrFormat("points     %d used, %d left out\n", r->points_used(), r->degeneracy().points_excluded());
  if (r->components_size() == 2) {
    std::cout << absl::StrFormat("components %d and %d\n", r->components(0), r->components(1));
    std::vector<std::string> deg;
    for (double x : r->principal_angles()) deg.push_back(absl::StrFormat("%.1f", x * 180.0 / M_PI));
    std::cout << "angles     " << absl::StrJoin(deg, " ") << " degrees\n";
  }
  return absl::OkStatus();
}

absl::Status Pca(Context& c) {
  AnalysisClient an(*c.client);
  v1::ComputeLayerPcaRequest req;
  req.set_model(ModelArg(c, 1, "a MODEL (zoo/model)"));
  *req.mutable_layer() = Layer(c, "layer", "1");
  if (c.args.Has("second")) *req.mutable_second_layer() = Layer(c, "second", "2");
  req.set_components(c.args.Has("components") ? ParseOne<int>("components", c.args.Get("components")) : 0);
  Points(c, req.mutable_points());
  auto r = an.ComputeLayerPca(req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat("PCA of %s layer %s over %d points\n%-4s %14s %9s %9s\n", req.model(),
                               LayerRefLabel(req.layer()), r->points_used(), "PC", "VARIANCE", "RATIO", "CUMUL");
  double cum = 0;
  for (int i = 0; i < r->explained_variance_ratio_size(); ++i) {
    cum += r->explained_variance_ratio(i);
    std::cout << absl::StrFormat("%-4d %14.6g %9.4f %9.4f\n", i, r->explained_variance(i), r->explained_variance_ratio(i), cum);
  }
  if (r->has_pc_correlation()) {
    auto cor = AnalysisClient::DecodeDoubles(r->pc_correlation());
    if (!cor.ok()) return cor.status();
    std::cout << absl::StrFormat("correlation of %s PCs (rows) with %s PCs (columns), first 8 x 8:\n",
                                 LayerRefLabel(req.layer()), LayerRefLabel(req.second_layer()));
    for (int64_t i = 0; i < std::min<int64_t>(8, cor->shape[0]); ++i) {
      std::string line;
      for (int64_t j = 0; j < std::min<int64_t>(8, cor->shape[1]); ++j) absl::StrAppend(&line, absl::StrFormat(" %6.3f", cor->at(i, j)));
      std::cout << line << "\n";
    }
  }
  return absl::OkStatus();
}

absl::Status Plsr(Context& c) {
  AnalysisClient an(*c.client);
  v1::ComputePlsrRequest req;
  req.set_model(ModelArg(c, 1, "a MODEL (zoo/model)"));
  *req.mutable_layer() = Layer(c, "layer", "1");
  if (c.args.Has("target")) *req.mutable_target_layer() = Layer(c, "target", "2");
  req.set_components(c.args.Has("components") ? ParseOne<int>("components", c.args.Get("components")) : 0);
  req.set_target_components(c.args.Has("targets") ? ParseOne<int>("targets", c.args.Get("targets")) : 0);
  req.set_scale(c.args.Has("scale"));
  Points(c, req.mutable_points());
  auto r = an.ComputePlsr(req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
    return absl::OkStatus();
  }
  auto overlap = AnalysisClient::DecodeDoubles(r->pc_overlap());
  if (!overlap.ok()) return overlap.status();
  std::cout << absl::StrFormat("PLSR %s: layer %s -> %d PCs of the next layer, %d points\n", req.model(),
                               LayerRefLabel(req.layer()), r->target_pcs().shape(0), r->points_used());
  std::cout << absl::StrFormat("%-5s %10s %6s  %s\n", "COMP", "Y VAR", "ITERS", "TOP OVERLAPS WITH SOURCE PCs (pc:|cos|)");
  for (int k = 0; k < r->explained_variance_size(); ++k) {
    std::vector<std::pair<double, int>> o;
    for (int64_t j = 0; j < overlap->shape[1]; ++j) o.push_back({overlap->at(k, j), static_cast<int>(j)});
    std::sort(o.rbegin(), o.rend());
    std::string top;
    for (size_t j = 0; j < std::min<size_t>(4, o.size()); ++j) absl::StrAppend(&top, absl::StrFormat(" %d:%.2f", o[j].second, o[j].first));
    std::cout << absl::StrFormat("%-5d %10.4f %6d %s\n", k, r->explained_variance(k),
                                 k < r->iterations_size() ? r->iterations(k) : 0, top);
  }
  return absl::OkStatus();
}

absl::Status Cka(Context& c) {
  AnalysisClient an(*c.client);
  v1::ComputeCkaRequest req;
  req.set_model_a(ModelArg(c, 1, "MODEL_A (zoo/model)"));
  if (c.args.positional.size() > 2) req.set_model_b(ModelNameOf(c.args.positional[2]));
  *req.mutable_layer_a() = Layer(c, "layer-a", c.args.Get("layer", "1"));
  *req.mutable_layer_b() = Layer(c, "layer-b", c.args.Get("layer", "1"));
  req.set_all_layers(c.args.Has("all-layers"));
  Points(c, req.mutable_points());
  auto r = an.ComputeCka(req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
    return absl::OkStatus();
  }
  const std::string b = req.model_b().empty() ? req.model_a() : req.model_b();
  if (r->degeneracy().degenerate()) {
    std::cout << "CKA undefined: " << r->degeneracy().detail() << "\n";
  } else {
    std::cout << absl::StrFormat("CKA(%s %s, %s %s) = %.4f unbiased (%.4f biased), %d points\n", req.model_a(),
                                 LayerRefLabel(req.layer_a()), b, LayerRefLabel(req.layer_b()), r->cka(),
                                 r->biased_cka(), r->points_used());
  }
  if (r->has_matrix()) {
    auto m = AnalysisClient::DecodeDoubles(r->matrix());
    if (!m.ok()) return m.status();
    std::string header = absl::StrFormat("%-8s", "a \\ b");
    for (int j = 0; j < r->matrix_layers_b_size(); ++j) absl::StrAppend(&header, absl::StrFormat(" %7s", absl::StrCat("L", r->matrix_layers_b(j).index())));
    std::cout << header << "\n";
    for (int i = 0; i < r->matrix_layers_a_size(); ++i) {
      std::string line = absl::StrFormat("%-8s", absl::StrCat("L", r->matrix_layers_a(i).index()));
      for (int j = 0; j < r->matrix_layers_b_size(); ++j) absl::StrAppend(&line, absl::StrFormat(" %7.3f", m->at(i, j)));
      std::cout << line << "\n";
    }
  }
  return absl::OkStatus();
}

absl::Status Scaffold(Context& c) {
  AnalysisClient an(*c.client);
  v1::ComputeScaffoldGradientsRequest req;
  req.set_model(ModelArg(c, 1, "a MODEL (zoo/model)"));
  *req.mutable_layer() = Layer(c, "layer", "1");
  if (c.args.Has("target")) *req.mutable_target_layer() = Layer(c, "target", "2");
  req.set_component(c.args.Has("component") ? ParseOne<int>("component", c.args.Get("component")) : 0);
  req.set_gradient_components(c.args.Has("components") ? ParseOne<int>("components", c.args.Get("components")) : 0);
  if (c.args.Has("cosine")) req.set_cluster_cosine(ParseOne<double>("cosine", c.args.Get("cosine")));
  Points(c, req.mutable_points());
  auto r = an.ComputeScaffoldGradients(req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "scaffold %s: d PC%d(next layer) / d %s over %d points\n"
      "clusters   %d (cosine >= %.3f)\ndistinct   %d gradients, %d zero\n",
      req.model(), req.component(), LayerRefLabel(req.layer()), r->points_used(), r->clusters_found(),
      req.cluster_cosine() == 0 ? 0.99 : req.cluster_cosine(), r->distinct_gradients(), r->zero_gradients());
  std::vector<std::string> ratio;
  for (int i = 0; i < std::min(6, r->explained_variance_ratio_size()); ++i) ratio.push_back(absl::StrFormat("%.3f", r->explained_variance_ratio(i)));
  std::cout << "gradient PCA ratio " << absl::StrJoin(ratio, " ") << "\n";
  std::cout << absl::StrFormat("%-8s %8s %10s %10s\n", "CLUSTER", "SIZE", "MIN COS", "MEAN |g|");
  for (int i = 0; i < std::min(20, r->clusters_size()); ++i) {
    const auto& k = r->clusters(i);
    std::cout << absl::StrFormat("%-8d %8d %10.4f %10.4g\n", i, k.size(), k.min_cosine(), k.mean_norm());
  }
  return absl::OkStatus();
}

const char kPointsHelp[] =
    "      --grid I:MIN:MAX:STEPS,...  points on a grid (default: each model's validation inputs)\n"
    "      --fixed V,V,...          values of the inputs no axis varies\n";

const bool kRegistered =
    RegisterSwitch("center") && RegisterSwitch("scale") && RegisterSwitch("all-layers") &&
    RegisterCommand({"orthogonality", 60,
                     absl::StrCat(
                         "  orthogonality (MODEL | --zoo ZOO) [options]\n"
                         "                               task orthogonality of two outputs at a layer (seed 001)\n"
                         "      --layer L[:pre|post]     layer of MODEL (0 = input, 1.. = hidden; default 1)\n"
                         "      --layers L,L,...         layers of the zoo sweep (default: every hidden layer)\n"
                         "      --method M               functional (default), cos, gram or pca\n"
                         "      --outputs A,B            the two outputs (default 0,1)\n"
                         "      --threshold T            pca: explained-variance threshold (default 0.9)\n"
                         "      --center                 pca, gram: subtract the mean gradient\n"
                         "      --svg FILE               zoo: plot mean score (+- stddev) against lambda\n",
                         kPointsHelp),
                     [](Context& c) { return Orthogonality(c); }}) &&
    RegisterCommand({"pca", 61,
                     absl::StrCat("  pca MODEL [--layer L] [--second L2] [--components K]\n"
                                  "                               PCA of a layer's activations (and PC correlation with L2)\n",
                                  kPointsHelp),
                     [](Context& c) { return Pca(c); }}) &&
    RegisterCommand({"plsr", 62,
                     absl::StrCat("  plsr MODEL [--layer L] [--target L2] [--components C] [--targets Q] [--scale]\n"
                                  "                               PLSR from layer L to the PCs of the next layer (seed 002)\n",
                                  kPointsHelp),
                     [](Context& c) { return Plsr(c); }}) &&
    RegisterCommand({"cka", 63,
                     absl::StrCat("  cka MODEL_A [MODEL_B] [--layer L | --layer-a L --layer-b L] [--all-layers]\n"
                                  "                               linear CKA (unbiased HSIC) between layers / models\n",
                                  kPointsHelp),
                     [](Context& c) { return Cka(c); }}) &&
    RegisterCommand({"scaffold", 64,
                     absl::StrCat("  scaffold MODEL [--layer L] [--target L2] [--component C] [--cosine T]\n"
                                  "                               gradients of a next-layer PC w.r.t. layer L: PCA, clusters\n",
                                  kPointsHelp),
                     [](Context& c) { return Scaffold(c); }});

}  // namespace
}  // namespace gradzoo::client::cli
