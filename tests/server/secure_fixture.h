// A gradzoo server started through server::Server::Start with a tokens file (alice and bob,
// users; root, admin) and the metrics endpoint on a free loopback port, plus one connected
// client per user. Header-only (tests/server/ compiles only *_test.cc).
#ifndef GRADZOO_TESTS_SERVER_SECURE_FIXTURE_H_
#define GRADZOO_TESTS_SERVER_SECURE_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "client/gradzoo_client.h"
#include "server/server.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::testing {

// The status (of a Status or StatusOr) has code `code`, whatever its message.
MATCHER_P(HasCode, code, "") {
  const absl::Status& s = ::gradzoo::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

// 64 hex characters each, as `openssl rand -hex 32` prints.
inline constexpr char kAliceToken[] =
    "5f2b9c0d8e7a6b1c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e";
inline constexpr char kBobToken[] =
    "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9f";
inline constexpr char kRootToken[] =
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

class SecureServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("gradzoo_secure_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    const std::string tokens = (dir_ / "tokens.txt").string();
    {
      std::ofstream f(tokens);
      f << "# test users\nalice " << kAliceToken << " user\nbob " << kBobToken
        << " user\nroot " << kRootToken << " admin\n";
    }
    std::filesystem::permissions(tokens, std::filesystem::perms::owner_read |
                                             std::filesystem::perms::owner_write);
    options_.listen = "127.0.0.1:0";
    options_.data_dir = (dir_ / "data").string();
    options_.device = "cpu";
    options_.tokens_file = tokens;
    options_.metrics_listen = "127.0.0.1:0";
    Configure(&options_);
    StartServer();
  }
  void TearDown() override {
    alice_.reset();
    bob_.reset();
    root_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Tests may change the options before the server starts.
  virtual void Configure(server::Server::Options* /*options*/) {}
  void StartServer() {
    auto s = server::Server::Start(options_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    alice_ = Connect(kAliceToken);
    bob_ = Connect(kBobToken);
    root_ = Connect(kRootToken);
  }
  void Restart() {
    alice_.reset();
    bob_.reset();
    root_.reset();
    server_.reset();
    StartServer();
  }
  std::unique_ptr<client::Client> Connect(const std::string& token) const {
    client::Client::Options o;
    o.token = token;
    auto c = client::Client::Connect(address(), o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  // A small mul2 spec that trains in well under a second.
  static gradzoo::v1::ZooSpec SmallSpec(int steps = 100) {
    gradzoo::v1::ZooSpec spec;
    spec.mutable_task()->set_name("mul2");
    spec.mutable_task()->add_lambdas(0.0);
    spec.mutable_task()->set_train_examples(256);
    spec.mutable_task()->set_validation_examples(64);
    spec.mutable_architecture()->add_hidden_widths(8);
    spec.add_seeds(1);
    spec.add_seeds(2);
    spec.add_validation_seeds(2);
    spec.mutable_training()->set_steps(steps);
    return spec;
  }
  // Trains `zoo_id` as the owner of `c` and waits for it.
  static void TrainZoo(client::Client& c, const std::string& zoo_id,
                       const gradzoo::v1::ZooSpec& spec) {
    auto job = c.CreateZooTrainingJob(zoo_id, spec);
    ASSERT_TRUE(job.ok()) << job.status();
    auto done = c.WaitForJob(job->name(), {}, absl::Minutes(5));
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_EQ(done->state(), gradzoo::v1::JOB_STATE_SUCCEEDED) << done->error();
  }

  server::Server::Options options_;
  std::filesystem::path dir_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<client::Client> alice_, bob_, root_;
};

}  // namespace gradzoo::testing

#endif  // GRADZOO_TESTS_SERVER_SECURE_FIXTURE_H_
