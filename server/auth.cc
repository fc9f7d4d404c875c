#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace gradzoo::server {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMinTokenChars = 32;
constexpr size_t kMaxTokenChars = 1024;
constexpr size_t kMinDistinctChars = 10;
constexpr size_t kMaxUserChars = 64;
constexpr absl::string_view kHealthPrefix = "/grpc.health.v1.Health/";
constexpr absl::string_view kAdvice =
    "send call metadata 'authorization: Bearer <token>' with a token from the server's tokens "
    "file (gradzoo CLI: --token or GRADZOO_TOKEN)";

bool ValidUser(absl::string_view u) {
  if (u.empty() || u.size() > kMaxUserChars || !absl::ascii_isalnum(u[0])) return false;
  for (char c : u) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// Why `token` is unacceptable, or empty. Never mentions the token itself.
std::string TokenProblem(absl::string_view t) {
  if (t.size() < kMinTokenChars) {
    return absl::StrCat("token too short (", t.size(), " characters, need at least ",
                        kMinTokenChars, "; generate one with `openssl rand -hex 32`)");
  }
  if (t.size() > kMaxTokenChars) {
    return absl::StrCat("token too long (more than ", kMaxTokenChars, " characters)");
  }
  std::set<char> distinct;
  for (char c : t) {
    if (c < 0x21 || c > 0x7e) return "token has a character outside printable ASCII";
    distinct.insert(c);
  }
  if (distinct.size() < kMinDistinctChars) {
    return absl::StrCat("token too weak (only ", distinct.size(),
                        " distinct characters; generate one with `openssl rand -hex 32`)");
  }
  return "";
}

std::array<unsigned char, 32> Sha256(absl::string_view s) {
  std::array<unsigned char, 32> d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

// The token of "Bearer <token>", or an error.
absl::StatusOr<absl::string_view> BearerToken(absl::string_view value) {
  constexpr absl::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      value[kScheme.size()] != ' ') {
    return absl::UnauthenticatedError(absl::StrCat(
        "malformed authorization metadata: expected 'Bearer <token>'; ", kAdvice));
  }
  absl::string_view token = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (token.empty()) {
    return absl::UnauthenticatedError(absl::StrCat("empty bearer token; ", kAdvice));
  }
  return token;
}

absl::string_view SliceView(const grpc_slice& s) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(s)),
                           GRPC_SLICE_LENGTH(s));
}

// The core transport hook. Runs on a gRPC thread for every call, before the call is matched to
// a method; CheckCall is cheap and non-blocking, so `cb` is called synchronously.
void ProcessMetadata(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md,
                     size_t num_md, grpc_process_auth_metadata_done_cb cb, void* user_data) {
  const auto* self = static_cast<const std::shared_ptr<const Authenticator>*>(state);
  absl::string_view path;
  std::vector<absl::string_view> authorization;
  for (size_t i = 0; i < num_md; ++i) {
    const absl::string_view key = SliceView(md[i].key);
    if (key == ":path") path = SliceView(md[i].value);
    if (key == "authorization") authorization.push_back(SliceView(md[i].value));
  }
  const absl::Status s = (*self)->CheckCall(path, authorization);
  if (s.ok()) {
    cb(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
  } else {
    const std::string message(s.message());
    cb(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(s.code()),
       message.c_str());  // copied by gRPC
  }
}

void DestroyState(void* state) {
  delete static_cast<std::shared_ptr<const Authenticator>*>(state);
}

}  // namespace

absl::string_view RoleName(Role role) { return role == Role::kAdmin ? "admin" : "user"; }

absl::StatusOr<std::shared_ptr<const Authenticator>> Authenticator::Load(
    const AuthOptions& options) {
  const std::string& path = options.tokens_file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read tokens file ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("tokens file ", path, " is not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens file ", path, " is larger than ", kMaxFileBytes, " bytes"));
  }
  if ((st.st_mode & 077) != 0) {
    spdlog::warn("tokens file {} has mode {:04o}: other users may read it; chmod 600 it", path,
                 st.st_mode & 07777);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read tokens file ", path, ": ", std::strerror(errno)));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto result = FromText(text, path);
  OPENSSL_cleanse(text.data(), text.size());
  if (result.ok()) {
    spdlog::info("authentication on: {} users from {}", (*result)->user_count(), path);
  }
  return result;
}

absl::StatusOr<std::shared_ptr<const Authenticator>> Authenticator::FromText(
    absl::string_view text, absl::string_view source) {
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens file ", source, " is larger than ", kMaxFileBytes, " bytes"));
  }
  std::vector<Entry> entries;
  std::map<std::string, std::pair<Role, int>> users;  // user -> role, first line
  std::map<Digest, int> lines_of_token;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);  // also drops a CR of CRLF files
    if (line.empty() || line[0] == '#') continue;
    const auto where = [&] { return absl::StrCat("tokens file ", source, " line ", line_no, ": "); };
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "expected 3 fields 'user token role', found ", f.size()));
    }
    if (!ValidUser(f[0])) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "bad user name (1-", kMaxUserChars,
          " characters of [A-Za-z0-9._-], starting with a letter or digit)"));
    }
    const std::string problem = TokenProblem(f[1]);
    if (!problem.empty()) return absl::InvalidArgumentError(absl::StrCat(where(), problem));
    Role role;
    if (f[2] == "user") {
      role = Role::kUser;
    } else if (f[2] == "admin") {
      role = Role::kAdmin;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "role must be 'user' or 'admin', not '", f[2], "'"));
    }
    const Digest digest = Sha256(f[1]);
    auto [tok, fresh_token] = lines_of_token.emplace(digest, line_no);
    if (!fresh_token) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "token already used on line ", tok->second,
                       " (every token must be unique)"));
    }
    const std::string user(f[0]);
    auto [u, fresh_user] = users.emplace(user, std::make_pair(role, line_no));
    if (!fresh_user && u->second.first != role) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "user ", user, " has role ",
                                                     RoleName(u->second.first), " on line ",
                                                     u->second.second));
    }
    entries.push_back(Entry{digest, Identity{user, role}});
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens file ", source, " has no entries ('user token role' per line)"));
  }
  return std::shared_ptr<const Authenticator>(new Authenticator(std::move(entries), users.size()));
}

absl::StatusOr<Identity> Authenticator::Authenticate(absl::string_view authorization) const {
  absl::StatusOr<absl::string_view> token = BearerToken(authorization);
  if (!token.ok()) return token.status();
  const Digest d = Sha256(*token);
  // Visit every entry whatever matches, so the time does not depend on which one did.
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    const bool equal = CRYPTO_memcmp(e.digest.data(), d.data(), d.size()) == 0;
    match = equal ? &e : match;
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError(absl::StrCat("invalid token; ", kAdvice));
  }
  return match->identity;
}

absl::StatusOr<Identity> Authenticator::IdentityOf(const grpc::ServerContextBase& context) const {
  const auto range = context.client_metadata().equal_range("authorization");
  std::vector<absl::string_view> values;
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  if (values.empty()) {
    return absl::UnauthenticatedError(absl::StrCat("missing token: ", kAdvice));
  }
  if (values.size() > 1) {
    return absl::UnauthenticatedError("more than one authorization metadata entry");
  }
  return Authenticate(values[0]);
}

bool Authenticator::IsExempt(absl::string_view method_path) {
  return absl::StartsWith(method_path, kHealthPrefix) && method_path.size() > kHealthPrefix.size();
}

absl::Status Authenticator::CheckCall(absl::string_view method_path,
                                      const std::vector<absl::string_view>& authorization) const {
  if (IsExempt(method_path)) return absl::OkStatus();
  absl::Status s;
  if (authorization.empty()) {
    s = absl::UnauthenticatedError(absl::StrCat("missing token: ", kAdvice));
  } else if (authorization.size() > 1) {
    s = absl::UnauthenticatedError("more than one authorization metadata entry");
  } else {
    s = Authenticate(authorization[0]).status();
  }
  if (!s.ok()) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("auth: rejected a call to {}: {}", std::string(method_path),
                  std::string(s.message()));
  }
  return s;
}

void Authenticator::Install(std::shared_ptr<const Authenticator> self,
                            grpc_server_credentials* creds) {
  grpc_auth_metadata_processor p;
  p.process = ProcessMetadata;
  p.destroy = DestroyState;
  p.state = new std::shared_ptr<const Authenticator>(std::move(self));
  grpc_server_credentials_set_auth_metadata_processor(creds, p);
}

absl::StatusOr<Identity> IdentityOf(const Authenticator* auth,
                                    const grpc::CallbackServerContext* context) {
  if (auth == nullptr) return Identity{"local", Role::kAdmin};
  return auth->IdentityOf(*context);
}

}  // namespace gradzoo::server
