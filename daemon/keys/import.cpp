#include "daemon/keys/import.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/api/messages.hpp"
#include "proto/fingerprint.hpp"
#include "daemon/keys/stored_profile.hpp"
#include "daemon/ops/audit_log.hpp"
#include "proto/host.hpp"
#include "proto/limits.hpp"
#include "proto/secret.hpp"

extern char** environ;

namespace kosli::daemon {
namespace {

// The Kosli CLI's own variables.
constexpr const char* kTokenVar = "KOSLI_API_TOKEN";
constexpr const char* kOrgVar = "KOSLI_ORG";
constexpr const char* kHostVar = "KOSLI_HOST";

// Copies the variable `name`, removes it from the environment and zeroes the
// bytes of every "name=value" entry: /proc/<pid>/environ shows the block the
// process started with, which unsetenv alone leaves untouched.
Secret take_env(const char* name) {
  const std::size_t name_len = std::strlen(name);
  std::vector<std::pair<char*, std::size_t>> entries;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, name, name_len) == 0 && (*e)[name_len] == '=') {
      entries.emplace_back(*e, std::strlen(*e));
    }
  }
  if (entries.empty()) return Secret();
  std::string_view value(entries.front().first + name_len + 1, entries.front().second - name_len - 1);
  // CI secrets often end with the newline of the file or echo they came from.
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.remove_suffix(1);
  Secret copy(value);
  ::unsetenv(name);
  for (const auto& [entry, length] : entries) wipe(entry, length);
  return copy;
}

std::string variables_hint() {
  return std::string(" (from ") + kTokenVar + ", " + kOrgVar + " and " + kHostVar + ")";
}

}  // namespace

std::optional<std::string> read_import_text(const std::string& path, std::string& text, bool quiet) {
  const bool from_stdin = path == "-";
  const std::string what = from_stdin ? "standard input" : path;
  const int fd = from_stdin ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open " + what + ": " + std::strerror(errno);
  struct stat st {};
  if (!quiet && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
    spdlog::warn("{} holds API keys and other users may read it; make it private (chmod 600)", what);
  }
  text.assign(kMaxImportBytes + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      if (!from_stdin) ::close(fd);
      wipe(text);
      return "cannot read " + what + ": " + std::strerror(err);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (!from_stdin) ::close(fd);
  if (got > kMaxImportBytes) {
    wipe(text);
    return what + " is larger than " + std::to_string(kMaxImportBytes / 1024) + " KiB; that is not a list of profiles";
  }
  text.resize(got);
  return std::nullopt;
}

ImportResult import_environment() {
  Secret token = take_env(kTokenVar);
  const Secret org = take_env(kOrgVar);
  const Secret host = take_env(kHostVar);
  if (token.empty()) {
    return std::string("--import-env: ") + kTokenVar + " is not set or empty; put the CI secret that holds the Kosli API key in it";
  }
  if (org.empty()) return std::string("--import-env: ") + kOrgVar + " is not set; set it to your Kosli organisation";
  if (token.reveal().find(',') != std::string_view::npos || host.reveal().find(',') != std::string_view::npos) {
    return std::string("--import-env: ") + kHostVar + " or " + kTokenVar +
           " lists several hosts; --import-env takes one, give several with --import FILE";
  }

  PutProfileRequest draft;
  draft.org = std::string(org.reveal());
  draft.host = host.empty() ? std::string(kEuHost) : std::string(host.reveal());
  draft.kind = KeyKind::service_account;
  draft.api_key = std::move(token);
  std::string body = serialize_put_profile(draft);
  auto parsed = parse_put_profile(body);  // validates, normalises the host, wipes `body`
  if (auto* error = std::get_if<CodecError>(&parsed)) return "--import-env: " + error->message + variables_hint();
  std::vector<ImportedProfile> profiles;
  profiles.push_back({std::string(kDefaultProfile), std::move(std::get<PutProfileRequest>(parsed))});
  return profiles;
}

ImportResult import_file(const std::string& path) {
  const std::string what = path == "-" ? "--import -" : "--import " + path;
  std::string text;
  if (auto problem = read_import_text(path, text)) return what + ": " + *problem;
  return parse_import_list(text, what);
}

ImportResult parse_import_list(std::string& text, const std::string& what) {
  // Parsed as a SecretJson: each buffer that held a key is wiped when freed.
  SecretJson list;
  if (auto problem = parse_secret_json(text, list)) return what + ": " + *problem;
  if (!list.is_array()) {
    return what + ": expected a JSON list of profiles: [{\"name\":…,\"org\":…,\"api_key\":…}, …]";
  }
  std::vector<ImportedProfile> profiles;
  std::set<std::string, std::less<>> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto& item = list[i];
    std::string where = what + ": profile " + std::to_string(i + 1);
    if (!item.is_object()) return where + " is not a JSON object";
    const auto name_field = item.find("name");
    if (name_field == item.end() || !name_field->is_string()) return where + " has no \"name\"";
    const std::string name(name_field->get_ref<const WipingString&>());
    if (auto problem = profile_name_problem(name)) return where + ": " + *problem;
    where += " ('" + name + "')";
    if (!names.insert(name).second) return where + " appears twice";
    item.erase("name");
    if (!item.contains("host")) item["host"] = WipingString(kEuHost);
    if (!item.contains("kind")) item["kind"] = WipingString(kind_name(KeyKind::service_account));
    auto parsed = put_profile_from_json(item);
    if (auto* error = std::get_if<CodecError>(&parsed)) return where + ": " + error->message;
    profiles.push_back({name, std::move(std::get<PutProfileRequest>(parsed))});
  }
  if (profiles.empty()) return what + ": the list holds no profile";
  return profiles;
}

std::optional<std::string> store_imported(Store& store, const std::vector<ImportedProfile>& profiles,
                                          AuditLog& audit, std::string_view source) {
  const Peer self = this_process();
  for (const auto& [name, request] : profiles) {
    const ProfileMeta meta = meta_from_put(name, request, store.persistent());
    auto stored = store.put(meta, request.api_key, std::chrono::steady_clock::now() + limits::kStoreCallDeadline);
    if (auto* error = std::get_if<StoreError>(&stored)) {
      audit.record(AuditRecord{"import", name, "error", error->message}, self);
      return "cannot store the imported profile '" + name + "': " + error->message;
    }
    const std::string detail = std::string(std::get<bool>(stored) ? "replaced " : "created ") + meta.fingerprint +
                               " from " + std::string(source);
    audit.record(AuditRecord{"import", name, "ok", detail}, self);
    spdlog::info("import: profile '{}' (org {}, {}, {})", name, meta.org, meta.host, meta.fingerprint);
  }
  return std::nullopt;
}

std::optional<std::string> import_profiles(Store& store, bool from_environment,
                                           const std::optional<std::string>& file, AuditLog& audit) {
  for (const bool from_env : {true, false}) {
    if (from_env ? !from_environment : !file) continue;
    const std::string source = from_env ? "the environment" : *file == "-" ? "stdin" : *file;
    auto imported = from_env ? import_environment() : import_file(*file);
    if (auto* problem = std::get_if<std::string>(&imported)) {
      audit.record(AuditRecord{"import", {}, "refused", *problem}, this_process());
      return std::move(*problem);
    }
    auto problem = store_imported(store, std::get<std::vector<ImportedProfile>>(imported), audit, source);
    if (problem) return problem;
  }
  return std::nullopt;
}

}  // namespace kosli::daemon
