// kosli-cred's commands. Each returns the process exit code or throws CliError.
#pragma once

#include <cstdint>
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

int cmd_store(DaemonClient& daemon, const StoreArgs& args);
int cmd_token(DaemonClient& daemon, const std::string& profile, bool json);
int cmd_header(DaemonClient& daemon, const std::string& profile);
// Replaces the process with `command`; returns only when that fails.
int cmd_exec(DaemonClient& daemon, const std::string& profile, std::vector<std::string> command);
int cmd_list(DaemonClient& daemon, bool json);
int cmd_show(DaemonClient& daemon, const std::string& profile, bool json);
int cmd_erase(DaemonClient& daemon, const std::string& profile);
int cmd_status(DaemonClient& daemon, bool json);
int cmd_lock(DaemonClient& daemon);

}  // namespace kosli::client
