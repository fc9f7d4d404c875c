#include "client/cli/cli.h"

#include <algorithm>
#include <set>

#include "google/protobuf/util/json_util.h"

namespace gradzoo::client::cli {

namespace {
std::map<std::string, Command>& Registry() {
  static auto* r = new std::map<std::string, Command>();
  return *r;
}
std::set<std::string>& Switches() {
  static auto* s = new std::set<std::string>{"json", "help"};
  return *s;
}
}  // namespace

bool IsSwitch(const std::string& name) { return Switches().count(name) > 0; }
bool RegisterSwitch(const std::string& name) { return Switches().insert(name).second; }

bool RegisterCommand(Command command) {
  std::string name = command.name;
  Registry()[name] = std::move(command);
  return true;
}

std::vector<const Command*> Commands() {
  std::vector<const Command*> out;
  for (const auto& [name, c] : Registry()) out.push_back(&c);
  std::stable_sort(out.begin(), out.end(),
                   [](const Command* a, const Command* b) { return a->order < b->order; });
  return out;
}

const Command* FindCommand(const std::string& name) {
  auto it = Registry().find(name);
  return it == Registry().end() ? nullptr : &it->second;
}

absl::Status FailAboveStatus() { return absl::AbortedError("fail-above"); }
bool IsFailAbove(const absl::Status& s) {
  return s.code() == absl::StatusCode::kAborted && s.message() == "fail-above";
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "-h") s = "--help";
    if (s.rfind("--", 0) == 0 && s.size() > 2) {
      std::string key = s.substr(2), value;
      if (auto eq = key.find('='); eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (!IsSwitch(key)) {
        if (i + 1 >= argc) throw UsageError{absl::StrCat("--", key, " needs a value")};
        value = argv[++i];
      }
      a.flags[key] = value;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

std::string ZooNameOf(const std::string& s) { return s.rfind("zoos/", 0) == 0 ? s : "zoos/" + s; }
std::string ModelNameOf(const std::string& s) {
  if (s.rfind("zoos/", 0) == 0) return s;
  auto slash = s.find('/');
  if (slash == std::string::npos) return s;  // let the server explain
  return absl::StrCat("zoos/", s.substr(0, slash), "/models/", s.substr(slash + 1));
}
std::string JobNameOf(const std::string& s) {
  return s.rfind("trainingJobs/", 0) == 0 ? s : "trainingJobs/" + s;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

const char* StateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED:
      return "QUEUED";
    case v1::JOB_STATE_RUNNING:
      return "RUNNING";
    case v1::JOB_STATE_SUCCEEDED:
      return "SUCCEEDED";
    case v1::JOB_STATE_FAILED:
      return "FAILED";
    case v1::JOB_STATE_CANCELLING:
      return "CANCELLING";
    case v1::JOB_STATE_CANCELLED:
      return "CANCELLED";
    default:
      return "UNSPECIFIED";
  }
}

const char* CodeName(absl::StatusCode c) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                 "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

}  // namespace gradzoo::client::cli
