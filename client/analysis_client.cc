#include "client/analysis_client.h"

#include <grpcpp/grpcpp.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gradzoo::client {

namespace {

template <typename Resp, typename Call>
absl::StatusOr<Resp> Unary(absl::Duration timeout, Call call) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  Resp resp;
  grpc::Status s = call(&ctx, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

}  // namespace

AnalysisClient::AnalysisClient(const Client& client)
    : options_(client.options()), stub_(v1::AnalysisService::NewStub(client.channel())) {}

absl::StatusOr<v1::ScoreOrthogonalityResponse> AnalysisClient::ScoreOrthogonality(
    const v1::ScoreOrthogonalityRequest& request, std::optional<absl::Duration> timeout) {
  return Unary<v1::ScoreOrthogonalityResponse>(
      timeout.value_or(options_.timeout),
      [&](grpc::ClientContext* ctx, auto* resp) { return stub_->ScoreOrthogonality(ctx, request, resp); });
}

absl::StatusOr<v1::ScoreZooOrthogonalityResponse> AnalysisClient::ScoreZooOrthogonality(
    const v1::ScoreZooOrthogonalityRequest& request, std::optional<absl::Duration> timeout) {
  return Unary<v1::ScoreZooOrthogonalityResponse>(
      timeout.value_or(options_.stream_timeout), [&](grpc::ClientContext* ctx, auto* resp) {
        return stub_->ScoreZooOrthogonality(ctx, request, resp);
      });
}

absl::StatusOr<v1::ComputeLayerPcaResponse> AnalysisClient::ComputeLayerPca(
    const v1::ComputeLayerPcaRequest& request, std::optional<absl::Duration> timeout) {
  return Unary<v1::ComputeLayerPcaResponse>(
      timeout.value_or(options_.timeout),
      [&](grpc::ClientContext* ctx, auto* resp) { return stub_->ComputeLayerPca(ctx, request, resp); });
}

absl::StatusOr<v1::ComputePlsrResponse> AnalysisClient::ComputePlsr(
    const v1::ComputePlsrRequest& request, std::optional<absl::Duration> timeout) {
  return Unary<v1::ComputePlsrResponse>(
      timeout.value_or(options_.timeout),
      [&](grpc::ClientContext* ctx, auto* resp) { return stub_->ComputePlsr(ctx, request, resp); });
}

absl::StatusOr<v1::ComputeCkaResponse> AnalysisClient::ComputeCka(
    const v1::ComputeCkaRequest& request, std::optional<absl::Duration> timeout) {
  return Unary<v1::ComputeCkaResponse>(
      timeout.value_or(options_.timeout),
      [&](grpc::ClientContext* ctx, auto* resp) { return stub_->ComputeCka(ctx, request, resp); });
}

absl::StatusOr<v1::ComputeScaffoldGradientsResponse> AnalysisClient::ComputeScaffoldGradients(
    const v1::ComputeScaffoldGradientsRequest& request, std::optional<absl::Duration> timeout) {
  return Unary<v1::ComputeScaffoldGradientsResponse>(
      timeout.value_or(options_.timeout), [&](grpc::ClientContext* ctx, auto* resp) {
        return stub_->ComputeScaffoldGradients(ctx, request, resp);
      });
}

absl::StatusOr<DoubleArray> AnalysisClient::DecodeDoubles(const v1::Tensor& t) {
  DoubleArray out;
  int64_t n = 1;
  for (int64_t d : t.shape()) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d)) {
      return absl::InvalidArgumentError("tensor shape is negative or too large");
    }
    out.shape.push_back(d);
    n *= d;
  }
  if (t.dtype() == v1::D_TYPE_FLOAT64) {
    if (t.data().size() != static_cast<size_t>(n) * sizeof(double)) {
      return absl::InvalidArgumentError("float64 tensor byte count does not match its shape");
    }
    out.data.resize(n);
    std::memcpy(out.data.data(), t.data().data(), t.data().size());
    return out;
  }
  if (t.dtype() == v1::D_TYPE_FLOAT32) {
    if (t.data().size() != static_cast<size_t>(n) * sizeof(float)) {
      return absl::InvalidArgumentError("float32 tensor byte count does not match its shape");
    }
    std::vector<float> f(n);
    std::memcpy(f.data(), t.data().data(), t.data().size());
    out.data.assign(f.begin(), f.end());
    return out;
  }
  return absl::InvalidArgumentError("tensor dtype is not float32 or float64");
}

absl::StatusOr<v1::LayerRef> ParseLayerRef(const std::string& text, const char* flag) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  v1::LayerRef l;
  int index = 0;
  if (parts.empty() || parts.size() > 2 || !absl::SimpleAtoi(parts[0], &index) || index < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " \"", text, "\" is not INDEX or INDEX:pre|post (0 = input, 1.. = hidden)"));
  }
  l.set_index(index);
  l.set_side(v1::LAYER_SIDE_POST);
  if (parts.size() == 2) {
    const std::string side = absl::AsciiStrToLower(parts[1]);
    if (side == "pre") {
      l.set_side(v1::LAYER_SIDE_PRE);
    } else if (side != "post") {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " side \"", parts[1], "\" is not pre or post"));
    }
  }
  return l;
}

std::string LayerRefLabel(const v1::LayerRef& l) {
  if (l.index() == 0) return "x";
  return absl::StrCat(l.side() == v1::LAYER_SIDE_PRE ? "z" : "h", l.index());
}

}  // namespace gradzoo::client
