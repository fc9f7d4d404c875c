// libFuzzer target: core::DecodeZoo, the parser behind the store's blobs and ImportZoo.
//
// Any input must give a Zoo or a status, never a crash, a sanitizer report or an allocation far
// beyond the input's size (libFuzzer's -rss_limit_mb / -malloc_limit_mb enforce it). A decoded
// zoo must survive a round trip: EncodeZoo(DecodeZoo(x)) decodes again to the same encoding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "core/store/zoo_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<gradzoo::core::Zoo> zoo = gradzoo::core::DecodeZoo(bytes);
  if (!zoo.ok()) return 0;
  if (zoo->stored_bytes != static_cast<int64_t>(size)) std::abort();
  const std::string again = gradzoo::core::EncodeZoo(*zoo);
  absl::StatusOr<gradzoo::core::Zoo> zoo2 = gradzoo::core::DecodeZoo(again);
  if (!zoo2.ok()) std::abort();  // what we wrote we must read
  if (gradzoo::core::EncodeZoo(*zoo2) != again) std::abort();
  return 0;
}
