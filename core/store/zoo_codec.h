// The zoo archive format: a documented, data-only binary encoding of a Zoo.
//
// Used for the store's blobs and for ExportZoo/ImportZoo. It holds numbers and strings only;
// nothing in it is ever executed. All integers little-endian.
//
//   magic   "GZOOARC1" (8 bytes)
//   u32     format version (2; version 1 was a pre-release layout without task variants)
//   record* a sequence of tagged records: u32 tag, u64 length, `length` bytes of payload
//   trailer u32 tag 0xFFFFFFFF, u64 32, SHA-256 of every byte before the trailer
//
// Payloads encode strings as u32 length + bytes, vectors as u64 count + elements, floats as
// IEEE-754 little-endian. Decoding checks every length against the bytes left before reading,
// so a hostile archive cannot make the decoder allocate more than the archive's own size (plus
// a small constant factor for the per-model and per-layer C++ structs).
//
// Scalars: i32/i64 two's complement, f32/f64 IEEE-754, u8 for bool, i32 for enums (their C++
// values in core/model.h). Version 1 records, in the order EncodeZoo writes them:
//
//   tag 1  zoo header, exactly once:
//          str id, u8 has_spec, i64 create_time_ms, str owner
//   tag 2  zoo spec, exactly once (written even when has_spec is false, so every field of Zoo
//          round-trips):
//          TaskConfig   str name, vec<f64> lambdas, i32 train_examples, i32 validation_examples,
//                       i32 families, f64 similarity, i64 family_seed, str data_path,
//                       i32 custom_input_dim, i32 custom_output_dim, vec<f32> custom_x,
//                       vec<f32> custom_y
//          vec<i32> hidden, i32 activation, vec<i64> seeds, vec<i64> validation_seeds
//          TrainConfig  i32 steps, i32 batch_size, f64 learning_rate, i32 eval_every,
//                       i32 early_stopping_patience, str device,
//                       u8 cosine_schedule (0 or 1)
//   tag 3  one model, once per model in Zoo::models order:
//          str id, str task, f64 lambda, i64 seed, i32 split, f64 train_loss,
//          f64 validation_loss, i32 steps, str label, i32 variant, f64 test_loss,
//          f64 test_accuracy,
//          MlpSpec  i32 input_dim, vec<i32> hidden, i32 output_dim, i32 activation,
//          vec<layer>, where layer = i32 out, i32 in, vec<f32> weight (row-major [out, in]),
//                                    vec<f32> bias
//
// A known record must be consumed exactly by its fields (trailing bytes are DATA_LOSS); new
// fields get new tags. Records with tags this version does not know are skipped, so a newer
// writer can add optional records without breaking older readers; a change old readers must not
// ignore bumps the format version, which they reject.
//
// Zoo::stored_bytes is not encoded: it describes the archive itself, and DecodeZoo sets it to
// the size of the bytes it decoded. Every other field of Zoo is.
#ifndef GRADZOO_CORE_STORE_ZOO_CODEC_H_
#define GRADZOO_CORE_STORE_ZOO_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model.h"

namespace gradzoo::core {

// Serialises `zoo` (spec, models, weights). Deterministic: equal zoos give equal bytes (and
// zoos differing only in stored_bytes too). Does not validate: DecodeZoo does.
std::string EncodeZoo(const Zoo& zoo);

// Parses an archive. DATA_LOSS when the checksum does not match or the bytes are truncated or
// malformed, or the format version is not 2; INVALID_ARGUMENT when it is well-formed but
// describes an invalid zoo: a zoo or model id that fails ValidateResourceId, duplicate model ids,
// a model whose MlpSpec fails Validate or whose layers fail ValidateWeights, or an enum value
// outside its range. Sets stored_bytes to bytes.size().
absl::StatusOr<Zoo> DecodeZoo(absl::string_view bytes);

// Hex SHA-256 of `bytes`.
std::string Sha256Hex(absl::string_view bytes);

}  // namespace gradzoo::core

#endif  // GRADZOO_CORE_STORE_ZOO_CODEC_H_
