#include "core/store/zoo_codec.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace gradzoo::core {
namespace {

using ::gradzoo::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

constexpr size_t kTrailerSize = 4 + 8 + 32;

// Weights with a recognisable, deterministic pattern per (model, layer, index).
LayerWeights MakeLayer(int out, int in, int salt) {
  LayerWeights l;
  l.out = out;
  l.in = in;
  for (int i = 0; i < out * in; ++i) l.weight.push_back(std::sin(0.1f * i + salt) * 0.5f);
  for (int i = 0; i < out; ++i) l.bias.push_back(0.01f * (i + 1) - 0.001f * salt);
  return l;
}

ModelRecord MakeModel(const std::string& id, int input_dim, std::vector<int> hidden, int output_dim,
                      Activation activation, int salt) {
  ModelRecord m;
  m.id = id;
  m.task = "mul2";
  m.lambda = 0.25 * salt;
  m.seed = 1000 + salt;
  m.split = salt % 2 == 0 ? Split::kTrain : Split::kValidation;
  m.train_loss = 0.125 / (salt + 1);
  m.validation_loss = 0.5 / (salt + 1);
  m.steps = 100 * (salt + 1);
  m.label = absl::StrCat("label-", salt);
  m.spec.input_dim = input_dim;
  m.spec.hidden = std::move(hidden);
  m.spec.output_dim = output_dim;
  m.spec.activation = activation;
  const std::vector<int> w = m.spec.Widths();
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    m.layers.push_back(MakeLayer(w[l + 1], w[l], salt * 10 + static_cast<int>(l)));
  }
  return m;
}

// A zoo whose every field differs from its default, with three models of different shapes.
Zoo MakeZoo() {
  Zoo zoo;
  zoo.id = "test-zoo-1";
  zoo.has_spec = true;
  zoo.spec.task.name = "mul2";
  zoo.spec.task.lambdas = {0.0, 0.5, 1.0};
  zoo.spec.task.train_examples = 300;
  zoo.spec.task.validation_examples = 77;
  zoo.spec.hidden = {4, 3};
  zoo.spec.activation = Activation::kTanh;
  zoo.spec.seeds = {7, -3, int64_t{1} << 40};
  zoo.spec.validation_seeds = {-3};
  zoo.spec.training.steps = 123;
  zoo.spec.training.batch_size = 16;
  zoo.spec.training.learning_rate = 3e-3;
  zoo.spec.training.eval_every = 5;
  zoo.spec.training.early_stopping_patience = 4;
  zoo.spec.training.device = "cuda:1";
  zoo.create_time_ms = 1700000000123;
  zoo.owner = "alice@example.com";
  zoo.models.push_back(MakeModel("m-0", 2, {4, 3}, 1, Activation::kTanh, 0));
  zoo.models.push_back(MakeModel("m-1", 3, {5}, 2, Activation::kRelu, 1));
  zoo.models.push_back(MakeModel("m-2", 1, {}, 1, Activation::kGelu, 2));
  return zoo;
}

void ExpectLayersEqual(const LayerWeights& a, const LayerWeights& b, const std::string& where) {
  EXPECT_EQ(a.out, b.out) << where;
  EXPECT_EQ(a.in, b.in) << where;
  EXPECT_EQ(a.weight, b.weight) << where;  // bit-exact: the format stores IEEE-754 bits
  EXPECT_EQ(a.bias, b.bias) << where;
}

// Field-by-field equality of everything the archive carries (stored_bytes is not carried).
void ExpectZoosEqual(const Zoo& a, const Zoo& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.has_spec, b.has_spec);
  EXPECT_EQ(a.create_time_ms, b.create_time_ms);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.spec.task.name, b.spec.task.name);
  EXPECT_EQ(a.spec.task.lambdas, b.spec.task.lambdas);
  EXPECT_EQ(a.spec.task.train_examples, b.spec.task.train_examples);
  EXPECT_EQ(a.spec.task.validation_examples, b.spec.task.validation_examples);
  EXPECT_EQ(a.spec.task.families, b.spec.task.families);
  EXPECT_EQ(a.spec.task.similarity, b.spec.task.similarity);
  EXPECT_EQ(a.spec.task.family_seed, b.spec.task.family_seed);
  EXPECT_EQ(a.spec.task.data_path, b.spec.task.data_path);
  EXPECT_EQ(a.spec.task.custom_input_dim, b.spec.task.custom_input_dim);
  EXPECT_EQ(a.spec.task.custom_output_dim, b.spec.task.custom_output_dim);
  EXPECT_EQ(a.spec.task.custom_x, b.spec.task.custom_x);
  EXPECT_EQ(a.spec.task.custom_y, b.spec.task.custom_y);
  EXPECT_EQ(a.spec.hidden, b.spec.hidden);
  EXPECT_EQ(a.spec.activation, b.spec.activation);
  EXPECT_EQ(a.spec.seeds, b.spec.seeds);
  EXPECT_EQ(a.spec.validation_seeds, b.spec.validation_seeds);
  EXPECT_EQ(a.spec.training.steps, b.spec.training.steps);
  EXPECT_EQ(a.spec.training.batch_size, b.spec.training.batch_size);
  EXPECT_EQ(a.spec.training.learning_rate, b.spec.training.learning_rate);
  EXPECT_EQ(a.spec.training.eval_every, b.spec.training.eval_every);
  EXPECT_EQ(a.spec.training.early_stopping_patience, b.spec.training.early_stopping_patience);
  EXPECT_EQ(a.spec.training.device, b.spec.training.device);
  EXPECT_EQ(a.spec.training.cosine_schedule, b.spec.training.cosine_schedule);
  ASSERT_EQ(a.models.size(), b.models.size());
  for (size_t i = 0; i < a.models.size(); ++i) {
    const ModelRecord& x = a.models[i];
    const ModelRecord& y = b.models[i];
    const std::string where = absl::StrCat("models[", i, "]");
    EXPECT_EQ(x.id, y.id) << where;
    EXPECT_EQ(x.task, y.task) << where;
    EXPECT_EQ(x.lambda, y.lambda) << where;
    EXPECT_EQ(x.seed, y.seed) << where;
    EXPECT_EQ(x.split, y.split) << where;
    EXPECT_EQ(x.train_loss, y.train_loss) << where;
    EXPECT_EQ(x.validation_loss, y.validation_loss) << where;
    EXPECT_EQ(x.steps, y.steps) << where;
    EXPECT_EQ(x.label, y.label) << where;
    EXPECT_EQ(x.variant, y.variant) << where;
    // NaN (no test set) must round-trip as NaN.
    EXPECT_TRUE(x.test_loss == y.test_loss || (std::isnan(x.test_loss) && std::isnan(y.test_loss)))
        << where;
    EXPECT_TRUE(x.test_accuracy == y.test_accuracy ||
                (std::isnan(x.test_accuracy) && std::isnan(y.test_accuracy)))
        << where;
    EXPECT_EQ(x.spec, y.spec) << where;
    ASSERT_EQ(x.layers.size(), y.layers.size()) << where;
    for (size_t l = 0; l < x.layers.size(); ++l) {
      ExpectLayersEqual(x.layers[l], y.layers[l], absl::StrCat(where, ".layers[", l, "]"));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A hand-rolled writer of the documented format, independent of the encoder, for archives the
// encoder would never produce.

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutStr(std::string* s, const std::string& v) {
  PutU32(s, static_cast<uint32_t>(v.size()));
  s->append(v);
}
void PutF32(std::string* s, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  PutU32(s, bits);
}
void PutF64(std::string* s, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  PutU64(s, bits);
}
void PutRecord(std::string* s, uint32_t tag, const std::string& payload) {
  PutU32(s, tag);
  PutU64(s, payload.size());
  s->append(payload);
}

std::string HexToBytes(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// Appends a valid trailer: the archive's checksum then matches whatever `body` says.
std::string Seal(std::string body) {
  const std::string digest = HexToBytes(Sha256Hex(body));
  PutU32(&body, 0xFFFFFFFFu);
  PutU64(&body, 32);
  body.append(digest);
  return body;
}

// An encoded archive without its trailer, ready for more records and a new Seal.
std::string Unsealed(const Zoo& zoo) {
  std::string bytes = EncodeZoo(zoo);
  bytes.resize(bytes.size() - kTrailerSize);
  return bytes;
}

// Model record payload for 1 -> 1 (no hidden layer); the counts can lie.
struct ModelPayloadOptions {
  uint32_t id_length = 3;
  uint64_t hidden_count = 0;
  uint64_t layer_count = 1;
  uint64_t weight_count = 1;
  uint64_t bias_count = 1;
};
std::string ModelPayload(const ModelPayloadOptions& o) {
  std::string p;
  PutU32(&p, o.id_length);
  p.append("m-9");
  PutStr(&p, "mul2");
  PutF64(&p, 0.5);  // lambda
  PutU64(&p, 9);    // seed
  PutU32(&p, 1);    // split
  PutF64(&p, 0.1);  // train_loss
  PutF64(&p, 0.2);  // validation_loss
  PutU32(&p, 10);   // steps
  PutStr(&p, "");   // label
  PutU32(&p, 0);    // variant
  PutF64(&p, std::nan(""));  // test_loss
  PutF64(&p, std::nan(""));  // test_accuracy
  PutU32(&p, 1);    // input_dim
  PutU64(&p, o.hidden_count);
  PutU32(&p, 1);  // output_dim
  PutU32(&p, 1);  // activation
  PutU64(&p, o.layer_count);
  PutU32(&p, 1);  // out
  PutU32(&p, 1);  // in
  PutU64(&p, o.weight_count);
  PutF32(&p, 0.75f);
  PutU64(&p, o.bias_count);
  PutF32(&p, -0.25f);
  return p;
}

Zoo EmptyZoo() {
  Zoo zoo = MakeZoo();
  zoo.models.clear();
  return zoo;
}

// ---------------------------------------------------------------------------------------------

TEST(ZooCodecTest, RoundTripKeepsEveryField) {
  const Zoo zoo = MakeZoo();
  const std::string bytes = EncodeZoo(zoo);
  absl::StatusOr<Zoo> decoded = DecodeZoo(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectZoosEqual(*decoded, zoo);
  EXPECT_EQ(decoded->stored_bytes, static_cast<int64_t>(bytes.size()));
}

TEST(ZooCodecTest, RoundTripOfZooWithoutSpecOrModels) {
  Zoo zoo;
  zoo.id = "imported";
  absl::StatusOr<Zoo> decoded = DecodeZoo(EncodeZoo(zoo));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectZoosEqual(*decoded, zoo);
}

TEST(ZooCodecTest, StartsWithMagicAndVersion) {
  const std::string bytes = EncodeZoo(MakeZoo());
  ASSERT_GE(bytes.size(), 12u);
  EXPECT_EQ(bytes.substr(0, 8), "GZOOARC1");
  EXPECT_EQ(bytes.substr(8, 4), std::string("\x02\x00\x00\x00", 4));
}

TEST(ZooCodecTest, EncodingIsDeterministic) {
  const Zoo zoo = MakeZoo();
  const std::string a = EncodeZoo(zoo);
  const Zoo copy = zoo;
  EXPECT_EQ(EncodeZoo(copy), a);
  absl::StatusOr<Zoo> decoded = DecodeZoo(a);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(EncodeZoo(*decoded), a);
}

TEST(ZooCodecTest, StoredBytesIsNotEncoded) {
  Zoo zoo = MakeZoo();
  const std::string a = EncodeZoo(zoo);
  zoo.stored_bytes = 123456;
  EXPECT_EQ(EncodeZoo(zoo), a);
}

// Every field must reach the bytes and come back: change one at a time.
TEST(ZooCodecTest, EveryFieldIsEncoded) {
  const std::vector<std::pair<const char*, std::function<void(Zoo&)>>> mutations = {
      {"id", [](Zoo& z) { z.id = "other-zoo"; }},
      {"has_spec", [](Zoo& z) { z.has_spec = false; }},
      {"create_time_ms", [](Zoo& z) { z.create_time_ms = -1; }},
      {"owner", [](Zoo& z) { z.owner = "bob"; }},
      {"task.name", [](Zoo& z) { z.spec.task.name = "other"; }},
      {"task.lambdas", [](Zoo& z) { z.spec.task.lambdas.push_back(2.0); }},
      {"task.train_examples", [](Zoo& z) { z.spec.task.train_examples = 1; }},
      {"task.validation_examples", [](Zoo& z) { z.spec.task.validation_examples = 2; }},
      {"spec.hidden", [](Zoo& z) { z.spec.hidden = {8}; }},
      {"spec.activation", [](Zoo& z) { z.spec.activation = Activation::kGelu; }},
      {"spec.seeds", [](Zoo& z) { z.spec.seeds = {1}; }},
      {"spec.validation_seeds", [](Zoo& z) { z.spec.validation_seeds.clear(); }},
      {"training.steps", [](Zoo& z) { z.spec.training.steps = 9; }},
      {"training.batch_size", [](Zoo& z) { z.spec.training.batch_size = 0; }},
      {"training.learning_rate", [](Zoo& z) { z.spec.training.learning_rate = 0.5; }},
      {"training.eval_every", [](Zoo& z) { z.spec.training.eval_every = 0; }},
      {"training.early_stopping_patience",
       [](Zoo& z) { z.spec.training.early_stopping_patience = 0; }},
      {"training.device", [](Zoo& z) { z.spec.training.device = "cpu"; }},
      {"task.families", [](Zoo& z) { z.spec.task.families = 7; }},
      {"task.similarity", [](Zoo& z) { z.spec.task.similarity = 0.25; }},
      {"task.family_seed", [](Zoo& z) { z.spec.task.family_seed = 99; }},
      {"task.data_path", [](Zoo& z) { z.spec.task.data_path = "/data"; }},
      {"task.custom", [](Zoo& z) {
         z.spec.task.custom_input_dim = 1;
         z.spec.task.custom_output_dim = 1;
         z.spec.task.custom_x = {1, 2};
         z.spec.task.custom_y = {3, 4};
       }},
      {"model.variant", [](Zoo& z) { z.models[1].variant = 3; }},
      {"model.test_accuracy", [](Zoo& z) { z.models[1].test_accuracy = 0.5; }},
      {"training.cosine_schedule",
       [](Zoo& z) { z.spec.training.cosine_schedule = !z.spec.training.cosine_schedule; }},
      {"models (count)", [](Zoo& z) { z.models.pop_back(); }},
      {"models (order)", [](Zoo& z) { std::swap(z.models[0], z.models[1]); }},
      {"model.id", [](Zoo& z) { z.models[1].id = "renamed"; }},
      {"model.task", [](Zoo& z) { z.models[1].task = "other"; }},
      {"model.lambda", [](Zoo& z) { z.models[1].lambda = -7.5; }},
      {"model.seed", [](Zoo& z) { z.models[1].seed = -42; }},
      {"model.split", [](Zoo& z) { z.models[1].split = Split::kTrain; }},
      {"model.train_loss", [](Zoo& z) { z.models[1].train_loss = 1e300; }},
      {"model.validation_loss", [](Zoo& z) { z.models[1].validation_loss = 0; }},
      {"model.steps", [](Zoo& z) { z.models[1].steps = 1; }},
      {"model.label", [](Zoo& z) { z.models[1].label = "x"; }},
      {"model.spec.activation", [](Zoo& z) { z.models[1].spec.activation = Activation::kTanh; }},
      {"model shape",
       [](Zoo& z) {
         z.models[1] = MakeModel("m-1", 6, {2, 2, 2}, 3, Activation::kRelu, 1);
       }},
      {"model.layers.weight", [](Zoo& z) { z.models[0].layers[1].weight[5] += 1.0f; }},
      {"model.layers.bias", [](Zoo& z) { z.models[2].layers[0].bias[0] = -3.0f; }},
  };
  const Zoo base = MakeZoo();
  const std::string base_bytes = EncodeZoo(base);
  for (const auto& [field, mutate] : mutations) {
    SCOPED_TRACE(field);
    Zoo changed = base;
    mutate(changed);
    const std::string bytes = EncodeZoo(changed);
    EXPECT_NE(bytes, base_bytes);
    absl::StatusOr<Zoo> decoded = DecodeZoo(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ExpectZoosEqual(*decoded, changed);
  }
}

TEST(ZooCodecTest, EveryTruncationIsDataLoss) {
  const std::string bytes = EncodeZoo(MakeZoo());
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<Zoo> decoded = DecodeZoo(absl::string_view(bytes).substr(0, n));
    ASSERT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss)
        << "prefix of " << n << " bytes: " << decoded.status();
  }
}

TEST(ZooCodecTest, EveryFlippedByteIsDataLoss) {
  const std::string bytes = EncodeZoo(MakeZoo());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80}) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(corrupt[i] ^ mask);
      absl::StatusOr<Zoo> decoded = DecodeZoo(corrupt);
      ASSERT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss)
          << "byte " << i << " ^ " << int{mask} << ": " << decoded.status();
    }
  }
}

TEST(ZooCodecTest, TrailingGarbageIsDataLoss) {
  std::string bytes = EncodeZoo(MakeZoo());
  bytes.push_back('\0');
  EXPECT_THAT(DecodeZoo(bytes), StatusIs(absl::StatusCode::kDataLoss, _));
}

TEST(ZooCodecTest, NotAnArchiveIsDataLoss) {
  EXPECT_THAT(DecodeZoo(""), StatusIs(absl::StatusCode::kDataLoss, _));
  EXPECT_THAT(DecodeZoo(std::string(4096, 'x')), StatusIs(absl::StatusCode::kDataLoss, _));
  std::string bad_magic = Unsealed(MakeZoo());
  bad_magic[0] = 'X';
  EXPECT_THAT(DecodeZoo(Seal(bad_magic)), StatusIs(absl::StatusCode::kDataLoss, _));
}

TEST(ZooCodecTest, OtherFormatVersionIsDataLoss) {
  std::string body = Unsealed(MakeZoo());
  body[8] = 3;
  EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("version 3")));
  body[8] = 1;  // the pre-release layout
  EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("version 1")));
}

// The hand-rolled writer agrees with the decoder, so the hostile tests below fail for the
// reason they claim.
TEST(ZooCodecTest, HandWrittenModelRecordDecodes) {
  std::string body = Unsealed(EmptyZoo());
  PutRecord(&body, 3, ModelPayload({}));
  absl::StatusOr<Zoo> decoded = DecodeZoo(Seal(body));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->models.size(), 1u);
  EXPECT_EQ(decoded->models[0].id, "m-9");
  EXPECT_EQ(decoded->models[0].layers[0].weight, std::vector<float>{0.75f});
  EXPECT_EQ(decoded->models[0].layers[0].bias, std::vector<float>{-0.25f});
}

// Hostile archives carry a valid checksum and lengths that point far beyond their own size.
// A decoder that trusted them would throw std::length_error / std::bad_alloc (crashing the test)
// or allocate exabytes; it must answer DATA_LOSS instead.
TEST(ZooCodecTest, HostileLengthsAreDataLossWithoutAllocating) {
  constexpr uint64_t kHuge = uint64_t{1} << 61;
  auto with = [](void (*set)(ModelPayloadOptions&)) {
    ModelPayloadOptions o;
    set(o);
    return o;
  };
  const std::vector<std::pair<const char*, ModelPayloadOptions>> cases = {
      {"string length", with([](ModelPayloadOptions& o) { o.id_length = 0xFFFFFFFFu; })},
      {"hidden count", with([](ModelPayloadOptions& o) { o.hidden_count = kHuge; })},
      {"layer count", with([](ModelPayloadOptions& o) { o.layer_count = kHuge; })},
      {"weight count", with([](ModelPayloadOptions& o) { o.weight_count = kHuge; })},
      {"bias count",
       with([](ModelPayloadOptions& o) { o.bias_count = std::numeric_limits<uint64_t>::max(); })},
      {"weight count just too big", with([](ModelPayloadOptions& o) { o.weight_count = 1000; })},
  };
  for (const auto& [name, options] : cases) {
    SCOPED_TRACE(name);
    std::string body = Unsealed(EmptyZoo());
    PutRecord(&body, 3, ModelPayload(options));
    EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, _));
  }
}

TEST(ZooCodecTest, HostileRecordLengthIsDataLoss) {
  for (uint64_t length : {uint64_t{1} << 62, ~uint64_t{0}, uint64_t{100000}}) {
    std::string body = Unsealed(EmptyZoo());
    PutU32(&body, 3);
    PutU64(&body, length);
    body.append(ModelPayload({}));
    EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, _)) << length;
  }
}

TEST(ZooCodecTest, UnknownRecordsAreSkipped) {
  const Zoo zoo = MakeZoo();
  std::string body = Unsealed(zoo);
  PutRecord(&body, 77, "a record from a newer writer");
  PutRecord(&body, 0x7FFFFFFF, "");
  absl::StatusOr<Zoo> decoded = DecodeZoo(Seal(body));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectZoosEqual(*decoded, zoo);
}

TEST(ZooCodecTest, MalformedRecordStructureIsDataLoss) {
  const Zoo zoo = EmptyZoo();
  {
    SCOPED_TRACE("model record with a byte after its last field");
    std::string body = Unsealed(zoo);
    PutRecord(&body, 3, ModelPayload({}) + "!");
    EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, _));
  }
  {
    SCOPED_TRACE("second zoo header");
    std::string body = Unsealed(zoo);
    std::string header;
    PutStr(&header, "second");
    header.push_back('\0');
    PutU64(&header, 0);
    PutStr(&header, "");
    PutRecord(&body, 1, header);
    EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, _));
  }
  {
    SCOPED_TRACE("trailer tag before the end");
    std::string body = Unsealed(zoo);
    PutRecord(&body, 0xFFFFFFFFu, std::string(32, '\0'));
    EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, _));
  }
  {
    SCOPED_TRACE("no records at all");
    std::string body = Unsealed(zoo).substr(0, 12);
    EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, _));
  }
  {
    SCOPED_TRACE("half a record header");
    std::string body = Unsealed(zoo);
    PutU32(&body, 3);
    EXPECT_THAT(DecodeZoo(Seal(body)), StatusIs(absl::StatusCode::kDataLoss, _));
  }
}

// Well-formed archives describing invalid zoos. EncodeZoo does not validate, so it can write them.
TEST(ZooCodecTest, InvalidZoosAreInvalidArgument) {
  const std::vector<std::pair<const char*, std::function<void(Zoo&)>>> mutations = {
      {"zoo id with capitals", [](Zoo& z) { z.id = "Bad_Id"; }},
      {"empty zoo id", [](Zoo& z) { z.id = ""; }},
      {"zoo id too long", [](Zoo& z) { z.id = std::string(64, 'a'); }},
      {"model id ending in '-'", [](Zoo& z) { z.models[0].id = "m-"; }},
      {"empty model id", [](Zoo& z) { z.models[2].id = ""; }},
      {"duplicate model ids", [](Zoo& z) { z.models[2].id = z.models[0].id; }},
      {"zero input_dim", [](Zoo& z) { z.models[0].spec.input_dim = 0; }},
      {"too wide", [](Zoo& z) { z.models[0].spec.hidden[0] = MlpSpec::kMaxWidth + 1; }},
      {"bad model activation", [](Zoo& z) { z.models[1].spec.activation = Activation{9}; }},
      {"bad zoo activation", [](Zoo& z) { z.spec.activation = Activation{0}; }},
      {"bad split", [](Zoo& z) { z.models[1].split = Split{7}; }},
      {"missing layer", [](Zoo& z) { z.models[0].layers.pop_back(); }},
      {"short weight", [](Zoo& z) { z.models[1].layers[0].weight.pop_back(); }},
      {"wrong layer.out", [](Zoo& z) { z.models[1].layers[0].out += 1; }},
      {"NaN weight",
       [](Zoo& z) { z.models[2].layers[0].weight[0] = std::numeric_limits<float>::quiet_NaN(); }},
      {"Inf bias",
       [](Zoo& z) { z.models[2].layers[0].bias[0] = std::numeric_limits<float>::infinity(); }},
  };
  for (const auto& [name, mutate] : mutations) {
    SCOPED_TRACE(name);
    Zoo zoo = MakeZoo();
    mutate(zoo);
    EXPECT_THAT(DecodeZoo(EncodeZoo(zoo)), StatusIs(absl::StatusCode::kInvalidArgument, _));
  }
}

TEST(ZooCodecTest, Sha256HexMatchesKnownAnswers) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace gradzoo::core
