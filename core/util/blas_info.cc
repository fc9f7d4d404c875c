#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

#include <string>

#include "core/util/runtime.h"

namespace gradzoo::core {

BlasInfo DetectBlas() {
  BlasInfo info;
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info dl{};
  if (sym == nullptr || dladdr(sym, &dl) == 0 || dl.dli_fname == nullptr) {
    info.name = "unknown (no sgemm_ symbol)";
    return info;
  }
  char resolved[PATH_MAX];
  info.library_path = realpath(dl.dli_fname, resolved) ? resolved : dl.dli_fname;
  const std::string& p = info.library_path;
  auto has = [&p](const char* s) { return p.find(s) != std::string::npos; };
  if (has("openblas-pthread")) {
    info.name = "openblas-pthread";
  } else if (has("openblas-openmp")) {
    info.name = "openblas-openmp";
  } else if (has("openblas")) {
    info.name = "openblas";
  } else if (has("blis")) {
    info.name = "blis";
  } else if (has("mkl")) {
    info.name = "mkl";
  } else if (has("/blas/") || has("libblas.so")) {
    info.name = "reference";
  } else {
    info.name = "unknown (" + p + ")";
  }
  return info;
}

}  // namespace gradzoo::core
