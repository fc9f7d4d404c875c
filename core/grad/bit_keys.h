// Exact keys for linear-region analysis: packed activation patterns, an exact hash set over
// fixed-width bit keys, and "live sets" that decide exactly when two activation regions of a
// ReLU network share a gradient. Internal to core; torch-free, plain C++.
//
// Pattern layout (shared by every gradient-analysis result that carries patterns): hidden layer
// l (0 = first hidden layer) of width w_l owns ceil(w_l / 64) little-endian 64-bit words starting
// at word offset sum_{m<l} ceil(w_m / 64); unit u is bit (u % 64) of word offset_l + u / 64.
// A unit is active when its pre-activation z > 0 (ReLU); for smooth activations the "activity
// bit" is act'(z) > 0.5, which is z > 0 for GELU and |z| < 0.881 (the near-linear band) for tanh.
//
// Why live sets: for a ReLU network the input gradient of output o on a region with pattern
// (a_0, ..., a_{H-1}) is the sum over paths input -> active units -> o of the products of the
// weights along them. A unit contributes only if it is *live*: active, reachable from the
// source through active units by nonzero weights (forward set F) and reaching o the same way
// (backward set B). So the gradient is a function of the live set F ∩ B, and two regions with
// equal live sets have exactly equal gradients (no float rounding involved). Distinct live sets
// give distinct gradients except on a measure-zero set of weights (exact cancellation between
// different path sums); tests check the counts against a float64 reference that compares
// gradients computed by one scalar loop bit for bit.
//
// Thread-compatible: const methods may run concurrently.
#ifndef GRADZOO_CORE_GRAD_BIT_KEYS_H_
#define GRADZOO_CORE_GRAD_BIT_KEYS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/model.h"

namespace gradzoo::core {

// Word offsets of the pattern layout above for `hidden` widths; back() is the total.
std::vector<int> PatternWordOffsets(const std::vector<int>& hidden);

// Packs the bits (z[u] > 0) of one layer's w pre-activations into ceil(w / 64) words at `dst`
// (NaN counts as not active), four lanes at a time where SSE2 is available.
inline void PackPositive(const float* z, int w, uint64_t* dst) {
  for (int base = 0; base < w; base += 64) {
    const int stop = std::min(w, base + 64);
    uint64_t word = 0;
    int u = base;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; u + 4 <= stop; u += 4) {
      const int m = _mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(z + u), zero));
      word |= static_cast<uint64_t>(m) << (u - base);
    }
#endif
    for (; u < stop; ++u) word |= static_cast<uint64_t>(z[u] > 0.0f) << (u - base);
    dst[base / 64] = word;
  }
}

// An exact set of fixed-width keys (`words` uint64 each, possibly 0): open addressing with
// linear probing over a 64-bit mix of the words; equal hashes are confirmed word by word, so
// there are no false merges. Ids are dense, 0..size()-1, in first-insertion order.
class BitKeySet {
 public:
  explicit BitKeySet(int words);
  // Id of `key` (words() values), inserting it when new.
  int64_t Insert(const uint64_t* key);
  // Id of `key`, or -1.
  int64_t Find(const uint64_t* key) const;
  int64_t size() const { return size_; }
  int words() const { return words_; }
  const uint64_t* key(int64_t id) const { return keys_.data() + id * words_; }
  void Reserve(int64_t n);

  static uint64_t Hash(const uint64_t* key, int words);

 private:
  void Grow();

  int words_;
  int64_t size_ = 0;
  std::vector<uint64_t> keys_;    // size_ * words_
  std::vector<uint64_t> hashes_;  // per id
  std::vector<int64_t> slots_;    // ids, -1 = empty; size is a power of two
};

// Live-set keys of one ReLU network (see the header comment). Built from the weights; the key
// functions read a packed pattern (layout above) and write a key of fixed width.
class LiveSets {
 public:
  LiveSets(const MlpSpec& spec, const std::vector<LayerWeights>& layers);

  int hidden_layers() const { return static_cast<int>(widths_.size()) - 2; }
  int pattern_words() const { return offsets_.back(); }

  // Key of the input gradient of output `o` restricted to the inputs in `inputs` (a bitset over
  // input dims, ceil(in/64) words; empty = all inputs): the live units of every hidden layer.
  int InputKeyWords() const { return pattern_words(); }
  void InputKey(const uint64_t* pattern, int o, const std::vector<uint64_t>& inputs,
                uint64_t* key) const;
  // Key of d y_o / d h_l (post-activations of hidden layer l): the live units of layers
  // l+1..H-1 with every unit of layer l as a source.
  int PostKeyWords(int l) const { return offsets_.back() - offsets_[l + 1]; }
  void PostKey(const uint64_t* pattern, int l, int o, uint64_t* key) const;
  // Key of d y_o / d z_l (pre-activations): B_l (the units of layer l that are active and
  // reach o through active units), then the live units of layers l+1..H-1 with the *active*
  // units of layer l as the sources (inactive ones pass no gradient to z_l).
  int PreKeyWords(int l) const { return offsets_.back() - offsets_[l]; }
  void PreKey(const uint64_t* pattern, int l, int o, uint64_t* key) const;

 private:
  // True when hidden layers first..H-1 each have an active unit in `pattern`.
  bool LayersNonEmpty(const uint64_t* pattern, int first) const;
  // Backward sets B_l for output o into `b` (pattern layout).
  void Backward(const uint64_t* pattern, int o, uint64_t* b) const;
  // Forward sets from the units `sources` (a bitset; empty = all) of layer `source` (-1 = the
  // inputs) for layers source+1..H-1 into `f` (pattern layout; other layers untouched).
  void Forward(const uint64_t* pattern, int source, const std::vector<uint64_t>& sources,
               uint64_t* f) const;

  std::vector<int> widths_;   // input, hidden..., output
  std::vector<int> offsets_;  // pattern word offsets of hidden layers
  // nonzero_[m][v]: bitset over the units of layer m (widths_ index) that feed unit v of layer
  // m + 1 with a nonzero weight; words_[m] = ceil(widths_[m] / 64) words per row.
  std::vector<std::vector<uint64_t>> nonzero_;
  std::vector<int> words_;
  // Every weight is nonzero (the usual case): then a live set is the pattern itself when every
  // layer on the way has an active unit, and empty otherwise (no bit loops needed).
  bool dense_ = true;
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_GRAD_BIT_KEYS_H_
