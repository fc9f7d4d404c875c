#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"
#include <fstream>
#include <iterator>

namespace gradzoo::client::cli {
namespace {

absl::Status Info(Context& c) {
  auto info = c.client->GetServerInfo();
  if (!info.ok()) return info.status();
  if (c.json) {
    std::cout << ToJson(*info);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "gradzoo-server %s\n  device         %s\n  BLAS           %s%s\n  torch          %s, %d "
      "threads\n  data dir       %s\n  max points     %d per query\n  max message    %d bytes\n"
      "  uptime         %.0f s\n",
      info->version(), info->device(), info->blas(),
      info->blas() == "reference" ? "  (WARNING: ~30x slower; install libopenblas0-pthread)" : "",
      info->torch_version(), info->torch_threads(), info->data_dir(),
      info->max_points_per_query(), info->max_receive_message_bytes(), info->uptime_seconds());
  return absl::OkStatus();
}

absl::Status Health(Context& c) {
  auto h = c.client->CheckHealth();
  if (!h.ok()) return h.status();
  c.Say(*h ? "SERVING" : "NOT_SERVING", *h ? "{\"status\": \"SERVING\"}" : "{\"status\": \"NOT_SERVING\"}");
  return *h ? absl::OkStatus() : absl::UnavailableError("server is not serving");
}

std::string Arch(const v1::Zoo& z) {
  std::vector<int> w = {z.input_dim()};
  for (int h : z.spec().architecture().hidden_widths()) w.push_back(h);
  w.push_back(z.output_dim());
  return absl::StrJoin(w, "-");
}

absl::Status Zoos(Context& c) {
  auto zoos = c.client->ListZoos();
  if (!zoos.ok()) return zoos.status();
  if (c.json) {
    v1::ListZoosResponse r;
    for (auto& z : *zoos) *r.add_zoos() = z;
    std::cout << ToJson(r);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat("%-28s %-8s %7s %-10s %-16s %10s\n", "ZOO", "STATE", "MODELS",
                               "TASK", "ARCH", "BYTES");
  for (const auto& z : *zoos) {
    std::cout << absl::StrFormat("%-28s %-8s %7d %-10s %-16s %10d\n", z.name(),
                                 z.state() == v1::ZOO_STATE_CORRUPT ? "CORRUPT" : "READY",
                                 z.model_count(), z.spec().task().name(), Arch(z), z.stored_bytes());
  }
  if (zoos->empty()) std::cout << "(no zoos yet: gradzoo train NAME --lambdas 0,0.5 --seeds 0,1)\n";
  return absl::OkStatus();
}

absl::Status ZooGet(Context& c, const std::string& name) {
  auto z = c.client->GetZoo(ZooNameOf(name));
  if (!z.ok()) return z.status();
  if (c.json) {
    std::cout << ToJson(*z);
    return absl::OkStatus();
  }
  const auto& sp = z->spec();
  std::string task = sp.task().name();
  if (task == "poly1d") {
    absl::StrAppendFormat(&task, " (%d families, similarity %g, family seed %d)", sp.task().families(),
                          sp.task().similarity(), sp.task().family_seed());
  } else if (!sp.task().data_path().empty()) {
    absl::StrAppend(&task, " (", sp.task().data_path(), ")");
  }
  std::cout << absl::StrFormat(
      "%s\n  models       %d (%d-> ... ->%d: %s, %s)\n  task         %s, lambdas [%s]\n"
      "  seeds        [%s], validation [%s]\n  training     %d steps, lr %g, batch %d\n"
      "  stored       %d bytes\n",
      z->name(), z->model_count(), z->input_dim(), z->output_dim(), Arch(*z),
      v1::Activation_Name(sp.architecture().activation()), task,
      absl::StrJoin(sp.task().lambdas(), ", "), absl::StrJoin(sp.seeds(), ", "),
      absl::StrJoin(sp.validation_seeds(), ", "), sp.training().steps(),
      sp.training().learning_rate(), sp.training().batch_size(), z->stored_bytes());
  if (!z->owner().empty()) {
    std::cout << absl::StrFormat("  owner        %s, readers [%s]\n", z->owner(),
                                 absl::StrJoin(z->readers(), ", "));
  }
  return absl::OkStatus();
}

absl::Status Models(Context& c, const std::string& zoo) {
  auto models = c.client->ListModels(ZooNameOf(zoo), c.args.Has("weights"));
  if (!models.ok()) return models.status();
  if (c.json) {
    v1::ListModelsResponse r;
    for (auto& m : *models) *r.add_models() = m;
    std::cout << ToJson(r);
    return absl::OkStatus();
  }
  // Fits 100 columns: name, label (task or family), lambda, seed, split, losses, steps, and the
  // test accuracy for tasks with a test set.
  std::cout << absl::StrFormat("%-26s %-13s %6s %5s %-5s %10s %10s %6s %6s\n", "MODEL", "LABEL",
                               "LAMBDA", "SEED", "SPLIT", "TRAIN LOSS", "VAL LOSS", "STEPS",
                               "TEST");
  for (const auto& m : *models) {
    const std::string label = m.label().empty() ? m.task() : m.label();
    std::cout << absl::StrFormat(
        "%-26s %-13s %6.3f %5d %-5s %10.3e %10.3e %6d %6s\n", m.name(), label.substr(0, 13),
        m.lambda(), m.seed(), m.split() == v1::SPLIT_VALIDATION ? "val" : "train", m.train_loss(),
        m.validation_loss(), m.steps(),
        m.has_test_accuracy() ? absl::StrFormat("%.4f", m.test_accuracy()) : "-");
  }
  return absl::OkStatus();
}

absl::Status Model(Context& c, const std::string& name) {
  auto m = c.client->GetModel(ModelNameOf(name));
  if (!m.ok()) return m.status();
  if (c.json) {
    std::cout << ToJson(*m);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat("%s\n  task %s, lambda %g, seed %d, val loss %.3e\n", m->name(),
                               m->task(), m->lambda(), m->seed(), m->validation_loss());
  for (int l = 0; l < m->layers_size(); ++l) {
    auto w = Client::DecodeTensor(m->layers(l).weight());
    if (!w.ok()) return w.status();
    double norm = 0;
    for (float v : w->data) norm += double{v} * v;
    std::cout << absl::StrFormat("  layer %d: weight [%s], |W|_F = %.4f\n", l,
                                 absl::StrJoin(w->shape, ", "), std::sqrt(norm));
  }
  return absl::OkStatus();
}

absl::Status ZooCommand(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() == 3 && p[1] == "get") return ZooGet(c, p[2]);
  if (p.size() == 3 && p[1] == "delete") {
    absl::Status s = c.client->DeleteZoo(ZooNameOf(p[2]));
    if (s.ok()) {
      c.Say(absl::StrCat("deleted ", ZooNameOf(p[2])),
            absl::StrCat("{\"deleted\": \"", ZooNameOf(p[2]), "\"}"));
    }
    return s;
  }
  if (p.size() == 3 && p[1] == "share") {
    // --readers a,b replaces the list; --readers "" makes the zoo private again.
    if (!c.args.Has("readers")) throw UsageError{"zoo share ZOO --readers USER[,USER...] (\"\" = private)"};
    std::vector<std::string> readers =
        absl::StrSplit(c.args.Get("readers"), ',', absl::SkipWhitespace());
    auto z = c.client->ShareZoo(ZooNameOf(p[2]), readers);
    if (!z.ok()) return z.status();
    c.Say(absl::StrCat(z->name(), " readers: ",
                       z->readers().empty() ? "(none: private)" : absl::StrJoin(z->readers(), ", ")),
          ToJson(*z));
    return absl::OkStatus();
  }
  throw UsageError{"usage: gradzoo zoo get|delete|share ZOO"};
}

absl::Status Export(Context& c) {
  if (c.args.positional.size() != 3) throw UsageError{"usage: gradzoo export ZOO FILE"};
  auto archive = c.client->ExportZoo(ZooNameOf(c.args.positional[1]));
  if (!archive.ok()) return archive.status();
  absl::Status s = svg::WriteFile(c.args.positional[2], *archive);
  if (s.ok()) {
    c.Say(absl::StrCat("wrote ", c.args.positional[2], " (", archive->size(), " bytes)"),
          absl::StrCat("{\"file\": \"", c.args.positional[2], "\", \"bytes\": ", archive->size(), "}"));
  }
  return s;
}

absl::Status Import(Context& c) {
  if (c.args.positional.size() != 3) throw UsageError{"usage: gradzoo import ZOO FILE"};
  std::ifstream in(c.args.positional[2], std::ios::binary);
  if (!in) throw UsageError{absl::StrCat("cannot read ", c.args.positional[2])};
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto zoo = c.client->ImportZoo(ZooNameOf(c.args.positional[1]), bytes);
  if (!zoo.ok()) return zoo.status();
  if (c.json) {
    std::cout << ToJson(*zoo);
  } else {
    std::cout << "imported " << zoo->name() << ": " << zoo->model_count() << " models\n";
  }
  return absl::OkStatus();
}

absl::Status NeedArgs(const Context& c, size_t n, const char* usage) {
  if (c.args.positional.size() != n) throw UsageError{usage};
  return absl::OkStatus();
}

const bool kRegistered =
    RegisterSwitch("weights") &&
    RegisterCommand({"info", 10, "  info                         server version, device, BLAS, limits\n",
                     [](Context& c) { return Info(c); }}) &&
    RegisterCommand({"health", 11,
                     "  health                       standard gRPC health check (exit 0 when SERVING)\n",
                     [](Context& c) { return Health(c); }}) &&
    RegisterCommand({"zoos", 20, "  zoos                         list zoos\n",
                     [](Context& c) { return Zoos(c); }}) &&
    RegisterCommand({"zoo", 21,
                     "  zoo get ZOO                  one zoo's spec and size          (ZOO: zoos/NAME or NAME)\n"
                     "  zoo delete ZOO               delete a zoo and its stored models\n"
                     "  zoo share ZOO --readers U,U  let these users read it (\"\" = private; owner or admin)\n",
                     ZooCommand}) &&
    RegisterCommand({"models", 22,
                     "  models ZOO [--weights]       list a zoo's models (task, lambda, seed, split, losses)\n",
                     [](Context& c) {
                       (void)NeedArgs(c, 2, "usage: gradzoo models ZOO [--weights]");
                       return Models(c, c.args.positional[1]);
                     }}) &&
    RegisterCommand({"model", 23,
                     "  model MODEL                  one model with its weights       (MODEL: zoos/Z/models/M or Z/M)\n",
                     [](Context& c) {
                       (void)NeedArgs(c, 2, "usage: gradzoo model MODEL");
                       return Model(c, c.args.positional[1]);
                     }}) &&
    RegisterCommand({"export", 24,
                     "  export ZOO FILE              write the zoo as a data-only archive (checksummed)\n",
                     Export}) &&
    RegisterCommand({"import", 25,
                     "  import ZOO FILE              create zoo ZOO from an archive written by export\n",
                     Import});

}  // namespace
}  // namespace gradzoo::client::cli
