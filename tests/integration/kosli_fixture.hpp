// Shared by the tests that talk to Kosli end to end (verify, the HTTPS client,
// rotation, expiry, the schedule, their configuration): the real daemon and
// client against a test-only HTTPS stand-in for Kosli's API
// (tests/support/kosli_standin.py) with a CA made at test time.
#pragma once

#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/standin.hpp"

namespace kosli::test {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Waits for `condition` (checked every 100 ms) for at most `limit`.
inline bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

inline json key_entry(const std::string& key, const std::string& org = "acme", const std::string& key_id = "k1") {
  return {{"key", key}, {"org", org}, {"service_account", "ci"}, {"key_id", key_id}, {"expires_at", 0}};
}

class KosliTest : public ::testing::Test {
 protected:
  void SetUp() override { pki_ = make_test_pki(dir_.path()); }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string config_path() const { return dir_.path() + "/config.json"; }
  void write_config(const std::string& text) const { std::ofstream(config_path()) << text; }

  // Every daemon here ignores a proxy the environment may set, unless a test says otherwise.
  static std::vector<std::pair<std::string, std::string>> no_proxy(
      std::vector<std::pair<std::string, std::string>> env = {}) {
    env.insert(env.begin(), {{"HTTPS_PROXY", ""}, {"https_proxy", ""}, {"NO_PROXY", ""}, {"no_proxy", ""}});
    return env;
  }
  std::vector<std::string> memory_daemon_args() const { return {"--backend", "memory", "--ca-file", pki_.ca_cert}; }

  RunResult store(const std::string& profile, const std::string& key, const std::string& host,
                  std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"store", "--profile", profile, "--org", "acme", "--host", host};
    args.insert(args.end(), extra.begin(), extra.end());
    return cred(socket(), args, RunOptions{key + "\n"});
  }

  json state(const KosliStandIn& standin) const { return json::parse(standin.state(pki_.ca_cert)); }

  // The stand-in's requests whose path contains `part`.
  std::vector<json> requests(const KosliStandIn& standin, const std::string& method, const std::string& part) const {
    std::vector<json> out;
    const json now = state(standin);
    for (const auto& r : now["requests"]) {
      if (r["method"] == method && r["path"].get<std::string>().find(part) != std::string::npos) out.push_back(r);
    }
    return out;
  }

  // The key the stand-in accepts under `key_id`.
  std::string key_with_id(const KosliStandIn& standin, const std::string& key_id) const {
    const json now = state(standin);
    for (const auto& k : now["keys"]) {
      if (k["key_id"] == key_id) return k["key"];
    }
    return {};
  }

  json show(const std::string& profile) {
    const auto r = cred(socket(), {"show", "--profile", profile, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  std::string token(const std::string& profile) {
    const auto r = cred(socket(), {"token", "--profile", profile});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.empty() ? r.out : r.out.substr(0, r.out.size() - 1);
  }

  // Neither the daemon's log nor its audit log holds any of `keys`.
  void expect_no_keys_logged(const Daemon& daemon, const std::vector<std::string>& keys) const {
    for (const auto& key : keys) {
      if (key.empty()) continue;
      EXPECT_EQ(daemon.log().find(key), std::string::npos) << "the daemon's log holds a key";
      if (!daemon.audit_path().empty()) {
        EXPECT_EQ(daemon.audit_log().find(key), std::string::npos) << "the audit log holds a key";
      }
    }
  }

  TempDir dir_;
  TestPki pki_;
};

}  // namespace kosli::test
