// Token authentication: the tokens file rules, the bearer check, and every gradzoo.v1 method
// of a real server (all services, found through the descriptor pool) refusing calls without a
// valid token while health answers without one.
#include "server/auth.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor_database.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/client_interceptor.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/gradzoo_client.h"
#include "core/engine.h"
#include "core/util/thread_pool.h"
#include "gradzoo/v1/info.grpc.pb.h"
#include "server/job_manager.h"
#include "server/services.h"
#include "server/tls.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::server {
namespace {

namespace v1 = ::gradzoo::v1;
using ::gradzoo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// 64 hex characters each, as `openssl rand -hex 32` prints.
constexpr char kAliceToken[] = "5f2b9c0d8e7a6b1c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e";
constexpr char kBobToken[] = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9f";
constexpr char kRootToken[] = "Zk3-x9_QpL2mN8vR4tY7wB1cD6eF0gH5jK_Admin.Token~";

std::string TokensText() {
  return absl::StrCat("# gradzoo tokens\n\n", "alice ", kAliceToken, " user\n",
                      "  bob\t", kBobToken, "   user\r\n", "root ", kRootToken, " admin\n");
}

// --- the tokens file -------------------------------------------------------------------------

TEST(TokensFileTest, ParsesUsersRolesCommentsAndCrlf) {
  ASSERT_OK_AND_ASSIGN(auto auth, Authenticator::FromText(TokensText(), "t"));
  EXPECT_EQ(auth->user_count(), 3u);
  ASSERT_OK_AND_ASSIGN(Identity a, auth->Authenticate(absl::StrCat("Bearer ", kAliceToken)));
  EXPECT_EQ(a.user, "alice");
  EXPECT_FALSE(a.is_admin());
  ASSERT_OK_AND_ASSIGN(Identity b, auth->Authenticate(absl::StrCat("Bearer ", kBobToken)));
  EXPECT_EQ(b.user, "bob");
  ASSERT_OK_AND_ASSIGN(Identity r, auth->Authenticate(absl::StrCat("bearer  ", kRootToken)));
  EXPECT_EQ(r.user, "root");
  EXPECT_TRUE(r.is_admin());
}

TEST(TokensFileTest, OneUserMayHoldSeveralTokensWithOneRole) {
  const std::string text = absl::StrCat("alice ", kAliceToken, " user\nalice ", kBobToken, " user\n");
  ASSERT_OK_AND_ASSIGN(auto auth, Authenticator::FromText(text, "t"));
  EXPECT_EQ(auth->user_count(), 1u);
  EXPECT_EQ(auth->Authenticate(absl::StrCat("Bearer ", kBobToken))->user, "alice");
  const std::string conflict =
      absl::StrCat("alice ", kAliceToken, " user\nalice ", kBobToken, " admin\n");
  EXPECT_THAT(Authenticator::FromText(conflict, "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
}

TEST(TokensFileTest, RejectsBadEntriesNamingTheLineButNeverTheToken) {
  struct Case {
    std::string text;
    std::string expect;
  };
  const std::string weak_short = "abcdefghijklmnop0123456789";  // 26 chars
  const std::string weak_repetitive = std::string(40, 'a') + "bcdefg";  // 7 distinct
  const std::vector<Case> cases = {
      {absl::StrCat("alice ", weak_short, " user\n"), "too short"},
      {absl::StrCat("alice ", weak_repetitive, " user\n"), "too weak"},
      {absl::StrCat("alice ", kAliceToken, " user\nbob ", kAliceToken, " user\n"),
       "already used on line 1"},
      {absl::StrCat("alice ", kAliceToken, " root\n"), "role must be"},
      {absl::StrCat("al/ice ", kAliceToken, " user\n"), "bad user name"},
      {absl::StrCat("-alice ", kAliceToken, " user\n"), "bad user name"},
      {absl::StrCat("alice ", kAliceToken, "\n"), "expected 3 fields"},
      {absl::StrCat("alice ", kAliceToken, " user extra\n"), "expected 3 fields"},
      {absl::StrCat("alice ", kAliceToken, "\x01", " user\n"), "printable ASCII"},
      {"# only comments\n\n", "no entries"},
      {"", "no entries"},
  };
  for (const Case& c : cases) {
    auto r = Authenticator::FromText(c.text, "tokens.txt");
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.expect))) << c.text;
    const std::string message(r.status().message());
    EXPECT_THAT(message, Not(HasSubstr(kAliceToken)));
    EXPECT_THAT(message, Not(HasSubstr(weak_short)));
    EXPECT_THAT(message, Not(HasSubstr(weak_repetitive)));
  }
}

TEST(TokensFileTest, LoadsFromDiskAndReportsMissingFiles) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("auth_load_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tokens").string();
  std::ofstream(path) << TokensText();
  ::chmod(path.c_str(), 0600);
  ASSERT_OK_AND_ASSIGN(auto auth, Authenticator::Load({path}));
  EXPECT_EQ(auth->user_count(), 3u);
  EXPECT_THAT(Authenticator::Load({(dir / "absent").string()}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot read")));
  EXPECT_THAT(Authenticator::Load({dir.string()}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a regular file")));
  std::filesystem::remove_all(dir);
}

TEST(BearerTest, AcceptsOnlyTheExactToken) {
  ASSERT_OK_AND_ASSIGN(auto auth, Authenticator::FromText(TokensText(), "t"));
  const std::string t = kAliceToken;
  std::string upper = t;
  upper[0] = 'F';  // '5' -> 'F': one character differs
  for (const std::string& wrong :
       {t.substr(0, t.size() - 1), t + "0", upper, std::string("x") + t.substr(1), std::string()}) {
    EXPECT_THAT(auth->Authenticate("Bearer " + wrong),
                StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr(t))));
  }
  EXPECT_THAT(auth->Authenticate("Basic " + t),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("malformed")));
  EXPECT_THAT(auth->Authenticate(t), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("malformed")));
  EXPECT_THAT(auth->Authenticate("Bearer"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("malformed")));
  EXPECT_THAT(auth->Authenticate("Bearer    "),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("empty")));
  EXPECT_THAT(auth->Authenticate("Bearer " + t + "x"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("invalid token")));
}

TEST(BearerTest, CheckCallExemptsOnlyHealthAndCountsRejections) {
  ASSERT_OK_AND_ASSIGN(auto auth, Authenticator::FromText(TokensText(), "t"));
  EXPECT_TRUE(Authenticator::IsExempt("/grpc.health.v1.Health/Check"));
  EXPECT_TRUE(Authenticator::IsExempt("/grpc.health.v1.Health/Watch"));
  EXPECT_FALSE(Authenticator::IsExempt("/grpc.health.v1.Health/"));
  EXPECT_FALSE(Authenticator::IsExempt("/grpc.health.v1.HealthX/Check"));
  EXPECT_FALSE(Authenticator::IsExempt("/gradzoo.v1.ZooService/ListZoos"));
  EXPECT_OK(auth->CheckCall("/grpc.health.v1.Health/Check", {}));
  EXPECT_EQ(auth->rejected_calls(), 0);
  EXPECT_THAT(auth->CheckCall("/gradzoo.v1.ZooService/ListZoos", {}),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing token")));
  const std::string good = absl::StrCat("Bearer ", kAliceToken);
  EXPECT_OK(auth->CheckCall("/gradzoo.v1.ZooService/ListZoos", {good}));
  EXPECT_THAT(auth->CheckCall("/gradzoo.v1.ZooService/ListZoos", {good, good}),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("more than one")));
  EXPECT_EQ(auth->rejected_calls(), 2);
}

// --- a real server -----------------------------------------------------------------------------

// Answers any method no service registered (here "/test.Identity/Get") with the caller's
// identity as "user/role", through Authenticator::IdentityOf on the call's own context.
class IdentityEcho final : public grpc::CallbackGenericService {
 public:
  explicit IdentityEcho(const Authenticator* auth) : auth_(auth) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      Reactor(const Authenticator* auth, grpc::GenericCallbackServerContext* ctx) {
        absl::StatusOr<Identity> id = IdentityOf(auth, ctx);
        if (!id.ok()) {
          Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(id.status().message())));
          return;
        }
        const std::string text = absl::StrCat(id->user, "/", RoleName(id->role));
        grpc::Slice slice(text);
        response_ = grpc::ByteBuffer(&slice, 1);
        StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer response_;
    };
    return new Reactor(auth_, ctx);
  }

 private:
  const Authenticator* const auth_;
};

// The gradzoo services over a fresh store, plus health, reflection and IdentityEcho, with
// token authentication. (What server::Server::Start builds with Options::tokens_file set.)
class AuthServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("gradzoo_auth_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    ASSERT_OK_AND_ASSIGN(auth_, Authenticator::FromText(TokensText(), "test"));
    core::Engine::Options eo;
    eo.data_dir = dir_.string();
    eo.device = "cpu";
    ASSERT_OK_AND_ASSIGN(engine_, core::Engine::Create(eo));
    queries_ = std::make_unique<core::ThreadPool>("queries", 1, 8);
    JobManager::Options jo;
    ASSERT_OK_AND_ASSIGN(jobs_, JobManager::Create(engine_.get(), jo));
    ServiceDeps deps;
    deps.engine = engine_.get();
    deps.jobs = jobs_.get();
    deps.queries = queries_.get();
    deps.start_time = absl::Now();
    deps.max_receive_message_bytes = 4 << 20;
    services_ = MakeServices(deps);
    echo_ = std::make_unique<IdentityEcho>(auth_.get());

    ASSERT_OK_AND_ASSIGN(auto creds, MakeServerCredentials(TlsOptions(), auth_));
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", creds, &port_);
    for (auto& s : services_) builder.RegisterService(s.get());
    builder.RegisterCallbackGenericService(echo_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
    server_->GetHealthCheckService()->SetServingStatus(true);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    if (jobs_) jobs_->Shutdown();
    server_.reset();
    echo_.reset();
    services_.clear();
    jobs_.reset();
    queries_.reset();
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }

  struct Result {
    grpc::Status status;
    std::string response;  // the first response message's bytes
  };

  // Calls `method` as a generic bidi stream (the wire form of every RPC kind): one empty
  // request message (all fields default), half-close, read whatever comes back.
  Result Call(const std::string& method, const std::string& authorization,
              const std::string& request = "") {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    class Reactor final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
     public:
      explicit Reactor(const std::string& request) {
        grpc::Slice slice(request);
        request_ = grpc::ByteBuffer(&slice, 1);
      }
      void Go() {
        StartWrite(&request_);
        StartRead(&response_);
        StartCall();
      }
      void OnWriteDone(bool ok) override {
        if (ok) StartWritesDone();
      }
      void OnReadDone(bool ok) override {
        if (!ok) return;
        if (first_.empty()) {
          std::vector<grpc::Slice> slices;
          if (response_.Dump(&slices).ok()) {
            for (const auto& s : slices) first_.append(reinterpret_cast<const char*>(s.begin()), s.size());
          }
          got_first_ = true;
        }
        StartRead(&response_);
      }
      void OnDone(const grpc::Status& s) override {
        std::lock_guard<std::mutex> lock(mu_);
        status_ = s;
        done_ = true;
        cv_.notify_all();
      }
      Result Wait() {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return done_; });
        return Result{status_, first_};
      }

     private:
      grpc::ByteBuffer request_, response_;
      std::string first_;
      bool got_first_ = false;
      std::mutex mu_;
      std::condition_variable cv_;
      bool done_ = false;
      grpc::Status status_;
    };
    Reactor reactor(request);
    stub.PrepareBidiStreamingCall(&ctx, method, grpc::StubOptions(), &reactor);
    reactor.Go();
    return reactor.Wait();
  }

  // Every method of every service in package gradzoo.v1 linked into this binary, as
  // "/gradzoo.v1.Service/Method".
  static std::vector<std::string> AllGradzooMethods(std::set<std::string>* services) {
    std::vector<std::string> files;
    google::protobuf::DescriptorPool::internal_generated_database()->FindAllFileNames(&files);
    std::vector<std::string> methods;
    for (const std::string& f : files) {
      const google::protobuf::FileDescriptor* fd =
          google::protobuf::DescriptorPool::generated_pool()->FindFileByName(f);
      if (fd == nullptr || fd->package() != "gradzoo.v1") continue;
      for (int s = 0; s < fd->service_count(); ++s) {
        const google::protobuf::ServiceDescriptor* sd = fd->service(s);
        services->insert(sd->full_name());
        for (int m = 0; m < sd->method_count(); ++m) {
          methods.push_back(absl::StrCat("/", sd->full_name(), "/", sd->method(m)->name()));
        }
      }
    }
    return methods;
  }

  std::filesystem::path dir_;
  std::shared_ptr<const Authenticator> auth_;
  std::unique_ptr<core::Engine> engine_;
  std::unique_ptr<core::ThreadPool> queries_;
  std::unique_ptr<JobManager> jobs_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<IdentityEcho> echo_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  int port_ = 0;
};

TEST_F(AuthServerTest, EveryMethodOfEveryServiceNeedsAValidToken) {
  std::set<std::string> services;
  std::vector<std::string> methods = AllGradzooMethods(&services);
  // The walk must not pass vacuously: the services the server registers are all found.
  for (const char* s : {"gradzoo.v1.ZooService", "gradzoo.v1.TrainingJobService",
                        "gradzoo.v1.GradientService", "gradzoo.v1.AnalysisService",
                        "gradzoo.v1.EmbeddingService", "gradzoo.v1.InfoService"}) {
    EXPECT_EQ(services.count(s), 1u) << s;
  }
  EXPECT_GE(methods.size(), 30u);
  methods.push_back("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  const int64_t rejected_before = auth_->rejected_calls();
  for (const std::string& m : methods) {
    SCOPED_TRACE(m);
    const Result none = Call(m, "");
    EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(none.status.error_message(), HasSubstr("missing token"));
    const Result wrong = Call(m, absl::StrCat("Bearer ", kAliceToken, "0"));
    EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(wrong.status.error_message(), HasSubstr("invalid token"));
    const Result malformed = Call(m, kAliceToken);
    EXPECT_EQ(malformed.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    const Result good = Call(m, absl::StrCat("Bearer ", kAliceToken));
    EXPECT_NE(good.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << good.status.error_message();
  }
  EXPECT_EQ(auth_->rejected_calls() - rejected_before, static_cast<int64_t>(3 * methods.size()));
}

TEST_F(AuthServerTest, HealthAnswersWithoutAToken) {
  // HealthCheckRequest{service=""} is empty; HealthCheckResponse{status: SERVING} is 08 01.
  for (const std::string& authorization : {std::string(), std::string("Bearer nonsense")}) {
    const Result r = Call("/grpc.health.v1.Health/Check", authorization);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.response, std::string("\x08\x01", 2));
  }
}

TEST_F(AuthServerTest, GoodTokenReachesTheHandler) {
  // GetServerInfo really runs (a response comes back) with a token.
  const Result r = Call("/gradzoo.v1.InfoService/GetServerInfo", absl::StrCat("Bearer ", kBobToken));
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_FALSE(r.response.empty());
}

TEST_F(AuthServerTest, HandlersSeeTheirOwnCallersIdentityOnASharedConnection) {
  // gRPC shares one auth context per connection; identities must not leak between calls.
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(Call("/test.Identity/Get", absl::StrCat("Bearer ", kAliceToken)).response,
              "alice/user");
    EXPECT_EQ(Call("/test.Identity/Get", absl::StrCat("Bearer ", kRootToken)).response,
              "root/admin");
    EXPECT_EQ(Call("/test.Identity/Get", absl::StrCat("Bearer ", kBobToken)).response, "bob/user");
  }
  EXPECT_EQ(Call("/test.Identity/Get", "").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// The C++ client's Options::token: its channel adds the header to every call, so typed stubs
// on client->channel() (what the area clients use) are authenticated too.
TEST_F(AuthServerTest, TheClientsTokenChannelAuthenticatesTypedStubs) {
  client::Client::Options options;
  options.token = kAliceToken;
  ASSERT_OK_AND_ASSIGN(auto c, client::Client::Connect(absl::StrCat("127.0.0.1:", port_), options));
  ASSERT_OK_AND_ASSIGN(v1::GetServerInfoResponse info, c->GetServerInfo());
  EXPECT_FALSE(info.version().empty());
  auto stub = v1::InfoService::NewStub(c->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetServerInfoResponse response;
  const grpc::Status s = stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  // The same stub on a plain channel is refused.
  auto plain = v1::InfoService::NewStub(channel_);
  grpc::ClientContext ctx2;
  EXPECT_EQ(plain->GetServerInfo(&ctx2, v1::GetServerInfoRequest(), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(IdentityOfTest, WithoutAuthenticationEveryCallerIsTheLocalAdmin) {
  grpc::CallbackServerContext* no_context = nullptr;
  ASSERT_OK_AND_ASSIGN(Identity id, IdentityOf(nullptr, no_context));
  EXPECT_EQ(id.user, "local");
  EXPECT_TRUE(id.is_admin());
}

}  // namespace
}  // namespace gradzoo::server
