#include "tests/testing/server_fixture.h"

#include <atomic>

namespace gradzoo::testing {

void ServerFixture::SetUp() {
  static std::atomic<int> counter{0};
  dir_ = std::filesystem::path(::testing::TempDir()) /
         ("gradzoo_server_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(dir_);
  options_.listen = "127.0.0.1:0";
  options_.data_dir = dir_.string();
  options_.device = "cpu";
  auto s = server::Server::Start(options_);
  ASSERT_TRUE(s.ok()) << s.status();
  server_ = std::move(*s);
  auto c = client::Client::Connect(address());
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = std::move(*c);
}

void ServerFixture::TearDown() {
  client_.reset();
  server_.reset();
  std::filesystem::remove_all(dir_);
}

void ServerFixture::Restart() {
  client_.reset();
  server_.reset();
  auto s = server::Server::Start(options_);
  ASSERT_TRUE(s.ok()) << s.status();
  server_ = std::move(*s);
  auto c = client::Client::Connect(address());
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = std::move(*c);
}

std::shared_ptr<grpc::Channel> ServerFixture::Channel() const {
  return grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
}

gradzoo::v1::ZooSpec ServerFixture::SmallSpec(int steps) {
  gradzoo::v1::ZooSpec spec;
  spec.mutable_task()->set_name("mul2");
  spec.mutable_task()->add_lambdas(0.0);
  spec.mutable_task()->add_lambdas(0.5);
  spec.mutable_task()->set_train_examples(512);
  spec.mutable_task()->set_validation_examples(128);
  spec.mutable_architecture()->add_hidden_widths(16);
  spec.mutable_architecture()->add_hidden_widths(16);
  spec.add_seeds(1);
  spec.add_seeds(2);
  spec.add_validation_seeds(2);
  spec.mutable_training()->set_steps(steps);
  return spec;
}

void ServerFixture::TrainZoo(const std::string& zoo_id, const gradzoo::v1::ZooSpec& spec) {
  auto job = client_->CreateZooTrainingJob(zoo_id, spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto done = client_->WaitForJob(job->name(), {}, absl::Minutes(5));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), gradzoo::v1::JOB_STATE_SUCCEEDED) << done->error();
}

}  // namespace gradzoo::testing
