// gradzoo: the command-line client of gradzoo-server. Run `gradzoo --help` for the tour.
// Commands live in cmd_*.cc and register themselves (client/cli/cli.h).
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/str_join.h"
#include "client/cli/cli.h"

namespace gradzoo::client::cli {
namespace {

constexpr char kUsageHead[] = R"(gradzoo: look inside populations of small neural networks.

Usage: gradzoo [--server HOST:PORT] [--json] [--timeout SECONDS] COMMAND [ARGS]

Global flags
  --server HOST:PORT   server address (default $GRADZOO_SERVER or 127.0.0.1:50551)
  --json               machine-readable output (one JSON document on stdout)
  --timeout SECONDS    deadline of each call (default 30)

Commands
)";

constexpr char kUsageTail[] = R"(
Exit status: 0 ok, 1 the server answered an error (its code and message go to stderr),
2 bad command line, 3 a --fail-above check failed.
)";

std::string Usage() {
  std::string u = kUsageHead;
  for (const Command* c : Commands()) u += c->help;
  return u + kUsageTail;
}

int Main(int argc, char** argv) {
  try {
    Args args = Parse(argc, argv);
    if (args.Has("help") || args.positional.empty() || args.positional[0] == "help") {
      std::cout << Usage();
      return args.positional.empty() && !args.Has("help") ? 2 : 0;
    }
    const Command* command = FindCommand(args.positional[0]);
    if (command == nullptr) {
      throw UsageError{absl::StrCat("unknown command \"", args.positional[0], "\"")};
    }
    const char* env = std::getenv("GRADZOO_SERVER");
    const std::string server = args.Get("server", env && *env ? env : "127.0.0.1:50551");
    Client::Options o;
    if (args.Has("timeout")) o.timeout = absl::Seconds(ParseOne<double>("timeout", args.Get("timeout")));
    auto client = Client::Connect(server, o);
    if (!client.ok()) {
      std::cerr << "error: " << client.status().message() << "\n";
      return 2;
    }
    Context ctx;
    ctx.args = std::move(args);
    ctx.client = client->get();
    ctx.json = ctx.args.Has("json");
    absl::Status s = command->run(ctx);
    if (IsFailAbove(s)) return 3;
    if (!s.ok()) {
      std::cerr << "error: " << CodeName(s.code()) << ": " << s.message() << "\n";
      return 1;
    }
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "gradzoo: " << e.message << "\n(see gradzoo --help)\n";
    return 2;
  }
}

}  // namespace
}  // namespace gradzoo::client::cli

int main(int argc, char** argv) { return gradzoo::client::cli::Main(argc, argv); }
