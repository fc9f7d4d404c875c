// `gradzoo demo`: the seeds' tour end to end against a running server. It runs the other
// commands of this CLI (so every step is also a command a user can type, printed before it
// runs), writes every plot into one folder, and an index.html that shows them.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "client/cli/cli.h"
#include "client/cli/svg.h"
#include "client/embedding_client.h"

namespace gradzoo::client::cli {
namespace {

struct Step {
  std::string title;
  std::string why;
  std::vector<std::string> argv;  // a gradzoo command line, without the program name
  std::vector<std::string> images;  // files (relative to the output folder) it writes
};

// Runs one step as `gradzoo ARGV...` would, sharing the client and --json setting.
absl::Status RunStep(const Context& parent, const Step& step, const std::string& out) {
  std::vector<std::string> argv = {"gradzoo"};
  for (const std::string& a : step.argv) {
    argv.push_back(absl::StrReplaceAll(a, {{"{out}", out}}));
  }
  std::cout << "\n== " << step.title << "\n$ " << absl::StrJoin(argv, " ") << "\n" << std::flush;
  std::vector<char*> raw;
  for (std::string& a : argv) raw.push_back(a.data());
  Context ctx;
  ctx.args = Parse(static_cast<int>(raw.size()), raw.data());
  ctx.client = parent.client;
  ctx.json = false;
  const Command* command = FindCommand(ctx.args.positional.at(0));
  if (command == nullptr) return absl::InternalError("demo step names an unknown command");
  return command->run(ctx);
}

std::string Html(const std::vector<Step>& steps, const std::vector<bool>& ok) {
  std::string h =
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>gradzoo demo</title>"
      "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
      "code{background:#f3f3f3;padding:2px 4px}img{max-width:100%;border:1px solid #ddd;"
      "margin:.5em 0}h2{margin-top:1.6em}.fail{color:#b00}</style></head><body>"
      "<h1>gradzoo: a tour of the seeds</h1><p>Each section is one <code>gradzoo</code> "
      "command against the server; run it yourself to reproduce the figure.</p>";
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    absl::StrAppend(&h, "<h2>", svg::XmlEscape(s.title), "</h2><p>", svg::XmlEscape(s.why),
                    "</p><p><code>gradzoo ", svg::XmlEscape(absl::StrJoin(s.argv, " ")),
                    "</code></p>");
    if (!ok[i]) absl::StrAppend(&h, "<p class=\"fail\">this step failed (see the terminal)</p>");
    for (const std::string& img : s.images) {
      absl::StrAppend(&h, "<img src=\"", svg::XmlEscape(img), "\" alt=\"", svg::XmlEscape(img),
                      "\">");
    }
  }
  return h + "</body></html>\n";
}

absl::Status Demo(Context& c) {
  const std::string out = c.args.Get("out", "demo-out");
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) throw UsageError{absl::StrCat("cannot create ", out, ": ", ec.message())};
  const bool retrain = c.args.Has("retrain");
  auto exists = [&](const std::string& zoo) { return c.client->GetZoo("zoos/" + zoo).ok(); };
  if (retrain) {
    EmbeddingClient(*c.client).DeleteEmbedder("embedders/poly-embedder").IgnoreError();
    for (const char* z : {"field-demo", "lambda-sweep", "poly-families"}) {
      (void)c.client->DeleteZoo(std::string("zoos/") + z);
    }
  }

  std::vector<Step> steps;
  steps.push_back({"The server", "Version, device and the BLAS LibTorch runs on.", {"info"}, {}});
  if (!exists("field-demo")) {
    steps.push_back({"Train a mul2 network (seed 001)",
                     "y1 = x1*x2, y2 = x3*x4 on [0,1]^4: one 4-64-64-2 ReLU network per seed, "
                     "trained as one batched job.",
                     {"train", "field-demo", "--lambdas", "0", "--seeds", "0,1", "--hidden",
                      "64,64", "--steps", "4000", "--batch", "512", "--lr", "0.003",
                      "--train-examples", "8192"},
                     {}});
  }
  steps.push_back(
      {"Input-gradient vector field vs theory",
       "ReLU nets are piecewise linear: the field is constant on each linear region and "
       "approximates the exact gradient (x2, x1). The check fails if the mean relative error "
       "exceeds 0.3.",
       {"field", "field-demo/m0000", "--grid", "0:0:1:21,1:0:1:21", "--theory", "--svg",
        "{out}/field_y1.svg", "--fail-above", "0.3"},
       {"field_y1.svg"}});
  steps.push_back({"Exact linear regions of the x1-x2 slice (the polytope lens)",
                   "Every unit's hyperplane splits the plane; within a polygon the gradient is "
                   "constant (colour = gradient direction).",
                   {"partition", "field-demo/m0000", "--slice", "0:0:1,1:0:1", "--svg",
                    "{out}/partition.svg"},
                   {"partition.svg"}});
  steps.push_back({"Unique gradients (seed 001's splintering)",
                   "Regions met on a grid; per output, the unique gradients coincide with the "
                   "unique combinations.",
                   {"regions", "field-demo/m0000", "--grid", "0:0:1:64,1:0:1:64", "--per-layer"},
                   {}});
  if (!exists("lambda-sweep")) {
    steps.push_back({"Train the lambda sweep (seed 001's soft mixing)",
                     "mul2 with y1 = (1-l) x1x2 + l x3x4, y2 = (1-l) x3x4 + l x1x2, l in "
                     "{0, ..., 0.5} x 5 seeds, 4-32-32-2 ReLU: 30 models in one batched job.",
                     {"train", "lambda-sweep", "--lambdas", "0,0.1,0.2,0.3,0.4,0.5", "--seeds",
                      "1,2,3,4,5", "--validation-seeds", "5", "--hidden", "32,32", "--steps",
                      "1000", "--batch", "256", "--lr", "0.004", "--train-examples", "4096"},
                     {}});
  }
  steps.push_back({"Task orthogonality against lambda",
                   "The functional score (1 - mean |cos| of the two tasks' gradients, "
                   "restricted to directions the layer can move) falls as the tasks mix.",
                   {"orthogonality", "--zoo", "lambda-sweep", "--svg",
                    "{out}/orthogonality_vs_lambda.svg"},
                   {"orthogonality_vs_lambda.svg"}});
  steps.push_back({"The mixed field (lambda = 0.5)",
                   "At lambda = 0.5 both outputs compute the same function: d y1 / d(x1, x2) "
                   "halves.",
                   {"field", "lambda-sweep/m0025", "--grid", "0:0:1:21,1:0:1:21", "--theory",
                    "--svg", "{out}/field_lambda05.svg"},
                   {"field_lambda05.svg"}});
  steps.push_back({"Layer-by-layer computational graph (seed 000/001)",
                   "Nodes are units; edges the mean normalised gradient between adjacent layers.",
                   {"graph", "field-demo/m0000", "--max-edges", "400", "--svg",
                    "{out}/graph.svg"},
                   {"graph.svg"}});

  if (!exists("poly-families")) {
    steps.push_back({"Train a zoo of functions (seed 003)",
                     "poly1d: 6 families of random degree 3-4 polynomials on [-1,1], 8 seeds "
                     "each (seeds 6 and 7 held out for validation), 1-16-16-1 ReLU: 48 models "
                     "in one batched job.",
                     {"train", "poly-families", "--task", "poly1d", "--families", "6", "--seeds",
                      "0,1,2,3,4,5,6,7", "--validation-seeds", "6,7", "--hidden", "16,16",
                      "--steps", "1500", "--batch", "128", "--lr", "0.005", "--train-examples",
                      "512"},
                     {}});
  }
  if (!EmbeddingClient(*c.client).GetEmbedder("embedders/poly-embedder").ok()) {
    steps.push_back({"Train the cloze embedder (seed 003)",
                     "A set encoder over (x, gradient, mask) points learns to fill in masked "
                     "unique gradients of the training-split networks, while its embeddings "
                     "are asked to sit as far apart as the networks' functions do "
                     "(--distance-weight 10; 0 = the cloze loss alone).",
                     {"embedder", "train", "poly-embedder", "--zoo", "poly-families", "--steps",
                      "2400", "--distance-weight", "10", "--wait"},
                     {}});
  }
  steps.push_back({"The embedding space",
                   "Every network as one vector (2-D PCA), coloured by the family that trained "
                   "it: networks computing the same function land together.",
                   {"embedding-map", "poly-embedder", "--zoo", "poly-families", "--out",
                    "{out}/embedding_map.svg"},
                   {"embedding_map.svg"}});
  steps.push_back({"Does the embedding know the function?",
                   "Linear and 5-NN probes of the family on validation seeds, and the "
                   "separation (between-family over held-out within-family variance), next to "
                   "the server's baselines (raw gradient profile, weight statistics, untrained "
                   "encoder).",
                   {"probe", "poly-embedder", "--zoo", "poly-families", "--target", "label"},
                   {}});

  std::vector<bool> ok;
  absl::Status first_error;
  for (const Step& s : steps) {
    absl::Status st = RunStep(c, s, out);
    ok.push_back(st.ok() || IsFailAbove(st));
    if (!st.ok()) {
      std::cerr << "step failed: " << (IsFailAbove(st) ? "check above its limit" : st.ToString())
                << "\n";
      if (first_error.ok()) first_error = st;
    }
  }
  const std::string index = out + "/index.html";
  absl::Status w = svg::WriteFile(index, Html(steps, ok));
  if (!w.ok()) return w;
  std::cout << "\ndemo: wrote " << index << " (open it in a browser)\n";
  return first_error;
}

const bool kRegistered =
    RegisterSwitch("retrain") &&
    RegisterCommand({"demo", 5,
                     "  demo [--out DIR] [--retrain]  the seeds' tour: trains, queries, plots; "
                     "DIR/index.html\n",
                     Demo});

}  // namespace
}  // namespace gradzoo::client::cli
