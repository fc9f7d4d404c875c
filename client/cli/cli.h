// Infrastructure of the gradzoo CLI: argument parsing, output helpers and a registry of
// commands. Each command lives in a cmd_*.cc file and registers itself:
//
//   const bool kRegistered = RegisterCommand({"zoos", 20, "  zoos   list zoos\n", Zoos});
//
// `order` sorts the commands in --help. A command reads its own positional arguments from
// Context::args.positional (positional[0] is the command name).
#ifndef GRADZOO_CLIENT_CLI_CLI_H_
#define GRADZOO_CLIENT_CLI_CLI_H_

#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/gradzoo_client.h"
#include "google/protobuf/message.h"

namespace gradzoo::client::cli {

// A malformed command line: printed with a pointer to --help, exit status 2.
struct UsageError {
  std::string message;
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // --name value, or "" for switches

  bool Has(const std::string& k) const { return flags.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = flags.find(k);
    return it == flags.end() ? def : it->second;
  }
};

// Flags that take no value. Every other --flag takes the next argument or --flag=value.
bool IsSwitch(const std::string& name);
// Adds switches (commands call this from their registration).
bool RegisterSwitch(const std::string& name);
Args Parse(int argc, char** argv);

// "1,2,3" -> numbers; UsageError naming --flag on anything else.
template <typename T>
std::vector<T> ParseList(const std::string& flag, const std::string& text) {
  std::vector<T> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    T v;
    bool ok;
    if constexpr (std::is_same_v<T, double>) {
      ok = absl::SimpleAtod(part, &v);
    } else {
      ok = absl::SimpleAtoi(part, &v);
    }
    if (!ok) throw UsageError{absl::StrCat("--", flag, ": \"", part, "\" is not a number")};
    out.push_back(v);
  }
  return out;
}

template <typename T>
T ParseOne(const std::string& flag, const std::string& text) {
  auto v = ParseList<T>(flag, text);
  if (v.size() != 1) throw UsageError{absl::StrCat("--", flag, " takes one number")};
  return v[0];
}

// Resource names from the short forms users type ("demo" -> "zoos/demo", "demo/m0000" ->
// "zoos/demo/models/m0000", "job-1" -> "trainingJobs/job-1").
std::string ZooNameOf(const std::string& s);
std::string ModelNameOf(const std::string& s);
std::string JobNameOf(const std::string& s);
// Proto message as indented JSON with the .proto field names.
std::string ToJson(const google::protobuf::Message& m);
const char* StateName(v1::JobState s);
const char* CodeName(absl::StatusCode c);

// What a command works with.
struct Context {
  Args args;
  Client* client = nullptr;
  bool json = false;
  // Prints `human`, or `json_text` under --json.
  void Say(const std::string& human, const std::string& json_text) const {
    std::cout << (json ? json_text : human) << "\n";
  }
};

// A CLI command. `help` is its block of the --help text.
struct Command {
  std::string name;
  int order = 100;
  std::string help;
  std::function<absl::Status(Context&)> run;
};
bool RegisterCommand(Command command);
// Registered commands, sorted by order.
std::vector<const Command*> Commands();
const Command* FindCommand(const std::string& name);

// Follows job `name` (zoo or embedder training) until it ends: a progress bar on a terminal,
// plain lines otherwise, nothing with --json; then the final job as a line (or JSON).
// INTERNAL for a FAILED job (with its error), CANCELLED for a cancelled one.
absl::Status WatchJob(Context& c, const std::string& name);

// The status a command returns when a --fail-above style check fails (exit status 3).
absl::Status FailAboveStatus();
bool IsFailAbove(const absl::Status& s);

}  // namespace gradzoo::client::cli

#endif  // GRADZOO_CLIENT_CLI_CLI_H_
