// gradzoo jacobians: Jacobians between adjacent layers, per example (seed 002).
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"
#include "client/gradient_analysis.h"

namespace gradzoo::client::cli {
namespace {

std::string Matrix(const std::vector<double>& m, int n, const char* fmt) {
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> cells;
    for (int j = 0; j < n; ++j) cells.push_back(absl::StrFormat(fmt, m[i * n + j]));
    rows.push_back(absl::StrCat("[", absl::StrJoin(cells, ", "), "]"));
  }
  return absl::StrCat("[", absl::StrJoin(rows, ", "), "]");
}

absl::Status Jacobians(Context& c) {
  if (c.args.positional.size() != 2) throw UsageError{"jacobians takes one MODEL"};
  v1::ComputeLayerJacobiansRequest req;
  req.set_model(ModelNameOf(c.args.positional[1]));
  absl::StatusOr<v1::PointSet> points = ParsePointSet(
      c.args.Get("grid", "0:0:1:21,1:0:1:21"), c.args.Get("fixed"), c.args.Get("points"));
  if (!points.ok()) throw UsageError{std::string(points.status().message())};
  *req.mutable_points() = *std::move(points);
  req.set_layer(c.args.Has("layer") ? ParseOne<int>("layer", c.args.Get("layer")) : 0);
  req.set_use_principal_components(c.args.Has("pca"));
  if (c.args.Has("components")) req.set_num_components(ParseOne<int>("components", c.args.Get("components")));
  req.set_normalize(c.args.Has("normalize"));
  req.set_summary_only(c.args.Has("summary") && !c.args.Has("csv"));
  if (c.args.Has("tolerance")) req.set_tolerance(ParseOne<double>("tolerance", c.args.Get("tolerance")));
  absl::StatusOr<LayerJacobianResult> r = ComputeLayerJacobians(*c.client, req);
  if (!r.ok()) return r.status();

  if (c.json) {
    std::cout << absl::StrFormat(
        "{\"model\": \"%s\", \"layer\": %d, \"examples\": %d, \"rows\": %d, \"cols\": %d, "
        "\"unique_jacobians\": %d, \"clustered\": %s, \"intra_layer_dots\": %s, "
        "\"explained_variance\": [%s]}\n",
        req.model(), req.layer(), r->n, r->rows, r->cols, r->unique_jacobians,
        r->clustered ? "true" : "false", Matrix(r->intra_layer_dots, r->rows, "%.9g"),
        absl::StrJoin(r->explained_variance, ", ", [](std::string* out, double v) {
          absl::StrAppend(out, absl::StrFormat("%.9g", v));
        }));
  } else {
    std::cout << absl::StrFormat("model               %s\nJacobian            d layer %d / d layer %d%s%s\n",
                                 req.model(), req.layer() + 1, req.layer(),
                                 req.use_principal_components() ? " (principal components of layer " +
                                                                      std::to_string(req.layer() + 1) + ")"
                                                                : "",
                                 req.normalize() ? ", rows normalised" : "");
    std::cout << absl::StrFormat("examples            %d\n", r->n);
    if (!r->jacobians.empty()) {
      std::cout << absl::StrFormat("shape               %d x %d per example\n", r->rows, r->cols);
    }
    std::cout << absl::StrFormat("unique Jacobians    %d%s\n", r->unique_jacobians,
                                 r->clustered ? "  (clustered: smooth activation)" : "  (exact)");
    if (!r->explained_variance.empty()) {
      std::cout << "explained variance  "
                << absl::StrJoin(r->explained_variance, " ", [](std::string* out, double v) {
                     absl::StrAppend(out, absl::StrFormat("%.4g", v));
                   })
                << "\n";
    }
    const int show = std::min(r->rows, 12);
    std::cout << "intra-layer dots    mean <row i, row j> over examples"
              << (r->rows > show ? absl::StrCat(" (first ", show, " rows)") : "") << "\n";
    for (int i = 0; i < show; ++i) {
      std::string row = "  ";
      for (int j = 0; j < show; ++j) absl::StrAppend(&row, absl::StrFormat(" %7.3f", r->intra_layer_dots[i * r->rows + j]));
      std::cout << row << "\n";
    }
  }
  if (c.args.Has("csv")) {
    std::string out = "example,row";
    for (int j = 0; j < r->cols; ++j) absl::StrAppend(&out, ",d", j);
    out += "\n";
    for (int64_t e = 0; e < r->n; ++e) {
      for (int i = 0; i < r->rows; ++i) {
        absl::StrAppend(&out, e, ",", i);
        for (int j = 0; j < r->cols; ++j) {
          absl::StrAppend(&out, ",", r->jacobians[(e * r->rows + i) * r->cols + j]);
        }
        out += "\n";
      }
    }
    absl::Status s = svg::WriteFile(c.args.Get("csv"), out);
    if (!s.ok()) return s;
    if (!c.json) std::cout << "wrote " << c.args.Get("csv") << "\n";
  }
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("pca") && RegisterSwitch("normalize") && RegisterSwitch("summary") &&
    RegisterCommand({"jacobians", 57,
                     "  jacobians MODEL --layer L [options]   d layer L+1 / d layer L per example (0 = input)\n"
                     "      --grid I:MIN:MAX:STEPS,... | --points X,..;X,..   examples (default 0:0:1:21,1:0:1:21)\n"
                     "      --pca [--components K]   differentiate layer L+1's principal components\n"
                     "      --normalize              unit-length rows; --summary: no per-example matrices\n"
                     "      --csv FILE               write every example's matrix (example,row,d0,d1,...)\n",
                     [](Context& c) { return Jacobians(c); }});

}  // namespace
}  // namespace gradzoo::client::cli
