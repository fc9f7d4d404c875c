// Deterministic, platform-independent random numbers for data and initial weights.
//
// std::uniform_real_distribution is implementation-defined, so results could differ between
// standard libraries; SplitMix64 with explicit conversions gives the same stream everywhere.
// Not thread-safe: one generator per thread or per model.
#ifndef GRADZOO_CORE_UTIL_RANDOM_H_
#define GRADZOO_CORE_UTIL_RANDOM_H_

#include <cmath>
#include <cstdint>

namespace gradzoo::core {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // Derives an independent stream for (seed, stream id), e.g. data vs weights of one model.
  static Rng ForStream(uint64_t seed, uint64_t stream) {
    Rng mix(seed ^ (0x9E3779B97F4A7C15ULL * (stream + 1)));
    return Rng(mix.NextU64());
  }
  uint64_t NextU64() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Standard normal (Box-Muller; one value per call, the pair's second is dropped).
  double Normal() {
    double u1 = Uniform();
    while (u1 <= 0.0) u1 = Uniform();
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_UTIL_RANDOM_H_
