// Request limits through the real server and client: a 10^9-point grid is refused
// RESOURCE_EXHAUSTED well under 100 ms (sizes are checked arithmetically before anything is
// allocated) and the server keeps serving; a saturated query pool answers RESOURCE_EXHAUSTED
// with retry advice while health still answers; a client deadline stops a big query and the
// pool is free again at once; the server's default budget applies when a client sets none.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "client/gradzoo_client.h"
#include "gradzoo/v1/gradient.grpc.pb.h"
#include "server/server.h"
#include "tests/server/secure_fixture.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

namespace v1 = ::gradzoo::v1;
using ::gradzoo::testing::HasCode;
using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;

v1::ComputeGradientFieldRequest Grid(const std::string& zoo, int steps) {
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

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

class LimitsTest : public testing::SecureServerFixture {
 protected:
  void Configure(Server::Options* o) override {
    o->query_threads = 1;
    o->max_queued_queries = 1;
  }
};

TEST_F(LimitsTest, ABillionPointGridIsRefusedFastAndTheServerKeepsServing) {
  TrainZoo(*alice_, "z", SmallSpec());
  // 31623^2 = 1.0000e9 points.
  for (int round = 0; round < 3; ++round) {
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = alice_->ComputeGradientField(Grid("zoos/z", 31623)).status();
    const double took = Seconds(start);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("points")));
    EXPECT_LT(took, 0.1) << "refusal took " << took << " s";
  }
  // The same through the unary region counter.
  EXPECT_OK(alice_->ComputeGradientField(Grid("zoos/z", 11)).status());
}

TEST_F(LimitsTest, ASaturatedQueryPoolAnswersRetryLaterAndHealthStillAnswers) {
  TrainZoo(*alice_, "z", SmallSpec());
  // Big fields (2 models x 1.4M points) from several clients at once: one runs, one waits,
  // the rest are refused at once with retry advice.
  std::atomic<int> exhausted{0}, ok{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto c = Connect(testing::kAliceToken);
      absl::Status s = c->ComputeGradientField(Grid("zoos/z", 1400)).status();
      if (s.ok()) {
        ++ok;
      } else if (s.code() == absl::StatusCode::kResourceExhausted &&
                 absl::StrContains(s.message(), "retry")) {
        ++exhausted;
      } else {
        ++other;
        ADD_FAILURE() << s;
      }
    });
  }
  // Health answers promptly while the pool is busy.
  ASSERT_OK_AND_ASSIGN(auto anon, client::Client::Connect(address()));
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_OK_AND_ASSIGN(bool serving, anon->CheckHealth());
    EXPECT_TRUE(serving);
    EXPECT_LT(Seconds(start), 0.5);
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(exhausted.load(), 1) << "six concurrent big queries never filled a 1+1 pool";
  EXPECT_EQ(other.load(), 0);
  // Afterwards everything is served again.
  EXPECT_OK(alice_->ComputeGradientField(Grid("zoos/z", 11)).status());
}

}  // namespace
}  // namespace gradzoo::server

namespace gradzoo::server {
namespace {

// A 2-64-64-1 zoo (2 models) makes a 2 x 4M-point field take seconds on this class of machine
// (the ReLU field is fast: 2 x 1.44M points took under a second), so a computation that did not stop would hold the single query worker long after
// its call ended.
class DeadlineTest : public testing::SecureServerFixture {
 protected:
  void Configure(Server::Options* o) override {
    o->query_threads = 1;
    o->default_deadline = absl::Milliseconds(300);
    o->max_points_per_query = 10'000'000;
  }
  static v1::ZooSpec WideSpec() {
    v1::ZooSpec spec = SmallSpec(20);
    spec.mutable_architecture()->clear_hidden_widths();
    spec.mutable_architecture()->add_hidden_widths(64);
    spec.mutable_architecture()->add_hidden_widths(64);
    return spec;
  }
  // Streams a field through a raw stub: `deadline` (none when zero), or cancelled by the client
  // after `cancel_after` (none when zero). Returns the final status.
  grpc::Status RawField(const v1::ComputeGradientFieldRequest& req, absl::Duration deadline,
                        absl::Duration cancel_after) {
    auto channel = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
    auto stub = v1::GradientService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + testing::kAliceToken);
    if (deadline > absl::ZeroDuration()) ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    std::thread canceller;
    if (cancel_after > absl::ZeroDuration()) {
      canceller = std::thread([&ctx, cancel_after] {
        absl::SleepFor(cancel_after);
        ctx.TryCancel();
      });
    }
    auto reader = stub->ComputeGradientField(&ctx, req);
    v1::ComputeGradientFieldResponse msg;
    while (reader->Read(&msg)) {
    }
    grpc::Status s = reader->Finish();
    if (canceller.joinable()) canceller.join();
    return s;
  }
  // Seconds a small query takes (it waits for the single query worker).
  double SmallQuerySeconds() {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_OK(alice_->ComputeGradientField(Grid("zoos/w", 5)).status());
    return Seconds(start);
  }
};

TEST_F(DeadlineTest, ExpiredOrCancelledQueriesStopAndTheServerBudgetAppliesWithoutADeadline) {
  TrainZoo(*alice_, "w", WideSpec());
  const v1::ComputeGradientFieldRequest big = Grid("zoos/w", 2000);

  // Reference: the whole field with the client's (long) deadline, which overrides the
  // server's 300 ms default budget.
  const auto full_start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto fields, alice_->ComputeGradientField(big));
  const double full = Seconds(full_start);
  ASSERT_EQ(fields.size(), 2u);
  std::cerr << "full 2 x 4M-point field: " << full << " s\n";
  ASSERT_GT(full, 1.0) << "the big field must take long enough for the test to mean anything";

  // A 150 ms client deadline: DEADLINE_EXCEEDED, and the worker is free at once.
  grpc::Status s = RawField(big, absl::Milliseconds(150), absl::ZeroDuration());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_LT(SmallQuerySeconds(), 0.4) << "full field: " << full << " s";

  // The client cancels (as when it disconnects) after 150 ms.
  s = RawField(big, absl::ZeroDuration(), absl::Milliseconds(150));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
  EXPECT_LT(SmallQuerySeconds(), 0.4) << "full field: " << full << " s";

  // No client deadline: the server's 300 ms budget stops it, naming the flag.
  const auto start = std::chrono::steady_clock::now();
  s = RawField(big, absl::ZeroDuration(), absl::ZeroDuration());
  const double took = Seconds(start);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("--default-deadline"));
  EXPECT_LT(took, 0.3 + 0.5 * full);
  EXPECT_LT(SmallQuerySeconds(), 0.4);
}

}  // namespace
}  // namespace gradzoo::server
