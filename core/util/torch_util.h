// LibTorch helpers for core's .cc files only (this header includes ATen; never include it from
// a public, torch-free header).
//
// GuardTorch runs a callable and turns any c10::Error / std::exception into a Status, so that
// LibTorch exceptions stop at the function that called LibTorch (STYLE rule 3).
#ifndef GRADZOO_CORE_UTIL_TORCH_UTIL_H_
#define GRADZOO_CORE_UTIL_TORCH_UTIL_H_

#include <ATen/ATen.h>

#include <exception>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace gradzoo::core {

// Maps a c10::Error / std::bad_alloc / std::exception to INTERNAL / RESOURCE_EXHAUSTED.
absl::Status StatusFromException(const char* where, const std::exception& e);

// Runs fn(); returns its Status/StatusOr, or the mapped exception.
template <typename Fn>
auto GuardTorch(const char* where, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return StatusFromException(where, e);
  }
}

// A float32 CPU tensor viewing `v` without copying; valid while `v` lives and is not resized.
inline at::Tensor ViewFloats(const std::vector<float>& v, at::IntArrayRef shape) {
  return at::from_blob(const_cast<float*>(v.data()), shape, at::TensorOptions().dtype(at::kFloat));
}

// Copies a tensor (any device, any float dtype) into a contiguous CPU float vector.
std::vector<float> ToFloatVector(const at::Tensor& t);

at::Device ToAtDevice(const std::string& resolved_device);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_UTIL_TORCH_UTIL_H_
