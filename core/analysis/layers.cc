#include "core/analysis/layers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace gradzoo::core {

absl::Status ValidateLayer(const MlpSpec& spec, const LayerRef& ref, bool allow_output,
                           const char* field) {
  const int last = allow_output ? spec.NumLayers() : spec.NumLayers() - 1;
  if (ref.index < 0 || ref.index > last) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".index must be in [0, ", last, "] (0 = input, 1..", spec.NumLayers() - 1,
        " = hidden", allow_output ? absl::StrCat(", ", spec.NumLayers(), " = output") : "",
        "), got ", ref.index));
  }
  if (ref.side != LayerSide::kPre && ref.side != LayerSide::kPost) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".side is invalid"));
  }
  return absl::OkStatus();
}

bool IsHidden(const MlpSpec& spec, const LayerRef& ref) {
  return ref.index >= 1 && ref.index < spec.NumLayers();
}

int LayerPosition(const MlpSpec& spec, const LayerRef& ref) {
  if (ref.index == 0) return 0;
  if (ref.index >= spec.NumLayers()) return 2 * spec.NumLayers() - 1;
  return ref.side == LayerSide::kPre ? 2 * ref.index - 1 : 2 * ref.index;
}

int LayerWidth(const MlpSpec& spec, const LayerRef& ref) {
  const std::vector<int> w = spec.Widths();
  return w[std::min<size_t>(ref.index, w.size() - 1)];
}

LayerRef Canonical(const MlpSpec& spec, const LayerRef& ref) {
  LayerRef r = ref;
  if (!IsHidden(spec, ref)) r.side = LayerSide::kPost;
  return r;
}

std::string LayerLabel(const MlpSpec& spec, const LayerRef& ref) {
  if (ref.index == 0) return "x";
  if (ref.index >= spec.NumLayers()) return "y";
  return absl::StrCat(ref.side == LayerSide::kPre ? "z" : "h", ref.index);
}

}  // namespace gradzoo::core
