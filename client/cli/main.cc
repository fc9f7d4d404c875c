// gradzoo: the command-line client of gradzoo-server. Run `gradzoo --help` for the tour.
// Commands live in cmd_*.cc and register themselves (client/cli/cli.h).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
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
  --token-file FILE    file holding the access token (servers with --tokens-file); the
                       token may also come from $GRADZOO_TOKEN, or --token TOKEN (visible
                       to other local users in the process list: prefer the file or env)
  --tls-ca FILE        connect with TLS, trusting the PEM CA bundle FILE
  --tls-cert FILE      mutual TLS: this client's PEM certificate chain (with --tls-key)
  --tls-key FILE       mutual TLS: the PEM private key of --tls-cert
  --tls-server-name N  check the server certificate against N instead of the host

Commands
)";

constexpr char kUsageTail[] = R"(
Exit status: 0 ok, 1 the server answered an error (its code and message go to stderr),
2 bad command line, 3 a --fail-above check failed.
)";

std::string ReadFileOrThrow(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError{absl::StrCat("--", flag, ": cannot read ", path)};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The token from --token, --token-file or $GRADZOO_TOKEN (first set wins); "" for none.
std::string TokenFrom(const Args& args) {
  if (args.Has("token")) return args.Get("token");
  if (args.Has("token-file")) {
    std::string t = ReadFileOrThrow("token-file", args.Get("token-file"));
    // One token; surrounding blanks and the trailing newline of `echo > file` are dropped.
    return std::string(absl::StripAsciiWhitespace(t));
  }
  const char* env = std::getenv("GRADZOO_TOKEN");
  return env ? std::string(absl::StripAsciiWhitespace(env)) : std::string();
}

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
    o.token = TokenFrom(args);
    if (args.Has("tls-ca")) {
      o.tls_root_certs = ReadFileOrThrow("tls-ca", args.Get("tls-ca"));
      o.use_tls = true;
    }
    if (args.Has("tls-cert")) o.tls_client_cert = ReadFileOrThrow("tls-cert", args.Get("tls-cert"));
    if (args.Has("tls-key")) o.tls_client_key = ReadFileOrThrow("tls-key", args.Get("tls-key"));
    if (args.Has("tls-server-name")) o.tls_server_name = args.Get("tls-server-name");
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
