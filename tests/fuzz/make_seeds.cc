// Writes the seed corpora of the fuzz targets: small valid inputs of each format, so libFuzzer
// starts from deep inside the parsers instead of rediscovering magic numbers.
//
//   make_seeds OUTDIR    -> OUTDIR/{zoo_codec,idx,convert}/seed-*
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/store/zoo_codec.h"
#include "server/convert.h"

namespace {
namespace fs = std::filesystem;
namespace v1 = ::gradzoo::v1;
using gradzoo::core::Zoo;

int written = 0;

void Write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
  ++written;
}

gradzoo::core::ModelRecord Model(const std::string& id, std::vector<int> widths) {
  gradzoo::core::ModelRecord m;
  m.id = id;
  m.task = "mul2";
  m.lambda = 0.5;
  m.seed = 3;
  m.steps = 10;
  m.label = "seed";
  m.spec.input_dim = widths.front();
  m.spec.output_dim = widths.back();
  m.spec.hidden.assign(widths.begin() + 1, widths.end() - 1);
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    gradzoo::core::LayerWeights lw;
    lw.in = widths[l];
    lw.out = widths[l + 1];
    for (int i = 0; i < lw.in * lw.out; ++i) lw.weight.push_back(std::sin(0.7f * i) * 0.5f);
    for (int i = 0; i < lw.out; ++i) lw.bias.push_back(0.01f * i);
    m.layers.push_back(lw);
  }
  return m;
}

std::string Idx(const std::vector<uint32_t>& dims) {
  std::string s("\x00\x00\x08", 3);
  s.push_back(static_cast<char>(dims.size()));
  size_t total = 1;
  for (uint32_t d : dims) {
    for (int b = 3; b >= 0; --b) s.push_back(static_cast<char>((d >> (8 * b)) & 0xff));
    total *= d;
  }
  for (size_t i = 0; i < total; ++i) s.push_back(static_cast<char>((i * 37) % 10));
  return s;
}

std::string Gzip(const std::string& raw) {
  const fs::path tmp = fs::temp_directory_path() / "gradzoo_seed.gz";
  gzFile f = gzopen(tmp.c_str(), "wb");
  gzwrite(f, raw.data(), static_cast<unsigned>(raw.size()));
  gzclose(f);
  std::ifstream in(tmp, std::ios::binary);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(tmp);
  return out;
}

std::string Tagged(int which, const google::protobuf::MessageLite& m) {
  return std::string(1, static_cast<char>(which)) + m.SerializeAsString();
}

void Tensor(std::vector<int64_t> shape, v1::Tensor* t) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> data(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) data[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  gradzoo::server::FloatTensorToProto(shape, data.data(), t);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUTDIR\n");
    return 2;
  }
  const fs::path out = argv[1];

  // zoo archives: imported-style (no spec) and trained-style (with a spec), two models.
  Zoo zoo;
  zoo.id = "seed-zoo";
  zoo.create_time_ms = 1700000000000;
  zoo.owner = "alice";
  zoo.models.push_back(Model("m0000", {4, 3, 2}));
  Write(out / "zoo_codec", "seed-imported", gradzoo::core::EncodeZoo(zoo));
  zoo.has_spec = true;
  zoo.spec.task.lambdas = {0.0, 0.5};
  zoo.spec.hidden = {3};
  zoo.spec.seeds = {1, 2};
  zoo.spec.validation_seeds = {2};
  zoo.models.push_back(Model("m0001", {4, 3, 2}));
  zoo.models.back().split = gradzoo::core::Split::kValidation;
  Write(out / "zoo_codec", "seed-trained", gradzoo::core::EncodeZoo(zoo));
  zoo.spec.task.name = "custom";
  zoo.spec.task.custom_input_dim = 2;
  zoo.spec.task.custom_output_dim = 1;
  zoo.spec.task.custom_x = {0, 1, 2, 3};
  zoo.spec.task.custom_y = {1, 5};
  zoo.models = {Model("m0000", {2, 2, 1})};
  Write(out / "zoo_codec", "seed-custom", gradzoo::core::EncodeZoo(zoo));

  // IDX: images [n, rows, cols] and labels [n], plain and gzip.
  Write(out / "idx", "seed-images", Idx({3, 4, 4}));
  Write(out / "idx", "seed-labels", Idx({5}));
  Write(out / "idx", "seed-images-gz", Gzip(Idx({2, 3, 3})));
  Write(out / "idx", "seed-4d", Idx({1, 2, 2, 2}));

  // Converters (first byte selects, see fuzz_convert.cc).
  v1::ZooSpec spec;
  spec.mutable_task()->set_name("mul2");
  spec.mutable_task()->add_lambdas(0.0);
  spec.mutable_task()->add_lambdas(0.5);
  spec.mutable_task()->set_train_examples(512);
  spec.mutable_architecture()->add_hidden_widths(16);
  spec.mutable_architecture()->add_hidden_widths(16);
  spec.add_seeds(1);
  spec.add_validation_seeds(1);
  spec.mutable_training()->set_steps(300);
  spec.mutable_training()->set_learning_rate(0.01);
  Write(out / "convert", "seed-zoospec", Tagged(0, spec));
  v1::ZooSpec custom;
  custom.mutable_task()->set_name("custom");
  Tensor({3, 2}, custom.mutable_task()->mutable_custom_inputs());
  Tensor({3, 1}, custom.mutable_task()->mutable_custom_targets());
  custom.mutable_architecture()->add_hidden_widths(4);
  Write(out / "convert", "seed-zoospec-custom", Tagged(0, custom));

  v1::PointSet grid;
  auto* a = grid.mutable_grid()->add_axes();
  a->set_input_index(0);
  a->set_min(-1);
  a->set_max(1);
  a->set_steps(5);
  auto* b = grid.mutable_grid()->add_axes();
  b->set_input_index(1);
  b->set_min(0);
  b->set_max(2);
  b->set_steps(3);
  grid.mutable_grid()->add_fixed_values(0.5);
  grid.mutable_grid()->add_fixed_values(0.25);
  Write(out / "convert", "seed-grid", Tagged(1, grid));
  v1::PointSet points;
  Tensor({4, 4}, points.mutable_explicit_points());
  Write(out / "convert", "seed-points", Tagged(1, points));

  v1::ComputeGradientFieldRequest field;
  field.mutable_selection()->add_models("zoos/demo/models/m0000");
  field.mutable_selection()->set_zoo("zoos/demo");
  *field.mutable_points() = grid;
  field.set_compare_with_theory(true);
  field.set_include_outputs(true);
  Write(out / "convert", "seed-field", Tagged(2, field));

  v1::Model model;
  model.set_task("mul2");
  model.set_label("imported");
  for (auto [o, i] : {std::pair<int64_t, int64_t>{3, 4}, {2, 3}}) {
    auto* layer = model.add_layers();
    Tensor({o, i}, layer->mutable_weight());
    Tensor({o}, layer->mutable_bias());
  }
  Write(out / "convert", "seed-model", Tagged(3, model));

  v1::Tensor t32, t64;
  Tensor({2, 3}, &t32);
  t64.add_shape(2);
  t64.set_dtype(v1::D_TYPE_FLOAT64);
  const double d[2] = {1.5, -2.25};
  t64.set_data(std::string(reinterpret_cast<const char*>(d), sizeof(d)));
  Write(out / "convert", "seed-tensor32", Tagged(4, t32));
  Write(out / "convert", "seed-tensor64", Tagged(4, t64));

  Write(out / "convert", "seed-zoo-name", std::string(1, '\x05') + "zoos/demo");
  Write(out / "convert", "seed-model-name", std::string(1, '\x05') + "zoos/demo/models/m0001");
  Write(out / "convert", "seed-page-token",
        std::string(1, '\x05') + gradzoo::server::MakePageToken(50));

  std::printf("make_seeds: %d seeds in %s\n", written, out.c_str());
  return 0;
}
