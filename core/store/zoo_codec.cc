#include "core/store/zoo_codec.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace gradzoo::core {
namespace {

constexpr char kMagic[8] = {'G', 'Z', 'O', 'O', 'A', 'R', 'C', '1'};
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kTrailerTag = 0xFFFFFFFFu;
constexpr size_t kShaSize = 32;
constexpr size_t kRecordHeaderSize = 4 + 8;  // u32 tag, u64 length
constexpr size_t kPreambleSize = sizeof(kMagic) + 4;
constexpr size_t kTrailerSize = kRecordHeaderSize + kShaSize;

// Record tags of format version 2 (see zoo_codec.h for their payloads).
constexpr uint32_t kZooHeaderTag = 1;
constexpr uint32_t kZooSpecTag = 2;
constexpr uint32_t kModelTag = 3;

// The smallest encoding of one layer: i32 out, i32 in, two empty vectors (u64 count each).
constexpr size_t kMinLayerSize = 4 + 4 + 8 + 8;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr bool kHostIsLittleEndian = true;
#else
constexpr bool kHostIsLittleEndian = false;
#endif

void Sha256(absl::string_view bytes, unsigned char out[kShaSize]) {
  unsigned int len = 0;
  // EVP_Digest with SHA-256 cannot fail short of memory exhaustion inside OpenSSL; that is a
  // broken invariant, not a status to propagate.
  if (EVP_Digest(bytes.data(), bytes.size(), out, &len, EVP_sha256(), nullptr) != 1 ||
      len != kShaSize) {
    std::abort();
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

// Appends little-endian scalars, strings, vectors and length-prefixed records to a string.
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U32(uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    out_->append(b, sizeof(b));
  }
  void U64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    out_->append(b, sizeof(b));
  }
  void I32(int32_t v) { U32(static_cast<uint32_t>(v)); }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    U32(bits);
  }
  void F64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    U64(bits);
  }
  // A string of 4 GiB or more does not fit the format's u32 length; the archive would then fail
  // to decode (ZooStore::Save decodes what it is about to write and refuses it).
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out_->append(s);
  }
  void VecI32(const std::vector<int>& v) {
    U64(v.size());
    for (int x : v) I32(x);
  }
  void VecI64(const std::vector<int64_t>& v) {
    U64(v.size());
    for (int64_t x : v) I64(x);
  }
  void VecF64(const std::vector<double>& v) {
    U64(v.size());
    for (double x : v) F64(x);
  }
  void VecF32(const std::vector<float>& v) {
    U64(v.size());
    if (kHostIsLittleEndian) {
      // Weights dominate an archive; copy them in bulk when the host byte order is the format's.
      out_->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    } else {
      for (float x : v) F32(x);
    }
  }

  // Writes a record header with a placeholder length; EndRecord patches it.
  size_t BeginRecord(uint32_t tag) {
    U32(tag);
    const size_t length_at = out_->size();
    U64(0);
    return length_at;
  }
  void EndRecord(size_t length_at) {
    uint64_t length = out_->size() - length_at - 8;
    for (int i = 0; i < 8; ++i) {
      (*out_)[length_at + i] = static_cast<char>((length >> (8 * i)) & 0xFF);
    }
  }

 private:
  std::string* out_;
};

void EncodeMlpSpec(const MlpSpec& spec, Writer& w) {
  w.I32(spec.input_dim);
  w.VecI32(spec.hidden);
  w.I32(spec.output_dim);
  w.I32(static_cast<int32_t>(spec.activation));
}

void EncodeModel(const ModelRecord& m, Writer& w) {
  w.Str(m.id);
  w.Str(m.task);
  w.F64(m.lambda);
  w.I64(m.seed);
  w.I32(static_cast<int32_t>(m.split));
  w.F64(m.train_loss);
  w.F64(m.validation_loss);
  w.I32(m.steps);
  w.Str(m.label);
  w.I32(m.variant);
  w.F64(m.test_loss);
  w.F64(m.test_accuracy);
  EncodeMlpSpec(m.spec, w);
  w.U64(m.layers.size());
  for (const LayerWeights& l : m.layers) {
    w.I32(l.out);
    w.I32(l.in);
    w.VecF32(l.weight);
    w.VecF32(l.bias);
  }
}

void EncodeZooSpec(const ZooSpec& spec, Writer& w) {
  w.Str(spec.task.name);
  w.VecF64(spec.task.lambdas);
  w.I32(spec.task.train_examples);
  w.I32(spec.task.validation_examples);
  w.I32(spec.task.families);
  w.F64(spec.task.similarity);
  w.I64(spec.task.family_seed);
  w.Str(spec.task.data_path);
  w.I32(spec.task.custom_input_dim);
  w.I32(spec.task.custom_output_dim);
  w.VecF32(spec.task.custom_x);
  w.VecF32(spec.task.custom_y);
  w.VecI32(spec.hidden);
  w.I32(static_cast<int32_t>(spec.activation));
  w.VecI64(spec.seeds);
  w.VecI64(spec.validation_seeds);
  w.I32(spec.training.steps);
  w.I32(spec.training.batch_size);
  w.F64(spec.training.learning_rate);
  w.I32(spec.training.eval_every);
  w.I32(spec.training.early_stopping_patience);
  w.Str(spec.training.device);
  w.U8(spec.training.cosine_schedule ? 1 : 0);
}

// A lower bound on the archive's size, so EncodeZoo allocates once for the weights.
size_t EstimateSize(const Zoo& zoo) {
  size_t n = 1024;
  for (const ModelRecord& m : zoo.models) {
    n += 256 + m.id.size() + m.task.size() + m.label.size();
    for (const LayerWeights& l : m.layers) {
      n += kMinLayerSize + (l.weight.size() + l.bias.size()) * sizeof(float);
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

absl::Status Malformed(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("zoo archive is malformed: ", why));
}

// Reads little-endian values from one record's payload. Every read checks the bytes left
// first, and every vector's count is checked against them before anything is allocated.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }

  absl::Status U8(uint8_t* v, const char* what) {
    absl::string_view b;
    RETURN_IF_ERROR(Bytes(1, what, &b));
    *v = static_cast<uint8_t>(b[0]);
    return absl::OkStatus();
  }
  absl::Status U32(uint32_t* v, const char* what) {
    absl::string_view b;
    RETURN_IF_ERROR(Bytes(4, what, &b));
    *v = LoadU32(b.data());
    return absl::OkStatus();
  }
  absl::Status U64(uint64_t* v, const char* what) {
    absl::string_view b;
    RETURN_IF_ERROR(Bytes(8, what, &b));
    *v = LoadU64(b.data());
    return absl::OkStatus();
  }
  absl::Status I32(int* v, const char* what) {
    uint32_t u = 0;
    RETURN_IF_ERROR(U32(&u, what));
    *v = static_cast<int32_t>(u);
    return absl::OkStatus();
  }
  absl::Status I64(int64_t* v, const char* what) {
    uint64_t u = 0;
    RETURN_IF_ERROR(U64(&u, what));
    *v = static_cast<int64_t>(u);
    return absl::OkStatus();
  }
  absl::Status F64(double* v, const char* what) {
    uint64_t u = 0;
    RETURN_IF_ERROR(U64(&u, what));
    std::memcpy(v, &u, sizeof(u));
    return absl::OkStatus();
  }
  absl::Status Str(std::string* s, const char* what) {
    uint32_t n = 0;
    RETURN_IF_ERROR(U32(&n, what));
    absl::string_view b;
    RETURN_IF_ERROR(Bytes(n, what, &b));
    s->assign(b.data(), b.size());
    return absl::OkStatus();
  }
  // Reads a vector's u64 count and checks that `count` elements of at least `min_element_size`
  // bytes each fit in what is left of the payload.
  absl::Status Count(size_t min_element_size, const char* what, size_t* count) {
    uint64_t n = 0;
    RETURN_IF_ERROR(U64(&n, what));
    if (n > remaining() / min_element_size) {
      return Malformed(absl::StrCat(what, " claims ", n, " elements but only ", remaining(),
                                    " bytes are left in its record"));
    }
    *count = static_cast<size_t>(n);
    return absl::OkStatus();
  }
  absl::Status VecI32(std::vector<int>* v, const char* what) {
    size_t n = 0;
    RETURN_IF_ERROR(Count(4, what, &n));
    v->resize(n);
    for (size_t i = 0; i < n; ++i) RETURN_IF_ERROR(I32(&(*v)[i], what));
    return absl::OkStatus();
  }
  absl::Status VecI64(std::vector<int64_t>* v, const char* what) {
    size_t n = 0;
    RETURN_IF_ERROR(Count(8, what, &n));
    v->resize(n);
    for (size_t i = 0; i < n; ++i) RETURN_IF_ERROR(I64(&(*v)[i], what));
    return absl::OkStatus();
  }
  absl::Status VecF64(std::vector<double>* v, const char* what) {
    size_t n = 0;
    RETURN_IF_ERROR(Count(8, what, &n));
    v->resize(n);
    for (size_t i = 0; i < n; ++i) RETURN_IF_ERROR(F64(&(*v)[i], what));
    return absl::OkStatus();
  }
  absl::Status VecF32(std::vector<float>* v, const char* what) {
    size_t n = 0;
    RETURN_IF_ERROR(Count(4, what, &n));
    absl::string_view b;
    RETURN_IF_ERROR(Bytes(n * 4, what, &b));  // cannot overflow: n <= remaining() / 4
    v->resize(n);
    if (n == 0) return absl::OkStatus();  // (memcpy from/to null is undefined even for 0 bytes)
    if (kHostIsLittleEndian) {
      std::memcpy(v->data(), b.data(), b.size());
    } else {
      for (size_t i = 0; i < n; ++i) {
        const uint32_t bits = LoadU32(b.data() + 4 * i);
        std::memcpy(&(*v)[i], &bits, sizeof(bits));
      }
    }
    return absl::OkStatus();
  }

  static uint32_t LoadU32(const char* p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
    return v;
  }
  static uint64_t LoadU64(const char* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    return v;
  }

 private:
  absl::Status Bytes(size_t n, const char* what, absl::string_view* out) {
    if (n > remaining()) {
      return Malformed(absl::StrCat(what, " needs ", n, " bytes but only ", remaining(),
                                    " are left in its record"));
    }
    *out = data_.substr(pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }

  absl::string_view data_;
  size_t pos_ = 0;
};

absl::Status DecodeMlpSpec(Reader& r, MlpSpec* spec) {
  RETURN_IF_ERROR(r.I32(&spec->input_dim, "spec.input_dim"));
  RETURN_IF_ERROR(r.VecI32(&spec->hidden, "spec.hidden"));
  RETURN_IF_ERROR(r.I32(&spec->output_dim, "spec.output_dim"));
  int activation = 0;
  RETURN_IF_ERROR(r.I32(&activation, "spec.activation"));
  // Enum class with the implicit underlying type int: every int is a representable value.
  // Validate() rejects those that name no activation.
  spec->activation = static_cast<Activation>(activation);
  return absl::OkStatus();
}

absl::Status DecodeModel(Reader& r, ModelRecord* m) {
  RETURN_IF_ERROR(r.Str(&m->id, "id"));
  RETURN_IF_ERROR(r.Str(&m->task, "task"));
  RETURN_IF_ERROR(r.F64(&m->lambda, "lambda"));
  RETURN_IF_ERROR(r.I64(&m->seed, "seed"));
  int split = 0;
  RETURN_IF_ERROR(r.I32(&split, "split"));
  m->split = static_cast<Split>(split);
  RETURN_IF_ERROR(r.F64(&m->train_loss, "train_loss"));
  RETURN_IF_ERROR(r.F64(&m->validation_loss, "validation_loss"));
  RETURN_IF_ERROR(r.I32(&m->steps, "steps"));
  RETURN_IF_ERROR(r.Str(&m->label, "label"));
  RETURN_IF_ERROR(r.I32(&m->variant, "variant"));
  RETURN_IF_ERROR(r.F64(&m->test_loss, "test_loss"));
  RETURN_IF_ERROR(r.F64(&m->test_accuracy, "test_accuracy"));
  RETURN_IF_ERROR(DecodeMlpSpec(r, &m->spec));
  size_t num_layers = 0;
  RETURN_IF_ERROR(r.Count(kMinLayerSize, "layers", &num_layers));
  m->layers.resize(num_layers);  // bounded: each layer consumed >= kMinLayerSize archive bytes
  for (LayerWeights& l : m->layers) {
    RETURN_IF_ERROR(r.I32(&l.out, "layer.out"));
    RETURN_IF_ERROR(r.I32(&l.in, "layer.in"));
    RETURN_IF_ERROR(r.VecF32(&l.weight, "layer.weight"));
    RETURN_IF_ERROR(r.VecF32(&l.bias, "layer.bias"));
  }
  return absl::OkStatus();
}

absl::Status DecodeZooSpec(Reader& r, ZooSpec* spec) {
  RETURN_IF_ERROR(r.Str(&spec->task.name, "task.name"));
  RETURN_IF_ERROR(r.VecF64(&spec->task.lambdas, "task.lambdas"));
  RETURN_IF_ERROR(r.I32(&spec->task.train_examples, "task.train_examples"));
  RETURN_IF_ERROR(r.I32(&spec->task.validation_examples, "task.validation_examples"));
  RETURN_IF_ERROR(r.I32(&spec->task.families, "task.families"));
  RETURN_IF_ERROR(r.F64(&spec->task.similarity, "task.similarity"));
  RETURN_IF_ERROR(r.I64(&spec->task.family_seed, "task.family_seed"));
  RETURN_IF_ERROR(r.Str(&spec->task.data_path, "task.data_path"));
  RETURN_IF_ERROR(r.I32(&spec->task.custom_input_dim, "task.custom_input_dim"));
  RETURN_IF_ERROR(r.I32(&spec->task.custom_output_dim, "task.custom_output_dim"));
  RETURN_IF_ERROR(r.VecF32(&spec->task.custom_x, "task.custom_x"));
  RETURN_IF_ERROR(r.VecF32(&spec->task.custom_y, "task.custom_y"));
  RETURN_IF_ERROR(r.VecI32(&spec->hidden, "hidden"));
  int activation = 0;
  RETURN_IF_ERROR(r.I32(&activation, "activation"));
  spec->activation = static_cast<Activation>(activation);
  RETURN_IF_ERROR(r.VecI64(&spec->seeds, "seeds"));
  RETURN_IF_ERROR(r.VecI64(&spec->validation_seeds, "validation_seeds"));
  RETURN_IF_ERROR(r.I32(&spec->training.steps, "training.steps"));
  RETURN_IF_ERROR(r.I32(&spec->training.batch_size, "training.batch_size"));
  RETURN_IF_ERROR(r.F64(&spec->training.learning_rate, "training.learning_rate"));
  RETURN_IF_ERROR(r.I32(&spec->training.eval_every, "training.eval_every"));
  RETURN_IF_ERROR(
      r.I32(&spec->training.early_stopping_patience, "training.early_stopping_patience"));
  RETURN_IF_ERROR(r.Str(&spec->training.device, "training.device"));
  uint8_t cosine = 0;
  RETURN_IF_ERROR(r.U8(&cosine, "training.cosine_schedule"));
  if (cosine > 1) return absl::DataLossError("training.cosine_schedule is not 0 or 1");
  spec->training.cosine_schedule = cosine == 1;
  return absl::OkStatus();
}

absl::Status DecodeZooHeader(Reader& r, Zoo* zoo) {
  RETURN_IF_ERROR(r.Str(&zoo->id, "zoo id"));
  uint8_t has_spec = 0;
  RETURN_IF_ERROR(r.U8(&has_spec, "has_spec"));
  if (has_spec > 1) return Malformed(absl::StrCat("has_spec is ", has_spec, ", not 0 or 1"));
  zoo->has_spec = has_spec == 1;
  RETURN_IF_ERROR(r.I64(&zoo->create_time_ms, "create_time_ms"));
  RETURN_IF_ERROR(r.Str(&zoo->owner, "owner"));
  return absl::OkStatus();
}

// Prefixes `s`'s message with `context`, keeping its code.
absl::Status WithContext(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

bool IsActivation(Activation a) {
  return a == Activation::kRelu || a == Activation::kGelu || a == Activation::kTanh;
}

// The checks DecodeZoo promises once the bytes are well-formed (INVALID_ARGUMENT).
absl::Status ValidateDecodedZoo(const Zoo& zoo) {
  RETURN_IF_ERROR(ValidateResourceId(zoo.id, "zoo id"));
  if (!IsActivation(zoo.spec.activation)) {
    return absl::InvalidArgumentError(absl::StrCat("zoo spec activation ",
                                                   static_cast<int>(zoo.spec.activation),
                                                   " is not relu, gelu or tanh"));
  }
  std::set<absl::string_view> ids;
  for (size_t i = 0; i < zoo.models.size(); ++i) {
    const ModelRecord& m = zoo.models[i];
    const std::string where = absl::StrCat("models[", i, "]");
    RETURN_IF_ERROR(WithContext(ValidateResourceId(m.id, "model id"), where));
    if (!ids.insert(m.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": model id \"", m.id, "\" appears more than once"));
    }
    if (m.split != Split::kTrain && m.split != Split::kValidation) {
      return absl::InvalidArgumentError(absl::StrCat(where, " (\"", m.id, "\"): split ",
                                                     static_cast<int>(m.split),
                                                     " is not train or validation"));
    }
    const std::string context = absl::StrCat(where, " (\"", m.id, "\")");
    RETURN_IF_ERROR(WithContext(m.spec.Validate(), context));
    RETURN_IF_ERROR(WithContext(ValidateWeights(m.spec, m.layers), context));
  }
  return absl::OkStatus();
}

}  // namespace

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[kShaSize];
  Sha256(bytes, digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * kShaSize, '0');
  for (size_t i = 0; i < kShaSize; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 0xF];
  }
  return hex;
}

std::string EncodeZoo(const Zoo& zoo) {
  std::string out;
  out.reserve(EstimateSize(zoo));
  Writer w(&out);
  out.append(kMagic, sizeof(kMagic));
  w.U32(kFormatVersion);

  size_t record = w.BeginRecord(kZooHeaderTag);
  w.Str(zoo.id);
  w.U8(zoo.has_spec ? 1 : 0);
  w.I64(zoo.create_time_ms);
  w.Str(zoo.owner);
  w.EndRecord(record);

  record = w.BeginRecord(kZooSpecTag);
  EncodeZooSpec(zoo.spec, w);
  w.EndRecord(record);

  for (const ModelRecord& m : zoo.models) {
    record = w.BeginRecord(kModelTag);
    EncodeModel(m, w);
    w.EndRecord(record);
  }

  unsigned char digest[kShaSize];
  Sha256(out, digest);
  w.U32(kTrailerTag);
  w.U64(kShaSize);
  out.append(reinterpret_cast<const char*>(digest), kShaSize);
  return out;
}

absl::StatusOr<Zoo> DecodeZoo(absl::string_view bytes) {
  if (bytes.size() < kPreambleSize + kTrailerSize) {
    return absl::DataLossError(absl::StrCat("zoo archive is truncated: ", bytes.size(),
                                            " bytes is shorter than an empty archive"));
  }
  if (bytes.substr(0, sizeof(kMagic)) != absl::string_view(kMagic, sizeof(kMagic))) {
    return absl::DataLossError("not a zoo archive: bad magic (expected \"GZOOARC1\")");
  }
  const uint32_t version = Reader::LoadU32(bytes.data() + sizeof(kMagic));
  if (version != kFormatVersion) {
    return absl::DataLossError(absl::StrCat("zoo archive format version ", version,
                                            " is not supported (this build reads version ",
                                            kFormatVersion, ")"));
  }

  // The trailer must be the last kTrailerSize bytes; anything else is truncation or garbage.
  const size_t body_end = bytes.size() - kTrailerSize;
  const char* trailer = bytes.data() + body_end;
  if (Reader::LoadU32(trailer) != kTrailerTag || Reader::LoadU64(trailer + 4) != kShaSize) {
    return absl::DataLossError("zoo archive is truncated: it does not end with its checksum");
  }
  unsigned char digest[kShaSize];
  Sha256(bytes.substr(0, body_end), digest);
  if (std::memcmp(digest, trailer + kRecordHeaderSize, kShaSize) != 0) {
    return absl::DataLossError("zoo archive checksum mismatch: the bytes are corrupt");
  }

  Zoo zoo;
  int headers = 0;
  int specs = 0;
  size_t pos = kPreambleSize;
  while (pos < body_end) {
    if (body_end - pos < kRecordHeaderSize) {
      return Malformed(absl::StrCat("record header at offset ", pos, " is cut short"));
    }
    const uint32_t tag = Reader::LoadU32(bytes.data() + pos);
    const uint64_t length = Reader::LoadU64(bytes.data() + pos + 4);
    pos += kRecordHeaderSize;
    if (length > body_end - pos) {
      return Malformed(absl::StrCat("record at offset ", pos - kRecordHeaderSize, " claims ",
                                    length, " bytes but only ", body_end - pos, " are left"));
    }
    Reader r(bytes.substr(pos, static_cast<size_t>(length)));
    pos += static_cast<size_t>(length);
    absl::Status s;
    switch (tag) {
      case kZooHeaderTag:
        if (++headers > 1) return Malformed("more than one zoo header record");
        s = DecodeZooHeader(r, &zoo);
        break;
      case kZooSpecTag:
        if (++specs > 1) return Malformed("more than one zoo spec record");
        s = WithContext(DecodeZooSpec(r, &zoo.spec), "zoo spec");
        break;
      case kModelTag: {
        ModelRecord& m = zoo.models.emplace_back();
        s = WithContext(DecodeModel(r, &m), absl::StrCat("models[", zoo.models.size() - 1, "]"));
        break;
      }
      case kTrailerTag:
        return Malformed("checksum trailer found before the end of the archive");
      default:
        // Forward compatibility: a newer writer's optional record. Skipped unread.
        continue;
    }
    RETURN_IF_ERROR(s);
    if (r.remaining() != 0) {
      return Malformed(absl::StrCat("record with tag ", tag, " has ", r.remaining(),
                                    " bytes after its last field"));
    }
  }
  if (headers != 1) return Malformed("no zoo header record");
  if (specs != 1) return Malformed("no zoo spec record");

  RETURN_IF_ERROR(WithContext(ValidateDecodedZoo(zoo), "zoo archive describes an invalid zoo"));
  zoo.stored_bytes = static_cast<int64_t>(bytes.size());
  return zoo;
}

}  // namespace gradzoo::core
