// gradzoo regions: linear regions and unique gradients of one model on a point set.
#include <algorithm>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli.h"
#include "client/gradient_analysis.h"

namespace gradzoo::client::cli {
namespace {

std::string Counts(const google::protobuf::RepeatedField<int64_t>& v) {
  std::string out;
  for (int o = 0; o < v.size(); ++o) absl::StrAppend(&out, o ? "  " : "", "y", o + 1, ": ", v[o]);
  return out;
}

absl::Status Regions(Context& c) {
  if (c.args.positional.size() != 2) throw UsageError{"regions takes one MODEL"};
  v1::CountLinearRegionsRequest req;
  req.set_model(ModelNameOf(c.args.positional[1]));
  absl::StatusOr<v1::PointSet> points = ParsePointSet(
      c.args.Get("grid", "0:0:1:201,1:0:1:201"), c.args.Get("fixed"), c.args.Get("points"));
  if (!points.ok()) throw UsageError{std::string(points.status().message())};
  *req.mutable_points() = *std::move(points);
  req.set_per_layer(c.args.Has("per-layer"));
  if (c.args.Has("tolerance")) req.set_tolerance(ParseOne<double>("tolerance", c.args.Get("tolerance")));
  if (c.args.Has("sizes")) req.set_max_region_sizes(ParseOne<int64_t>("sizes", c.args.Get("sizes")));
  absl::StatusOr<v1::CountLinearRegionsResponse> r = CountLinearRegions(*c.client, req);
  if (!r.ok()) return r.status();
  if (c.json) {
    std::cout << ToJson(*r);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat("model               %s\npoints              %d\n", req.model(), r->points());
  if (r->clustered()) {
    std::cout << absl::StrFormat("regions             %d  (clustered gradients, tolerance %g: smooth activation)\n",
                                 r->regions(), r->tolerance());
  } else {
    std::cout << absl::StrFormat("regions             %d  (exact: distinct activation patterns)\n", r->regions());
  }
  std::cout << "unique gradients    " << Counts(r->unique_gradients_per_output()) << "\n";
  std::cout << absl::StrFormat("combinations        %d  (%s)\n", r->unique_gradient_combinations(),
                               r->outputs_coincide() ? "every output's count equals it: the outputs coincide"
                                                     : "the outputs do NOT coincide");
  std::vector<int64_t> top(r->region_sizes().begin(),
                           r->region_sizes().begin() + std::min(10, r->region_sizes_size()));
  std::cout << "largest regions     " << absl::StrJoin(top, " ") << (r->region_sizes_size() > 10 ? " ..." : "")
            << "  (points each)\n";
  std::cout << absl::StrFormat("singleton regions   %d\n", r->singleton_regions());
  if (r->saturated()) {
    std::cout << "saturated           YES: most points are alone in their region; sample more densely\n";
  } else {
    std::cout << "saturated           no\n";
  }
  if (r->layers_size() > 0) {
    std::cout << "splintering         unique gradients w.r.t. each hidden layer (pre / post activation)\n";
    for (const v1::LayerSplintering& l : r->layers()) {
      std::string row = absl::StrFormat("  hidden layer %-4d", l.layer());
      for (int o = 0; o < l.unique_pre_size(); ++o) {
        absl::StrAppend(&row, absl::StrFormat("  y%d: %d / %d", o + 1, l.unique_pre(o), l.unique_post(o)));
      }
      std::cout << row << "\n";
    }
  }
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("per-layer") &&
    RegisterCommand({"regions", 55,
                     "  regions MODEL [options]      linear regions and unique gradients on a point set\n"
                     "      --grid I:MIN:MAX:STEPS,...  grid (default 0:0:1:201,1:0:1:201); --fixed V,V,...\n"
                     "      --points X,X,..;X,X,..   explicit points instead of a grid\n"
                     "      --per-layer              also count per hidden layer (pre / post activations)\n"
                     "      --tolerance X            clustering tolerance for GELU/tanh (default 1e-3)\n"
                     "      --sizes N                return at most N region sizes (default 1000)\n",
                     [](Context& c) { return Regions(c); }});

}  // namespace
}  // namespace gradzoo::client::cli
