// AnalysisService through the real gRPC stack and the AnalysisClient: known answers on imported
// hand-made networks (separate subnetworks -> 1, identical outputs -> 0), a trained zoo's sweep
// against the single-model RPC, PCA / CKA checked against slow loops over the model's weights,
// PLSR and scaffold invariants, and every error code (NOT_FOUND, INVALID_ARGUMENT naming the
// field, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) with the server still serving.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "client/analysis_client.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::gradzoo::v1;
using client::AnalysisClient;

void Put(v1::Tensor* t, std::vector<int64_t> shape, const std::vector<float>& d) {
  client::EncodeTensor(shape, d.data(), t);
}

// A 4-4-2 ReLU net. separate: units 0,1 read x1,x2 and feed y1; units 2,3 read x3,x4 and feed
// y2. !separate: every unit reads every input and y2's row equals y1's.
v1::Model HandModel(bool separate) {
  v1::Model m;
  m.set_task("hand-made");
  std::vector<float> w1 = {1.0f, 0.5f, 0, 0, 0.3f, 1.2f, 0, 0, 0, 0, 0.7f, 1.1f, 0, 0, 1.4f, -0.2f};
  std::vector<float> w2 = {1.0f, -0.5f, 0, 0, 0, 0, 0.8f, 1.5f};
  if (!separate) {
    w1 = {1.0f, 0.5f, 0.2f, -0.3f, 0.3f, 1.2f, 0.4f, 0.1f, 0.6f, -0.2f, 0.7f, 1.1f, 0.2f, 0.3f, 1.4f, -0.2f};
    w2 = {1.0f, -0.5f, 0.3f, 0.9f, 1.0f, -0.5f, 0.3f, 0.9f};
  }
  v1::Layer* l1 = m.add_layers();
  Put(l1->mutable_weight(), {4, 4}, w1);
  Put(l1->mutable_bias(), {4}, {0.5f, 0.5f, 0.5f, 0.5f});
  v1::Layer* l2 = m.add_layers();
  Put(l2->mutable_weight(), {2, 4}, w2);
  Put(l2->mutable_bias(), {2}, {0.1f, -0.1f});
  return m;
}

std::vector<float> Points(int n, uint32_t seed) {
  std::vector<float> p(static_cast<size_t>(n) * 4);
  uint64_t s = seed;
  for (float& v : p) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    v = static_cast<float>((s >> 11) * 0x1.0p-53);
  }
  return p;
}

// Slow reference: activations of `layer` (post side; 0 = input) of a stored model, in double.
std::vector<std::vector<double>> Activations(const v1::Model& m, const std::vector<float>& pts, int layer) {
  const int n = static_cast<int>(pts.size() / 4);
  std::vector<std::vector<double>> out;
  for (int p = 0; p < n; ++p) {
    std::vector<double> h(pts.begin() + p * 4, pts.begin() + (p + 1) * 4);
    for (int l = 0; l < layer; ++l) {
      auto w = client::Client::DecodeTensor(m.layers(l).weight());
      auto b = client::Client::DecodeTensor(m.layers(l).bias());
      const int64_t rows = w->shape[0], cols = w->shape[1];
      std::vector<double> z(rows);
      for (int64_t i = 0; i < rows; ++i) {
        z[i] = b->data[i];
        for (int64_t j = 0; j < cols; ++j) z[i] += double{w->data[i * cols + j]} * h[j];
        if (l + 1 < m.layers_size()) z[i] = std::max(0.0, z[i]);
      }
      h = std::move(z);
    }
    out.push_back(h);
  }
  return out;
}

class AnalysisTest : public ServerFixture {
 protected:
  AnalysisClient Analysis() { return AnalysisClient(*client_); }
};

TEST_F(AnalysisTest, KnownAnswersOnImportedNetworks) {
  ASSERT_OK_AND_ASSIGN(auto sep, client_->ImportModel("zoos/hand", HandModel(true)));
  ASSERT_OK_AND_ASSIGN(auto same, client_->ImportModel("zoos/hand", HandModel(false)));
  const std::vector<float> pts = Points(200, 1);
  AnalysisClient an = Analysis();
  for (v1::OrthogonalityMethod method : {v1::ORTHOGONALITY_METHOD_FUNCTIONAL, v1::ORTHOGONALITY_METHOD_COS,
                                         v1::ORTHOGONALITY_METHOD_GRAM, v1::ORTHOGONALITY_METHOD_PCA}) {
    for (int layer : {0, 1}) {
      SCOPED_TRACE(::testing::Message() << "method " << method << " layer " << layer);
      v1::ScoreOrthogonalityRequest req;
      req.set_model(sep.name());
      req.mutable_layer()->set_index(layer);
      req.set_method(method);
      Put(req.mutable_points()->mutable_explicit_points(), {200, 4}, pts);
      ASSERT_OK_AND_ASSIGN(auto a, an.ScoreOrthogonality(req));
      EXPECT_NEAR(a.score(), 1.0, 1e-9);
      EXPECT_EQ(a.method(), method);
      EXPECT_FALSE(a.degeneracy().degenerate());
      req.set_model(same.name());
      ASSERT_OK_AND_ASSIGN(auto b, an.ScoreOrthogonality(req));
      EXPECT_NEAR(b.score(), 0.0, 1e-9);
      if (method == v1::ORTHOGONALITY_METHOD_PCA) {
        ASSERT_EQ(a.components_size(), 2);
        ASSERT_GT(a.principal_angles_size(), 0);
        EXPECT_NEAR(a.principal_angles(0), M_PI / 2, 1e-6);  // orthogonal subspaces
        EXPECT_NEAR(b.principal_angles(0), 0.0, 1e-6);
      } else if (method != v1::ORTHOGONALITY_METHOD_GRAM) {
        EXPECT_EQ(a.points_used() + a.degeneracy().points_excluded(), 200);
      }
    }
  }
  // Default method is functional; an imported model has no validation data.
  v1::ScoreOrthogonalityRequest req;
  req.set_model(sep.name());
  req.mutable_layer()->set_index(1);
  EXPECT_THAT(an.ScoreOrthogonality(req),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("send points")));
  // Zoo-wide on shared points: one setting (lambda 0) holding both models, by seed.
  v1::ScoreZooOrthogonalityRequest zr;
  zr.set_zoo("zoos/hand");
  Put(zr.mutable_points()->mutable_explicit_points(), {200, 4}, pts);
  ASSERT_OK_AND_ASSIGN(auto z, an.ScoreZooOrthogonality(zr));
  EXPECT_EQ(z.method(), v1::ORTHOGONALITY_METHOD_FUNCTIONAL);
  ASSERT_EQ(z.layers_size(), 1);
  EXPECT_EQ(z.layers(0).index(), 1);
  ASSERT_EQ(z.settings_size(), 1);
  EXPECT_EQ(z.settings(0).models_size(), 2);
  EXPECT_EQ(z.settings(0).scores_size(), 2);
  EXPECT_EQ(z.models_scored(), 2);
  EXPECT_EQ(z.spearman_with_lambda(0), 0.0);  // one lambda: undefined, reported as 0
  double lo = 2, hi = -1;
  for (const auto& ms : z.settings(0).models()) {
    lo = std::min(lo, ms.score());
    hi = std::max(hi, ms.score());
    EXPECT_THAT(ms.model(), HasSubstr("zoos/hand/models/"));
  }
  EXPECT_NEAR(lo, 0.0, 1e-9);
  EXPECT_NEAR(hi, 1.0, 1e-9);
  EXPECT_NEAR(z.settings(0).mean(), 0.5, 1e-9);
  EXPECT_NEAR(z.settings(0).stddev(), 0.5, 1e-9);
}

TEST_F(AnalysisTest, TrainedZooSweepAndLayerStructure) {
  TrainZoo("lam", SmallSpec(300));
  AnalysisClient an = Analysis();
  v1::ScoreZooOrthogonalityRequest zr;
  zr.set_zoo("zoos/lam");
  ASSERT_OK_AND_ASSIGN(auto z, an.ScoreZooOrthogonality(zr));
  ASSERT_EQ(z.layers_size(), 2);
  ASSERT_EQ(z.settings_size(), 4);  // 2 layers x 2 lambdas
  ASSERT_EQ(z.spearman_with_lambda_size(), 2);
  EXPECT_EQ(z.models_scored(), 4);
  for (const auto& s : z.settings()) {
    EXPECT_EQ(s.task(), "mul2");
    ASSERT_EQ(s.models_size(), 2);
    EXPECT_LT(s.models(0).seed(), s.models(1).seed());
    for (const auto& ms : s.models()) {
      // The zoo call and the single-model call agree exactly.
      v1::ScoreOrthogonalityRequest req;
      req.set_model(ms.model());
      *req.mutable_layer() = s.layer();
      ASSERT_OK_AND_ASSIGN(auto one, an.ScoreOrthogonality(req));
      EXPECT_DOUBLE_EQ(one.score(), ms.score());
      EXPECT_EQ(one.points_used() + one.degeneracy().points_excluded(), 128);  // validation_examples
      EXPECT_GE(ms.score(), 0.0);
      EXPECT_LE(ms.score(), 1.0);
    }
  }
  for (double rho : z.spearman_with_lambda()) {
    EXPECT_GE(rho, -1.0);
    EXPECT_LE(rho, 1.0);
  }

  // PCA of h1 on explicit points vs the slow covariance: C v = lambda v, orthonormal rows.
  ASSERT_OK_AND_ASSIGN(auto models, client_->ListModels("zoos/lam", true));
  const v1::Model& m0 = models[0];
  const v1::Model& m1 = models[1];
  const std::vector<float> pts = Points(150, 7);
  v1::ComputeLayerPcaRequest pr;
  pr.set_model(m0.name());
  pr.mutable_layer()->set_index(1);
  pr.mutable_second_layer()->set_index(2);
  pr.mutable_second_layer()->set_side(v1::LAYER_SIDE_PRE);
  Put(pr.mutable_points()->mutable_explicit_points(), {150, 4}, pts);
  ASSERT_OK_AND_ASSIGN(auto pca, an.ComputeLayerPca(pr));
  EXPECT_EQ(pca.points_used(), 150);
  ASSERT_OK_AND_ASSIGN(auto comps, AnalysisClient::DecodeDoubles(pca.components()));
  ASSERT_EQ(comps.shape, (std::vector<int64_t>{16, 16}));
  const auto acts = Activations(m0, pts, 1);
  std::vector<double> mean(16, 0.0), cov(256, 0.0);
  for (const auto& a : acts) for (int j = 0; j < 16; ++j) mean[j] += a[j] / 150;
  for (const auto& a : acts) {
    for (int i = 0; i < 16; ++i) for (int j = 0; j < 16; ++j) cov[i * 16 + j] += (a[i] - mean[i]) * (a[j] - mean[j]) / 149;
  }
  ASSERT_OK_AND_ASSIGN(auto mu, AnalysisClient::DecodeDoubles(pca.mean()));
  for (int j = 0; j < 16; ++j) EXPECT_NEAR(mu.data[j], mean[j], 1e-9);
  const double top = pca.explained_variance(0);
  double trace = 0;
  for (int i = 0; i < 16; ++i) trace += cov[i * 17];
  for (int k = 0; k < 16; ++k) {
    double resid = 0, norm = 0;
    for (int i = 0; i < 16; ++i) {
      double cv = 0;
      for (int j = 0; j < 16; ++j) cv += cov[i * 16 + j] * comps.at(k, j);
      resid += std::pow(cv - pca.explained_variance(k) * comps.at(k, i), 2);
      norm += comps.at(k, i) * comps.at(k, i);
    }
    EXPECT_NEAR(norm, 1.0, 1e-9);
    EXPECT_LT(std::sqrt(resid), 1e-7 * top) << "component " << k;
    EXPECT_NEAR(pca.explained_variance_ratio(k), pca.explained_variance(k) / trace, 1e-9);
  }
  ASSERT_TRUE(pca.has_second());
  ASSERT_OK_AND_ASSIGN(auto pcc, AnalysisClient::DecodeDoubles(pca.pc_covariance()));
  EXPECT_EQ(pcc.shape, (std::vector<int64_t>{16, 16}));
  pr.set_components(3);
  ASSERT_OK_AND_ASSIGN(auto pca3, an.ComputeLayerPca(pr));
  EXPECT_EQ(pca3.explained_variance_ratio_size(), 3);
  EXPECT_EQ(pca3.components().shape(0), 3);

  // CKA between two models' h1 vs an explicit n x n unbiased HSIC; a layer with itself is 1.
  const std::vector<float> few = Points(60, 9);
  v1::ComputeCkaRequest cr;
  cr.set_model_a(m0.name());
  cr.set_model_b(m1.name());
  cr.mutable_layer_a()->set_index(1);
  cr.mutable_layer_b()->set_index(1);
  Put(cr.mutable_points()->mutable_explicit_points(), {60, 4}, few);
  ASSERT_OK_AND_ASSIGN(auto cka, an.ComputeCka(cr));
  auto hsic = [](const std::vector<std::vector<double>>& x, const std::vector<std::vector<double>>& y) {
    const int n = static_cast<int>(x.size());
    std::vector<double> k(n * n), l(n * n);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        double kk = 0, ll = 0;
        for (size_t t = 0; t < x[i].size(); ++t) kk += x[i][t] * x[j][t];
        for (size_t t = 0; t < y[i].size(); ++t) ll += y[i][t] * y[j][t];
        k[i * n + j] = i == j ? 0 : kk;
        l[i * n + j] = i == j ? 0 : ll;
      }
    }
    double tr = 0, k1 = 0, l1 = 0, kl1 = 0;
    for (int i = 0; i < n; ++i) {
      double rk = 0, rl = 0;
      for (int j = 0; j < n; ++j) {
        tr += k[i * n + j] * l[j * n + i];
        rk += k[i * n + j];
        rl += l[i * n + j];
      }
      k1 += rk;
      l1 += rl;
      kl1 += rk * rl;
    }
    return (tr + k1 * l1 / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * kl1) / (n * (n - 3.0));
  };
  const auto xa = Activations(m0, few, 1), xb = Activations(m1, few, 1);
  EXPECT_NEAR(cka.cka(), hsic(xa, xb) / std::sqrt(hsic(xa, xa) * hsic(xb, xb)), 1e-9);
  EXPECT_EQ(cka.points_used(), 60);
  cr.clear_model_b();
  cr.set_all_layers(true);
  ASSERT_OK_AND_ASSIGN(auto self, an.ComputeCka(cr));
  EXPECT_DOUBLE_EQ(self.cka(), 1.0);
  ASSERT_OK_AND_ASSIGN(auto mat, AnalysisClient::DecodeDoubles(self.matrix()));
  ASSERT_EQ(mat.shape, (std::vector<int64_t>{4, 4}));
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(mat.at(i, j), mat.at(j, i), 1e-9);
  }
  EXPECT_EQ(self.matrix_layers_a_size(), 4);

  // PLSR h1 -> PCs of z2: shapes, unit x weights, variance fractions.
  v1::ComputePlsrRequest lr;
  lr.set_model(m0.name());
  lr.mutable_layer()->set_index(1);
  lr.set_target_components(3);
  ASSERT_OK_AND_ASSIGN(auto pls, an.ComputePlsr(lr));
  ASSERT_OK_AND_ASSIGN(auto xw, AnalysisClient::DecodeDoubles(pls.x_weights()));
  ASSERT_EQ(xw.shape, (std::vector<int64_t>{16, 2}));  // default 2 components
  for (int k = 0; k < 2; ++k) {
    double norm = 0;
    for (int i = 0; i < 16; ++i) norm += xw.at(i, k) * xw.at(i, k);
    EXPECT_NEAR(norm, 1.0, 1e-9);
  }
  EXPECT_EQ(pls.target_pcs().shape(0), 3);
  EXPECT_EQ(pls.coefficients().shape(1), 3);
  EXPECT_EQ(pls.pc_overlap().shape(0), 2);
  double ev = 0;
  for (double v : pls.explained_variance()) ev += v;
  EXPECT_GT(ev, 0.0);
  EXPECT_LE(ev, 1.0 + 1e-9);
  EXPECT_EQ(pls.points_used(), 128);

  // Scaffold h1 -> PC0 of h2: every point is assigned or counted as a zero gradient.
  v1::ComputeScaffoldGradientsRequest sr;
  sr.set_model(m0.name());
  sr.mutable_layer()->set_index(1);
  sr.set_include_gradients(true);
  ASSERT_OK_AND_ASSIGN(auto sc, an.ComputeScaffoldGradients(sr));
  EXPECT_EQ(sc.points_used(), 128);
  ASSERT_EQ(sc.assignments_size(), 128);
  EXPECT_EQ(sc.clusters_found(), sc.clusters_size());
  int64_t total = sc.zero_gradients();
  for (const auto& c : sc.clusters()) total += c.size();
  EXPECT_EQ(total, 128);
  EXPECT_LE(sc.clusters_found(), sc.distinct_gradients());
  EXPECT_EQ(sc.gradients().shape(0), 128);
  EXPECT_EQ(sc.target_direction().shape(0), 16);
}

TEST_F(AnalysisTest, ErrorsCarryTheRightCodes) {
  TrainZoo("e", SmallSpec(20));
  AnalysisClient an = Analysis();
  v1::ScoreOrthogonalityRequest req;
  req.set_model("zoos/e/models/m9999");
  req.mutable_layer()->set_index(1);
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kNotFound, HasSubstr("m9999")));
  req.set_model("zoos/Bad Name/models/x");
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model")));
  req.set_model("zoos/e/models/m0000");
  req.mutable_layer()->set_index(3);  // the output layer: not scorable
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer.index")));
  req.mutable_layer()->set_index(1);
  req.set_output_a(1);
  req.set_output_b(1);
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("differ")));
  req.set_output_a(0);
  req.set_method(static_cast<v1::OrthogonalityMethod>(42));
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("method")));
  req.set_method(v1::ORTHOGONALITY_METHOD_PCA);
  req.set_variance_threshold(1.5);
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("variance_threshold")));
  req.set_variance_threshold(0);
  auto* grid = req.mutable_points()->mutable_grid();
  for (int i = 0; i < 2; ++i) {
    auto* a = grid->add_axes();
    a->set_input_index(i);
    a->set_steps(5000);
  }
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  req.clear_points();
  Put(req.mutable_points()->mutable_explicit_points(), {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_THAT(an.ScoreOrthogonality(req), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));

  v1::ScoreZooOrthogonalityRequest zr;
  zr.set_zoo("zoos/none");
  EXPECT_THAT(an.ScoreZooOrthogonality(zr), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  zr.set_zoo("zoos/e");
  zr.add_layers()->set_index(7);
  EXPECT_THAT(an.ScoreZooOrthogonality(zr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer.index")));
  zr.clear_layers();
  // A deadline too short for the call: DEADLINE_EXCEEDED, and the server keeps serving.
  EXPECT_THAT(an.ScoreZooOrthogonality(zr, absl::Microseconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  ASSERT_OK_AND_ASSIGN(bool serving, client_->CheckHealth());
  EXPECT_TRUE(serving);
  ASSERT_OK(an.ScoreZooOrthogonality(zr));

  v1::ComputePlsrRequest lr;
  lr.set_model("zoos/e/models/m0000");
  lr.mutable_layer()->set_index(1);
  lr.set_components(17);
  EXPECT_THAT(an.ComputePlsr(lr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("components")));
  v1::ComputeLayerPcaRequest pr;
  pr.set_model("zoos/e/models/m0000");
  pr.mutable_layer()->set_index(4);
  EXPECT_THAT(an.ComputeLayerPca(pr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer.index")));
  v1::ComputeCkaRequest cr;
  cr.set_model_a("zoos/e/models/m0000");
  cr.set_model_b("zoos/e/models/m0042");
  EXPECT_THAT(an.ComputeCka(cr), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  v1::ComputeScaffoldGradientsRequest sr;
  sr.set_model("zoos/e/models/m0000");
  sr.mutable_layer()->set_index(2);
  sr.mutable_target_layer()->set_index(1);
  EXPECT_THAT(an.ComputeScaffoldGradients(sr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("after")));
  sr.clear_target_layer();
  sr.set_cluster_cosine(1.5);
  EXPECT_THAT(an.ComputeScaffoldGradients(sr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster_cosine")));
}

}  // namespace
}  // namespace gradzoo::testing
