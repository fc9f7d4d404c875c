#include "core/embed/embedder.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/embed/embed_internal.h"
#include "core/embed/probe.h"
#include "core/tasks/task.h"
#include "core/util/status_macros.h"
#include "core/util/torch_util.h"

namespace gradzoo::core {

using embed_internal::EncoderNet;

struct EmbedderRegistry::Loaded {
  EmbedderInfo info;
  std::vector<EncoderNet> net;        // one per member (EmbedderOptions::members)
  std::vector<EncoderNet> untrained;  // the members' initial weights
  int64_t serial = 0;
};

namespace {

// Version 1 files (before sub-networks) read as from_layer 0, to_layer 0; versions 1 and 2
// (before span masks and the gradient path) as mask_shape kGroups without the gradient path;
// versions 1-3 (before members) as one member; versions 1-4 with distance_weight 0.
constexpr char kMagic[] = "GZEMB005";
constexpr char kMagicV4[] = "GZEMB004";
constexpr char kMagicV3[] = "GZEMB003";
constexpr char kMagicV2[] = "GZEMB002";
constexpr char kMagicV1[] = "GZEMB001";
constexpr int kMaxGradDim = 256;       // inputs x outputs the encoder reads per point
constexpr int kValidationRounds = 4;   // fixed point samples of the validation cloze loss
constexpr int kProfilePoints = 64;     // gradient_profile baseline: at most 64 points,
constexpr int kProfileEntries = 4096;  // and at most max(4 points, 4096 entries)
constexpr int kDefaultSamples = 4;     // neighbours and probes
constexpr uint64_t kTrainStream = 12, kValidationStream = 13, kScaleStream = 21;

// Member k's seed: seed + k (wrapping, as the streams take the seed's bits).
int64_t MemberSeed(int64_t seed, int k) {
  return static_cast<int64_t>(static_cast<uint64_t>(seed) + static_cast<uint64_t>(k));
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::atomic<int64_t> next_serial{1};

// ---- serialisation ----------------------------------------------------------------------

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

class Writer {
 public:
  template <typename T>
  void Pod(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void Str(const std::string& s) {
    Pod<uint32_t>(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Floats(const at::Tensor& t) {
    at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
    Pod<int64_t>(c.numel());
    out_.append(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  template <typename T>
  bool Pod(T* v) {
    if (pos_ + sizeof(T) > s_.size()) return false;
    std::memcpy(v, s_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Str(std::string* v) {
    uint32_t n = 0;
    if (!Pod(&n) || pos_ + n > s_.size()) return false;
    v->assign(s_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool Floats(int64_t expected, at::Tensor* t) {
    int64_t n = 0;
    if (!Pod(&n) || n != expected || pos_ + n * sizeof(float) > s_.size()) return false;
    *t = at::empty({n}, at::kFloat);
    std::memcpy(t->data_ptr<float>(), s_.data() + pos_, n * sizeof(float));
    pos_ += n * sizeof(float);
    return true;
  }

 private:
  const std::string& s_;
  size_t pos_ = 0;
};

std::string Serialize(const EmbedderInfo& i, const std::vector<EncoderNet>& nets) {
  Writer w;
  w.out().append(kMagic, 8);
  w.Str(i.id);
  w.Pod<uint32_t>(static_cast<uint32_t>(i.zoos.size()));
  for (const std::string& z : i.zoos) w.Str(z);
  const EmbedderOptions& o = i.options;
  w.Pod<int32_t>(o.points_per_sample);
  w.Pod<double>(o.mask_rate);
  w.Pod<int32_t>(o.embedding_size);
  w.Pod<int32_t>(o.steps);
  w.Pod<int64_t>(o.seed);
  w.Pod<int32_t>(o.batch_models);
  w.Pod<int32_t>(o.hidden);
  w.Pod<double>(o.learning_rate);
  w.Pod<int32_t>(o.from_layer);
  w.Pod<int32_t>(o.to_layer);
  w.Pod<int32_t>(static_cast<int32_t>(o.mask_shape));
  w.Pod<int32_t>(nets.front().gradient_path ? 1 : 0);
  w.Pod<int32_t>(o.members);
  w.Pod<double>(o.distance_weight);
  w.Pod<int32_t>(i.input_dim);
  w.Pod<int32_t>(i.output_dim);
  for (const auto& [lo, hi] : i.domain) {
    w.Pod<double>(lo);
    w.Pod<double>(hi);
  }
  w.Pod<uint32_t>(static_cast<uint32_t>(i.source_domain.size()));
  for (const auto& [lo, hi] : i.source_domain) {
    w.Pod<double>(lo);
    w.Pod<double>(hi);
  }
  w.Pod<double>(i.gradient_scale);
  w.Pod<int64_t>(i.train_models);
  w.Pod<int64_t>(i.validation_models);
  w.Pod<double>(i.validation_cloze_loss);
  w.Pod<double>(i.mean_gradient_baseline_loss);
  w.Pod<double>(i.interpolation_baseline_loss);
  w.Pod<int64_t>(i.create_time_ms);
  for (const EncoderNet& net : nets) {
    for (const at::Tensor& p : net.params) w.Floats(p);
  }
  w.Pod<uint64_t>(Fnv1a(w.out()));
  return std::move(w.out());
}

absl::StatusOr<std::shared_ptr<EmbedderRegistry::Loaded>> Parse(const std::string& bytes,
                                                                 const std::string& path) {
  auto corrupt = [&](const char* what) {
    return absl::DataLossError(absl::StrCat("embedder file ", path, " is corrupt (", what, ")"));
  };
  if (bytes.size() < 16 || (bytes.compare(0, 8, kMagic) != 0 &&
                            bytes.compare(0, 8, kMagicV4) != 0 &&
                            bytes.compare(0, 8, kMagicV3) != 0 &&
                            bytes.compare(0, 8, kMagicV2) != 0 &&
                            bytes.compare(0, 8, kMagicV1) != 0)) {
    return corrupt("bad magic");
  }
  const bool v1 = bytes.compare(0, 8, kMagicV1) == 0;
  const bool v5 = bytes.compare(0, 8, kMagic) == 0;
  const bool v4 = v5 || bytes.compare(0, 8, kMagicV4) == 0;  // version 4 or later
  const bool v3 = v4 || bytes.compare(0, 8, kMagicV3) == 0;  // version 3 or later
  uint64_t sum = 0;
  std::memcpy(&sum, bytes.data() + bytes.size() - 8, 8);
  const std::string body = bytes.substr(0, bytes.size() - 8);
  if (Fnv1a(body) != sum) return corrupt("checksum mismatch");
  Reader r(body);
  std::string magic(8, '\0');
  for (char& c : magic) r.Pod(&c);
  auto e = std::make_shared<EmbedderRegistry::Loaded>();
  EmbedderInfo& i = e->info;
  uint32_t zoos = 0;
  bool ok = r.Str(&i.id) && r.Pod(&zoos) && zoos < 10000;
  for (uint32_t z = 0; ok && z < zoos; ++z) {
    std::string s;
    ok = r.Str(&s);
    i.zoos.push_back(s);
  }
  EmbedderOptions& o = i.options;
  int32_t mask_shape = static_cast<int32_t>(MaskShape::kGroups), gradient_path = 0;
  ok = ok && r.Pod(&o.points_per_sample) && r.Pod(&o.mask_rate) && r.Pod(&o.embedding_size) &&
       r.Pod(&o.steps) && r.Pod(&o.seed) && r.Pod(&o.batch_models) && r.Pod(&o.hidden) &&
       r.Pod(&o.learning_rate) && (v1 || (r.Pod(&o.from_layer) && r.Pod(&o.to_layer))) &&
       (!v3 || (r.Pod(&mask_shape) && r.Pod(&gradient_path))) &&
       (!v4 || r.Pod(&o.members)) && (!v5 || r.Pod(&o.distance_weight)) &&
       r.Pod(&i.input_dim) &&
       r.Pod(&i.output_dim);
  ok = ok &&
       (mask_shape == static_cast<int32_t>(MaskShape::kGroups) ||
        mask_shape == static_cast<int32_t>(MaskShape::kSpans)) &&
       (gradient_path == 0 || gradient_path == 1);
  o.mask_shape = static_cast<MaskShape>(mask_shape);
  ok = ok && ValidateEmbedderOptions(o).ok() && i.input_dim >= 1 && i.output_dim >= 1 &&
       i.input_dim * i.output_dim <= kMaxGradDim;
  for (int k = 0; ok && k < i.input_dim; ++k) {
    double lo = 0, hi = 0;
    ok = r.Pod(&lo) && r.Pod(&hi);
    i.domain.emplace_back(lo, hi);
  }
  if (v1) {
    i.source_domain = i.domain;
  } else {
    uint32_t sources = 0;
    ok = ok && r.Pod(&sources) && sources >= 1 && sources <= 4096;
    for (uint32_t k = 0; ok && k < sources; ++k) {
      double lo = 0, hi = 0;
      ok = r.Pod(&lo) && r.Pod(&hi);
      i.source_domain.emplace_back(lo, hi);
    }
  }
  ok = ok && r.Pod(&i.gradient_scale) && r.Pod(&i.train_models) && r.Pod(&i.validation_models) &&
       r.Pod(&i.validation_cloze_loss) && r.Pod(&i.mean_gradient_baseline_loss) &&
       r.Pod(&i.interpolation_baseline_loss) && r.Pod(&i.create_time_ms);
  if (!ok) return corrupt("truncated header");
  for (int k = 0; k < o.members; ++k) {
    e->untrained.push_back(EncoderNet::Init(i.input_dim, i.output_dim, o.embedding_size,
                                            o.hidden, MemberSeed(o.seed, k), gradient_path == 1));
    EncoderNet net = e->untrained.back();
    net.params.clear();
    for (const at::Tensor& p : e->untrained.back().params) {
      at::Tensor t;
      if (!r.Floats(p.numel(), &t)) return corrupt("truncated parameters");
      net.params.push_back(t.reshape(p.sizes()));
    }
    e->net.push_back(std::move(net));
  }
  e->serial = next_serial++;
  return e;
}

absl::Status WriteFileDurably(const std::string& dir, const std::string& path,
                              const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", tmp, ": ", std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return err == ENOSPC ? absl::ResourceExhaustedError(absl::StrCat("write ", tmp, ": disk full"))
                           : absl::InternalError(absl::StrCat("write ", tmp, ": ", std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("fsync ", tmp, ": ", std::strerror(errno)));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("rename ", tmp, ": ", std::strerror(errno)));
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

// ---- models of zoos ----------------------------------------------------------------------

// The models of some zoos, read as sub-networks (from, to) (to 0 = the output): in / out are the
// sub-network's widths, source_in / source_domain the whole network's inputs.
struct ZooModels {
  std::vector<std::shared_ptr<const Zoo>> zoos;
  std::vector<const ModelRecord*> train, validation;
  std::vector<std::string> zoo_of_train, zoo_of_validation;
  int from = 0, to = 0;
  int in = 0, out = 0, source_in = 0;
  std::vector<std::pair<double, double>> source_domain;
};

std::vector<std::pair<double, double>> ZooDomain(const Zoo& zoo, int in) {
  if (zoo.has_spec) {
    absl::StatusOr<std::shared_ptr<const Task>> task = MakeTask(zoo.spec.task, false);
    if (task.ok()) {
      auto d = (*task)->Domain();
      if (static_cast<int>(d.size()) == in) return d;
    }
  }
  return std::vector<std::pair<double, double>>(in, {-1.0, 1.0});
}

absl::StatusOr<ZooModels> CollectZoos(const Engine& engine, const std::vector<std::string>& ids,
                                      const char* field, int from = 0, int to = 0) {
  if (ids.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": name at least one zoo"));
  ZooModels zm;
  zm.from = from;
  zm.to = to;
  for (const std::string& id : ids) {
    ASSIGN_OR_RETURN(std::shared_ptr<const Zoo> zoo, engine.GetZoo(id));
    if (zoo->models.empty()) continue;
    for (const ModelRecord& m : zoo->models) {
      ASSIGN_OR_RETURN(auto layers, embed_internal::ResolveLayers(m.spec, from, to, "from_layer",
                                                                  "to_layer"));
      const int in = embed_internal::LayerWidth(m.spec, layers.first);
      const int out = embed_internal::LayerWidth(m.spec, layers.second);
      if (zm.in == 0) {
        zm.in = in;
        zm.out = out;
        zm.source_in = m.spec.input_dim;
        zm.source_domain = ZooDomain(*zoo, zm.source_in);
      }
      if (in != zm.in || out != zm.out || m.spec.input_dim != zm.source_in) {
        return absl::FailedPreconditionError(absl::StrCat(
            field, ": zoo ", id, " has (sub-)networks with ", in, " inputs and ", out,
            " outputs (", m.spec.input_dim, " network inputs), the others ", zm.in, " and ",
            zm.out, " (", zm.source_in, ")"));
      }
      (m.split == Split::kTrain ? zm.train : zm.validation).push_back(&m);
      (m.split == Split::kTrain ? zm.zoo_of_train : zm.zoo_of_validation).push_back(id);
    }
    zm.zoos.push_back(zoo);
  }
  if (zm.in * zm.out > kMaxGradDim) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": the embedder reads inputs x outputs <= ", kMaxGradDim, " gradient entries per "
        "point; these (sub-)networks have ", zm.in, " x ", zm.out,
        " (embed a sub-network with fewer inputs or outputs instead)"));
  }
  return zm;
}

at::Tensor ToTensor(const std::vector<float>& v, int64_t rows, int64_t cols) {
  return at::tensor(v).reshape({rows, cols});
}

// One model's cloze mask (1 = masked) over its n points, x [n, in] scaled to [-1, 1].
std::vector<float> DrawClozeMask(const EmbedderOptions& o, const std::vector<int>& group,
                                 int groups, const float* x, int in, Rng& rng) {
  return o.mask_shape == MaskShape::kSpans
             ? embed_internal::DrawSpanMask(group, groups, x, in, o.mask_rate, rng)
             : embed_internal::DrawMask(group, groups, o.mask_rate, rng);
}

struct ClozeLosses {
  double model = 0.0, mean = 0.0, interp = 0.0;
};

// Validation cloze losses (original units) on kValidationRounds fixed samples.
ClozeLosses Validate(const EncoderNet& net, const ZooModels& zm, const EmbedderInfo& info,
                     const at::Device& device, bool with_baselines) {
  const EmbedderOptions& o = info.options;
  const double scale = info.gradient_scale;
  at::NoGradGuard no_grad;
  Rng rng = Rng::ForStream(static_cast<uint64_t>(o.seed), kValidationStream);
  const int n = o.points_per_sample, gd = zm.in * zm.out;
  double sse = 0.0, sse_mean = 0.0, sse_interp = 0.0, count = 0.0;
  const int64_t v = static_cast<int64_t>(zm.validation.size());
  for (int round = 0; round < kValidationRounds; ++round) {
    at::Tensor xt = ToTensor(embed_internal::SampleStratified(zm.source_domain, n, rng), n,
                             zm.source_in);
    auto [pts, g] = embed_internal::SubnetGradients(zm.validation, zm.from, zm.to, xt, device);
    std::vector<float> mask(static_cast<size_t>(v) * n);
    const float* gp = g.data_ptr<float>();
    const float* pp = pts.data_ptr<float>();
    at::Tensor xs = embed_internal::ScaleInputs(pts, info.domain).contiguous();
    const float* xp = xs.data_ptr<float>();
    for (int64_t k = 0; k < v; ++k) {
      int groups = 0;
      std::vector<int> grp = embed_internal::UniqueGradientGroups(gp + k * n * gd, n, gd, &groups);
      std::vector<float> m = DrawClozeMask(o, grp, groups, xp + k * n * zm.in, zm.in, rng);
      std::copy(m.begin(), m.end(), mask.begin() + k * n);
      if (with_baselines) {
        auto [a, b] = embed_internal::BaselineSse(pp + k * n * zm.in, gp + k * n * gd, m.data(), n,
                                                  zm.in, gd);
        sse_mean += a;
        sse_interp += b;
      }
    }
    at::Tensor mt = ToTensor(mask, v, n);
    at::Tensor e = net.Encode(embed_internal::Features(xs, g / scale, mt), mt);
    at::Tensor pred = net.Decode(xs, e) * scale;
    sse += ((pred - g).pow(2).sum(2) * mt).sum().item<double>();
    count += mt.sum().item<double>() * gd;
  }
  ClozeLosses l;
  if (count > 0) {
    l.model = sse / count;
    l.mean = sse_mean / count;
    l.interp = sse_interp / count;
  }
  return l;
}

// Cloze training of one encoder from `init` (member `member` of info.options.members, seed
// `seed`), reporting into *tp (steps counted across the members). Returns the trained weights.
absl::StatusOr<EncoderNet> TrainEncoder(const EncoderNet& init, int64_t seed, int member,
                                        const ZooModels& zm, const EmbedderInfo& info,
                                        const at::Device& device, TrainProgress* tp,
                                        const ProgressFn& progress, const CancelFn& cancel) {
  const EmbedderOptions& o = info.options;
  const double scale = info.gradient_scale;
  const int n = o.points_per_sample, gd = zm.in * zm.out;
  EncoderNet net = init;
  for (at::Tensor& p : net.params) p = p.clone().set_requires_grad(true);
  std::vector<at::Tensor> m1, m2;
  for (const at::Tensor& p : net.params) {
    m1.push_back(at::zeros_like(p));
    m2.push_back(at::zeros_like(p));
  }
  Rng rng = Rng::ForStream(static_cast<uint64_t>(seed), kTrainStream);
  const int eval_every = std::max(1, o.steps / 10);
  const int batch = o.batch_models;
  double running = 0.0;
  int running_n = 0;
  for (int step = 0; step < o.steps; ++step) {
    if (cancel && cancel()) return absl::CancelledError("embedder training cancelled");
    std::vector<const ModelRecord*> models(batch);
    for (int b = 0; b < batch; ++b) models[b] = zm.train[rng.NextU64() % zm.train.size()];
    at::Tensor xt = ToTensor(embed_internal::SampleStratified(zm.source_domain, n, rng), n,
                             zm.source_in);
    at::Tensor pts, g, y;
    const bool distances = o.distance_weight > 0.0;
    {
      at::NoGradGuard no_grad;
      std::tie(pts, g) = embed_internal::SubnetGradients(models, zm.from, zm.to, xt, device,
                                                         distances ? &y : nullptr);
    }
    std::vector<float> mask(static_cast<size_t>(batch) * n);
    const float* gp = g.data_ptr<float>();
    at::Tensor xs = embed_internal::ScaleInputs(pts, info.domain).contiguous();
    const float* xp = xs.data_ptr<float>();
    for (int b = 0; b < batch; ++b) {
      int groups = 0;
      std::vector<int> grp =
          embed_internal::UniqueGradientGroups(gp + int64_t{b} * n * gd, n, gd, &groups);
      std::vector<float> m =
          DrawClozeMask(o, grp, groups, xp + int64_t{b} * n * zm.in, zm.in, rng);
      std::copy(m.begin(), m.end(), mask.begin() + int64_t{b} * n);
    }
    at::Tensor mt = ToTensor(mask, batch, n);
    at::Tensor gs = g / scale;
    at::Tensor emb = net.Encode(embed_internal::Features(xs, gs, mt), mt);
    at::Tensor pred = net.Decode(xs, emb);
    at::Tensor denom = at::clamp_min(mt.sum() * gd, 1.0);
    at::Tensor loss = ((pred - gs).pow(2).sum(2) * mt).sum() / denom;
    at::Tensor total = loss;
    if (distances) {
      total = loss + o.distance_weight *
                         embed_internal::DistanceLoss(emb, embed_internal::FunctionDistances(y));
    }
    for (at::Tensor& p : net.params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    total.backward();
    {
      at::NoGradGuard no_grad;
      const double lr = o.learning_rate *
                        (0.05 + 0.95 * (1 + std::cos(M_PI * step / o.steps)) / 2);
      const double b1 = 0.9, b2 = 0.999, t = step + 1;
      const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
      for (size_t i = 0; i < net.params.size(); ++i) {
        const at::Tensor& gr = net.params[i].grad();
        m1[i].mul_(b1).add_(gr, 1 - b1);
        m2[i].mul_(b2).addcmul_(gr, gr, 1 - b2);
        net.params[i].sub_(lr * (m1[i] / c1) / ((m2[i] / c2).sqrt() + 1e-8));
      }
    }
    running += loss.item<double>() * scale * scale;
    ++running_n;
    if ((step + 1) % eval_every == 0 || step + 1 == o.steps) {
      tp->step = member * o.steps + step + 1;
      tp->mean_train_loss = running / running_n;
      running = 0.0;
      running_n = 0;
      const ClozeLosses v = Validate(net, zm, info, device, false);
      tp->mean_validation_loss = v.model;
      tp->max_validation_loss = v.model;
      if (step + 1 == o.steps && member + 1 == o.members) tp->models_done = tp->models_total;
      if (progress) progress(*tp);
    }
  }
  for (at::Tensor& p : net.params) p = p.detach().clone();
  return net;
}

// Of the sub-network's layers (to 0 = the output).
std::vector<float> WeightStats(const ModelRecord& m, int from, int to) {
  std::vector<float> f;
  auto stats = [&f](const std::vector<float>& v, bool full) {
    double s = 0, s2 = 0, sa = 0, mx = 0;
    for (float x : v) {
      s += x;
      s2 += double{x} * x;
      sa += std::fabs(x);
      mx = std::max(mx, double{std::fabs(x)});
    }
    const double n = std::max<double>(1.0, static_cast<double>(v.size()));
    const double mean = s / n;
    f.push_back(static_cast<float>(mean));
    f.push_back(static_cast<float>(std::sqrt(std::max(0.0, s2 / n - mean * mean))));
    if (full) {
      f.push_back(static_cast<float>(sa / n));
      f.push_back(static_cast<float>(mx));
    }
  };
  const int last = to == 0 ? m.spec.NumLayers() : to;
  for (int k = from; k < last && k < static_cast<int>(m.layers.size()); ++k) {
    const LayerWeights& l = m.layers[k];
    stats(l.weight, true);
    stats(l.bias, false);
  }
  return f;
}

// The query's layers (-1 = the embedder's own).
std::pair<int, int> QueryLayers(const EmbedderInfo& info, const EmbedQuery& q) {
  return {q.from_layer < 0 ? info.options.from_layer : q.from_layer,
          q.to_layer < 0 ? info.options.to_layer : q.to_layer};
}

// OK when the sub-network (from, to) of a model of `spec` is one the embedder reads.
absl::Status Fits(const EmbedderInfo& info, const MlpSpec& spec, int from, int to,
                  const std::string& what) {
  ASSIGN_OR_RETURN(auto layers, embed_internal::ResolveLayers(spec, from, to, "from_layer",
                                                              "to_layer"));
  const int in = embed_internal::LayerWidth(spec, layers.first);
  const int out = embed_internal::LayerWidth(spec, layers.second);
  if (in != info.input_dim || out != info.output_dim ||
      spec.input_dim != static_cast<int>(info.source_domain.size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " has ", in, " inputs and ", out, " outputs between layers ", layers.first, " and ",
        layers.second, " (", spec.input_dim, " network inputs); embedder \"", info.id,
        "\" reads ", info.input_dim, " and ", info.output_dim, " (",
        info.source_domain.size(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateEmbedderOptions(const EmbedderOptions& o) {
  auto bad = [](const char* field, const std::string& range, double v) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be in ", range, ", got ", v));
  };
  if (o.points_per_sample < 4 || o.points_per_sample > 4096) {
    return bad("points_per_sample", "[4, 4096]", o.points_per_sample);
  }
  if (!(o.mask_rate > 0.0 && o.mask_rate < 1.0)) return bad("mask_rate", "(0, 1)", o.mask_rate);
  if (o.mask_shape != MaskShape::kGroups && o.mask_shape != MaskShape::kSpans) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask_shape must be groups (1) or spans (2), got ",
                     static_cast<int>(o.mask_shape)));
  }
  if (o.embedding_size < 1 || o.embedding_size > 1024) {
    return bad("embedding_size", "[1, 1024]", o.embedding_size);
  }
  if (o.steps < 1 || o.steps > 1'000'000) return bad("steps", "[1, 1000000]", o.steps);
  if (o.members < 1 || o.members > 8) return bad("members", "[1, 8]", o.members);
  if (!(o.distance_weight >= 0.0 && o.distance_weight <= 100.0)) {
    return bad("distance_weight", "[0, 100]", o.distance_weight);
  }
  if (o.batch_models < 1 || o.batch_models > 4096) {
    return bad("batch_models", "[1, 4096]", o.batch_models);
  }
  if (o.hidden < 4 || o.hidden > 1024) return bad("hidden", "[4, 1024]", o.hidden);
  if (!(o.learning_rate > 0.0 && o.learning_rate <= 1.0)) {
    return bad("learning_rate", "(0, 1]", o.learning_rate);
  }
  if (o.from_layer < 0 || o.from_layer > MlpSpec::kMaxLayers) {
    return bad("from_layer", absl::StrCat("[0, ", MlpSpec::kMaxLayers, "]"), o.from_layer);
  }
  if (o.to_layer != 0 && (o.to_layer <= o.from_layer || o.to_layer > MlpSpec::kMaxLayers + 1)) {
    return bad("to_layer", absl::StrCat("0 (the output) or (from_layer, ", MlpSpec::kMaxLayers + 1,
                                        "]"),
               o.to_layer);
  }
  if (int64_t{o.batch_models} * o.points_per_sample > 4'000'000) {
    return absl::ResourceExhaustedError(
        "batch_models x points_per_sample must be at most 4000000; lower one of them");
  }
  return absl::OkStatus();
}

EmbedderRegistry::EmbedderRegistry(Options options) : options_(std::move(options)) {}
EmbedderRegistry::~EmbedderRegistry() = default;

absl::StatusOr<std::shared_ptr<EmbedderRegistry>> EmbedderRegistry::Create(const Options& options) {
  std::shared_ptr<EmbedderRegistry> reg(new EmbedderRegistry(options));
  if (options.data_dir.empty()) return reg;
  const std::filesystem::path dir = std::filesystem::path(options.data_dir) / "embedders";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string path = entry.path().string();
    if (entry.path().extension() == ".tmp") {
      std::filesystem::remove(entry.path(), ec);  // debris of an interrupted save
      continue;
    }
    if (entry.path().extension() != ".gzemb") continue;
    const std::string id = entry.path().stem().string();
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    absl::StatusOr<std::shared_ptr<Loaded>> e =
        GuardTorch("load embedder", [&] { return Parse(ss.str(), path); });
    absl::MutexLock lock(&reg->mu_);
    if (e.ok() && (*e)->info.id == id) {
      reg->embedders_[id] = *e;
    } else {
      reg->broken_[id] = e.ok() ? absl::DataLossError(absl::StrCat("embedder file ", path,
                                                                   " names another id"))
                                : e.status();
    }
  }
  return reg;
}

absl::StatusOr<std::shared_ptr<EmbedderRegistry>> EmbedderRegistry::Shared(const Engine& engine) {
  static absl::Mutex* mu = new absl::Mutex;
  static auto* registries = new std::map<std::string, std::weak_ptr<EmbedderRegistry>>;
  absl::MutexLock lock(mu);
  const std::string& dir = engine.options().data_dir;
  auto it = registries->find(dir);
  if (it != registries->end()) {
    if (std::shared_ptr<EmbedderRegistry> r = it->second.lock()) return r;
  }
  Options o;
  o.data_dir = dir;
  o.device = engine.device();
  ASSIGN_OR_RETURN(std::shared_ptr<EmbedderRegistry> r, Create(o));
  (*registries)[dir] = r;
  return r;
}

absl::StatusOr<std::shared_ptr<const EmbedderRegistry::Loaded>> EmbedderRegistry::Find(
    const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = embedders_.find(id);
  if (it != embedders_.end()) return it->second;
  auto b = broken_.find(id);
  if (b != broken_.end()) return b->second;
  return absl::NotFoundError(absl::StrCat("embedder \"", id, "\" not found"));
}

absl::StatusOr<EmbedderInfo> EmbedderRegistry::Get(const std::string& id) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const Loaded> e, Find(id));
  return e->info;
}

std::vector<EmbedderInfo> EmbedderRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, EmbedderInfo> all;
  for (const auto& [id, e] : embedders_) all[id] = e->info;
  for (const auto& [id, s] : broken_) {
    EmbedderInfo i;
    i.id = id;
    i.status = s;
    all[id] = i;
  }
  std::vector<EmbedderInfo> out;
  for (auto& [id, i] : all) out.push_back(std::move(i));
  return out;
}

absl::Status EmbedderRegistry::Delete(const std::string& id) {
  absl::MutexLock wlock(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (embedders_.count(id) == 0 && broken_.count(id) == 0) {
      return absl::NotFoundError(absl::StrCat("embedder \"", id, "\" not found"));
    }
  }
  if (!options_.data_dir.empty()) {
    const std::filesystem::path path =
        std::filesystem::path(options_.data_dir) / "embedders" / (id + ".gzemb");
    std::error_code ec;
    std::filesystem::remove(path, ec);
    if (ec) return absl::InternalError(absl::StrCat("remove ", path.string(), ": ", ec.message()));
  }
  absl::MutexLock lock(&mu_);
  embedders_.erase(id);
  broken_.erase(id);
  for (auto it = cache_.begin(); it != cache_.end();) {
    const std::string& key_id = std::get<0>(it->first);
    if (key_id.rfind(id + "#", 0) == 0) {
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
  return absl::OkStatus();
}

int64_t EmbedderRegistry::CachedEmbeddings() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(cache_.size());
}

absl::Status EmbedderRegistry::ValidateTraining(const Engine& engine, const std::string& id,
                                                const std::vector<std::string>& zoos,
                                                const EmbedderOptions& options) const {
  RETURN_IF_ERROR(ValidateResourceId(id, "embedder_id"));
  RETURN_IF_ERROR(ValidateEmbedderOptions(options));
  {
    absl::MutexLock lock(&mu_);
    if (embedders_.count(id) || broken_.count(id)) {
      return absl::AlreadyExistsError(absl::StrCat("embedder \"", id, "\" already exists"));
    }
  }
  ASSIGN_OR_RETURN(ZooModels zm,
                   CollectZoos(engine, zoos, "zoos", options.from_layer, options.to_layer));
  if (zm.train.empty() || zm.validation.empty()) {
    return absl::FailedPreconditionError(
        "zoos: the embedder needs training-split and validation-split models (set the zoo's "
        "validation_seeds)");
  }
  return absl::OkStatus();
}

absl::StatusOr<EmbedderInfo> EmbedderRegistry::Train(const Engine& engine, const std::string& id,
                                                     const std::vector<std::string>& zoos,
                                                     const EmbedderOptions& o,
                                                     const ProgressFn& progress,
                                                     const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateTraining(engine, id, zoos, o));
  ASSIGN_OR_RETURN(ZooModels zm, CollectZoos(engine, zoos, "zoos", o.from_layer, o.to_layer));
  auto trained = GuardTorch("train embedder", [&]() -> absl::StatusOr<std::shared_ptr<Loaded>> {
    const at::Device device = ToAtDevice(options_.device);
    auto e = std::make_shared<Loaded>();
    EmbedderInfo& info = e->info;
    info.id = id;
    info.zoos = zoos;
    info.options = o;
    info.input_dim = zm.in;
    info.output_dim = zm.out;
    info.source_domain = zm.source_domain;
    info.train_models = static_cast<int64_t>(zm.train.size());
    info.validation_models = static_cast<int64_t>(zm.validation.size());
    {  // gradient scale (RMS entry) and input ranges over (up to 512) training models at 256 points
      at::NoGradGuard no_grad;
      Rng rng = Rng::ForStream(static_cast<uint64_t>(o.seed), kScaleStream);
      std::vector<const ModelRecord*> some(
          zm.train.begin(), zm.train.begin() + std::min<size_t>(zm.train.size(), 512));
      at::Tensor x = ToTensor(embed_internal::SamplePoints(zm.source_domain, 256, rng), 256,
                              zm.source_in);
      auto [pts, g] = embed_internal::SubnetGradients(some, zm.from, zm.to, x, device);
      const double rms = g.pow(2).mean().sqrt().item<double>();
      info.gradient_scale = rms > 1e-12 ? rms : 1.0;
      if (zm.from == 0) {
        info.domain = zm.source_domain;
      } else {
        at::Tensor flat = pts.reshape({-1, zm.in});
        at::Tensor lo = std::get<0>(flat.min(0)).to(at::kDouble).contiguous();
        at::Tensor hi = std::get<0>(flat.max(0)).to(at::kDouble).contiguous();
        for (int k = 0; k < zm.in; ++k) {
          info.domain.emplace_back(lo.data_ptr<double>()[k], hi.data_ptr<double>()[k]);
        }
      }
    }
    TrainProgress tp;
    tp.total_steps = o.steps * o.members;
    tp.models_total = static_cast<int>(zm.train.size());
    double cloze_sum = 0.0;
    // Members one after another; member k is what training alone with seed + k would give (the
    // gradient scale and the validation samples aside, which come from `seed`).
    for (int member = 0; member < o.members; ++member) {
      const int64_t seed = MemberSeed(o.seed, member);
      e->untrained.push_back(EncoderNet::Init(zm.in, zm.out, o.embedding_size, o.hidden, seed));
      ASSIGN_OR_RETURN(EncoderNet net,
                       TrainEncoder(e->untrained.back(), seed, member, zm, info, device, &tp,
                                    progress, cancel));
      const ClozeLosses v = Validate(net, zm, info, device, member == 0);
      cloze_sum += v.model;
      if (member == 0) {
        info.mean_gradient_baseline_loss = v.mean;
        info.interpolation_baseline_loss = v.interp;
      }
      e->net.push_back(std::move(net));
    }
    info.validation_cloze_loss = cloze_sum / o.members;  // the members' mean
    info.create_time_ms = NowMs();
    e->serial = next_serial++;
    return e;
  });
  if (!trained.ok()) return trained.status();
  std::shared_ptr<Loaded> e = *trained;
  absl::MutexLock wlock(&write_mu_);
  if (cancel && cancel()) return absl::CancelledError("embedder training cancelled");
  {
    absl::MutexLock lock(&mu_);
    if (embedders_.count(id) || broken_.count(id)) {
      return absl::AlreadyExistsError(absl::StrCat("embedder \"", id, "\" already exists"));
    }
  }
  if (!options_.data_dir.empty()) {
    const std::string dir = (std::filesystem::path(options_.data_dir) / "embedders").string();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
    RETURN_IF_ERROR(WriteFileDurably(dir, dir + "/" + id + ".gzemb", Serialize(e->info, e->net)));
  }
  absl::MutexLock lock(&mu_);
  embedders_[id] = e;
  return e->info;
}

absl::Status EmbedderRegistry::ValidateEmbed(const Engine& engine, const std::string& id,
                                             const EmbedQuery& q) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const Loaded> e, Find(id));
  if (q.models.empty()) return absl::InvalidArgumentError("models: name at least one model");
  if (q.samples < 1 || q.samples > 64) {
    return absl::InvalidArgumentError(absl::StrCat("samples must be in [1, 64], got ", q.samples));
  }
  const int64_t models = static_cast<int64_t>(q.models.size());
  if (models > options_.max_models_per_call) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "models: at most ", options_.max_models_per_call, " per call, got ", models,
        "; split the request"));
  }
  // Each member encodes every point: an embedder of several members costs as many times more.
  const int members = e->info.options.members;
  const int64_t cost = models * q.samples * e->info.options.points_per_sample * members;
  if (cost > engine.options().max_points_per_query) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "models x samples x points_per_sample", members > 1 ? " x members" : "", " = ", cost,
        " exceeds the server's limit of ",
        engine.options().max_points_per_query, "; use fewer models per call or fewer samples"));
  }
  if (q.from_layer < -1 || q.from_layer > MlpSpec::kMaxLayers) {
    return absl::InvalidArgumentError(absl::StrCat("from_layer must be in [0, ",
                                                   MlpSpec::kMaxLayers, "], got ", q.from_layer));
  }
  if (q.to_layer < -1 || q.to_layer > MlpSpec::kMaxLayers + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "to_layer must be 0 (the output) or in [1, ", MlpSpec::kMaxLayers + 1, "], got ",
        q.to_layer));
  }
  const auto [from, to] = QueryLayers(e->info, q);
  for (size_t i = 0; i < q.models.size(); ++i) {
    ASSIGN_OR_RETURN(auto zm, engine.GetModel(q.models[i]));
    RETURN_IF_ERROR(Fits(e->info, zm.second->spec, from, to, absl::StrCat("models[", i, "]")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> EmbedderRegistry::EmbedWith(const Engine& engine,
                                                               const Loaded& e, bool untrained,
                                                               const EmbedQuery& q,
                                                               const CancelFn& cancel) {
  const int dim = EmbeddingDim(e.info.options);
  const std::string key_id = absl::StrCat(e.info.id, "#", e.serial, untrained ? "#u" : "");
  std::vector<std::shared_ptr<const Zoo>> keep;
  std::vector<const ModelRecord*> records;
  std::vector<CacheKey> keys;
  const auto [from, to] = QueryLayers(e.info, q);
  for (const ModelRef& ref : q.models) {
    ASSIGN_OR_RETURN(auto zm, engine.GetModel(ref));
    keep.push_back(zm.first);
    records.push_back(zm.second);
    keys.emplace_back(key_id, ref.zoo_id, zm.first->create_time_ms, ref.model_id, q.samples,
                      q.seed, from, to);
  }
  std::vector<float> out(q.models.size() * dim);
  std::vector<size_t> missing;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = cache_.find(keys[i]);
      if (it != cache_.end()) {
        std::copy(it->second.begin(), it->second.end(), out.begin() + i * dim);
      } else {
        missing.push_back(i);
      }
    }
  }
  if (missing.empty()) return out;
  const std::vector<EncoderNet>& nets = untrained ? e.untrained : e.net;
  const int n = e.info.options.points_per_sample;
  const int source_in = static_cast<int>(e.info.source_domain.size());
  RETURN_IF_ERROR(GuardTorch("embed", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    const at::Device device = ToAtDevice(options_.device);
    constexpr size_t kChunk = 256;
    for (size_t start = 0; start < missing.size(); start += kChunk) {
      if (cancel && cancel()) return absl::CancelledError("embedding cancelled");
      const size_t end = std::min(missing.size(), start + kChunk);
      std::vector<const ModelRecord*> chunk;
      for (size_t i = start; i < end; ++i) chunk.push_back(records[missing[i]]);
      const int64_t c = static_cast<int64_t>(chunk.size());
      at::Tensor acc = at::zeros({c, dim}, at::kFloat);
      for (int s = 0; s < q.samples; ++s) {
        Rng rng = Rng::ForStream(static_cast<uint64_t>(q.seed), 1000 + static_cast<uint64_t>(s));
        at::Tensor xt = ToTensor(embed_internal::SampleStratified(e.info.source_domain, n, rng),
                                 n, source_in);
        auto [pts, g] = embed_internal::SubnetGradients(chunk, from, to, xt, device);
        at::Tensor xs = embed_internal::ScaleInputs(pts, e.info.domain);
        at::Tensor feat = embed_internal::Features(xs, g / e.info.gradient_scale,
                                                   at::zeros({c, n}, at::kFloat));
        std::vector<at::Tensor> members;  // side by side
        for (const EncoderNet& net : nets) members.push_back(net.Encode(feat));
        acc += members.size() == 1 ? members.front() : at::cat(members, 1);
      }
      acc = (acc / q.samples).contiguous();
      const float* p = acc.data_ptr<float>();
      absl::MutexLock lock(&mu_);
      for (size_t i = start; i < end; ++i) {
        const size_t row = missing[i];
        std::copy(p + (i - start) * dim, p + (i - start + 1) * dim, out.begin() + row * dim);
        if (static_cast<int64_t>(cache_.size()) < options_.max_cached_embeddings) {
          cache_.emplace(keys[row], std::vector<float>(p + (i - start) * dim,
                                                       p + (i - start + 1) * dim));
        }
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<float>> EmbedderRegistry::Embed(const Engine& engine,
                                                           const std::string& id,
                                                           const EmbedQuery& query,
                                                           const CancelFn& cancel) {
  RETURN_IF_ERROR(ValidateEmbed(engine, id, query));
  ASSIGN_OR_RETURN(std::shared_ptr<const Loaded> e, Find(id));
  return EmbedWith(engine, *e, query.untrained, query, cancel);
}

absl::StatusOr<std::vector<EmbedNeighbor>> EmbedderRegistry::FindNeighbors(
    const Engine& engine, const std::string& id, const NeighborQuery& query,
    const CancelFn& cancel) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Loaded> e, Find(id));
  if (query.k < 1) return absl::InvalidArgumentError(absl::StrCat("k must be >= 1, got ", query.k));
  ASSIGN_OR_RETURN(auto qm, engine.GetModel(query.model));
  (void)qm;
  std::vector<std::string> zoo_ids = query.zoos;
  if (zoo_ids.empty()) {
    for (const ZooEntry& z : engine.ListZoos()) {
      if (z.status.ok()) zoo_ids.push_back(z.id);
    }
  }
  EmbedQuery eq;
  eq.samples = kDefaultSamples;
  eq.models.push_back(query.model);
  std::vector<std::string> labels = {""};
  for (const std::string& zid : zoo_ids) {
    ASSIGN_OR_RETURN(std::shared_ptr<const Zoo> zoo, engine.GetZoo(zid));
    for (const ModelRecord& m : zoo->models) {
      const absl::Status fits = Fits(e->info, m.spec, e->info.options.from_layer,
                                     e->info.options.to_layer, absl::StrCat("zoo ", zid));
      if (!fits.ok()) {
        if (!query.zoos.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "zoos: the embedder cannot read the models of zoo ", zid, ": ", fits.message()));
        }
        break;
      }
      if (zid == query.model.zoo_id && m.id == query.model.model_id) continue;
      eq.models.push_back({zid, m.id});
      labels.push_back(m.label);
    }
  }
  RETURN_IF_ERROR(ValidateEmbed(engine, id, eq));
  ASSIGN_OR_RETURN(std::vector<float> emb, EmbedWith(engine, *e, false, eq, cancel));
  const int dim = EmbeddingDim(e->info.options);
  std::vector<std::pair<double, size_t>> sims;
  for (size_t i = 1; i < eq.models.size(); ++i) {
    sims.emplace_back(-Cosine(emb.data(), emb.data() + i * dim, dim), i);
  }
  const size_t k = std::min<size_t>(query.k, sims.size());
  std::partial_sort(sims.begin(), sims.begin() + k, sims.end());
  std::vector<EmbedNeighbor> out;
  for (size_t r = 0; r < k; ++r) {
    out.push_back({eq.models[sims[r].second], -sims[r].first, labels[sims[r].second]});
  }
  return out;
}

absl::StatusOr<std::vector<ProbeScore>> EmbedderRegistry::Probe(const Engine& engine,
                                                                const std::string& id,
                                                                const ProbeQuery& query,
                                                                const CancelFn& cancel) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Loaded> e, Find(id));
  if (query.k < 1) return absl::InvalidArgumentError(absl::StrCat("k must be >= 1, got ", query.k));
  if (query.target != "label" && query.target != "task" && query.target != "variant" &&
      query.target != "lambda") {
    return absl::InvalidArgumentError(absl::StrCat(
        "target \"", query.target.substr(0, 40), "\" is not one of label, task, variant, lambda"));
  }
  ASSIGN_OR_RETURN(ZooModels zm, CollectZoos(engine, query.zoos, "zoos", e->info.options.from_layer,
                                             e->info.options.to_layer));
  if (zm.in != e->info.input_dim || zm.out != e->info.output_dim ||
      zm.source_in != static_cast<int>(e->info.source_domain.size())) {
    return absl::FailedPreconditionError("zoos: models' dims differ from the embedder's");
  }
  if (zm.train.empty() || zm.validation.empty()) {
    return absl::FailedPreconditionError(
        "zoos: a probe needs training-split and validation-split models");
  }
  auto label_of = [&](const ModelRecord& m) -> std::string {
    if (query.target == "label") return m.label;
    if (query.target == "task") return m.task;
    if (query.target == "variant") return absl::StrCat(m.variant);
    return absl::StrFormat("%.6g", m.lambda);
  };
  std::map<std::string, int> classes;
  for (const auto* list : {&zm.train, &zm.validation}) {
    for (const ModelRecord* m : *list) classes.emplace(label_of(*m), 0);
  }
  int next = 0;
  for (auto& [name, c] : classes) c = next++;
  EmbedQuery tq, vq;
  tq.samples = vq.samples = kDefaultSamples;
  ProbeData base;
  base.classes = next;
  for (size_t i = 0; i < zm.train.size(); ++i) {
    tq.models.push_back({zm.zoo_of_train[i], zm.train[i]->id});
    base.train_y.push_back(classes[label_of(*zm.train[i])]);
  }
  for (size_t i = 0; i < zm.validation.size(); ++i) {
    vq.models.push_back({zm.zoo_of_validation[i], zm.validation[i]->id});
    base.val_y.push_back(classes[label_of(*zm.validation[i])]);
  }
  RETURN_IF_ERROR(ValidateEmbed(engine, id, tq));
  RETURN_IF_ERROR(ValidateEmbed(engine, id, vq));
  std::vector<ProbeScore> scores;
  ProbeAccuracy learned;  // the embedding's, scored first: the other rows are tested against it
  auto score = [&](const std::string& name, ProbeData d) -> absl::Status {
    if (cancel && cancel()) return absl::CancelledError("probe cancelled");
    ASSIGN_OR_RETURN(ProbeAccuracy acc, RunProbes(d, query.k));
    if (scores.empty()) learned = acc;
    ProbeScore s;
    s.representation = name;
    s.linear_accuracy = acc.linear;
    s.knn_accuracy = acc.knn;
    s.separation = acc.separation;
    ASSIGN_OR_RETURN(s.linear_p_value, PairedP(learned.linear_correct, acc.linear_correct));
    ASSIGN_OR_RETURN(s.knn_p_value, PairedP(learned.knn_correct, acc.knn_correct));
    s.train_models = static_cast<int64_t>(d.train_y.size());
    s.validation_models = static_cast<int64_t>(d.val_y.size());
    s.classes = d.classes;
    scores.push_back(s);
    return absl::OkStatus();
  };
  for (bool untrained : {false, true}) {
    ProbeData d = base;
    d.dim = EmbeddingDim(e->info.options);
    ASSIGN_OR_RETURN(d.train_x, EmbedWith(engine, *e, untrained, tq, cancel));
    ASSIGN_OR_RETURN(d.val_x, EmbedWith(engine, *e, untrained, vq, cancel));
    RETURN_IF_ERROR(score(untrained ? "untrained_encoder" : "embedding", std::move(d)));
    if (!untrained) {
      // Baselines between the learned and the untrained encoder, as the proto documents.
      ProbeData g = base;
      RETURN_IF_ERROR(GuardTorch("gradient profile", [&]() -> absl::Status {
        at::NoGradGuard no_grad;
        std::vector<float> x;
        const int gd = zm.in * zm.out;
        const int points = std::clamp(kProfileEntries / gd, 4, kProfilePoints);
        if (zm.source_in == 1) {
          for (int i = 0; i < points; ++i) {
            const auto [lo, hi] = zm.source_domain[0];
            x.push_back(static_cast<float>(lo + (hi - lo) * i / (points - 1)));
          }
        } else {
          Rng rng(0);
          x = embed_internal::SamplePoints(zm.source_domain, points, rng);
        }
        at::Tensor xt = ToTensor(x, points, zm.source_in);
        g.dim = points * gd;
        for (auto [list, dst] : {std::make_pair(&zm.train, &g.train_x),
                                 std::make_pair(&zm.validation, &g.val_x)}) {
          *dst = ToFloatVector(
              embed_internal::SubnetGradients(*list, zm.from, zm.to, xt,
                                              ToAtDevice(options_.device))
                  .second);
        }
        return absl::OkStatus();
      }));
      RETURN_IF_ERROR(score("gradient_profile", std::move(g)));
      ProbeData w = base;
      for (const ModelRecord* m : zm.train) {
        std::vector<float> f = WeightStats(*m, zm.from, zm.to);
        w.dim = static_cast<int>(f.size());
        w.train_x.insert(w.train_x.end(), f.begin(), f.end());
      }
      for (const ModelRecord* m : zm.validation) {
        std::vector<float> f = WeightStats(*m, zm.from, zm.to);
        if (static_cast<int>(f.size()) != w.dim) {
          return absl::FailedPreconditionError(
              "weight_stats needs models with the same number of layers");
        }
        w.val_x.insert(w.val_x.end(), f.begin(), f.end());
      }
      RETURN_IF_ERROR(score("weight_stats", std::move(w)));
    }
  }
  return scores;
}

}  // namespace gradzoo::core
