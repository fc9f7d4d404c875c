// libFuzzer target: the proto-to-core request converters of server/convert.h, fed exactly as
// the server feeds them: the bytes are parsed as the request proto, then converted.
//
// The first byte picks the converter; the rest is the serialized message (or, for the name
// parsers, the string):
//   0 ZooSpecFromProto(v1.ZooSpec)            round trip: ToProto then FromProto succeeds
//   1 PointSetFromProto(v1.PointSet)
//   2 FieldRequestFromProto(v1.ComputeGradientFieldRequest)
//   3 ModelFromProto(v1.Model)                round trip through ModelToProto with weights
//   4 FloatTensorFromProto(v1.Tensor)         element count = prod(shape) <= max
//   5 ParseZooName / ParseModelName / ParsePageToken on the raw string
// Bad input must give a status (INVALID_ARGUMENT or RESOURCE_EXHAUSTED), never a crash or a
// sanitizer report; allocation is bounded by the caps passed in (libFuzzer's -malloc_limit_mb
// catches a converter that allocates by a request's claimed size).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/stubs/logging.h"
#include "server/convert.h"

namespace {
namespace v1 = ::gradzoo::v1;
using namespace ::gradzoo::server;  // NOLINT: a fuzz driver over this namespace

constexpr int64_t kMaxPoints = 1 << 16;
constexpr int64_t kMaxElements = 1 << 20;

void Check(bool ok) {
  if (!ok) std::abort();
}

// Bitwise equality (NaN payloads included).
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// A refusal must carry a code that names the caller's mistake.
void CheckRefusal(const absl::Status& s) {
  Check(s.code() == absl::StatusCode::kInvalidArgument ||
        s.code() == absl::StatusCode::kResourceExhausted ||
        s.code() == absl::StatusCode::kNotFound);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Parsing garbage makes protobuf log every invalid UTF-8 string; the fuzzer's output is the
  // signal here.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int which = data[0] % 6;
  const char* body = reinterpret_cast<const char*>(data + 1);
  const int n = static_cast<int>(size - 1);
  switch (which) {
    case 0: {
      v1::ZooSpec p;
      if (!p.ParseFromArray(body, n)) return 0;
      auto spec = ZooSpecFromProto(p);
      if (!spec.ok()) {
        CheckRefusal(spec.status());
        return 0;
      }
      v1::ZooSpec back;
      ZooSpecToProto(*spec, &back);
      Check(ZooSpecFromProto(back).ok());
      return 0;
    }
    case 1: {
      v1::PointSet p;
      if (!p.ParseFromArray(body, n)) return 0;
      auto points = PointSetFromProto(p, kMaxPoints);
      if (!points.ok()) CheckRefusal(points.status());
      return 0;
    }
    case 2: {
      v1::ComputeGradientFieldRequest p;
      if (!p.ParseFromArray(body, n)) return 0;
      auto r = FieldRequestFromProto(p, kMaxPoints);
      if (!r.ok()) CheckRefusal(r.status());
      return 0;
    }
    case 3: {
      v1::Model p;
      if (!p.ParseFromArray(body, n)) return 0;
      auto m = ModelFromProto(p);
      if (!m.ok()) {
        CheckRefusal(m.status());
        return 0;
      }
      if (m->id.empty()) m->id = "m0000";  // stored models always have an id
      v1::Model back;
      ModelToProto("z", *m, /*include_weights=*/true, &back);
      auto m2 = ModelFromProto(back);
      Check(m2.ok());
      Check(m2->spec == m->spec && m2->layers.size() == m->layers.size());
      for (size_t i = 0; i < m->layers.size(); ++i) {
        Check(SameBits(m2->layers[i].weight, m->layers[i].weight));
        Check(SameBits(m2->layers[i].bias, m->layers[i].bias));
      }
      return 0;
    }
    case 4: {
      v1::Tensor p;
      if (!p.ParseFromArray(body, n)) return 0;
      std::vector<int64_t> shape;
      auto t = FloatTensorFromProto(p, "fuzz", kMaxElements, &shape);
      if (!t.ok()) {
        CheckRefusal(t.status());
        return 0;
      }
      int64_t total = 1;
      for (int64_t d : shape) {
        Check(d >= 0);
        total *= d;
      }
      Check(static_cast<int64_t>(t->size()) == total && total <= kMaxElements);
      return 0;
    }
    default: {
      const std::string s(body, static_cast<size_t>(n));
      auto zoo = ParseZooName(s, "name");
      if (!zoo.ok()) CheckRefusal(zoo.status());
      auto model = ParseModelName(s, "name");
      if (!model.ok()) CheckRefusal(model.status());
      auto page = ParsePageToken(s);
      if (!page.ok()) CheckRefusal(page.status());
      if (page.ok()) Check(*page >= 0);
      return 0;
    }
  }
}
