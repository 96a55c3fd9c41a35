#include "daemon/keys/import_key.hpp"

#include <utility>

#include "proto/secret.hpp"

namespace kosli::daemon {

ImportResult parse_key_file(std::string& text, const KeyFileProfile& profile, const std::string& what) {
  std::string_view key(text);
  if (!key.empty() && key.back() == '\n') key.remove_suffix(1);
  if (!key.empty() && key.back() == '\r') key.remove_suffix(1);
  if (key.empty()) {
    wipe(text);
    return what + ": the file is empty; it must hold the API key (one line)";
  }
  PutProfileRequest draft;
  draft.org = profile.org;
  draft.host = profile.host;
  draft.kind = profile.kind;
  draft.service_account = profile.service_account;
  draft.key_id = profile.key_id;
  draft.api_key = Secret(key);
  wipe(text);
  std::string body = serialize_put_profile(draft);
  auto parsed = parse_put_profile(body);  // validates the key and the rest, normalises the host, wipes `body`
  if (auto* error = std::get_if<CodecError>(&parsed)) return what + ": " + error->message;
  std::vector<ImportedProfile> profiles;
  profiles.push_back({profile.name, std::move(std::get<PutProfileRequest>(parsed))});
  return profiles;
}

ImportResult import_key_file(const std::string& path, const KeyFileProfile& profile) {
  const std::string what = "--import-key " + path;
  std::string text;
  if (auto problem = read_import_text(path, text)) return what + ": " + *problem;
  return parse_key_file(text, profile, what);
}

}  // namespace kosli::daemon
