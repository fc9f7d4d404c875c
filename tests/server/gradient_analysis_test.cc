// GradientService's analyses through the real gRPC stack and the client library: linear
// regions, exact partitions (checked against the gradient-field RPC at region centroids),
// streamed layer Jacobians (checked against the stored weights), the computational graph,
// path rarity, the error codes of bad requests, and a million-point field of a 4-64-64-2 model
// arriving intact (checked against an independent float32 forward pass and float64 Jacobians).
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "client/gradient_analysis.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::gradzoo::v1;

constexpr char kModel[] = "zoos/g/models/m0000";

v1::PointSet Grid2(int steps) {
  v1::PointSet p;
  for (int i = 0; i < 2; ++i) {
    v1::GridAxis* a = p.mutable_grid()->add_axes();
    a->set_input_index(i);
    a->set_min(0);
    a->set_max(1);
    a->set_steps(steps);
  }
  return p;
}

class GradientAnalysisTest : public ServerFixture {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    TrainZoo("g", SmallSpec(200));
  }
};

TEST_F(GradientAnalysisTest, RegionsAndExactPartitionAgree) {
  v1::CountLinearRegionsRequest req;
  req.set_model(kModel);
  *req.mutable_points() = Grid2(101);
  req.set_per_layer(true);
  ASSERT_OK_AND_ASSIGN(auto counts, client::CountLinearRegions(*client_, req));
  EXPECT_EQ(counts.points(), 101 * 101);
  EXPECT_FALSE(counts.clustered());
  EXPECT_GT(counts.regions(), 1);
  EXPECT_EQ(std::accumulate(counts.region_sizes().begin(), counts.region_sizes().end(), int64_t{0}),
            counts.points());
  ASSERT_EQ(counts.unique_gradients_per_output_size(), 2);
  for (int64_t u : counts.unique_gradients_per_output()) EXPECT_LE(u, counts.regions());
  ASSERT_EQ(counts.layers_size(), 2);
  EXPECT_EQ(counts.layers(1).unique_post(0), 1);  // d y / d h_last = W_out: one gradient

  v1::ComputeRegionPartitionRequest preq;
  preq.set_model(kModel);
  *preq.mutable_slice() = Grid2(2).grid();
  ASSERT_OK_AND_ASSIGN(client::RegionPartition p, client::ComputeRegionPartition(*client_, preq));
  EXPECT_EQ(p.output_dim, 2);
  EXPECT_DOUBLE_EQ(p.slice_area, 1.0);
  double area = 0;
  for (const auto& r : p.regions) area += r.area;
  EXPECT_NEAR(area, 1.0, 1e-9);
  // Sampling never finds more regions than exist.
  EXPECT_GE(static_cast<int64_t>(p.regions.size()), counts.regions());

  // At each region's centroid the gradient field (a different RPC and code path) gives the
  // polygon's gradient w.r.t. (x1, x2).
  std::vector<float> centroids;
  for (const auto& r : p.regions) {
    const size_t n = r.vertices.size() / 2;
    double cx = 0, cy = 0, a = 0;
    for (size_t i = 0; i < n; ++i) {
      const double x0 = r.vertices[2 * i], y0 = r.vertices[2 * i + 1];
      const double x1 = r.vertices[2 * ((i + 1) % n)], y1 = r.vertices[2 * ((i + 1) % n) + 1];
      const double cr = x0 * y1 - x1 * y0;
      a += cr;
      cx += (x0 + x1) * cr;
      cy += (y0 + y1) * cr;
    }
    centroids.insert(centroids.end(), {static_cast<float>(cx / (3 * a)), static_cast<float>(cy / (3 * a)), 0.5f, 0.5f});
  }
  v1::ComputeGradientFieldRequest freq;
  freq.mutable_selection()->add_models(kModel);
  client::EncodeTensor({static_cast<int64_t>(p.regions.size()), 4}, centroids.data(),
                       freq.mutable_points()->mutable_explicit_points());
  ASSERT_OK_AND_ASSIGN(auto fields, client_->ComputeGradientField(freq));
  ASSERT_EQ(fields.size(), 1u);
  for (size_t i = 0; i < p.regions.size(); ++i) {
    for (int o = 0; o < 2; ++o) {
      for (int k = 0; k < 2; ++k) {
        EXPECT_NEAR(fields[0].gradients[(i * 2 + o) * 4 + k], p.regions[i].gradient[o * 2 + k], 1e-4)
            << "region " << i;
      }
    }
  }
}

TEST_F(GradientAnalysisTest, LayerJacobiansStreamIntactAndMatchWeights) {
  ASSERT_OK_AND_ASSIGN(v1::Model model, client_->GetModel(kModel));
  ASSERT_OK_AND_ASSIGN(auto w1, client::Client::DecodeTensor(model.layers(0).weight()));
  ASSERT_OK_AND_ASSIGN(auto b1, client::Client::DecodeTensor(model.layers(0).bias()));
  v1::ComputeLayerJacobiansRequest req;
  req.set_model(kModel);
  *req.mutable_points() = Grid2(21);
  req.set_layer(0);
  req.set_chunk_examples(50);  // 441 examples -> 9 chunks
  ASSERT_OK_AND_ASSIGN(client::LayerJacobianResult r, client::ComputeLayerJacobians(*client_, req));
  EXPECT_EQ(r.n, 441);
  EXPECT_EQ(r.rows, 16);
  EXPECT_EQ(r.cols, 4);
  ASSERT_EQ(r.jacobians.size(), 441u * 16 * 4);
  // d h_1 / d x = diag(z_1 > 0) W_1, with z_1 = W_1 x + b_1 computed from the stored weights.
  for (int e = 0; e < 441; ++e) {
    const double x[4] = {(e / 21) / 20.0, (e % 21) / 20.0, 0.5, 0.5};
    for (int v = 0; v < 16; ++v) {
      double z = b1.data[v];
      for (int i = 0; i < 4; ++i) z += w1.data[v * 4 + i] * x[i];
      if (std::abs(z) < 1e-5) continue;  // on a kink: float rounding decides
      for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(r.jacobians[(e * 16 + v) * 4 + i], z > 0 ? w1.data[v * 4 + i] : 0.0f);
      }
    }
  }
  EXPECT_GE(r.unique_jacobians, 1);
  ASSERT_EQ(r.intra_layer_dots.size(), 16u * 16);

  // Summary only: one message, same summary.
  req.set_summary_only(true);
  ASSERT_OK_AND_ASSIGN(client::LayerJacobianResult s, client::ComputeLayerJacobians(*client_, req));
  EXPECT_TRUE(s.jacobians.empty());
  EXPECT_EQ(s.unique_jacobians, r.unique_jacobians);
  EXPECT_EQ(s.intra_layer_dots, r.intra_layer_dots);

  // Principal components of layer 2, rows normalised.
  req.set_layer(1);
  req.set_summary_only(false);
  req.set_use_principal_components(true);
  req.set_num_components(3);
  req.set_normalize(true);
  ASSERT_OK_AND_ASSIGN(client::LayerJacobianResult pc, client::ComputeLayerJacobians(*client_, req));
  EXPECT_EQ(pc.rows, 3);
  EXPECT_EQ(pc.cols, 16);
  ASSERT_EQ(pc.explained_variance.size(), 3u);
  EXPECT_GE(pc.explained_variance[0], pc.explained_variance[1]);
  EXPECT_EQ(pc.principal_components.size(), 3u * 16);
  EXPECT_EQ(pc.activation_mean.size(), 16u);
  for (int e = 0; e < 441; ++e) {
    for (int i = 0; i < 3; ++i) {
      double norm = 0;
      for (int j = 0; j < 16; ++j) norm += std::pow(pc.jacobians[(e * 3 + i) * 16 + j], 2);
      EXPECT_TRUE(std::abs(norm - 1) < 1e-5 || norm == 0) << norm;
    }
  }
}

TEST_F(GradientAnalysisTest, GraphWithQueriesDotJsonAndRarity) {
  v1::BuildComputationalGraphRequest req;
  req.set_model(kModel);
  *req.mutable_points() = Grid2(21);
  req.set_include_dot(true);
  req.set_include_json(true);
  const std::vector<float> q = {0.2f, 0.3f, 0.5f, 0.5f, 9.0f, -9.0f, 9.0f, -9.0f};
  client::EncodeTensor({2, 4}, q.data(), req.mutable_query_points()->mutable_explicit_points());
  ASSERT_OK_AND_ASSIGN(auto g, client::BuildComputationalGraph(*client_, req));
  EXPECT_EQ(g.nodes_size(), 4 + 16 + 16 + 2);
  EXPECT_EQ(g.nodes(0).id(), "L0:0");
  EXPECT_GT(g.edges_size(), 0);
  for (const auto& e : g.edges()) {
    EXPECT_GT(e.weight(), 0);
    EXPECT_LE(e.weight(), 1.0 + 1e-9);  // normalised rows: |entries| <= 1
    EXPECT_LE(std::abs(e.signed_weight()), e.weight() + 1e-12);
  }
  EXPECT_THAT(g.dot(), HasSubstr("digraph \"zoos/g/models/m0000\""));
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(g.json(), &parsed).ok());
  EXPECT_EQ(parsed.fields().at("nodes").list_value().values_size(), g.nodes_size());
  EXPECT_EQ(parsed.fields().at("links").list_value().values_size(), g.edges_size());
  ASSERT_EQ(g.subgraphs_size(), 2);
  // The grid point's path is common; the far-away input's is rarer.
  EXPECT_GT(g.subgraphs(0).rarity().same_pattern_count(), 0);
  EXPECT_EQ(g.subgraphs(0).rarity().nearest_hamming_distance(), 0);
  EXPECT_GT(g.subgraphs(1).rarity().surprisal_bits(), g.subgraphs(0).rarity().surprisal_bits());
  EXPECT_EQ(g.reference().examples(), 441);
  for (int e : g.subgraphs(0).edge_indices()) EXPECT_LT(e, g.edges_size());

  v1::ScorePathRarityRequest rr;
  rr.set_model(kModel);
  *rr.mutable_reference_points() = Grid2(21);
  client::EncodeTensor({2, 4}, q.data(), rr.mutable_query_points()->mutable_explicit_points());
  ASSERT_OK_AND_ASSIGN(auto rarity, client::ScorePathRarity(*client_, rr));
  ASSERT_EQ(rarity.scores_size(), 2);
  EXPECT_DOUBLE_EQ(rarity.scores(1).surprisal_bits(), g.subgraphs(1).rarity().surprisal_bits());
  EXPECT_EQ(rarity.reference().quantiles_size(), 9);

  // Principal components as nodes.
  req.set_basis(v1::GRAPH_BASIS_PRINCIPAL_COMPONENTS);
  req.set_num_components(3);
  req.clear_query_points();
  ASSERT_OK_AND_ASSIGN(auto pg, client::BuildComputationalGraph(*client_, req));
  EXPECT_EQ(pg.nodes_size(), 4 + 3 + 3 + 2);
  EXPECT_EQ(pg.nodes(4).label(), "pc1.0");
}

TEST_F(GradientAnalysisTest, BadRequestsGetTheRightCodes) {
  using absl::StatusCode;
  v1::CountLinearRegionsRequest r;
  r.set_model("zoos/g/models/m9999");
  *r.mutable_points() = Grid2(5);
  EXPECT_THAT(client::CountLinearRegions(*client_, r), StatusIs(StatusCode::kNotFound, HasSubstr("m9999")));
  r.set_model("not a model");
  EXPECT_THAT(client::CountLinearRegions(*client_, r), StatusIs(StatusCode::kInvalidArgument, HasSubstr("model")));
  r.set_model(kModel);
  r.set_tolerance(2);
  EXPECT_THAT(client::CountLinearRegions(*client_, r), StatusIs(StatusCode::kInvalidArgument, HasSubstr("tolerance")));
  r.set_tolerance(0);
  *r.mutable_points() = Grid2(100000);
  EXPECT_THAT(client::CountLinearRegions(*client_, r), StatusIs(StatusCode::kResourceExhausted, HasSubstr("points")));

  v1::ComputeRegionPartitionRequest p;
  p.set_model(kModel);
  EXPECT_THAT(client::ComputeRegionPartition(*client_, p), StatusIs(StatusCode::kInvalidArgument, HasSubstr("slice.axes")));
  *p.mutable_slice() = Grid2(2).grid();
  p.mutable_slice()->mutable_axes(1)->set_input_index(0);
  EXPECT_THAT(client::ComputeRegionPartition(*client_, p), StatusIs(StatusCode::kInvalidArgument, HasSubstr("different inputs")));
  *p.mutable_slice() = Grid2(2).grid();
  p.mutable_slice()->mutable_axes(0)->set_min(-1000);
  p.mutable_slice()->mutable_axes(0)->set_max(1000);
  p.mutable_slice()->mutable_axes(1)->set_min(-1000);
  p.mutable_slice()->mutable_axes(1)->set_max(1000);
  p.set_max_regions(5);
  EXPECT_THAT(client::ComputeRegionPartition(*client_, p), StatusIs(StatusCode::kResourceExhausted, HasSubstr("max_regions")));

  v1::ComputeLayerJacobiansRequest j;
  j.set_model(kModel);
  *j.mutable_points() = Grid2(5);
  j.set_layer(3);
  EXPECT_THAT(client::ComputeLayerJacobians(*client_, j), StatusIs(StatusCode::kInvalidArgument, HasSubstr("layer")));
  j.set_layer(0);
  j.set_num_components(2);
  EXPECT_THAT(client::ComputeLayerJacobians(*client_, j), StatusIs(StatusCode::kInvalidArgument, HasSubstr("num_components")));

  v1::BuildComputationalGraphRequest g;
  g.set_model(kModel);
  *g.mutable_points() = Grid2(5);
  g.set_max_edges(-1);
  EXPECT_THAT(client::BuildComputationalGraph(*client_, g), StatusIs(StatusCode::kInvalidArgument, HasSubstr("max_edges")));
  g.set_max_edges(0);
  g.mutable_query_points()->mutable_explicit_points()->add_shape(1);
  EXPECT_THAT(client::BuildComputationalGraph(*client_, g), StatusIs(StatusCode::kInvalidArgument, HasSubstr("query_points")));

  v1::ScorePathRarityRequest s;
  s.set_model(kModel);
  *s.mutable_reference_points() = Grid2(5);
  EXPECT_THAT(client::ScorePathRarity(*client_, s), StatusIs(StatusCode::kInvalidArgument, HasSubstr("query_points")));
  ASSERT_OK_AND_ASSIGN(bool serving, client_->CheckHealth());
  EXPECT_TRUE(serving);
}

TEST_F(GradientAnalysisTest, SmoothModelsClusterAndRefusePartitions) {
  v1::ZooSpec spec = SmallSpec(50);
  spec.mutable_architecture()->set_activation(v1::ACTIVATION_TANH);
  TrainZoo("t", spec);
  v1::CountLinearRegionsRequest r;
  r.set_model("zoos/t/models/m0000");
  *r.mutable_points() = Grid2(31);
  r.set_tolerance(0.05);
  ASSERT_OK_AND_ASSIGN(auto counts, client::CountLinearRegions(*client_, r));
  EXPECT_TRUE(counts.clustered());
  EXPECT_DOUBLE_EQ(counts.tolerance(), 0.05);
  EXPECT_GE(counts.regions(), 1);
  v1::ComputeRegionPartitionRequest p;
  p.set_model("zoos/t/models/m0000");
  *p.mutable_slice() = Grid2(2).grid();
  EXPECT_THAT(client::ComputeRegionPartition(*client_, p),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ReLU")));
}

// Issue 4: "a million-point field for a 4-64-64-2 model arrives intact in the C++ client". A
// ReLU net with random weights is imported, its field on a 1000 x 1000 grid of the (x1, x2)
// slice streams in ~1 MiB chunks, and the assembled arrays are checked point by point: the
// coordinates against the grid formula (exact), the outputs against a float32 forward pass
// here (1e-4), and every gradient against W3 D2 W2 D1 W1 formed in float64 from that pass's
// activation pattern (1e-4 absolute; points within 1e-4 of a kink, where float32 summation
// order may flip a unit, are not compared, and must be under 3%).
TEST_F(ServerFixture, MillionPointFieldOfA4x64x64x2ModelArrivesIntact) {
  constexpr int kIn = 4, kH = 64, kOut = 2, kSteps = 1000;
  constexpr int64_t kN = int64_t{kSteps} * kSteps;
  std::mt19937 rng(20261121);
  std::normal_distribution<double> normal(0.0, 1.0);
  const std::array<int, 4> widths = {kIn, kH, kH, kOut};
  std::vector<std::vector<float>> w(3), b(3);
  v1::Model m;
  for (int l = 0; l < 3; ++l) {
    w[l].resize(widths[l + 1] * widths[l]);
    b[l].resize(widths[l + 1]);
    for (auto& v : w[l]) v = static_cast<float>(normal(rng) * std::sqrt(2.0 / widths[l]));
    for (auto& v : b[l]) v = static_cast<float>(0.2 * normal(rng));
    v1::Layer* layer = m.add_layers();
    client::EncodeTensor({widths[l + 1], widths[l]}, w[l].data(), layer->mutable_weight());
    client::EncodeTensor({widths[l + 1]}, b[l].data(), layer->mutable_bias());
  }
  ASSERT_OK_AND_ASSIGN(v1::Model stored, client_->ImportModel("zoos/big", m));

  v1::ComputeGradientFieldRequest req;
  req.mutable_selection()->add_models(stored.name());
  req.set_include_outputs(true);
  v1::Grid* grid = req.mutable_points()->mutable_grid();
  for (int i = 0; i < 2; ++i) {
    v1::GridAxis* a = grid->add_axes();
    a->set_input_index(i);
    a->set_min(-1.5);
    a->set_max(1.5);
    a->set_steps(kSteps);
  }
  for (double v : {0.0, 0.0, 0.3, -0.2}) grid->add_fixed_values(v);
  ASSERT_OK_AND_ASSIGN(auto fields, client_->ComputeGradientField(req));
  ASSERT_EQ(fields.size(), 1u);
  const client::GradientField& f = fields[0];
  EXPECT_EQ(f.model, stored.name());
  ASSERT_EQ(f.n, kN);
  ASSERT_EQ(f.input_dim, kIn);
  ASSERT_EQ(f.output_dim, kOut);
  ASSERT_EQ(f.points.size(), static_cast<size_t>(kN * kIn));
  ASSERT_EQ(f.gradients.size(), static_cast<size_t>(kN * kOut * kIn));
  ASSERT_EQ(f.outputs.size(), static_cast<size_t>(kN * kOut));

  // Transposed weights ([in][out]) so the forward loops below run along contiguous rows.
  std::vector<std::vector<float>> wt(3);
  for (int l = 0; l < 3; ++l) {
    wt[l].resize(w[l].size());
    for (int v = 0; v < widths[l + 1]; ++v) {
      for (int u = 0; u < widths[l]; ++u) wt[l][u * widths[l + 1] + v] = w[l][v * widths[l] + u];
    }
  }
  std::map<std::array<uint64_t, 2>, std::array<double, kOut * kIn>> jacobians;
  int64_t bad_points = 0, bad_outputs = 0, bad_gradients = 0, near_kinks = 0;
  double max_gradient_error = 0;
  for (int64_t p = 0; p < kN; ++p) {
    const float* x = f.points.data() + p * kIn;
    const float want[kIn] = {
        static_cast<float>(-1.5 + 3.0 * (static_cast<double>(p / kSteps) / (kSteps - 1))),
        static_cast<float>(-1.5 + 3.0 * (static_cast<double>(p % kSteps) / (kSteps - 1))), 0.3f, -0.2f};
    bad_points += !std::equal(x, x + kIn, want);
    float z1[kH], z2[kH], y[kOut];
    std::copy(b[0].begin(), b[0].end(), z1);
    for (int u = 0; u < kIn; ++u) {
      for (int v = 0; v < kH; ++v) z1[v] += wt[0][u * kH + v] * want[u];
    }
    std::copy(b[1].begin(), b[1].end(), z2);
    bool kink = false;
    std::array<uint64_t, 2> pattern = {0, 0};
    for (int u = 0; u < kH; ++u) {
      kink |= std::abs(z1[u]) < 1e-4f;
      if (z1[u] <= 0) continue;
      pattern[0] |= uint64_t{1} << u;
      for (int v = 0; v < kH; ++v) z2[v] += wt[1][u * kH + v] * z1[u];
    }
    std::copy(b[2].begin(), b[2].end(), y);
    for (int u = 0; u < kH; ++u) {
      kink |= std::abs(z2[u]) < 1e-4f;
      if (z2[u] <= 0) continue;
      pattern[1] |= uint64_t{1} << u;
      for (int v = 0; v < kOut; ++v) y[v] += wt[2][u * kOut + v] * z2[u];
    }
    for (int o = 0; o < kOut; ++o) bad_outputs += !(std::abs(f.outputs[p * kOut + o] - y[o]) <= 1e-4f * (1 + std::abs(y[o])));
    if (kink) {
      ++near_kinks;
      continue;
    }
    auto [it, fresh] = jacobians.try_emplace(pattern);
    if (fresh) {  // d y_o / d x = W3[o] D2 W2 D1 W1 in float64
      for (int o = 0; o < kOut; ++o) {
        double g2[kH], g1[kH] = {};
        for (int u = 0; u < kH; ++u) g2[u] = (pattern[1] >> u & 1) ? w[2][o * kH + u] : 0.0;
        for (int v = 0; v < kH; ++v) {
          for (int u = 0; u < kH; ++u) g1[u] += g2[v] * w[1][v * kH + u];
        }
        for (int u = 0; u < kH; ++u) g1[u] *= (pattern[0] >> u & 1) ? 1.0 : 0.0;
        for (int i = 0; i < kIn; ++i) {
          double s = 0;
          for (int u = 0; u < kH; ++u) s += g1[u] * w[0][u * kIn + i];
          it->second[o * kIn + i] = s;
        }
      }
    }
    for (int k = 0; k < kOut * kIn; ++k) {
      const double e = std::abs(f.gradients[p * kOut * kIn + k] - it->second[k]);
      max_gradient_error = std::max(max_gradient_error, e);
      bad_gradients += !(e <= 1e-4);
    }
  }
  EXPECT_EQ(bad_points, 0);
  EXPECT_EQ(bad_outputs, 0);
  EXPECT_EQ(bad_gradients, 0) << "max gradient error " << max_gradient_error;
  EXPECT_LT(near_kinks, 3 * kN / 100);
  EXPECT_GT(jacobians.size(), 100u);  // many regions: the gradients really vary over the slice
}

}  // namespace
}  // namespace gradzoo::testing
