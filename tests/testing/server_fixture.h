// An in-process gradzoo server on a free loopback port with a fresh data directory, and a
// connected client. Each test gets its own; Restart() keeps the data directory.
#ifndef GRADZOO_TESTS_TESTING_SERVER_FIXTURE_H_
#define GRADZOO_TESTS_TESTING_SERVER_FIXTURE_H_

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "client/gradzoo_client.h"
#include "server/server.h"

namespace gradzoo::testing {

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Stops the server and starts a new one on the same data directory.
  void Restart();
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }
  std::shared_ptr<grpc::Channel> Channel() const;
  // A small mul2 spec (4-16-16-2, few steps) that trains in well under a second.
  static gradzoo::v1::ZooSpec SmallSpec(int steps = 300);
  // Trains `zoo_id` through the client and waits for it; fails the test if the job fails.
  void TrainZoo(const std::string& zoo_id, const gradzoo::v1::ZooSpec& spec);

  server::Server::Options options_;
  std::filesystem::path dir_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<client::Client> client_;
};

}  // namespace gradzoo::testing

#endif  // GRADZOO_TESTS_TESTING_SERVER_FIXTURE_H_
