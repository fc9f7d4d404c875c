#include "client/gradient_analysis.h"

#include <grpcpp/grpcpp.h>

#include <cmath>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gradzoo/v1/gradient.grpc.pb.h"

namespace gradzoo::client {

namespace {

template <typename Resp, typename Req, typename Call>
absl::StatusOr<Resp> Unary(Client& client, const Req& request, Call call) {
  auto stub = v1::GradientService::NewStub(client.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + client.options().stream_timeout));
  Resp resp;
  grpc::Status s = call(stub.get(), &ctx, request, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

}  // namespace

absl::StatusOr<std::vector<double>> DecodeDoubles(const v1::Tensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape()) {
    if (d < 0) return absl::DataLossError("tensor with a negative extent");
    n *= d;
  }
  std::vector<double> out(n);
  if (t.dtype() == v1::D_TYPE_FLOAT64) {
    if (t.data().size() != static_cast<size_t>(n) * 8) {
      return absl::DataLossError("tensor byte count does not match its shape");
    }
    std::memcpy(out.data(), t.data().data(), t.data().size());
    return out;
  }
  absl::StatusOr<FloatArray> f = Client::DecodeTensor(t);
  if (!f.ok()) return f.status();
  out.assign(f->data.begin(), f->data.end());
  return out;
}

absl::StatusOr<v1::CountLinearRegionsResponse> CountLinearRegions(
    Client& client, const v1::CountLinearRegionsRequest& request) {
  return Unary<v1::CountLinearRegionsResponse>(
      client, request, [](auto* stub, auto* ctx, const auto& req, auto* resp) {
        return stub->CountLinearRegions(ctx, req, resp);
      });
}

absl::StatusOr<RegionPartition> ComputeRegionPartition(
    Client& client, const v1::ComputeRegionPartitionRequest& request) {
  absl::StatusOr<v1::ComputeRegionPartitionResponse> resp =
      Unary<v1::ComputeRegionPartitionResponse>(
          client, request, [](auto* stub, auto* ctx, const auto& req, auto* out) {
            return stub->ComputeRegionPartition(ctx, req, out);
          });
  if (!resp.ok()) return resp.status();
  RegionPartition p;
  p.slice_area = resp->slice_area();
  p.unique_gradients_per_output.assign(resp->unique_gradients_per_output().begin(),
                                       resp->unique_gradients_per_output().end());
  p.unique_gradient_combinations = resp->unique_gradient_combinations();
  p.output_dim = static_cast<int>(p.unique_gradients_per_output.size());
  for (const v1::RegionPolygon& r : resp->regions()) {
    PartitionPolygon poly;
    absl::StatusOr<std::vector<double>> v = DecodeDoubles(r.vertices());
    if (!v.ok()) return v.status();
    absl::StatusOr<std::vector<double>> g = DecodeDoubles(r.gradient());
    if (!g.ok()) return g.status();
    absl::StatusOr<std::vector<double>> o = DecodeDoubles(r.offset());
    if (!o.ok()) return o.status();
    if (v->size() % 2 != 0 || g->size() != 2 * o->size()) {
      return absl::DataLossError("region polygon with inconsistent shapes");
    }
    poly.vertices = *std::move(v);
    poly.gradient = *std::move(g);
    poly.offset = *std::move(o);
    poly.area = r.area();
    poly.activation_pattern = r.activation_pattern();
    p.regions.push_back(std::move(poly));
  }
  if (static_cast<int64_t>(p.regions.size()) != resp->region_count()) {
    return absl::DataLossError("region_count does not match the regions sent");
  }
  return p;
}

absl::StatusOr<LayerJacobianResult> ComputeLayerJacobians(
    Client& client, const v1::ComputeLayerJacobiansRequest& request) {
  auto stub = v1::GradientService::NewStub(client.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + client.options().stream_timeout));
  auto reader = stub->ComputeLayerJacobians(&ctx, request);
  LayerJacobianResult r;
  v1::ComputeLayerJacobiansResponse msg;
  bool last = false;
  auto fail = [&](absl::Status s) {
    ctx.TryCancel();
    reader->Finish();
    return s;
  };
  while (reader->Read(&msg)) {
    r.n = msg.total_examples();
    if (msg.jacobians().shape_size() == 3) {
      if (msg.offset() * r.rows * r.cols != static_cast<int64_t>(r.jacobians.size()) && r.rows > 0) {
        return fail(absl::DataLossError("Jacobian chunks arrived out of order"));
      }
      r.rows = static_cast<int>(msg.jacobians().shape(1));
      r.cols = static_cast<int>(msg.jacobians().shape(2));
      absl::StatusOr<FloatArray> a = Client::DecodeTensor(msg.jacobians());
      if (!a.ok()) return fail(a.status());
      r.jacobians.insert(r.jacobians.end(), a->data.begin(), a->data.end());
    }
    if (msg.last()) {
      last = true;
      r.unique_jacobians = msg.unique_jacobians();
      r.clustered = msg.clustered();
      for (auto [t, out] : {std::pair{&msg.intra_layer_dots(), &r.intra_layer_dots},
                            {&msg.principal_components(), &r.principal_components},
                            {&msg.explained_variance(), &r.explained_variance},
                            {&msg.activation_mean(), &r.activation_mean}}) {
        if (t->shape_size() == 0) continue;
        absl::StatusOr<std::vector<double>> d = DecodeDoubles(*t);
        if (!d.ok()) return fail(d.status());
        *out = *std::move(d);
      }
      if (msg.intra_layer_dots().shape_size() == 2) {
        r.rows = static_cast<int>(msg.intra_layer_dots().shape(0));
      }
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  if (!last) return absl::DataLossError("the Jacobian stream ended without its summary");
  if (!r.jacobians.empty() &&
      static_cast<int64_t>(r.jacobians.size()) != r.n * r.rows * r.cols) {
    return absl::DataLossError("the Jacobian stream is incomplete");
  }
  return r;
}

absl::StatusOr<v1::BuildComputationalGraphResponse> BuildComputationalGraph(
    Client& client, const v1::BuildComputationalGraphRequest& request) {
  return Unary<v1::BuildComputationalGraphResponse>(
      client, request, [](auto* stub, auto* ctx, const auto& req, auto* resp) {
        return stub->BuildComputationalGraph(ctx, req, resp);
      });
}

absl::StatusOr<v1::ScorePathRarityResponse> ScorePathRarity(
    Client& client, const v1::ScorePathRarityRequest& request) {
  return Unary<v1::ScorePathRarityResponse>(
      client, request, [](auto* stub, auto* ctx, const auto& req, auto* resp) {
        return stub->ScorePathRarity(ctx, req, resp);
      });
}

absl::StatusOr<v1::Grid> ParseGrid(const std::string& axes, const std::string& fixed) {
  v1::Grid grid;
  for (absl::string_view axis : absl::StrSplit(axes, ',', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(axis, ':');
    int idx = 0, steps = 0;
    double lo = 0, hi = 0;
    if (f.size() != 4 || !absl::SimpleAtoi(f[0], &idx) || !absl::SimpleAtod(f[1], &lo) ||
        !absl::SimpleAtod(f[2], &hi) || !absl::SimpleAtoi(f[3], &steps)) {
      return absl::InvalidArgumentError(
          absl::StrCat("grid axis \"", axis, "\" is not INPUT:MIN:MAX:STEPS"));
    }
    v1::GridAxis* a = grid.add_axes();
    a->set_input_index(idx);
    a->set_min(lo);
    a->set_max(hi);
    a->set_steps(steps);
  }
  for (absl::string_view v : absl::StrSplit(fixed, ',', absl::SkipEmpty())) {
    double d = 0;
    if (!absl::SimpleAtod(v, &d)) {
      return absl::InvalidArgumentError(absl::StrCat("fixed value \"", v, "\" is not a number"));
    }
    grid.add_fixed_values(d);
  }
  return grid;
}

absl::StatusOr<v1::Tensor> ParsePoints(const std::string& text) {
  std::vector<float> values;
  int64_t rows = 0, width = -1;
  for (absl::string_view row : absl::StrSplit(text, ';', absl::SkipEmpty())) {
    int64_t w = 0;
    for (absl::string_view v : absl::StrSplit(row, ',', absl::SkipEmpty())) {
      double d = 0;
      if (!absl::SimpleAtod(v, &d)) {
        return absl::InvalidArgumentError(absl::StrCat("point value \"", v, "\" is not a number"));
      }
      values.push_back(static_cast<float>(d));
      ++w;
    }
    if (width >= 0 && w != width) {
      return absl::InvalidArgumentError(absl::StrCat("point ", rows + 1, " has ", w,
                                                     " values; the first has ", width));
    }
    width = w;
    ++rows;
  }
  if (rows == 0) return absl::InvalidArgumentError("no points given");
  v1::Tensor t;
  EncodeTensor({rows, width}, values.data(), &t);
  return t;
}

absl::StatusOr<v1::PointSet> ParsePointSet(const std::string& axes, const std::string& fixed,
                                           const std::string& points) {
  v1::PointSet set;
  if (!points.empty()) {
    absl::StatusOr<v1::Tensor> t = ParsePoints(points);
    if (!t.ok()) return t.status();
    *set.mutable_explicit_points() = *std::move(t);
    return set;
  }
  absl::StatusOr<v1::Grid> g = ParseGrid(axes, fixed);
  if (!g.ok()) return g.status();
  *set.mutable_grid() = *std::move(g);
  return set;
}

}  // namespace gradzoo::client
