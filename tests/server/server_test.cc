// The server through the real gRPC stack and the real client library.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "gradzoo/v1/analysis.grpc.pb.h"
#include "gradzoo/v1/embedding.grpc.pb.h"
#include "gradzoo/v1/gradient.grpc.pb.h"
#include "gradzoo/v1/job.grpc.pb.h"
#include "gradzoo/v1/zoo.grpc.pb.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::gradzoo::v1;

v1::ComputeGradientFieldRequest GridRequest(const std::string& zoo, int steps) {
  v1::ComputeGradientFieldRequest r;
  r.mutable_selection()->set_zoo(zoo);
  for (int i = 0; i < 2; ++i) {
    v1::GridAxis* a = r.mutable_points()->mutable_grid()->add_axes();
    a->set_input_index(i);
    a->set_min(0);
    a->set_max(1);
    a->set_steps(steps);
  }
  return r;
}

class ServerTest : public ServerFixture {};

TEST_F(ServerTest, InfoAndHealth) {
  ASSERT_OK_AND_ASSIGN(auto info, client_->GetServerInfo());
  EXPECT_EQ(info.device(), "cpu");
  EXPECT_NE(info.blas(), "reference");
  EXPECT_GT(info.max_points_per_query(), 0);
  ASSERT_OK_AND_ASSIGN(bool serving, client_->CheckHealth());
  EXPECT_TRUE(serving);
}

TEST_F(ServerTest, TrainListQueryAndReload) {
  std::vector<v1::JobState> states;
  ASSERT_OK_AND_ASSIGN(auto job, client_->CreateZooTrainingJob("demo", SmallSpec()));
  EXPECT_THAT(job.name(), HasSubstr("trainingJobs/"));
  EXPECT_TRUE(job.state() == v1::JOB_STATE_QUEUED || job.state() == v1::JOB_STATE_RUNNING);
  ASSERT_OK_AND_ASSIGN(auto done, client_->WaitForJob(job.name(), [&](const v1::TrainingJob& j) {
    states.push_back(j.state());
  }));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.output(), "zoos/demo");
  EXPECT_GT(states.size(), 1u);
  EXPECT_EQ(done.progress().step(), 300);

  ASSERT_OK_AND_ASSIGN(auto zoos, client_->ListZoos());
  ASSERT_EQ(zoos.size(), 1u);
  EXPECT_EQ(zoos[0].name(), "zoos/demo");
  EXPECT_EQ(zoos[0].model_count(), 4);
  EXPECT_EQ(zoos[0].input_dim(), 4);
  EXPECT_EQ(zoos[0].spec().task().lambdas_size(), 2);

  ASSERT_OK_AND_ASSIGN(auto models, client_->ListModels("zoos/demo", false));
  ASSERT_EQ(models.size(), 4u);
  EXPECT_EQ(models[3].lambda(), 0.5);
  EXPECT_EQ(models[3].split(), v1::SPLIT_VALIDATION);
  EXPECT_EQ(models[0].layers_size(), 0);
  ASSERT_OK_AND_ASSIGN(auto model, client_->GetModel(models[1].name()));
  ASSERT_EQ(model.layers_size(), 3);
  EXPECT_EQ(model.layers(0).weight().shape(0), 16);
  EXPECT_EQ(model.layers(0).weight().data().size(), 16u * 4 * 4);

  // Pagination through the raw API.
  auto stub = v1::ZooService::NewStub(Channel());
  v1::ListModelsRequest lr;
  lr.set_parent("zoos/demo");
  lr.set_page_size(3);
  v1::ListModelsResponse page1, page2;
  grpc::ClientContext c1, c2;
  ASSERT_TRUE(stub->ListModels(&c1, lr, &page1).ok());
  EXPECT_EQ(page1.models_size(), 3);
  ASSERT_FALSE(page1.next_page_token().empty());
  lr.set_page_token(page1.next_page_token());
  ASSERT_TRUE(stub->ListModels(&c2, lr, &page2).ok());
  EXPECT_EQ(page2.models_size(), 1);
  EXPECT_TRUE(page2.next_page_token().empty());

  // Field with theory: every model learned x1*x2 well enough.
  auto req = GridRequest("zoos/demo", 11);
  req.set_compare_with_theory(true);
  ASSERT_OK_AND_ASSIGN(auto fields, client_->ComputeGradientField(req));
  ASSERT_EQ(fields.size(), 4u);
  for (const auto& f : fields) {
    EXPECT_EQ(f.n, 121);
    EXPECT_EQ(f.gradients.size(), 121u * 8);
    EXPECT_EQ(f.theory.size(), 121u * 8);
    EXPECT_TRUE(f.relative_errors.empty());  // not asked for
    ASSERT_TRUE(f.has_summary);
    EXPECT_LT(f.summary.aggregate_relative_error(), 0.6) << f.model;
  }
  // The theory is the closed form: at grid point (x1, x2, .5, .5) with lambda 0,
  // dy1/dx = (x2, x1, 0, 0).
  const auto& f0 = fields[0];
  EXPECT_NEAR(f0.theory[5 * 8 + 0], f0.points[5 * 4 + 1], 1e-6);
  EXPECT_NEAR(f0.theory[5 * 8 + 1], f0.points[5 * 4 + 0], 1e-6);
  EXPECT_EQ(f0.theory[5 * 8 + 2], 0.0f);

  // Persisted: a restarted server serves the same numbers and still lists the job.
  Restart();
  ASSERT_OK_AND_ASSIGN(auto fields2, client_->ComputeGradientField(req));
  EXPECT_EQ(fields2[2].gradients, fields[2].gradients);
  ASSERT_OK_AND_ASSIGN(auto after, client_->GetJob(job.name()));
  EXPECT_EQ(after.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(after.zoo_training().zoo_id(), "demo");
  EXPECT_EQ(after.zoo_training().spec().seeds_size(), 2);
}

TEST_F(ServerTest, LargeFieldStreamsInChunksIntact) {
  TrainZoo("z", SmallSpec(20));
  // 300 x 300 = 90k points x 1 model, several chunks under 4 MiB.
  auto req = GridRequest("", 300);
  req.mutable_selection()->clear_zoo();
  req.mutable_selection()->add_models("zoos/z/models/m0000");
  auto stub = v1::GradientService::NewStub(Channel());
  grpc::ClientContext ctx;
  auto reader = stub->ComputeGradientField(&ctx, req);
  v1::ComputeGradientFieldResponse msg;
  int chunks = 0;
  int64_t next = 0;
  while (reader->Read(&msg)) {
    ++chunks;
    EXPECT_EQ(msg.offset(), next);
    EXPECT_LT(msg.ByteSizeLong(), 4u << 20);
    next += msg.points().shape(0);
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(next, 90000);
  EXPECT_GT(chunks, 2);
  // Assembled by the client, a point in the middle matches a one-point query.
  ASSERT_OK_AND_ASSIGN(auto big, client_->ComputeGradientField(req));
  const int64_t p = 45678;
  v1::ComputeGradientFieldRequest one;
  one.mutable_selection()->add_models("zoos/z/models/m0000");
  v1::Tensor* t = one.mutable_points()->mutable_explicit_points();
  t->add_shape(1);
  t->add_shape(4);
  t->set_dtype(v1::D_TYPE_FLOAT32);
  t->set_data(std::string(reinterpret_cast<const char*>(&big[0].points[p * 4]), 16));
  ASSERT_OK_AND_ASSIGN(auto small, client_->ComputeGradientField(one));
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(small[0].gradients[k], big[0].gradients[p * 8 + k], 1e-6);
}

TEST_F(ServerTest, BadInputGetsClearStatusesAndServerKeepsServing) {
  TrainZoo("z", SmallSpec(10));
  using absl::StatusCode;
  EXPECT_THAT(client_->GetZoo("zoos/nope"), StatusIs(StatusCode::kNotFound, HasSubstr("zoos/nope")));
  EXPECT_THAT(client_->GetZoo("nope"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("zoos/{zoo}")));
  EXPECT_THAT(client_->GetModel("zoos/z/models/m9999"), StatusIs(StatusCode::kNotFound, HasSubstr("m9999")));
  EXPECT_THAT(client_->GetJob("trainingJobs/none"), StatusIs(StatusCode::kNotFound, ::testing::_));

  // Unknown task, bad lambda, bad id, duplicate zoo.
  auto spec = SmallSpec(10);
  spec.mutable_task()->set_name("nonsense");
  EXPECT_THAT(client_->CreateZooTrainingJob("x", spec), StatusIs(StatusCode::kInvalidArgument, HasSubstr("nonsense")));
  spec = SmallSpec(10);
  spec.mutable_task()->set_lambdas(0, std::nan(""));
  EXPECT_THAT(client_->CreateZooTrainingJob("x", spec), StatusIs(StatusCode::kInvalidArgument, HasSubstr("lambda")));
  EXPECT_THAT(client_->CreateZooTrainingJob("Bad Id", SmallSpec(10)), StatusIs(StatusCode::kInvalidArgument, HasSubstr("zoo_id")));
  EXPECT_THAT(client_->CreateZooTrainingJob("z", SmallSpec(10)), StatusIs(StatusCode::kAlreadyExists, ::testing::_));

  // Wrong shapes, NaN, oversize.
  v1::ComputeGradientFieldRequest r;
  r.mutable_selection()->add_models("zoos/z/models/m0000");
  v1::Tensor* t = r.mutable_points()->mutable_explicit_points();
  t->add_shape(2);
  t->add_shape(3);  // the model has 4 inputs
  t->set_dtype(v1::D_TYPE_FLOAT32);
  t->set_data(std::string(24, '\0'));
  EXPECT_THAT(client_->ComputeGradientField(r), StatusIs(StatusCode::kInvalidArgument, HasSubstr("[N, 4]")));
  t->set_data(std::string(20, '\0'));
  EXPECT_THAT(client_->ComputeGradientField(r), StatusIs(StatusCode::kInvalidArgument, HasSubstr("bytes")));
  t->set_shape(1, 4);
  t->set_data(std::string(32, '\0'));
  float nan = std::nanf("");
  std::string bytes(32, '\0');
  std::memcpy(&bytes[4], &nan, 4);
  t->set_data(bytes);
  EXPECT_THAT(client_->ComputeGradientField(r), StatusIs(StatusCode::kInvalidArgument, HasSubstr("NaN")));
  auto huge = GridRequest("zoos/z", 1000000000);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(client_->ComputeGradientField(huge), StatusIs(StatusCode::kResourceExhausted, HasSubstr("limit")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  // A forged page token.
  auto stub = v1::ZooService::NewStub(Channel());
  v1::ListZoosRequest lr;
  lr.set_page_token("12.34");
  v1::ListZoosResponse resp;
  grpc::ClientContext ctx;
  EXPECT_EQ(stub->ListZoos(&ctx, lr, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Still serving.
  ASSERT_OK_AND_ASSIGN(auto zoos, client_->ListZoos());
  EXPECT_EQ(zoos.size(), 1u);
}

TEST_F(ServerTest, RequestIdIsIdempotentAndCancelIsQuick) {
  auto spec = SmallSpec(1000000);
  ASSERT_OK_AND_ASSIGN(auto a, client_->CreateZooTrainingJob("long", spec, "req-1"));
  ASSERT_OK_AND_ASSIGN(auto b, client_->CreateZooTrainingJob("long", spec, "req-1"));
  EXPECT_EQ(a.name(), b.name());
  ASSERT_OK_AND_ASSIGN(auto jobs, client_->ListJobs());
  EXPECT_EQ(jobs.size(), 1u);
  // Wait until it runs, then cancel: CANCELLED within two seconds, nothing published.
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK_AND_ASSIGN(auto j, client_->GetJob(a.name()));
    if (j.state() == v1::JOB_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto c, client_->CancelJob(a.name()));
  EXPECT_TRUE(c.state() == v1::JOB_STATE_CANCELLING || c.state() == v1::JOB_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(auto done, client_->WaitForJob(a.name(), {}));
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_THAT(client_->GetZoo("zoos/long"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(ServerTest, ExportImportRoundTripAndImportModel) {
  TrainZoo("src", SmallSpec(50));
  ASSERT_OK_AND_ASSIGN(std::string archive, client_->ExportZoo("zoos/src"));
  EXPECT_EQ(archive.substr(0, 8), "GZOOARC1");
  ASSERT_OK_AND_ASSIGN(auto copy, client_->ImportZoo("zoos/copy", archive));
  EXPECT_EQ(copy.name(), "zoos/copy");
  EXPECT_EQ(copy.model_count(), 4);
  ASSERT_OK_AND_ASSIGN(auto a, client_->GetModel("zoos/src/models/m0002"));
  ASSERT_OK_AND_ASSIGN(auto b, client_->GetModel("zoos/copy/models/m0002"));
  EXPECT_EQ(a.layers(1).weight().data(), b.layers(1).weight().data());
  EXPECT_THAT(client_->ImportZoo("zoos/copy", archive),
              StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  std::string corrupt = archive;
  corrupt[corrupt.size() / 2] ^= 0x40;
  EXPECT_THAT(client_->ImportZoo("zoos/bad", corrupt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a valid gradzoo archive")));
  EXPECT_THAT(client_->ImportZoo("zoos/bad", std::string("PK\x03\x04torchscript", 15)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("executable formats are refused")));
  EXPECT_THAT(client_->ImportZoo("zoos/bad", std::string("\x80\x04pickle", 8)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pickle")));
  EXPECT_THAT(client_->ExportZoo("zoos/none"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));

  // ImportModel: weights as data into a new zoo; its gradient is W2 diag(relu') W1 exactly.
  v1::Model m;
  m.set_task("hand-made");
  const float w1[4] = {1, -1, 0, 1}, b1[2] = {0, 0}, w2[2] = {1, 2}, b2[1] = {0.5f};
  auto put = [](v1::Tensor* t, std::vector<int64_t> shape, const float* d) {
    client::EncodeTensor(shape, d, t);
  };
  v1::Layer* l1 = m.add_layers();
  put(l1->mutable_weight(), {2, 2}, w1);
  put(l1->mutable_bias(), {2}, b1);
  v1::Layer* l2 = m.add_layers();
  put(l2->mutable_weight(), {1, 2}, w2);
  put(l2->mutable_bias(), {1}, b2);
  ASSERT_OK_AND_ASSIGN(auto stored, client_->ImportModel("zoos/hand", m));
  EXPECT_EQ(stored.name(), "zoos/hand/models/m0000");
  v1::ComputeGradientFieldRequest fr;
  fr.mutable_selection()->add_models(stored.name());
  const float pts[4] = {0.8f, 0.3f, 0.2f, 0.6f};
  put(fr.mutable_points()->mutable_explicit_points(), {2, 2}, pts);
  ASSERT_OK_AND_ASSIGN(auto f, client_->ComputeGradientField(fr));
  EXPECT_EQ(f[0].gradients, (std::vector<float>{1, 1, 0, 2}));
  // Shape mismatch between layers, NaN weights, wrong dims for the zoo, taken id.
  v1::Model bad = m;
  bad.mutable_layers(1)->mutable_weight()->set_shape(1, 3);
  EXPECT_THAT(client_->ImportModel("zoos/hand", bad), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  bad = m;
  const float nan_w[4] = {1, std::nanf(""), 0, 1};
  put(bad.mutable_layers(0)->mutable_weight(), {2, 2}, nan_w);
  EXPECT_THAT(client_->ImportModel("zoos/hand", bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN")));
  bad = m;
  bad.set_name("m0000");
  EXPECT_THAT(client_->ImportModel("zoos/hand", bad), StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  EXPECT_THAT(client_->ImportModel("zoos/src", m), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("inputs")));
  ASSERT_OK_AND_ASSIGN(auto second, client_->ImportModel("zoos/hand", m));
  EXPECT_EQ(second.name(), "zoos/hand/models/m0001");
  // Imports persist.
  Restart();
  ASSERT_OK_AND_ASSIGN(auto hand, client_->GetZoo("zoos/hand"));
  EXPECT_EQ(hand.model_count(), 2);
}

TEST_F(ServerTest, FullQueueIsResourceExhaustedAndQueriesRunDuringTraining) {
  TrainZoo("q", SmallSpec(10));
  options_.max_queued_jobs = 1;
  Restart();
  ASSERT_OK_AND_ASSIGN(auto running, client_->CreateZooTrainingJob("a", SmallSpec(10000000)));
  for (int i = 0; i < 500; ++i) {  // wait until the single worker has picked it up
    ASSERT_OK_AND_ASSIGN(auto j, client_->GetJob(running.name()));
    if (j.state() == v1::JOB_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_OK_AND_ASSIGN(auto queued, client_->CreateZooTrainingJob("b", SmallSpec(10)));
  EXPECT_EQ(queued.state(), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(client_->CreateZooTrainingJob("c", SmallSpec(10)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("retry")));
  // Training runs on its own pool: queries are answered meanwhile.
  auto req = GridRequest("zoos/q", 41);
  req.set_compare_with_theory(true);
  ASSERT_OK_AND_ASSIGN(auto fields, client_->ComputeGradientField(req));
  EXPECT_EQ(fields.size(), 4u);
  ASSERT_OK_AND_ASSIGN(auto still, client_->GetJob(running.name()));
  EXPECT_EQ(still.state(), v1::JOB_STATE_RUNNING);
  ASSERT_OK(client_->CancelJob(running.name()).status());
  ASSERT_OK_AND_ASSIGN(auto b_done, client_->WaitForJob(queued.name(), {}));
  EXPECT_EQ(b_done.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ServerTest, TasksTrainThroughTheServiceWithTheirTheory) {
  // poly1d: every family x seed, labelled, with the exact derivative as theory.
  v1::ZooSpec spec;
  spec.mutable_task()->set_name("poly1d");
  spec.mutable_task()->set_families(3);
  spec.mutable_task()->set_train_examples(1024);
  spec.mutable_architecture()->add_hidden_widths(16);
  spec.mutable_architecture()->add_hidden_widths(16);
  spec.add_seeds(0);
  spec.add_seeds(1);
  spec.mutable_training()->set_steps(1500);
  spec.mutable_training()->set_batch_size(128);
  spec.mutable_training()->set_learning_rate(0.005);
  TrainZoo("poly", spec);
  ASSERT_OK_AND_ASSIGN(auto models, client_->ListModels("zoos/poly", false));
  ASSERT_EQ(models.size(), 6u);
  EXPECT_EQ(models[4].variant(), 2);
  EXPECT_EQ(models[4].label(), "poly1d-2");
  EXPECT_FALSE(models[0].has_test_accuracy());
  v1::ComputeGradientFieldRequest r;
  r.mutable_selection()->set_zoo("zoos/poly");
  v1::GridAxis* a = r.mutable_points()->mutable_grid()->add_axes();
  a->set_input_index(0);
  a->set_min(-0.95);
  a->set_max(0.95);
  a->set_steps(101);
  r.set_compare_with_theory(true);
  ASSERT_OK_AND_ASSIGN(auto fields, client_->ComputeGradientField(r));
  for (const auto& f : fields) {
    EXPECT_LT(f.summary.aggregate_relative_error(), 0.35) << f.model;
  }
  // Families differ: family 0's theory is not family 1's.
  EXPECT_NE(fields[0].theory, fields[2].theory);
  // Tasks without mixing refuse lambdas; unknown data paths fail before queueing.
  v1::ZooSpec gate;
  gate.mutable_task()->set_name("gate");
  gate.mutable_task()->add_lambdas(0.3);
  EXPECT_THAT(client_->CreateZooTrainingJob("g", gate),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no soft mixing")));
  v1::ZooSpec fm;
  fm.mutable_task()->set_name("fashion-mnist");
  fm.mutable_task()->set_data_path("/nonexistent");
  EXPECT_THAT(client_->CreateZooTrainingJob("f", fm),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("data_path")));
  // custom: uploaded tensors; y = x1 - x2.
  v1::ZooSpec custom;
  custom.mutable_task()->set_name("custom");
  std::vector<float> x, y;
  for (int i = 0; i < 200; ++i) {
    const float u = (i % 20) / 20.0f, v = (i / 20) / 10.0f;
    x.insert(x.end(), {u, v});
    y.push_back(u - v);
  }
  client::EncodeTensor({200, 2}, x.data(), custom.mutable_task()->mutable_custom_inputs());
  client::EncodeTensor({200, 1}, y.data(), custom.mutable_task()->mutable_custom_targets());
  custom.mutable_architecture()->add_hidden_widths(8);
  custom.mutable_training()->set_steps(300);
  TrainZoo("cus", custom);
  ASSERT_OK_AND_ASSIGN(auto cm, client_->ListModels("zoos/cus", false));
  ASSERT_EQ(cm.size(), 1u);
  EXPECT_LT(cm[0].validation_loss(), 1e-2);
  y.pop_back();
  client::EncodeTensor({199, 1}, y.data(), custom.mutable_task()->mutable_custom_targets());
  EXPECT_THAT(client_->CreateZooTrainingJob("cus2", custom),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("same N")));
}

TEST_F(ServerTest, SecondServerOnTakenPortRefusesToStart) {
  server::Server::Options o = options_;
  o.listen = address();
  o.data_dir = (dir_ / "other").string();
  auto second = server::Server::Start(o);
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("port is taken")));
}

}  // namespace
}  // namespace gradzoo::testing
