// The owner records tenancy relies on (core/store): the job log's owner column, including a log
// written before the column existed (upgraded in place, its jobs read back ownerless), and the
// AclStore of zoo and embedder owners and readers (durable across reopen, normalised).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/store/acl_store.h"
#include "core/store/job_log.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

std::filesystem::path FreshDir(const std::string& name) {
  auto dir = std::filesystem::path(::testing::TempDir()) /
             ("gradzoo_owner_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(JobLogOwnerTest, UpgradesALogWithoutTheOwnerColumn) {
  const auto dir = FreshDir("upgrade");
  {  // The schema before tenancy, with one finished job.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "jobs.sqlite").string().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE jobs (id TEXT PRIMARY KEY, kind INTEGER, state INTEGER,"
                           " target TEXT, request_id TEXT, error TEXT, payload BLOB, create_ms "
                           "INTEGER, start_ms INTEGER, end_ms INTEGER);"
                           "INSERT INTO jobs VALUES ('job-1', 1, 3, 'old-zoo', 'r1', '', x'0102',"
                           " 10, 20, 30);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  {
    ASSERT_OK_AND_ASSIGN(auto log, JobLog::Open(dir.string()));
    ASSERT_OK_AND_ASSIGN(auto records, log->LoadAll());
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].id, "job-1");
    EXPECT_EQ(records[0].target, "old-zoo");
    EXPECT_EQ(records[0].payload, std::string("\x01\x02", 2));
    EXPECT_EQ(records[0].end_ms, 30);
    EXPECT_EQ(records[0].owner, "");
    JobRecord mine = records[0];
    mine.id = "job-2";
    mine.owner = "alice";
    ASSERT_OK(log->Put(mine));
  }
  // Reopening an upgraded log does not upgrade it again; owners persist.
  ASSERT_OK_AND_ASSIGN(auto log, JobLog::Open(dir.string()));
  ASSERT_OK_AND_ASSIGN(auto records, log->LoadAll());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].owner, "");
  EXPECT_EQ(records[1].owner, "alice");
  std::filesystem::remove_all(dir);
}

TEST(AclStoreTest, PutGetEraseNormaliseAndPersist) {
  const auto dir = FreshDir("acl");
  {
    ASSERT_OK_AND_ASSIGN(auto acl, AclStore::Open(dir.string()));
    EXPECT_FALSE(acl->Get("zoos", "z").has_value());
    ASSERT_OK(acl->Put("zoos", "z", Acl{"alice", {"carol", "bob", "alice", "bob", ""}}));
    ASSERT_OK(acl->Put("embedders", "z", Acl{"bob", {}}));
    ASSERT_OK(acl->Put("zoos", "gone", Acl{"bob", {}}));
    ASSERT_OK(acl->Erase("zoos", "gone"));
    auto z = acl->Get("zoos", "z");
    ASSERT_TRUE(z.has_value());
    EXPECT_EQ(z->owner, "alice");
    EXPECT_EQ(z->readers, (std::vector<std::string>{"bob", "carol"}));
  }
  ASSERT_OK_AND_ASSIGN(auto acl, AclStore::Open(dir.string()));
  EXPECT_EQ(acl->Get("zoos", "z")->readers, (std::vector<std::string>{"bob", "carol"}));
  EXPECT_EQ(acl->Get("embedders", "z")->owner, "bob");  // kinds are separate namespaces
  EXPECT_FALSE(acl->Get("zoos", "gone").has_value());
  // Memory-only without a directory.
  ASSERT_OK_AND_ASSIGN(auto mem, AclStore::Open(""));
  ASSERT_OK(mem->Put("zoos", "m", Acl{"u", {}}));
  EXPECT_EQ(mem->Get("zoos", "m")->owner, "u");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gradzoo::core
