#include "core/grad/bit_keys.h"

#include <algorithm>
#include <cstring>

namespace gradzoo::core {

namespace {

int WordsFor(int bits) { return (bits + 63) / 64; }

// Bitset of the first `bits` bits set, in WordsFor(bits) words.
std::vector<uint64_t> AllOnes(int bits) {
  std::vector<uint64_t> v(WordsFor(bits), ~uint64_t{0});
  if (bits % 64 != 0) v.back() = (uint64_t{1} << (bits % 64)) - 1;
  return v;
}

bool Intersects(const uint64_t* a, const uint64_t* b, int words) {
  for (int i = 0; i < words; ++i) {
    if ((a[i] & b[i]) != 0) return true;
  }
  return false;
}

}  // namespace

std::vector<int> PatternWordOffsets(const std::vector<int>& hidden) {
  std::vector<int> offsets = {0};
  for (int w : hidden) offsets.push_back(offsets.back() + WordsFor(w));
  return offsets;
}

// ---------------------------------------------------------------------------------------------
// BitKeySet
// ---------------------------------------------------------------------------------------------

BitKeySet::BitKeySet(int words) : words_(words), slots_(16, -1) {}

uint64_t BitKeySet::Hash(const uint64_t* key, int words) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(words);
  for (int i = 0; i < words; ++i) {
    h = (h ^ key[i]) * 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 31;
  }
  h ^= h >> 30;
  h *= 0x94D049BB133111EBULL;
  h ^= h >> 31;
  return h;
}

void BitKeySet::Reserve(int64_t n) {
  keys_.reserve(static_cast<size_t>(n) * words_);
  hashes_.reserve(n);
  size_t want = slots_.size();
  while (static_cast<int64_t>(want) < 2 * n) want *= 2;
  if (want != slots_.size()) {
    slots_.assign(want, -1);
    const size_t mask = want - 1;
    for (int64_t id = 0; id < size_; ++id) {
      size_t s = hashes_[id] & mask;
      while (slots_[s] >= 0) s = (s + 1) & mask;
      slots_[s] = id;
    }
  }
}

void BitKeySet::Grow() { Reserve(std::max<int64_t>(8, size_ * 2)); }

int64_t BitKeySet::Find(const uint64_t* key) const {
  const uint64_t h = Hash(key, words_);
  const size_t mask = slots_.size() - 1;
  for (size_t s = h & mask;; s = (s + 1) & mask) {
    const int64_t id = slots_[s];
    if (id < 0) return -1;
    if (hashes_[id] == h &&
        std::memcmp(keys_.data() + id * words_, key, sizeof(uint64_t) * words_) == 0) {
      return id;
    }
  }
}

int64_t BitKeySet::Insert(const uint64_t* key) {
  if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) Grow();
  const uint64_t h = Hash(key, words_);
  const size_t mask = slots_.size() - 1;
  size_t s = h & mask;
  for (;; s = (s + 1) & mask) {
    const int64_t id = slots_[s];
    if (id < 0) break;
    if (hashes_[id] == h &&
        std::memcmp(keys_.data() + id * words_, key, sizeof(uint64_t) * words_) == 0) {
      return id;
    }
  }
  slots_[s] = size_;
  keys_.insert(keys_.end(), key, key + words_);
  hashes_.push_back(h);
  return size_++;
}

// ---------------------------------------------------------------------------------------------
// LiveSets
// ---------------------------------------------------------------------------------------------

LiveSets::LiveSets(const MlpSpec& spec, const std::vector<LayerWeights>& layers)
    : widths_(spec.Widths()), offsets_(PatternWordOffsets(spec.hidden)) {
  for (size_t m = 0; m + 1 < widths_.size(); ++m) {
    const int in = widths_[m], out = widths_[m + 1];
    const int words = WordsFor(in);
    words_.push_back(words);
    std::vector<uint64_t> rows(static_cast<size_t>(out) * words, 0);
    const LayerWeights& lw = layers[m];
    for (int v = 0; v < out; ++v) {
      for (int u = 0; u < in; ++u) {
        if (lw.weight[static_cast<size_t>(v) * in + u] != 0.0f) {
          rows[static_cast<size_t>(v) * words + u / 64] |= uint64_t{1} << (u % 64);
        } else {
          dense_ = false;
        }
      }
    }
    nonzero_.push_back(std::move(rows));
  }
}

void LiveSets::Backward(const uint64_t* pattern, int o, uint64_t* b) const {
  const int h = hidden_layers();
  if (h == 0) return;
  {
    const int l = h - 1;
    const uint64_t* row = nonzero_[h].data() + static_cast<size_t>(o) * words_[h];
    for (int i = 0; i < offsets_[l + 1] - offsets_[l]; ++i) {
      b[offsets_[l] + i] = pattern[offsets_[l] + i] & row[i];
    }
  }
  std::vector<uint64_t> acc;
  for (int l = h - 2; l >= 0; --l) {
    // OR of the nonzero rows of the live units of layer l+1 (widths_ index l+2 <- l+1).
    const int words = offsets_[l + 1] - offsets_[l];
    acc.assign(words, 0);
    const std::vector<uint64_t>& nz = nonzero_[l + 1];
    const int next_width = widths_[l + 2];
    for (int v = 0; v < next_width; ++v) {
      if ((b[offsets_[l + 1] + v / 64] >> (v % 64)) & 1) {
        const uint64_t* row = nz.data() + static_cast<size_t>(v) * words;
        for (int i = 0; i < words; ++i) acc[i] |= row[i];
      }
    }
    for (int i = 0; i < words; ++i) b[offsets_[l] + i] = pattern[offsets_[l] + i] & acc[i];
  }
}

void LiveSets::Forward(const uint64_t* pattern, int source, const std::vector<uint64_t>& inputs,
                       uint64_t* f) const {
  const int h = hidden_layers();
  const int source_width = widths_[source + 1];
  std::vector<uint64_t> prev = inputs.empty() ? AllOnes(source_width) : inputs;
  prev.resize(WordsFor(source_width), 0);
  for (int m = source + 1; m < h; ++m) {
    // Hidden layer m is widths_ index m + 1, fed by weight layer m.
    const int width = widths_[m + 1];
    const int words = words_[m];
    const std::vector<uint64_t>& nz = nonzero_[m];
    uint64_t* out = f + offsets_[m];
    std::fill(out, out + (offsets_[m + 1] - offsets_[m]), 0);
    for (int v = 0; v < width; ++v) {
      if (((pattern[offsets_[m] + v / 64] >> (v % 64)) & 1) &&
          Intersects(nz.data() + static_cast<size_t>(v) * words, prev.data(), words)) {
        out[v / 64] |= uint64_t{1} << (v % 64);
      }
    }
    prev.assign(out, out + (offsets_[m + 1] - offsets_[m]));
  }
}

bool LiveSets::LayersNonEmpty(const uint64_t* pattern, int first) const {
  for (int l = first; l < hidden_layers(); ++l) {
    bool any = false;
    for (int i = offsets_[l]; i < offsets_[l + 1]; ++i) any |= pattern[i] != 0;
    if (!any) return false;
  }
  return true;
}

void LiveSets::InputKey(const uint64_t* pattern, int o, const std::vector<uint64_t>& inputs,
                        uint64_t* key) const {
  const int words = pattern_words();
  if (dense_) {
    bool source = inputs.empty();
    for (uint64_t w : inputs) source |= w != 0;
    const bool live = source && LayersNonEmpty(pattern, 0);
    for (int i = 0; i < words; ++i) key[i] = live ? pattern[i] : 0;
    return;
  }
  std::vector<uint64_t> b(words, 0);
  Backward(pattern, o, b.data());
  Forward(pattern, -1, inputs, key);
  for (int i = 0; i < words; ++i) key[i] &= b[i];
}

void LiveSets::PostKey(const uint64_t* pattern, int l, int o, uint64_t* key) const {
  const int words = pattern_words();
  if (dense_) {
    const bool live = LayersNonEmpty(pattern, l + 1);
    for (int i = offsets_[l + 1]; i < words; ++i) key[i - offsets_[l + 1]] = live ? pattern[i] : 0;
    return;
  }
  std::vector<uint64_t> b(words, 0), f(words, 0);
  Backward(pattern, o, b.data());
  Forward(pattern, l, {}, f.data());
  for (int i = offsets_[l + 1]; i < words; ++i) key[i - offsets_[l + 1]] = f[i] & b[i];
}

void LiveSets::PreKey(const uint64_t* pattern, int l, int o, uint64_t* key) const {
  const int words = pattern_words();
  if (dense_) {
    const bool live = LayersNonEmpty(pattern, l);
    for (int i = offsets_[l]; i < words; ++i) key[i - offsets_[l]] = live ? pattern[i] : 0;
    return;
  }
  std::vector<uint64_t> b(words, 0), f(words, 0);
  Backward(pattern, o, b.data());
  // Only active units of layer l pass a gradient on to z_l.
  const std::vector<uint64_t> active(pattern + offsets_[l], pattern + offsets_[l + 1]);
  Forward(pattern, l, active, f.data());
  for (int i = offsets_[l]; i < offsets_[l + 1]; ++i) key[i - offsets_[l]] = b[i];
  for (int i = offsets_[l + 1]; i < words; ++i) key[i - offsets_[l]] = f[i] & b[i];
}

}  // namespace gradzoo::core
