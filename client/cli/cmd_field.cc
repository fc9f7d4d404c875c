#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"

namespace gradzoo::client::cli {
namespace {

absl::Status WriteQuiver(Context& c, const v1::ComputeGradientFieldRequest& req, const GradientField& f) {
  const auto& axes = req.points().grid().axes();
  if (axes.size() != 2) throw UsageError{"--svg needs a --grid with exactly two axes"};
  const int o = c.args.Has("output") ? ParseOne<int>("output", c.args.Get("output")) : 0;
  if (o < 0 || o >= f.output_dim) throw UsageError{"--output is out of range"};
  svg::QuiverData q;
  q.nx = axes[0].steps();
  q.ny = axes[1].steps();
  for (int i = 0; i < q.nx; ++i) q.xs.push_back(f.points[static_cast<int64_t>(i) * q.ny * f.input_dim + axes[0].input_index()]);
  for (int j = 0; j < q.ny; ++j) q.ys.push_back(f.points[static_cast<int64_t>(j) * f.input_dim + axes[1].input_index()]);
  q.u.resize(static_cast<size_t>(q.nx) * q.ny);
  q.v.resize(q.u.size());
  for (int i = 0; i < q.nx; ++i) {
    for (int j = 0; j < q.ny; ++j) {
      const int64_t p = static_cast<int64_t>(i) * q.ny + j;  // first axis outermost
      const float* g = f.gradients.data() + (p * f.output_dim + o) * f.input_dim;
      q.u[static_cast<size_t>(j) * q.nx + i] = g[axes[0].input_index()];
      q.v[static_cast<size_t>(j) * q.nx + i] = g[axes[1].input_index()];
    }
  }
  q.title = absl::StrCat("d y", o + 1, " / d x  —  ", f.model);
  q.x_label = absl::StrCat("x", axes[0].input_index() + 1);
  q.y_label = absl::StrCat("x", axes[1].input_index() + 1);
  absl::Status s = svg::WriteFile(c.args.Get("svg"), svg::QuiverPlot(q));
  if (s.ok() && !c.json) std::cout << "wrote " << c.args.Get("svg") << "\n";
  return s;
}

absl::Status WriteCsv(Context& c, const GradientField& f) {
  std::string out;
  for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, i ? "," : "", "x", i + 1);
  for (int o = 0; o < f.output_dim; ++o) absl::StrAppend(&out, ",y", o + 1);
  for (int o = 0; o < f.output_dim; ++o) {
    for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, ",dy", o + 1, "_dx", i + 1);
  }
  if (!f.theory.empty()) {
    for (int o = 0; o < f.output_dim; ++o) {
      for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, ",exact_dy", o + 1, "_dx", i + 1);
    }
  }
  out += "\n";
  const int64_t g = int64_t{f.output_dim} * f.input_dim;
  for (int64_t p = 0; p < f.n; ++p) {
    for (int i = 0; i < f.input_dim; ++i) absl::StrAppend(&out, i ? "," : "", f.points[p * f.input_dim + i]);
    for (int o = 0; o < f.output_dim && !f.outputs.empty(); ++o) absl::StrAppend(&out, ",", f.outputs[p * f.output_dim + o]);
    for (int64_t k = 0; k < g; ++k) absl::StrAppend(&out, ",", f.gradients[p * g + k]);
    for (int64_t k = 0; k < g && !f.theory.empty(); ++k) absl::StrAppend(&out, ",", f.theory[p * g + k]);
    out += "\n";
  }
  absl::Status s = svg::WriteFile(c.args.Get("csv"), out);
  if (s.ok() && !c.json) std::cout << "wrote " << c.args.Get("csv") << "\n";
  return s;
}

absl::Status Field(Context& c) {
  v1::ComputeGradientFieldRequest req;
  for (size_t i = 1; i < c.args.positional.size(); ++i) {
    req.mutable_selection()->add_models(ModelNameOf(c.args.positional[i]));
  }
  if (c.args.Has("zoo")) req.mutable_selection()->set_zoo(ZooNameOf(c.args.Get("zoo")));
  v1::Grid* grid = req.mutable_points()->mutable_grid();
  for (absl::string_view axis : absl::StrSplit(c.args.Get("grid", "0:0:1:21,1:0:1:21"), ',', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(axis, ':');
    v1::GridAxis* a = grid->add_axes();
    int idx = 0;
    double lo = 0, hi = 0;
    int steps = 0;
    if (f.size() != 4 || !absl::SimpleAtoi(f[0], &idx) || !absl::SimpleAtod(f[1], &lo) ||
        !absl::SimpleAtod(f[2], &hi) || !absl::SimpleAtoi(f[3], &steps)) {
      throw UsageError{absl::StrCat("--grid axis \"", axis, "\" is not INPUT:MIN:MAX:STEPS")};
    }
    a->set_input_index(idx);
    a->set_min(lo);
    a->set_max(hi);
    a->set_steps(steps);
  }
  for (double v : ParseList<double>("fixed", c.args.Get("fixed", ""))) grid->add_fixed_values(v);
  req.set_compare_with_theory(c.args.Has("theory") || c.args.Has("fail-above"));
  req.set_include_outputs(c.args.Has("csv"));
  auto fields = c.client->ComputeGradientField(req);
  if (!fields.ok()) return fields.status();

  double worst = 0;
  if (c.json) {
    std::cout << "{\"fields\": [";
    for (size_t i = 0; i < fields->size(); ++i) {
      const auto& f = (*fields)[i];
      std::cout << (i ? ", " : "") << "{\"model\": \"" << f.model << "\", \"points\": " << f.n
                << ", \"inputs\": " << f.input_dim << ", \"outputs\": " << f.output_dim;
      if (f.has_summary) std::cout << ", \"summary\": " << ToJson(f.summary);
      std::cout << "}";
    }
    std::cout << "]}\n";
  } else {
    std::cout << absl::StrFormat("%-30s %9s %8s %12s %12s %12s\n", "MODEL", "POINTS", "IN->OUT",
                                 "MEAN RELERR", "MEDIAN", "AGGREGATE");
  }
  for (const auto& f : *fields) {
    if (f.has_summary) worst = std::max(worst, f.summary.mean_relative_error());
    if (c.json) continue;
    if (f.has_summary) {
      std::cout << absl::StrFormat("%-30s %9d %5d->%-2d %12.4f %12.4f %12.4f\n", f.model, f.n,
                                   f.input_dim, f.output_dim, f.summary.mean_relative_error(),
                                   f.summary.median_relative_error(),
                                   f.summary.aggregate_relative_error());
    } else {
      std::cout << absl::StrFormat("%-30s %9d %5d->%-2d %12s %12s %12s\n", f.model, f.n,
                                   f.input_dim, f.output_dim, "-", "-", "-");
    }
  }
  if (c.args.Has("svg")) {
    absl::Status s = WriteQuiver(c, req, fields->front());
    if (!s.ok()) return s;
  }
  if (c.args.Has("csv")) {
    absl::Status s = WriteCsv(c, fields->front());
    if (!s.ok()) return s;
  }
  if (c.args.Has("fail-above")) {
    const double limit = ParseOne<double>("fail-above", c.args.Get("fail-above"));
    if (worst > limit) {
      std::cerr << absl::StrFormat("FAIL: mean relative error %.4f exceeds %.4f\n", worst, limit);
      return FailAboveStatus();
    }
    if (!c.json) std::cout << absl::StrFormat("OK: every mean relative error <= %.4f\n", limit);
  }
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("theory") &&
    RegisterCommand({"field", 50,
                     "  field (MODEL... | --zoo ZOO) [options]\n"
                     "                               input-gradients of every output at once\n"
                     "      --grid I:MIN:MAX:STEPS[,I:MIN:MAX:STEPS...]   grid over inputs I (default 0:0:1:21,1:0:1:21)\n"
                     "      --fixed V,V,...          values of the inputs no axis varies (default 0.5)\n"
                     "      --theory                 compare with the task's exact gradient (mean/median/aggregate)\n"
                     "      --fail-above X           exit 3 if any model's mean relative error exceeds X\n"
                     "      --svg FILE               quiver plot of a 2-D slice (first model; --output O picks the output)\n"
                     "      --csv FILE               write points, outputs, gradients (and theory) as CSV\n",
                     [](Context& c) { return Field(c); }});

}  // namespace
}  // namespace gradzoo::client::cli
