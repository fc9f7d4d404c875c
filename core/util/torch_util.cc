#include "core/util/torch_util.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include <algorithm>
#include <new>
#include <thread>

#include "core/util/runtime.h"

namespace gradzoo::core {

absl::Status StatusFromException(const char* where, const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(where, ": out of memory"));
  }
  std::string what = e.what();
  // c10::Error messages carry a long backtrace after the first line; keep the first line.
  if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  if (what.find("out of memory") != std::string::npos ||
      what.find("DefaultCPUAllocator: can't allocate") != std::string::npos) {
    return absl::ResourceExhaustedError(absl::StrCat(where, ": ", what));
  }
  return absl::InternalError(absl::StrCat(where, ": ", what));
}

std::vector<float> ToFloatVector(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  const float* p = c.data_ptr<float>();
  return std::vector<float>(p, p + c.numel());
}

at::Device ToAtDevice(const std::string& resolved_device) { return at::Device(resolved_device); }

void ConfigureTorchThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

int TorchThreads() { return at::get_num_threads(); }

std::string TorchVersion() { return TORCH_VERSION; }

absl::StatusOr<std::string> ResolveDevice(const std::string& requested) {
  const bool cuda = at::hasCUDA();
  if (requested.empty() || requested == "auto") return std::string(cuda ? "cuda:0" : "cpu");
  if (requested == "cpu") return requested;
  if (requested.rfind("cuda", 0) == 0) {
    int index = 0;
    if (requested != "cuda") {
      if (requested.size() < 6 || requested[4] != ':') {
        return absl::InvalidArgumentError(
            absl::StrCat("device \"", requested, "\" is not auto, cpu or cuda:N"));
      }
      for (size_t i = 5; i < requested.size(); ++i) {
        if (requested[i] < '0' || requested[i] > '9' || i > 8) {
          return absl::InvalidArgumentError(
              absl::StrCat("device \"", requested, "\" is not auto, cpu or cuda:N"));
        }
        index = index * 10 + (requested[i] - '0');
      }
    }
    if (!cuda) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device \"", requested, "\" asked for, but this LibTorch build sees no CUDA device"));
    }
    return absl::StrCat("cuda:", index);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device \"", requested.substr(0, 32), "\" is not auto, cpu or cuda:N"));
}

}  // namespace gradzoo::core
