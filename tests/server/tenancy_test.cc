// Tenancy through the real server and client (server/tenancy.h): two users and an admin.
// Zoos, jobs and embedders belong to their creator; others get NOT_FOUND (the same answer as
// for a missing name) and do not see them in lists; ShareZoo grants read-only access; the
// admin sees and changes everything; ownership survives a restart; zoos from before
// authentication (no owner) stay readable by all and changeable by admins only; quotas.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "client/embedding_client.h"
#include "client/gradzoo_client.h"
#include "server/server.h"
#include "tests/server/secure_fixture.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

namespace v1 = ::gradzoo::v1;
using ::gradzoo::testing::HasCode;
using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

v1::ComputeGradientFieldRequest Field(const std::string& zoo) {
  v1::ComputeGradientFieldRequest r;
  r.mutable_selection()->set_zoo(zoo);
  for (int i = 0; i < 2; ++i) {
    v1::GridAxis* a = r.mutable_points()->mutable_grid()->add_axes();
    a->set_input_index(i);
    a->set_min(0);
    a->set_max(1);
    a->set_steps(4);
  }
  return r;
}

std::vector<std::string> ZooNames(client::Client& c) {
  std::vector<std::string> names;
  auto zoos = c.ListZoos();
  EXPECT_TRUE(zoos.ok()) << zoos.status();
  if (zoos.ok()) {
    for (const v1::Zoo& z : *zoos) names.push_back(z.name());
  }
  return names;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

class TenancyTest : public testing::SecureServerFixture {};

TEST_F(TenancyTest, ZoosBelongToTheirCreatorAndAreInvisibleToOthers) {
  TrainZoo(*alice_, "alice-zoo", SmallSpec());
  ASSERT_OK_AND_ASSIGN(v1::Zoo zoo, alice_->GetZoo("zoos/alice-zoo"));
  EXPECT_EQ(zoo.owner(), "alice");
  EXPECT_TRUE(Contains(ZooNames(*alice_), "zoos/alice-zoo"));

  // Bob: the same NOT_FOUND as for a name that does not exist.
  const absl::Status missing = bob_->GetZoo("zoos/no-such-zoo").status();
  ASSERT_EQ(missing.code(), absl::StatusCode::kNotFound);
  const absl::Status hidden = bob_->GetZoo("zoos/alice-zoo").status();
  EXPECT_EQ(hidden.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(hidden.message(), std::string(missing.message()).replace(
                                  missing.message().find("no-such-zoo"), 11, "alice-zoo"));
  EXPECT_FALSE(Contains(ZooNames(*bob_), "zoos/alice-zoo"));
  EXPECT_THAT(bob_->ListModels("zoos/alice-zoo", false), HasCode(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(auto models, alice_->ListModels("zoos/alice-zoo", false));
  ASSERT_FALSE(models.empty());
  EXPECT_THAT(bob_->GetModel(models[0].name()), HasCode(absl::StatusCode::kNotFound));
  EXPECT_THAT(bob_->ExportZoo("zoos/alice-zoo"), HasCode(absl::StatusCode::kNotFound));
  EXPECT_THAT(bob_->ComputeGradientField(Field("zoos/alice-zoo")),
              HasCode(absl::StatusCode::kNotFound));
  v1::ComputeGradientFieldRequest by_model = Field("");
  by_model.mutable_selection()->add_models(models[0].name());
  EXPECT_THAT(bob_->ComputeGradientField(by_model), HasCode(absl::StatusCode::kNotFound));
  EXPECT_THAT(bob_->DeleteZoo("zoos/alice-zoo"), HasCode(absl::StatusCode::kNotFound));
  EXPECT_THAT(bob_->ShareZoo("zoos/alice-zoo", {"bob"}), HasCode(absl::StatusCode::kNotFound));
  // Names are shared by all users: bob cannot take alice's.
  EXPECT_THAT(bob_->CreateZooTrainingJob("alice-zoo", SmallSpec()),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("taken")));
  v1::Model m = models[0];
  EXPECT_THAT(bob_->ImportModel("zoos/alice-zoo", m), HasCode(absl::StatusCode::kNotFound));

  // Alice queries her zoo; the admin sees and may delete it.
  ASSERT_OK_AND_ASSIGN(auto fields, alice_->ComputeGradientField(Field("zoos/alice-zoo")));
  EXPECT_EQ(fields.size(), models.size());
  EXPECT_TRUE(Contains(ZooNames(*root_), "zoos/alice-zoo"));
  ASSERT_OK_AND_ASSIGN(v1::Zoo seen_by_root, root_->GetZoo("zoos/alice-zoo"));
  EXPECT_EQ(seen_by_root.owner(), "alice");
  // An admin's refused creation under alice's name leaves alice the owner.
  EXPECT_THAT(root_->CreateZooTrainingJob("alice-zoo", SmallSpec()),
              HasCode(absl::StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(v1::Zoo still, alice_->GetZoo("zoos/alice-zoo"));
  EXPECT_EQ(still.owner(), "alice");
  EXPECT_OK(root_->DeleteZoo("zoos/alice-zoo"));
  EXPECT_THAT(alice_->GetZoo("zoos/alice-zoo"), HasCode(absl::StatusCode::kNotFound));
}

TEST_F(TenancyTest, JobsBelongToTheirSubmitter) {
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, alice_->CreateZooTrainingJob("a-job-zoo", SmallSpec()));
  EXPECT_EQ(job.owner(), "alice");
  EXPECT_THAT(bob_->GetJob(job.name()), HasCode(absl::StatusCode::kNotFound));
  EXPECT_THAT(bob_->CancelJob(job.name()), HasCode(absl::StatusCode::kNotFound));
  EXPECT_THAT(bob_->WaitForJob(job.name(), {}, absl::Seconds(30)),
              HasCode(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(auto bob_jobs, bob_->ListJobs());
  EXPECT_TRUE(bob_jobs.empty());
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob done, alice_->WaitForJob(job.name(), {}, absl::Minutes(5)));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  ASSERT_OK_AND_ASSIGN(auto root_jobs, root_->ListJobs());
  ASSERT_EQ(root_jobs.size(), 1u);
  EXPECT_EQ(root_jobs[0].owner(), "alice");
  ASSERT_OK_AND_ASSIGN(auto alice_jobs, alice_->ListJobs());
  EXPECT_EQ(alice_jobs.size(), 1u);
}

TEST_F(TenancyTest, ShareZooGivesReadOnlyAccessUntilRevoked) {
  TrainZoo(*alice_, "shared", SmallSpec());
  ASSERT_OK_AND_ASSIGN(v1::Zoo z, alice_->ShareZoo("zoos/shared", {"bob", "bob", "alice"}));
  ASSERT_EQ(z.readers_size(), 1);
  EXPECT_EQ(z.readers(0), "bob");
  EXPECT_EQ(z.owner(), "alice");

  ASSERT_OK_AND_ASSIGN(v1::Zoo seen, bob_->GetZoo("zoos/shared"));
  EXPECT_EQ(seen.owner(), "alice");
  EXPECT_TRUE(Contains(ZooNames(*bob_), "zoos/shared"));
  EXPECT_OK(bob_->ComputeGradientField(Field("zoos/shared")).status());
  EXPECT_OK(bob_->ExportZoo("zoos/shared").status());
  // Read-only: no delete, no import into it, no re-sharing.
  EXPECT_THAT(bob_->DeleteZoo("zoos/shared"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("read-only")));
  EXPECT_THAT(bob_->ShareZoo("zoos/shared", {"bob", "carol"}),
              HasCode(absl::StatusCode::kPermissionDenied));
  ASSERT_OK_AND_ASSIGN(auto models, alice_->ListModels("zoos/shared", true));
  v1::Model copy = models[0];
  copy.clear_name();
  EXPECT_THAT(bob_->ImportModel("zoos/shared", copy), HasCode(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(alice_->ShareZoo("zoos/shared", {"not a user"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("readers[0]")));

  // Revoked: NOT_FOUND again.
  ASSERT_OK_AND_ASSIGN(v1::Zoo priv, alice_->ShareZoo("zoos/shared", {}));
  EXPECT_EQ(priv.readers_size(), 0);
  EXPECT_THAT(bob_->GetZoo("zoos/shared"), HasCode(absl::StatusCode::kNotFound));
  EXPECT_FALSE(Contains(ZooNames(*bob_), "zoos/shared"));
}

TEST_F(TenancyTest, ImportedZoosAndModelsBelongToTheImporter) {
  TrainZoo(*alice_, "src", SmallSpec());
  ASSERT_OK_AND_ASSIGN(std::string archive, alice_->ExportZoo("zoos/src"));
  ASSERT_OK_AND_ASSIGN(v1::Zoo copy, bob_->ImportZoo("zoos/bob-copy", archive));
  EXPECT_EQ(copy.owner(), "bob");
  EXPECT_THAT(alice_->GetZoo("zoos/bob-copy"), HasCode(absl::StatusCode::kNotFound));
  // Importing over alice's name is refused without revealing more than "taken".
  EXPECT_FALSE(bob_->ImportZoo("zoos/src", archive).ok());
  ASSERT_OK_AND_ASSIGN(auto models, alice_->ListModels("zoos/src", true));
  v1::Model m = models[0];
  m.clear_name();
  ASSERT_OK(bob_->ImportModel("zoos/bob-models", m).status());
  ASSERT_OK_AND_ASSIGN(v1::Zoo bm, bob_->GetZoo("zoos/bob-models"));
  EXPECT_EQ(bm.owner(), "bob");
  EXPECT_THAT(alice_->ImportModel("zoos/bob-models", m), HasCode(absl::StatusCode::kNotFound));
}

TEST_F(TenancyTest, EmbeddersBelongToTheirTrainer) {
  TrainZoo(*alice_, "ez", SmallSpec());
  client::EmbeddingClient alice_emb(*alice_), bob_emb(*bob_), root_emb(*root_);
  v1::EmbedderTraining work;
  work.set_embedder_id("ae");
  work.add_zoos("zoos/ez");
  work.set_points_per_sample(16);
  work.set_embedding_size(4);
  work.set_steps(5);
  work.set_hidden(8);
  work.set_seed(1);
  // Bob may not train on alice's zoo.
  EXPECT_THAT(bob_emb.CreateEmbedderTrainingJob(work), HasCode(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, alice_emb.CreateEmbedderTrainingJob(work));
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob done, alice_->WaitForJob(job.name(), {}, absl::Minutes(5)));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  ASSERT_OK(alice_emb.GetEmbedder("embedders/ae").status());
  ASSERT_OK_AND_ASSIGN(auto models, alice_->ListModels("zoos/ez", false));
  EXPECT_OK(alice_emb.EmbedModels("embedders/ae", {models[0].name()}).status());
  ASSERT_OK_AND_ASSIGN(auto near, alice_emb.FindNeighbors("embedders/ae", models[0].name(), 1));
  EXPECT_EQ(near.size(), 1u);

  EXPECT_THAT(bob_emb.GetEmbedder("embedders/ae"), HasCode(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(auto bob_list, bob_emb.ListEmbedders());
  EXPECT_TRUE(bob_list.empty());
  EXPECT_THAT(bob_emb.DeleteEmbedder("embedders/ae"), HasCode(absl::StatusCode::kNotFound));
  // Bob's own zoo, alice's embedder: still NOT_FOUND.
  TrainZoo(*bob_, "bz", SmallSpec());
  ASSERT_OK_AND_ASSIGN(auto bob_models, bob_->ListModels("zoos/bz", false));
  EXPECT_THAT(bob_emb.EmbedModels("embedders/ae", {bob_models[0].name()}),
              HasCode(absl::StatusCode::kNotFound));
  // Neighbours over "every zoo" are over the zoos alice may read: bob's appear once shared.
  ASSERT_OK_AND_ASSIGN(auto mine, alice_emb.FindNeighbors("embedders/ae", models[0].name(), 10));
  ASSERT_EQ(mine.size(), models.size() - 1);
  for (const v1::Neighbor& n : mine) EXPECT_THAT(n.model(), ::testing::StartsWith("zoos/ez/"));
  ASSERT_OK(bob_->ShareZoo("zoos/bz", {"alice"}).status());
  ASSERT_OK_AND_ASSIGN(auto shared, alice_emb.FindNeighbors("embedders/ae", models[0].name(), 10));
  EXPECT_EQ(shared.size(), models.size() - 1 + bob_models.size());
  ASSERT_OK_AND_ASSIGN(auto top1, alice_emb.FindNeighbors("embedders/ae", models[0].name(), 1));
  ASSERT_EQ(top1.size(), 1u);
  EXPECT_EQ(top1[0].model(), shared[0].model());
  work.clear_zoos();
  work.add_zoos("zoos/bz");
  // Names are shared: alice's embedder name is taken for bob.
  EXPECT_THAT(bob_emb.CreateEmbedderTrainingJob(work), HasCode(absl::StatusCode::kAlreadyExists));

  ASSERT_OK_AND_ASSIGN(auto root_list, root_emb.ListEmbedders());
  ASSERT_EQ(root_list.size(), 1u);
  EXPECT_OK(alice_emb.DeleteEmbedder("embedders/ae"));
}

TEST_F(TenancyTest, OwnershipSurvivesARestart) {
  TrainZoo(*alice_, "kept", SmallSpec());
  ASSERT_OK(alice_->ShareZoo("zoos/kept", {"bob"}).status());
  Restart();
  ASSERT_OK_AND_ASSIGN(v1::Zoo z, alice_->GetZoo("zoos/kept"));
  EXPECT_EQ(z.owner(), "alice");
  ASSERT_EQ(z.readers_size(), 1);
  ASSERT_OK_AND_ASSIGN(auto alice_jobs, alice_->ListJobs());
  ASSERT_EQ(alice_jobs.size(), 1u);
  EXPECT_EQ(alice_jobs[0].owner(), "alice");
  ASSERT_OK(alice_->ShareZoo("zoos/kept", {}).status());
  Restart();
  EXPECT_THAT(bob_->GetZoo("zoos/kept"), HasCode(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(auto bob_jobs, bob_->ListJobs());
  EXPECT_TRUE(bob_jobs.empty());
}

// A store written without authentication: its zoos and jobs have no owner. With tokens on,
// every user reads them, only an admin changes them.
class LegacyStoreTest : public testing::SecureServerFixture {
 protected:
  void Configure(Server::Options* o) override {
    Server::Options open = *o;
    open.tokens_file.clear();
    open.metrics_listen.clear();
    auto s = Server::Start(open);
    ASSERT_TRUE(s.ok()) << s.status();
    auto c = client::Client::Connect("127.0.0.1:" + std::to_string((*s)->port()));
    ASSERT_TRUE(c.ok());
    TrainZoo(**c, "old", SmallSpec());
    ASSERT_OK_AND_ASSIGN(v1::Zoo z, (*c)->GetZoo("zoos/old"));
    EXPECT_EQ(z.owner(), "");
    // Sharing needs authentication.
    EXPECT_THAT((*c)->ShareZoo("zoos/old", {"bob"}),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--tokens-file")));
  }
};

TEST_F(LegacyStoreTest, OwnerlessZoosAreReadableByAllAndChangedByAdminsOnly) {
  ASSERT_OK_AND_ASSIGN(v1::Zoo z, bob_->GetZoo("zoos/old"));
  EXPECT_EQ(z.owner(), "");
  EXPECT_TRUE(Contains(ZooNames(*alice_), "zoos/old"));
  EXPECT_OK(alice_->ComputeGradientField(Field("zoos/old")).status());
  ASSERT_OK_AND_ASSIGN(auto jobs, bob_->ListJobs());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].owner(), "");
  EXPECT_THAT(bob_->DeleteZoo("zoos/old"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("admin")));
  EXPECT_THAT(bob_->CreateZooTrainingJob("old", SmallSpec()),
              HasCode(absl::StatusCode::kPermissionDenied));
  EXPECT_OK(root_->DeleteZoo("zoos/old"));
}

class QuotaTest : public testing::SecureServerFixture {
 protected:
  void Configure(Server::Options* o) override {
    o->max_queued_jobs_per_user = 2;
    o->max_stored_bytes_per_user = 1;  // any stored zoo reaches it
    o->job_workers = 1;
  }
};

TEST_F(QuotaTest, QueuedJobsAndStoredBytesPerUser) {
  // Alice's first zoo is allowed (under the quota before it exists); the next is refused.
  TrainZoo(*alice_, "first", SmallSpec());
  EXPECT_THAT(alice_->CreateZooTrainingJob("second", SmallSpec()),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("quota max_stored_bytes_per_user")));
  ASSERT_OK_AND_ASSIGN(std::string archive, alice_->ExportZoo("zoos/first"));
  EXPECT_THAT(alice_->ImportZoo("zoos/again", archive),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("delete zoos")));
  // Bob's usage is his own.
  TrainZoo(*bob_, "bobs", SmallSpec());
  ASSERT_OK(alice_->DeleteZoo("zoos/first"));

  // Queued jobs: a long job runs, two wait, the third waiting one is refused.
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob running, alice_->CreateZooTrainingJob("q0", SmallSpec(200000)));
  for (;;) {  // wait until it runs (so that it no longer counts as queued)
    ASSERT_OK_AND_ASSIGN(v1::TrainingJob j, alice_->GetJob(running.name()));
    if (j.state() == v1::JOB_STATE_RUNNING) break;
    ASSERT_EQ(j.state(), v1::JOB_STATE_QUEUED);
  }
  ASSERT_OK(alice_->CreateZooTrainingJob("q1", SmallSpec()).status());
  ASSERT_OK(alice_->CreateZooTrainingJob("q2", SmallSpec()).status());
  EXPECT_THAT(alice_->CreateZooTrainingJob("q3", SmallSpec()),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("quota max_queued_jobs_per_user")));
  // Another user still may queue.
  EXPECT_OK(root_->CreateZooTrainingJob("r1", SmallSpec()).status());
  ASSERT_OK(alice_->CancelJob(running.name()).status());
}

}  // namespace
}  // namespace gradzoo::server
