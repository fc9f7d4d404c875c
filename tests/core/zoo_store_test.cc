#include "core/store/zoo_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/model.h"
#include "core/store/zoo_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

namespace fs = std::filesystem;
using ::gradzoo::testing::StatusIs;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// A small valid zoo; `version` changes its weights so two versions differ in content.
Zoo MakeZoo(const std::string& id, int version = 1) {
  Zoo zoo;
  zoo.id = id;
  zoo.has_spec = true;
  zoo.spec.hidden = {3};
  zoo.spec.seeds = {1, 2};
  zoo.create_time_ms = 1700000000000 + version;
  zoo.owner = "tester";
  const std::vector<std::vector<int>> shapes = {{2, 3, 1}, {1, 4, 4, 2}};
  for (size_t k = 0; k < shapes.size(); ++k) {
    ModelRecord m;
    m.id = absl::StrCat("m-", k);
    m.task = "mul2";
    m.seed = static_cast<int64_t>(k);
    m.spec.input_dim = shapes[k].front();
    m.spec.hidden.assign(shapes[k].begin() + 1, shapes[k].end() - 1);
    m.spec.output_dim = shapes[k].back();
    const std::vector<int> w = m.spec.Widths();
    for (size_t l = 0; l + 1 < w.size(); ++l) {
      LayerWeights lw;
      lw.out = w[l + 1];
      lw.in = w[l];
      for (int i = 0; i < lw.out * lw.in; ++i) lw.weight.push_back(0.01f * i + 0.1f * version);
      lw.bias.assign(lw.out, -0.5f * version);
      m.layers.push_back(std::move(lw));
    }
    zoo.models.push_back(std::move(m));
  }
  return zoo;
}

// The archive covers every field but stored_bytes, and zoo_codec_test checks it field by field;
// equal encodings therefore mean equal zoos.
void ExpectSameZoo(const Zoo& actual, const Zoo& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_TRUE(EncodeZoo(actual) == EncodeZoo(expected)) << "zoo " << actual.id << " differs";
}

std::string BlobName(const Zoo& zoo) { return Sha256Hex(EncodeZoo(zoo)) + ".gzoo"; }

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Wraps the real file system and fails one kind of call the way a sick disk does. Thread-safe.
class FaultyFileOps : public FileOps {
 public:
  enum class Fault {
    kNone,
    kWriteNoSpace,  // write(2) stores half the bytes, then ENOSPC
    kSyncFails,     // fsync(2) of a file: EIO
    kRenameFails,   // rename(2): EIO
    kSyncDirFails,  // fsync(2) of the directory after the rename: EIO
  };

  void set_fault(Fault fault) { fault_ = fault; }

  // Runs `hook` once, at the start of the next ReadFile: a way to make another store call land
  // exactly between a Load's catalog lookup and its blob read.
  void BeforeNextRead(std::function<void()> hook) {
    absl::MutexLock lock(&mu_);
    before_read_ = std::move(hook);
  }

  absl::Status CreateDirs(const std::string& path) override { return base_->CreateDirs(path); }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    absl::StatusOr<std::unique_ptr<WritableFile>> file = base_->NewWritableFile(path);
    if (!file.ok()) return file;
    return std::unique_ptr<WritableFile>(new File(this, *std::move(file)));
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    std::function<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      hook = std::exchange(before_read_, nullptr);
    }
    if (hook) hook();
    return base_->ReadFile(path);
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (fault_ == Fault::kRenameFails) return absl::InternalError("rename: Input/output error");
    return base_->Rename(from, to);
  }
  absl::Status Remove(const std::string& path) override { return base_->Remove(path); }
  absl::Status SyncDir(const std::string& dir) override {
    if (fault_ == Fault::kSyncDirFails) return absl::InternalError("fsync dir: Input/output error");
    return base_->SyncDir(dir);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    return base_->ListDir(dir);
  }

 private:
  class File : public WritableFile {
   public:
    File(FaultyFileOps* ops, std::unique_ptr<WritableFile> base)
        : ops_(ops), base_(std::move(base)) {}
    absl::Status Append(absl::string_view data) override {
      if (ops_->fault_ == Fault::kWriteNoSpace) {
        base_->Append(data.substr(0, data.size() / 2)).IgnoreError();
        return absl::ResourceExhaustedError("write: No space left on device");
      }
      return base_->Append(data);
    }
    absl::Status Sync() override {
      if (ops_->fault_ == Fault::kSyncFails) {
        return absl::InternalError("fsync: Input/output error");
      }
      return base_->Sync();
    }
    absl::Status Close() override { return base_->Close(); }

   private:
    FaultyFileOps* const ops_;
    const std::unique_ptr<WritableFile> base_;
  };

  const std::shared_ptr<FileOps> base_ = FileOps::Posix();
  std::atomic<Fault> fault_{Fault::kNone};
  absl::Mutex mu_;
  std::function<void()> before_read_ ABSL_GUARDED_BY(mu_);
};

class ZooStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = absl::StrCat("zoo_store_test_", info->test_suite_name(), "_", info->name(),
                                    "_", ::getpid());
    std::replace(name.begin(), name.end(), '/', '_');  // parameterised test names
    dir_ = fs::path(::testing::TempDir()) / name;
    fs::remove_all(dir_);
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<ZooStore> OpenStore(std::shared_ptr<FileOps> file_ops = nullptr) {
    ZooStore::Options options;
    options.data_dir = dir_.string();
    options.file_ops = std::move(file_ops);
    absl::StatusOr<std::unique_ptr<ZooStore>> store = ZooStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  fs::path blobs_dir() const { return dir_ / "blobs"; }

  // Sorted names of everything in DIR/blobs.
  std::vector<std::string> BlobDirEntries() const {
    std::vector<std::string> names;
    for (const fs::directory_entry& e : fs::directory_iterator(blobs_dir())) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

TEST_F(ZooStoreTest, SaveLoadListDeleteRoundTrip) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->data_dir(), dir_.string());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, store->ListIds());
  EXPECT_THAT(ids, IsEmpty());

  const Zoo b = MakeZoo("zoo-b");
  const Zoo a = MakeZoo("zoo-a", 2);
  ASSERT_OK(store->Save(b).status());
  ASSERT_OK(store->Save(a).status());
  ASSERT_OK_AND_ASSIGN(ids, store->ListIds());
  EXPECT_THAT(ids, ElementsAre("zoo-a", "zoo-b"));

  ASSERT_OK_AND_ASSIGN(Zoo loaded_a, store->Load("zoo-a"));
  ExpectSameZoo(loaded_a, a);
  ASSERT_OK_AND_ASSIGN(Zoo loaded_b, store->Load("zoo-b"));
  ExpectSameZoo(loaded_b, b);
  EXPECT_THAT(BlobDirEntries(),
              ElementsAre(std::min(BlobName(a), BlobName(b)), std::max(BlobName(a), BlobName(b))));

  ASSERT_OK(store->Delete("zoo-a"));
  ASSERT_OK_AND_ASSIGN(ids, store->ListIds());
  EXPECT_THAT(ids, ElementsAre("zoo-b"));
  EXPECT_THAT(store->Load("zoo-a"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("zoo-a")));
  EXPECT_THAT(BlobDirEntries(), ElementsAre(BlobName(b)));
  ASSERT_OK_AND_ASSIGN(loaded_b, store->Load("zoo-b"));
  ExpectSameZoo(loaded_b, b);
}

TEST_F(ZooStoreTest, SaveReturnsBlobSizeAndLoadReportsIt) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Zoo zoo = MakeZoo("sized");
  ASSERT_OK_AND_ASSIGN(int64_t bytes, store->Save(zoo));
  EXPECT_EQ(bytes, static_cast<int64_t>(EncodeZoo(zoo).size()));
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(blobs_dir() / BlobName(zoo))), bytes);
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("sized"));
  EXPECT_EQ(loaded.stored_bytes, bytes);
}

TEST_F(ZooStoreTest, ReopenedStoreSeesSavedZoos) {
  const Zoo a = MakeZoo("first");
  const Zoo b = MakeZoo("second", 3);
  {
    std::unique_ptr<ZooStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Save(a).status());
    ASSERT_OK(store->Save(b).status());
  }
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, store->ListIds());
  EXPECT_THAT(ids, ElementsAre("first", "second"));
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("first"));
  ExpectSameZoo(loaded, a);
  ASSERT_OK_AND_ASSIGN(loaded, store->Load("second"));
  ExpectSameZoo(loaded, b);
}

TEST_F(ZooStoreTest, OverwriteKeepsOnlyTheNewVersion) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Zoo v1 = MakeZoo("zoo", 1);
  const Zoo v2 = MakeZoo("zoo", 2);
  ASSERT_NE(BlobName(v1), BlobName(v2));
  ASSERT_OK(store->Save(v1).status());
  ASSERT_OK(store->Save(v2).status());
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("zoo"));
  ExpectSameZoo(loaded, v2);
  EXPECT_THAT(BlobDirEntries(), ElementsAre(BlobName(v2)));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, store->ListIds());
  EXPECT_THAT(ids, ElementsAre("zoo"));
}

TEST_F(ZooStoreTest, SavingTheSameZooTwiceKeepsItsBlob) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Zoo zoo = MakeZoo("same");
  ASSERT_OK(store->Save(zoo).status());
  ASSERT_OK(store->Save(zoo).status());
  EXPECT_THAT(BlobDirEntries(), ElementsAre(BlobName(zoo)));
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("same"));
  ExpectSameZoo(loaded, zoo);
}

TEST_F(ZooStoreTest, CorruptBlobIsDataLossForThatZooAlone) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Zoo good = MakeZoo("good");
  const Zoo bad = MakeZoo("bad", 2);
  ASSERT_OK(store->Save(good).status());
  ASSERT_OK(store->Save(bad).status());

  const fs::path path = blobs_dir() / BlobName(bad);
  std::string bytes = ReadAll(path);
  bytes[bytes.size() / 2] ^= 0x10;
  WriteAll(path, bytes);

  EXPECT_THAT(store->Load("bad"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("zoos/bad")));
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("good"));
  ExpectSameZoo(loaded, good);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, store->ListIds());
  EXPECT_THAT(ids, ElementsAre("bad", "good"));

  // Saving the zoo again repairs it.
  ASSERT_OK(store->Save(bad).status());
  ASSERT_OK_AND_ASSIGN(loaded, store->Load("bad"));
  ExpectSameZoo(loaded, bad);
}

TEST_F(ZooStoreTest, MissingTruncatedOrSwappedBlobsAreDataLoss) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Zoo missing = MakeZoo("missing");
  const Zoo truncated = MakeZoo("truncated");
  const Zoo swapped = MakeZoo("swapped");
  for (const Zoo* zoo : {&missing, &truncated, &swapped}) ASSERT_OK(store->Save(*zoo).status());

  fs::remove(blobs_dir() / BlobName(missing));
  const fs::path truncated_path = blobs_dir() / BlobName(truncated);
  WriteAll(truncated_path, ReadAll(truncated_path).substr(0, 100));
  // A valid archive, but not the one the catalog recorded.
  WriteAll(blobs_dir() / BlobName(swapped), EncodeZoo(MakeZoo("swapped", 5)));

  EXPECT_THAT(store->Load("missing"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("zoos/missing")));
  EXPECT_THAT(store->Load("truncated"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("zoos/truncated")));
  EXPECT_THAT(store->Load("swapped"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("zoos/swapped")));
}

TEST_F(ZooStoreTest, OpenRemovesStrayTempFiles) {
  const Zoo zoo = MakeZoo("kept");
  {
    std::unique_ptr<ZooStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Save(zoo).status());
  }
  WriteAll(blobs_dir() / (BlobName(MakeZoo("kept", 2)) + ".tmp"), "half a blob");
  WriteAll(blobs_dir() / "anything.tmp", "");
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(BlobDirEntries(), ElementsAre(BlobName(zoo)));
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("kept"));
  ExpectSameZoo(loaded, zoo);
}

// A crash after the new blob's rename but before the catalog commit leaves a blob no row names:
// the old version is still the one served, and the next Open removes the orphan.
TEST_F(ZooStoreTest, CrashBeforeCommitKeepsOldVersionAndOpenRemovesOrphan) {
  const Zoo v1 = MakeZoo("zoo", 1);
  const Zoo v2 = MakeZoo("zoo", 2);
  {
    std::unique_ptr<ZooStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Save(v1).status());
  }
  WriteAll(blobs_dir() / BlobName(v2), EncodeZoo(v2));
  WriteAll(blobs_dir() / "README", "not ours; left alone");
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("zoo"));
  ExpectSameZoo(loaded, v1);
  EXPECT_THAT(BlobDirEntries(), UnorderedElementsAre(BlobName(v1), "README"));
}

TEST_F(ZooStoreTest, UnknownIdIsNotFoundAndBadIdIsInvalidArgument) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Load("nope"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
  EXPECT_THAT(store->Delete("nope"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
  EXPECT_THAT(store->Load("../etc"), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(store->Delete("Bad"), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(store->Save(MakeZoo("Bad Id")), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(ZooStoreTest, InvalidZooIsRejectedWithoutWriting) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Zoo zoo = MakeZoo("broken");
  zoo.models[1].layers[0].weight.pop_back();
  EXPECT_THAT(store->Save(zoo), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("m-1")));
  zoo = MakeZoo("broken");
  zoo.models[0].id = "Not-An-Id";
  EXPECT_THAT(store->Save(zoo), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(BlobDirEntries(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, store->ListIds());
  EXPECT_THAT(ids, IsEmpty());
}

TEST_F(ZooStoreTest, OpenRejectsUnusableDirectories) {
  EXPECT_THAT(ZooStore::Open({""}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  fs::create_directories(dir_);
  WriteAll(dir_ / "a-file", "x");
  EXPECT_THAT(ZooStore::Open({(dir_ / "a-file").string()}),
              StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

// ---------------------------------------------------------------------------------------------
// Fault injection: every failure during an overwrite keeps the old version whole.

struct FaultCase {
  const char* name;
  FaultyFileOps::Fault fault;
  absl::StatusCode code;
};

class ZooStoreFaultTest : public ZooStoreTest, public ::testing::WithParamInterface<FaultCase> {};

TEST_P(ZooStoreFaultTest, FailedOverwriteKeepsOldVersion) {
  const FaultCase& c = GetParam();
  auto faulty = std::make_shared<FaultyFileOps>();
  const Zoo v1 = MakeZoo("zoo", 1);
  const Zoo v2 = MakeZoo("zoo", 2);
  {
    std::unique_ptr<ZooStore> store = OpenStore(faulty);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Save(v1).status());

    faulty->set_fault(c.fault);
    EXPECT_THAT(store->Save(v2), StatusIs(c.code, HasSubstr("zoos/zoo")));
    ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("zoo"));
    ExpectSameZoo(loaded, v1);
    EXPECT_THAT(BlobDirEntries(), ElementsAre(BlobName(v1)));  // no temp file, no new blob
  }
  {
    // What is on disk, read by a store that shares nothing with the failed one.
    std::unique_ptr<ZooStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("zoo"));
    ExpectSameZoo(loaded, v1);
  }
  // Once the disk recovers, the overwrite goes through.
  faulty->set_fault(FaultyFileOps::Fault::kNone);
  std::unique_ptr<ZooStore> store = OpenStore(faulty);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Save(v2).status());
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("zoo"));
  ExpectSameZoo(loaded, v2);
  EXPECT_THAT(BlobDirEntries(), ElementsAre(BlobName(v2)));
}

TEST_P(ZooStoreFaultTest, FailedFirstSaveLeavesNothing) {
  const FaultCase& c = GetParam();
  auto faulty = std::make_shared<FaultyFileOps>();
  std::unique_ptr<ZooStore> store = OpenStore(faulty);
  ASSERT_NE(store, nullptr);
  faulty->set_fault(c.fault);
  EXPECT_THAT(store->Save(MakeZoo("new")), StatusIs(c.code, _));
  EXPECT_THAT(store->Load("new"), StatusIs(absl::StatusCode::kNotFound, _));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, store->ListIds());
  EXPECT_THAT(ids, IsEmpty());
  EXPECT_THAT(BlobDirEntries(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    Faults, ZooStoreFaultTest,
    ::testing::Values(
        FaultCase{"WriteNoSpace", FaultyFileOps::Fault::kWriteNoSpace,
                  absl::StatusCode::kResourceExhausted},
        FaultCase{"SyncFails", FaultyFileOps::Fault::kSyncFails, absl::StatusCode::kInternal},
        FaultCase{"RenameFails", FaultyFileOps::Fault::kRenameFails, absl::StatusCode::kInternal},
        FaultCase{"SyncDirFails", FaultyFileOps::Fault::kSyncDirFails,
                  absl::StatusCode::kInternal}),
    [](const ::testing::TestParamInfo<FaultCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// A writer landing between a Load's catalog lookup and its blob read unlinks the blob the Load
// was about to read. The Load must answer for the zoo as it now is, never DATA_LOSS.

TEST_F(ZooStoreTest, LoadRacingAnOverwriteReturnsTheNewVersion) {
  auto ops = std::make_shared<FaultyFileOps>();
  std::unique_ptr<ZooStore> store = OpenStore(ops);
  ASSERT_NE(store, nullptr);
  const Zoo v1 = MakeZoo("zoo", 1);
  const Zoo v2 = MakeZoo("zoo", 2);
  ASSERT_OK(store->Save(v1).status());
  ops->BeforeNextRead([&] { ASSERT_OK(store->Save(v2).status()); });
  ASSERT_OK_AND_ASSIGN(Zoo loaded, store->Load("zoo"));
  ExpectSameZoo(loaded, v2);
}

TEST_F(ZooStoreTest, LoadRacingADeleteIsNotFound) {
  auto ops = std::make_shared<FaultyFileOps>();
  std::unique_ptr<ZooStore> store = OpenStore(ops);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Save(MakeZoo("zoo")).status());
  ops->BeforeNextRead([&] { ASSERT_OK(store->Delete("zoo")); });
  EXPECT_THAT(store->Load("zoo"), StatusIs(absl::StatusCode::kNotFound, _));
}

// ---------------------------------------------------------------------------------------------
// The POSIX FileOps maps errno as documented.

TEST(PosixFileOpsTest, DiskFullIsResourceExhausted) {
  // /dev/full accepts opens and fails every write with ENOSPC.
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full";
  std::shared_ptr<FileOps> ops = FileOps::Posix();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileOps::WritableFile> file,
                       ops->NewWritableFile("/dev/full"));
  EXPECT_THAT(file->Append("some bytes"),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("/dev/full")));
}

TEST(PosixFileOpsTest, MissingFileIsNotFound) {
  std::shared_ptr<FileOps> ops = FileOps::Posix();
  const std::string path =
      (fs::path(::testing::TempDir()) / "zoo_store_test_no_such_file").string();
  EXPECT_THAT(ops->ReadFile(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
  EXPECT_THAT(ops->Remove(path), StatusIs(absl::StatusCode::kNotFound, _));
}

// ---------------------------------------------------------------------------------------------

// Loads racing overwrites and deletes never see a half-written zoo or a spurious DATA_LOSS
// (a blob unlinked between a Load's catalog lookup and its read is retried). No sleeps: the
// outcome must hold for every interleaving.
TEST_F(ZooStoreTest, ConcurrentSavesLoadsAndDeletes) {
  std::unique_ptr<ZooStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Zoo v1 = MakeZoo("shared", 1);
  const Zoo v2 = MakeZoo("shared", 2);
  const std::string e1 = EncodeZoo(v1);
  const std::string e2 = EncodeZoo(v2);
  ASSERT_OK(store->Save(v1).status());

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int i = 0; i < 30; ++i) {
      if (!store->Save(i % 2 == 0 ? v2 : v1).ok()) ++failures;
    }
  });
  threads.emplace_back([&] {
    const Zoo other = MakeZoo("other");
    for (int i = 0; i < 15; ++i) {
      if (!store->Save(other).ok() || !store->Delete("other").ok()) ++failures;
    }
  });
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&] {
      for (int i = 0; i < 60; ++i) {
        absl::StatusOr<Zoo> zoo = store->Load("shared");
        if (!zoo.ok()) {
          ADD_FAILURE() << zoo.status();
          ++failures;
          continue;
        }
        const std::string e = EncodeZoo(*zoo);
        if (e != e1 && e != e2) ++failures;
        if (!store->ListIds().ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(Zoo last, store->Load("shared"));
  ExpectSameZoo(last, v1);  // the writer's final save (i = 29) is v1
  EXPECT_THAT(BlobDirEntries(), ElementsAre(BlobName(v1)));
}

}  // namespace
}  // namespace gradzoo::core
