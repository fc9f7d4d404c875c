// EmbeddingService and embedder-training jobs through the real server and client: a job trains
// an embedder with progress, the lookups agree with client-side references (cosine from the
// returned embeddings, k-NN accuracy recomputed from them), embedders survive a restart, and
// errors carry the right codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_format.h"

#include "client/embedding_client.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

v1::ZooSpec PolySpec(int families, int seeds, int validation) {
  v1::ZooSpec spec;
  spec.mutable_task()->set_name("poly1d");
  spec.mutable_task()->set_families(families);
  spec.mutable_task()->set_family_seed(1);
  spec.mutable_task()->set_train_examples(256);
  spec.mutable_task()->set_validation_examples(64);
  spec.mutable_architecture()->add_hidden_widths(16);
  spec.mutable_architecture()->add_hidden_widths(16);
  for (int s = 0; s < seeds; ++s) spec.add_seeds(s);
  for (int s = seeds - validation; s < seeds; ++s) spec.add_validation_seeds(s);
  spec.mutable_training()->set_steps(1200);
  spec.mutable_training()->set_batch_size(128);
  spec.mutable_training()->set_learning_rate(1e-2);
  return spec;
}

v1::EmbedderTraining Work(const std::string& id, int steps) {
  v1::EmbedderTraining t;
  t.set_embedder_id(id);
  t.add_zoos("zoos/poly");
  t.set_points_per_sample(48);
  t.set_embedding_size(16);
  t.set_steps(steps);
  t.set_hidden(48);
  t.set_learning_rate(3e-3);
  t.set_seed(3);
  return t;
}

double Cosine(const float* a, const float* b, int d) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < d; ++i) {
    ab += double{a[i]} * b[i];
    aa += double{a[i]} * a[i];
    bb += double{b[i]} * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

class EmbeddingServiceTest : public testing::ServerFixture {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    TrainZoo("poly", PolySpec(5, 12, 3));
    emb_ = std::make_unique<client::EmbeddingClient>(*client_);
  }
  std::unique_ptr<client::EmbeddingClient> emb_;
};

TEST_F(EmbeddingServiceTest, TrainLookupProbeRestartDelete) {
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, emb_->CreateEmbedderTrainingJob(Work("e1", 600)));
  EXPECT_TRUE(job.has_embedder_training());
  int updates = 0;
  ASSERT_OK_AND_ASSIGN(job, client_->WaitForJob(job.name(), [&](const v1::TrainingJob& j) {
                         if (j.progress().step() > 0) ++updates;
                       }));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.output(), "embedders/e1");
  EXPECT_GT(updates, 0);

  ASSERT_OK_AND_ASSIGN(v1::Embedder e, emb_->GetEmbedder("embedders/e1"));
  EXPECT_EQ(e.embedding_size(), 16);
  EXPECT_EQ(e.zoos(0), "zoos/poly");
  EXPECT_EQ(e.train_models(), 45);
  EXPECT_EQ(e.validation_models(), 15);
  EXPECT_EQ(e.mask_shape(), v1::MASK_SHAPE_SPANS);  // the default
  EXPECT_GT(e.hidden(), 0);
  EXPECT_GT(e.mean_gradient_baseline_loss(), 0);
  EXPECT_LT(e.validation_cloze_loss(), e.mean_gradient_baseline_loss());
  ASSERT_OK_AND_ASSIGN(auto list, emb_->ListEmbedders());
  ASSERT_EQ(list.size(), 1u);

  // Batch lookups: shape, determinism, independence of the batch.
  std::vector<std::string> names;
  for (int i = 0; i < 60; ++i) names.push_back(absl::StrFormat("zoos/poly/models/m%04d", i));
  ASSERT_OK_AND_ASSIGN(client::FloatArray all, emb_->EmbedModels("embedders/e1", names));
  ASSERT_EQ(all.shape, (std::vector<int64_t>{60, 16}));
  ASSERT_OK_AND_ASSIGN(client::FloatArray one,
                       emb_->EmbedModels("embedders/e1", {names[7]}, 0, 0));
  for (int j = 0; j < 16; ++j) EXPECT_NEAR(one.data[j], all.data[7 * 16 + j], 1e-5);

  // Sub-networks: layers 0 to the output (3, or 0) of these 1-16-16-1 nets are the whole
  // network; layer 1 onwards reads 16 inputs, which this 1 -> 1 embedder does not.
  EXPECT_EQ(e.from_layer(), 0);
  EXPECT_EQ(e.to_layer(), 0);
  for (int to : {3, 0}) {
    v1::EmbedModelsRequest req;
    req.set_embedder("embedders/e1");
    req.add_models(names[7]);
    req.set_from_layer(0);
    req.set_to_layer(to);
    ASSERT_OK_AND_ASSIGN(client::FloatArray sub, emb_->EmbedModels(req));
    // Computed alone here, in a batch of 60 before: equal up to float rounding.
    for (int j = 0; j < 16; ++j) EXPECT_NEAR(sub.data[j], one.data[j], 1e-5) << to;
  }
  {
    v1::EmbedModelsRequest req;
    req.set_embedder("embedders/e1");
    req.add_models(names[7]);
    req.set_from_layer(1);
    EXPECT_THAT(emb_->EmbedModels(req),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("16 inputs")));
    req.set_from_layer(99);
    EXPECT_THAT(emb_->EmbedModels(req),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from_layer")));
    req.set_from_layer(2);
    req.set_to_layer(2);
    EXPECT_THAT(emb_->EmbedModels(req),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to_layer")));
  }

  // Neighbours: similarities are the cosines of the returned embeddings.
  ASSERT_OK_AND_ASSIGN(auto nb, emb_->FindNeighbors("embedders/e1", names[0], 5));
  ASSERT_EQ(nb.size(), 5u);
  std::map<std::string, int> index;
  for (int i = 0; i < 60; ++i) index[names[i]] = i;
  std::vector<double> cos;
  for (int i = 1; i < 60; ++i) cos.push_back(Cosine(all.data.data(), all.data.data() + i * 16, 16));
  std::sort(cos.rbegin(), cos.rend());
  for (size_t r = 0; r < nb.size(); ++r) {
    ASSERT_TRUE(index.count(nb[r].model()));
    const int i = index[nb[r].model()];
    EXPECT_NEAR(nb[r].similarity(), Cosine(all.data.data(), all.data.data() + i * 16, 16), 1e-5);
    EXPECT_NEAR(nb[r].similarity(), cos[r], 1e-5);
    ASSERT_OK_AND_ASSIGN(v1::Model m, client_->GetModel(nb[r].model()));
    EXPECT_EQ(nb[r].label(), m.label());
  }

  // Probe: four representations; the embedding's k-NN accuracy recomputed here from the
  // embeddings (standardised with the training rows, cosine, 5 votes, lowest class wins ties).
  ASSERT_OK_AND_ASSIGN(auto scores, emb_->RunProbe("embedders/e1", {"zoos/poly"}, "label", 5));
  ASSERT_EQ(scores.size(), 4u);
  EXPECT_EQ(scores[0].representation(), "embedding");
  EXPECT_EQ(scores[1].representation(), "gradient_profile");
  EXPECT_EQ(scores[2].representation(), "weight_stats");
  EXPECT_EQ(scores[3].representation(), "untrained_encoder");
  EXPECT_EQ(scores[0].classes(), 5);
  EXPECT_EQ(scores[0].validation_models(), 15);
  {
    std::vector<int> train, val;
    std::vector<int> label(60);
    for (int i = 0; i < 60; ++i) {
      ASSERT_OK_AND_ASSIGN(v1::Model m, client_->GetModel(names[i]));
      label[i] = m.variant();
      (m.split() == v1::SPLIT_VALIDATION ? val : train).push_back(i);
    }
    std::vector<double> mean(16, 0), sd(16, 0);
    for (int i : train) for (int j = 0; j < 16; ++j) mean[j] += all.data[i * 16 + j] / train.size();
    for (int i : train) for (int j = 0; j < 16; ++j) sd[j] += std::pow(all.data[i * 16 + j] - mean[j], 2) / train.size();
    std::vector<float> z(all.data.size());
    for (int i = 0; i < 60; ++i) {
      for (int j = 0; j < 16; ++j) z[i * 16 + j] = static_cast<float>((all.data[i * 16 + j] - mean[j]) / std::sqrt(sd[j]));
    }
    int correct = 0;
    for (int v : val) {
      std::vector<std::pair<double, int>> s;
      for (int t : train) s.emplace_back(-Cosine(z.data() + v * 16, z.data() + t * 16, 16), t);
      std::sort(s.begin(), s.end());
      std::map<int, int> votes;  // class -> votes; ties go to the lowest class (variant)
      for (int r = 0; r < 5; ++r) ++votes[label[s[r].second]];
      int best = -1, best_v = 0;
      for (auto& [cls, vv] : votes) {
        if (vv > best_v) {
          best_v = vv;
          best = cls;
        }
      }
      correct += best == label[v];
    }
    EXPECT_NEAR(scores[0].knn_accuracy(), correct / static_cast<double>(val.size()), 1e-9);
    // Separation: between-class variance of the training centroids over the validation rows'
    // mean squared distance to their class's training centroid.
    std::map<int, std::vector<double>> centroid;
    std::map<int, int> count;
    for (int t : train) {
      auto& c = centroid[label[t]];
      c.resize(16, 0.0);
      ++count[label[t]];
      for (int j = 0; j < 16; ++j) c[j] += z[t * 16 + j];
    }
    double between = 0.0, within = 0.0;
    for (auto& [cls, c] : centroid) {
      for (int j = 0; j < 16; ++j) {
        c[j] /= count[cls];
        between += count[cls] / static_cast<double>(train.size()) * c[j] * c[j];  // mean is 0
      }
    }
    for (int v : val) {
      for (int j = 0; j < 16; ++j) within += std::pow(z[v * 16 + j] - centroid[label[v]][j], 2);
    }
    within /= val.size();
    EXPECT_NEAR(scores[0].separation(), between / within, 1e-4 * between / within);
    EXPECT_GT(scores[0].separation(), 0.0);
    // McNemar p-values against the embedding (core's embed_test checks their values): the
    // embedding's own row 1, every other row a probability.
    EXPECT_EQ(scores[0].linear_p_value(), 1.0);
    EXPECT_EQ(scores[0].knn_p_value(), 1.0);
    for (const v1::ProbeScores& s : scores) {
      EXPECT_GT(s.linear_p_value(), 0.0) << s.representation();
      EXPECT_LE(s.linear_p_value(), 1.0) << s.representation();
      EXPECT_GT(s.knn_p_value(), 0.0) << s.representation();
      EXPECT_LE(s.knn_p_value(), 1.0) << s.representation();
    }
  }

  // The embedder survives a restart with the same lookups.
  Restart();
  emb_ = std::make_unique<client::EmbeddingClient>(*client_);
  ASSERT_OK_AND_ASSIGN(v1::Embedder again, emb_->GetEmbedder("embedders/e1"));
  EXPECT_EQ(again.validation_cloze_loss(), e.validation_cloze_loss());
  ASSERT_OK_AND_ASSIGN(client::FloatArray after, emb_->EmbedModels("embedders/e1", {names[7]}));
  for (int j = 0; j < 16; ++j) EXPECT_NEAR(after.data[j], all.data[7 * 16 + j], 1e-5);

  ASSERT_OK(emb_->DeleteEmbedder("embedders/e1"));
  EXPECT_THAT(emb_->GetEmbedder("embedders/e1"), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(emb_->EmbedModels("embedders/e1", {names[0]}),
              StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(EmbeddingServiceTest, ErrorsCarryTheRightCodes) {
  v1::EmbedderTraining bad = Work("e2", 10);
  bad.clear_zoos();
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zoos")));
  bad = Work("e2", 10);
  bad.set_mask_rate(2.0);
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mask_rate")));
  bad = Work("e2", 10);
  bad.set_mask_shape(static_cast<v1::MaskShape>(7));
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mask_shape")));
  bad = Work("e2", 10);
  bad.set_zoos(0, "zoos/none");
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad), StatusIs(absl::StatusCode::kNotFound, _));
  bad = Work("E 2", 10);
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("embedder_id")));
  EXPECT_THAT(emb_->GetEmbedder("nope"), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(emb_->GetEmbedder("embedders/nope"), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(emb_->EmbedModels("embedders/nope", {"zoos/poly/models/m0000"}),
              StatusIs(absl::StatusCode::kNotFound, _));

  v1::EmbedderTraining groups = Work("e2", 5);
  groups.set_mask_shape(v1::MASK_SHAPE_GROUPS);
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, emb_->CreateEmbedderTrainingJob(groups));
  ASSERT_OK_AND_ASSIGN(job, client_->WaitForJob(job.name(), {}));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  ASSERT_OK_AND_ASSIGN(v1::Embedder e2, emb_->GetEmbedder("embedders/e2"));
  EXPECT_EQ(e2.mask_shape(), v1::MASK_SHAPE_GROUPS);
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(Work("e2", 5)),
              StatusIs(absl::StatusCode::kAlreadyExists, _));
  // Members: reported, and the lookups and probes are members x embedding_size wide.
  bad = Work("e3", 5);
  bad.set_members(9);
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("members")));
  v1::EmbedderTraining two = Work("e3", 5);
  two.set_members(2);
  ASSERT_OK_AND_ASSIGN(job, emb_->CreateEmbedderTrainingJob(two));
  ASSERT_OK_AND_ASSIGN(job, client_->WaitForJob(job.name(), {}));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.progress().total_steps(), 10);
  ASSERT_OK_AND_ASSIGN(v1::Embedder e3, emb_->GetEmbedder("embedders/e3"));
  EXPECT_EQ(e3.members(), 2);
  EXPECT_EQ(e2.members(), 1);
  EXPECT_EQ(e3.distance_weight(), 0.0);
  // The function-distance term: reported, and checked before a job starts.
  bad = Work("e4", 5);
  bad.set_distance_weight(-1);
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("distance_weight")));
  v1::EmbedderTraining distances = Work("e4", 5);
  distances.set_distance_weight(2.5);
  ASSERT_OK_AND_ASSIGN(job, emb_->CreateEmbedderTrainingJob(distances));
  ASSERT_OK_AND_ASSIGN(job, client_->WaitForJob(job.name(), {}));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  ASSERT_OK_AND_ASSIGN(v1::Embedder e4, emb_->GetEmbedder("embedders/e4"));
  EXPECT_EQ(e4.distance_weight(), 2.5);
  EXPECT_GT(e4.validation_cloze_loss(), 0.0);
  ASSERT_OK_AND_ASSIGN(client::FloatArray wide,
                       emb_->EmbedModels("embedders/e3", {"zoos/poly/models/m0000"}));
  EXPECT_EQ(wide.shape, (std::vector<int64_t>{1, 2 * e3.embedding_size()}));
  ASSERT_OK_AND_ASSIGN(auto probe, emb_->RunProbe("embedders/e3", {"zoos/poly"}, "label"));
  EXPECT_EQ(probe.size(), 4u);
  EXPECT_THAT(emb_->EmbedModels("embedders/e2", {"bad"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("models")));
  EXPECT_THAT(emb_->EmbedModels("embedders/e2", {"zoos/poly/models/zz"}),
              StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(emb_->EmbedModels("embedders/e2", {"zoos/poly/models/m0000"}, 65),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("samples")));
  std::vector<std::string> many(50000, "zoos/poly/models/m0000");
  EXPECT_THAT(emb_->EmbedModels("embedders/e2", many, 64),
              StatusIs(absl::StatusCode::kResourceExhausted, _));
  EXPECT_THAT(emb_->RunProbe("embedders/e2", {"zoos/poly"}, "colour"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("target")));
  EXPECT_THAT(emb_->FindNeighbors("embedders/e2", "zoos/poly/models/m0000", -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k")));
}

// Seed 003's sub-network embeddings, trained through the job RPC: hidden layer 1 (16 units)
// to the output. The embedder reports its layers; lookups are deterministic; ValidateTraining's
// layer checks answer before a job is queued.
TEST_F(EmbeddingServiceTest, SubNetworkEmbedderTrainsThroughTheJobRpc) {
  v1::EmbedderTraining t = Work("sub", 40);
  t.set_from_layer(1);
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, emb_->CreateEmbedderTrainingJob(t));
  ASSERT_OK_AND_ASSIGN(job, client_->WaitForJob(job.name(), {}));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  ASSERT_OK_AND_ASSIGN(v1::Embedder e, emb_->GetEmbedder("embedders/sub"));
  EXPECT_EQ(e.from_layer(), 1);
  EXPECT_EQ(e.to_layer(), 0);
  EXPECT_EQ(e.input_dim(), 16);  // the sub-network reads hidden layer 1
  EXPECT_EQ(e.output_dim(), 1);
  ASSERT_OK_AND_ASSIGN(auto a, emb_->EmbedModels("embedders/sub", {"zoos/poly/models/m0000",
                                                                   "zoos/poly/models/m0001"}));
  ASSERT_OK_AND_ASSIGN(auto b, emb_->EmbedModels("embedders/sub", {"zoos/poly/models/m0000",
                                                                   "zoos/poly/models/m0001"}));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(a.data, b.data);

  v1::EmbedderTraining bad = Work("bad", 10);
  bad.set_from_layer(2);
  bad.set_to_layer(1);
  EXPECT_THAT(emb_->CreateEmbedderTrainingJob(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to_layer")));
}

TEST_F(EmbeddingServiceTest, CancelPublishesNothing) {
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, emb_->CreateEmbedderTrainingJob(Work("e3", 200000)));
  for (int i = 0; i < 500; ++i) {
    ASSERT_OK_AND_ASSIGN(auto j, client_->GetJob(job.name()));
    if (j.state() == v1::JOB_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_OK(client_->CancelJob(job.name()).status());
  ASSERT_OK_AND_ASSIGN(job, client_->WaitForJob(job.name(), {}));
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(emb_->GetEmbedder("embedders/e3"), StatusIs(absl::StatusCode::kNotFound, _));
}

}  // namespace
}  // namespace gradzoo
