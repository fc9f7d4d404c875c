// Naming the layers of an MLP for analysis. Torch-free.
//
// An MLP with L dense layers (MlpSpec::NumLayers()) computes z_l = W_l h_{l-1} + b_l and, for
// hidden layers, h_l = act(z_l), with h_0 = x and the output y = z_L. A LayerRef names one of
//   index 0            the input x (side ignored)
//   index 1..L-1       hidden layer l: side kPre = z_l, side kPost = h_l
//   index L            the output y = z_L (side ignored)
// Along the network these sit at positions x = 0, z_1 = 1, h_1 = 2, ..., z_l = 2l - 1,
// h_l = 2l, ..., y = 2L - 1, the order in which a forward pass produces them.
#ifndef GRADZOO_CORE_ANALYSIS_LAYERS_H_
#define GRADZOO_CORE_ANALYSIS_LAYERS_H_

#include <string>

#include "absl/status/status.h"
#include "core/model.h"

namespace gradzoo::core {

enum class LayerSide { kPre = 1, kPost = 2 };

struct LayerRef {
  int index = 0;
  LayerSide side = LayerSide::kPost;
  bool operator==(const LayerRef& o) const { return index == o.index && side == o.side; }
};

// INVALID_ARGUMENT naming `field` unless 0 <= index <= L (or < L when !allow_output).
absl::Status ValidateLayer(const MlpSpec& spec, const LayerRef& ref, bool allow_output,
                           const char* field);
// Position along the network (see above); the ref must be valid.
int LayerPosition(const MlpSpec& spec, const LayerRef& ref);
// Width of the activations the ref names.
int LayerWidth(const MlpSpec& spec, const LayerRef& ref);
// The ref with its side normalised (kPost for the input and the output).
LayerRef Canonical(const MlpSpec& spec, const LayerRef& ref);
// "x", "z1", "h1", ..., "y".
std::string LayerLabel(const MlpSpec& spec, const LayerRef& ref);
// True for hidden layers (1 <= index <= L-1).
bool IsHidden(const MlpSpec& spec, const LayerRef& ref);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_ANALYSIS_LAYERS_H_
