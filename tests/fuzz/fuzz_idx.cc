// libFuzzer target: core::ReadIdx, the IDX (fashion-mnist) reader, on plain or gzip bytes.
//
// ReadIdx takes a path, so each input is written to a per-process temporary file (on /dev/shm
// when available). A successful read must hold exactly prod(dims) <= max_elements bytes.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/tasks/task.h"

namespace {
constexpr int64_t kMaxElements = int64_t{1} << 22;

const std::string& TempPath() {
  static const std::string path = [] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/gradzoo_fuzz_idx_" + std::to_string(getpid());
  }();
  return path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = TempPath();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  absl::StatusOr<gradzoo::core::IdxArray> a = gradzoo::core::ReadIdx(path, kMaxElements);
  std::remove(path.c_str());
  if (!a.ok()) return 0;
  int64_t total = 1;
  for (int64_t d : a->dims) {
    if (d < 0) std::abort();
    total *= d;
  }
  if (a->dims.empty() || a->dims.size() > 4 || total > kMaxElements ||
      static_cast<int64_t>(a->data.size()) != total) {
    std::abort();
  }
  return 0;
}
