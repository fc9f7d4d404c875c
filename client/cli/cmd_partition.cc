// gradzoo partition: the exact partition of a 2-D slice into linear regions, drawn as SVG.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"
#include "client/cli/svg_partition.h"
#include "client/gradient_analysis.h"

namespace gradzoo::client::cli {
namespace {

// "I:MIN:MAX,I:MIN:MAX" (a trailing :STEPS is accepted and ignored).
v1::Grid ParseSlice(const std::string& text, const std::string& fixed) {
  v1::Grid grid;
  for (absl::string_view axis : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(axis, ':');
    int idx = 0;
    double lo = 0, hi = 0;
    if ((f.size() != 3 && f.size() != 4) || !absl::SimpleAtoi(f[0], &idx) ||
        !absl::SimpleAtod(f[1], &lo) || !absl::SimpleAtod(f[2], &hi)) {
      throw UsageError{absl::StrCat("--slice axis \"", axis, "\" is not INPUT:MIN:MAX")};
    }
    v1::GridAxis* a = grid.add_axes();
    a->set_input_index(idx);
    a->set_min(lo);
    a->set_max(hi);
    a->set_steps(2);
  }
  for (double v : ParseList<double>("fixed", fixed)) grid.add_fixed_values(v);
  return grid;
}

std::string Json(const std::string& model, const RegionPartition& p) {
  double area = 0;
  for (const auto& r : p.regions) area += r.area;
  std::string out = absl::StrFormat(
      "{\"model\": \"%s\", \"regions\": %d, \"slice_area\": %.17g, \"area_sum\": %.17g, "
      "\"unique_gradients_per_output\": [%s], \"unique_gradient_combinations\": %d, \"polygons\": [",
      model, p.regions.size(), p.slice_area, area, absl::StrJoin(p.unique_gradients_per_output, ", "),
      p.unique_gradient_combinations);
  for (size_t i = 0; i < p.regions.size(); ++i) {
    const PartitionPolygon& r = p.regions[i];
    std::vector<std::string> vs;
    for (size_t v = 0; v + 1 < r.vertices.size(); v += 2) {
      vs.push_back(absl::StrFormat("[%.17g, %.17g]", r.vertices[v], r.vertices[v + 1]));
    }
    std::vector<std::string> gs;
    for (double g : r.gradient) gs.push_back(absl::StrFormat("%.17g", g));
    absl::StrAppend(&out, i ? ", " : "", absl::StrFormat("{\"area\": %.17g, \"gradient\": [%s], \"vertices\": [%s]}",
                                                         r.area, absl::StrJoin(gs, ", "), absl::StrJoin(vs, ", ")));
  }
  return out + "]}\n";
}

absl::Status Partition(Context& c) {
  if (c.args.positional.size() != 2) throw UsageError{"partition takes one MODEL"};
  v1::ComputeRegionPartitionRequest req;
  req.set_model(ModelNameOf(c.args.positional[1]));
  *req.mutable_slice() = ParseSlice(c.args.Get("slice", "0:0:1,1:0:1"), c.args.Get("fixed", ""));
  if (req.slice().axes_size() != 2) throw UsageError{"--slice needs exactly two axes"};
  if (c.args.Has("max-regions")) {
    req.set_max_regions(ParseOne<int64_t>("max-regions", c.args.Get("max-regions")));
  }
  const int output = c.args.Has("output") ? ParseOne<int>("output", c.args.Get("output")) : 0;
  svg::PartitionPlotOptions plot;
  const std::string color = c.args.Get("color", "direction");
  if (color == "direction") {
    plot.color = svg::PartitionColor::kDirection;
  } else if (color == "magnitude") {
    plot.color = svg::PartitionColor::kMagnitude;
  } else if (color == "region") {
    plot.color = svg::PartitionColor::kRegion;
  } else {
    throw UsageError{"--color is direction, magnitude or region"};
  }

  absl::StatusOr<RegionPartition> p = ComputeRegionPartition(*c.client, req);
  if (!p.ok()) return p.status();
  if (output < 0 || output >= p->output_dim) throw UsageError{"--output is out of range"};
  if (c.json) {
    std::cout << Json(req.model(), *p);
  } else {
    double area = 0;
    for (const auto& r : p->regions) area += r.area;
    std::cout << absl::StrFormat("model               %s\nregions             %d  (exact)\n"
                                 "slice area          %.6g  (regions sum to %.12g)\n",
                                 req.model(), p->regions.size(), p->slice_area, area);
    std::string unique;
    for (size_t o = 0; o < p->unique_gradients_per_output.size(); ++o) {
      absl::StrAppend(&unique, o ? "  " : "", "y", o + 1, ": ", p->unique_gradients_per_output[o]);
    }
    std::cout << "unique gradients    " << unique << "  (combinations " << p->unique_gradient_combinations << ")\n";
    std::vector<size_t> order(p->regions.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p->regions[a].area > p->regions[b].area; });
    std::cout << absl::StrFormat("largest regions     (area, d y%d / d (x, y))\n", output + 1);
    for (size_t i = 0; i < std::min<size_t>(5, order.size()); ++i) {
      const PartitionPolygon& r = p->regions[order[i]];
      std::cout << absl::StrFormat("  %12.6g   (%.4f, %.4f)\n", r.area, r.gradient[2 * output], r.gradient[2 * output + 1]);
    }
  }
  if (c.args.Has("svg")) {
    svg::PartitionPlotData d;
    const auto& axes = req.slice().axes();
    d.x_min = axes[0].min();
    d.x_max = axes[0].max();
    d.y_min = axes[1].min();
    d.y_max = axes[1].max();
    d.x_label = absl::StrCat("x", axes[0].input_index() + 1);
    d.y_label = absl::StrCat("x", axes[1].input_index() + 1);
    d.title = absl::StrCat("linear regions of ", req.model(), "  (colour: d y", output + 1, " / d x)");
    for (const PartitionPolygon& r : p->regions) {
      d.regions.push_back({r.vertices, r.gradient[2 * output], r.gradient[2 * output + 1]});
    }
    plot.outlines = !c.args.Has("no-outlines") && p->regions.size() < 20000;
    absl::Status s = svg::WriteFile(c.args.Get("svg"), svg::PartitionPlot(d, plot));
    if (!s.ok()) return s;
    if (!c.json) std::cout << "wrote " << c.args.Get("svg") << "\n";
  }
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("no-outlines") &&
    RegisterCommand({"partition", 56,
                     "  partition MODEL [options]    exact linear regions of a 2-D slice (ReLU): polygons, areas, gradients\n"
                     "      --slice I:MIN:MAX,I:MIN:MAX   the slice (default 0:0:1,1:0:1); --fixed V,V,... other inputs\n"
                     "      --max-regions N          refuse slices with more regions (default 20000)\n"
                     "      --svg FILE               draw the polygons; --output O picks the output (default 0)\n"
                     "      --color direction|magnitude|region   colouring (default direction); --no-outlines\n",
                     [](Context& c) { return Partition(c); }});

}  // namespace
}  // namespace gradzoo::client::cli
