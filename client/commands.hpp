// kosli-cred's commands. Each returns the process exit code or throws CliError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/daemon_client.hpp"

namespace kosli::client {

struct StoreArgs {
  std::string profile;
  std::string org;
  std::string region;  // "eu" or "us"; empty when --host is given
  std::string host;
  std::string kind = "service-account";
  std::string expires_at;  // RFC 3339, empty for none
  std::string description;
  std::string service_account;
  std::string key_id;
};

struct RotateArgs {
  std::string profile;
  bool via_api = false;
  bool no_verify = false;
  std::optional<int> grace_hours;  // with --via-api; Kosli's limit is 1 to 720
  std::string expires_at;          // RFC 3339, empty for none
  std::string key_id;              // by hand: the new key's id in Kosli
};

int cmd_store(DaemonClient& daemon, const StoreArgs& args);
// Asks Kosli (through the daemon) whether the profile's key works: exit 0 valid,
// 7 rejected, 1 valid but without access to the profile's org.
int cmd_verify(DaemonClient& daemon, const std::string& profile, bool json);
// Replaces the profile's key: a new key from stdin (checked with Kosli first,
// unless --no-verify), or a rotation through Kosli's API (--via-api).
int cmd_rotate(DaemonClient& daemon, const RotateArgs& args);
int cmd_token(DaemonClient& daemon, const std::string& profile, bool json);
int cmd_header(DaemonClient& daemon, const std::string& profile);
// Replaces the process with `command`; returns only when that fails.
int cmd_exec(DaemonClient& daemon, const std::string& profile, std::vector<std::string> command);
// With several profiles (of one org), in the Kosli CLI's multi-host mode:
// KOSLI_HOST and KOSLI_API_TOKEN list each profile's host and token in order.
int cmd_exec(DaemonClient& daemon, const std::vector<std::string>& profiles, std::vector<std::string> command);
int cmd_list(DaemonClient& daemon, bool json);
int cmd_show(DaemonClient& daemon, const std::string& profile, bool json);
int cmd_erase(DaemonClient& daemon, const std::string& profile);
int cmd_status(DaemonClient& daemon, bool json);
int cmd_lock(DaemonClient& daemon);

}  // namespace kosli::client
