// Process-wide runtime facts and set-up for tensor work: BLAS in use, LibTorch threads, devices.
//
// Torch-free header. ConfigureTorchThreads is called once at start-up (STYLE rule 9); the rest
// are pure queries and thread-safe.
#ifndef GRADZOO_CORE_UTIL_RUNTIME_H_
#define GRADZOO_CORE_UTIL_RUNTIME_H_

#include <string>

#include "absl/status/statusor.h"

namespace gradzoo::core {

// Which BLAS implementation provides sgemm_ in this process, found with dladdr on the symbol
// LibTorch calls. One of "openblas-pthread", "openblas-openmp", "openblas", "blis", "mkl",
// "reference" (Debian's netlib libblas, ~30x slower), or "unknown (<path>)".
struct BlasInfo {
  std::string name;
  std::string library_path;
  bool is_reference() const { return name == "reference"; }
};
BlasInfo DetectBlas();

// Sets LibTorch's intra-op thread count; threads <= 0 means one per hardware thread.
// Call once, before any tensor work.
void ConfigureTorchThreads(int threads);
int TorchThreads();
std::string TorchVersion();

// Resolves "auto" | "cpu" | "cuda" | "cuda:N" to a concrete device string ("cpu", "cuda:0").
// INVALID_ARGUMENT for malformed names; FAILED_PRECONDITION when CUDA is asked for but absent.
absl::StatusOr<std::string> ResolveDevice(const std::string& requested);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_UTIL_RUNTIME_H_
