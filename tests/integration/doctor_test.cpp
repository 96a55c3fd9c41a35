// kosli-cred doctor, as a user meets it: each broken link (a loose socket
// directory, a stopped daemon, a locked keyring, an expired key, a git that
// would hand the key to another helper) is a FAIL line with the command that
// fixes it, and exit 1; a healthy setup exits 0; --json is one valid JSON array
// whatever fails. git, the configuration and the HOME it reads are the test's own.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/standin.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;
using Env = std::vector<std::pair<std::string, std::string>>;

class DoctorTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string socket_dir() const { return dir_.path() + "/kosli-cred"; }
  std::string gitconfig() const { return home_.path() + "/gitconfig"; }

  // A git reading only the test's global configuration, no system one, and no
  // repository (doctor runs in the test's HOME); no configuration file.
  Env env(Env extra = {}) const {
    Env e = {{"HOME", home_.path()},
             {"XDG_CONFIG_HOME", home_.path() + "/config"},
             {"GIT_CONFIG_NOSYSTEM", "1"},
             {"GIT_CONFIG_GLOBAL", gitconfig()},
             {"KOSLI_CRED_AUTOSTART", "0"}};
    e.insert(e.end(), extra.begin(), extra.end());
    return e;
  }

  RunResult doctor(std::vector<std::string> args = {}, Env extra = {}) const {
    std::vector<std::string> argv = {"sh", "-c", "cd \"$0\" && exec \"$@\"", home_.path(), bin("kosli-cred"),
                                     "--socket", socket(), "doctor"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, RunOptions{{}, env(std::move(extra))});
  }

  // doctor --json: one JSON array of {check, status, detail, fix}, whatever it found.
  json doctor_json(Env extra = {}) const {
    const auto r = doctor({"--json"}, std::move(extra));
    const json j = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_array()) << r.out << r.err;
    if (!j.is_array()) return json::array();
    for (const auto& c : j) {
      EXPECT_TRUE(c.contains("check") && c.contains("status") && c.contains("detail") && c.contains("fix")) << c;
      EXPECT_TRUE(c["status"] == "ok" || c["status"] == "warn" || c["status"] == "fail" || c["status"] == "skip") << c;
    }
    const bool any_fail = std::any_of(j.begin(), j.end(), [](const json& c) { return c["status"] == "fail"; });
    EXPECT_EQ(r.exit_code, any_fail ? 1 : 0) << r.out;
    return j;
  }

  // The one check named `name` in a --json report (null when absent).
  static json find(const json& report, const std::string& name) {
    for (const auto& c : report) {
      if (c["check"] == name) return c;
    }
    return nullptr;
  }

  RunResult store(const std::string& profile, const std::string& expires_at) const {
    return cred(socket(), {"store", "--profile", profile, "--org", "acme", "--expires-at", expires_at},
                RunOptions{unique_key() + "\n"});
  }

  TempDir dir_;
  TempDir home_;
};

// The text line of `check`, e.g. "FAIL  socket: …".
std::string line_of(const std::string& out, const std::string& check) {
  for (std::size_t at = 0; at < out.size();) {
    const auto end = out.find('\n', at);
    const std::string line = out.substr(at, end - at);
    if (line.size() > 6 && line.compare(6, check.size() + 1, check + ":") == 0) return line;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return {};
}

TEST_F(DoctorTest, AHealthySetupExitsZero) {
  Daemon daemon(socket(), {"--backend", "memory"});
  ASSERT_EQ(store("it-doctor-ok", rfc3339(now_s() + 200 * 86400)).exit_code, 0);
  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
  EXPECT_EQ(line_of(r.out, "daemon").rfind("ok", 0), 0u) << r.out;
  EXPECT_EQ(line_of(r.out, "expiry:it-doctor-ok").rfind("ok", 0), 0u) << r.out;
  // Warnings are allowed: the memory backend loses keys when the daemon stops.
  EXPECT_EQ(line_of(r.out, "backend").rfind("warn", 0), 0u) << r.out;
  const json report = doctor_json();
  EXPECT_EQ(find(report, "daemon")["status"], "ok") << report;
  EXPECT_EQ(find(report, "git")["status"], "ok") << report;
  EXPECT_EQ(find(report, "config")["status"], "ok") << report;
}

TEST_F(DoctorTest, ALooseSocketDirectoryFailsWithTheChmodThatFixesIt) {
  Daemon daemon(socket(), {"--backend", "memory"});
  ASSERT_EQ(::chmod(socket_dir().c_str(), 0777), 0);
  const auto r = doctor();
  ::chmod(socket_dir().c_str(), 0700);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string line = line_of(r.out, "socket");
  EXPECT_EQ(line.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(line.find("0777"), std::string::npos) << line;
  EXPECT_NE(line.find("fix: chmod go-w " + socket_dir()), std::string::npos) << line;
  // Nothing is asked of a daemon behind a socket that is not to be trusted.
  EXPECT_EQ(line_of(r.out, "daemon").rfind("skip", 0), 0u) << r.out;

  ASSERT_EQ(::chmod(socket_dir().c_str(), 0777), 0);
  const json report = doctor_json();
  ::chmod(socket_dir().c_str(), 0700);
  EXPECT_EQ(find(report, "socket")["status"], "fail") << report;
  EXPECT_EQ(find(report, "socket")["fix"], "chmod go-w " + socket_dir()) << report;
}

TEST_F(DoctorTest, AStoppedDaemonFailsSaysHowToStartOneAndNoneIsStarted) {
  const auto r = doctor({}, {{"KOSLI_CRED_AUTOSTART", "1"}});  // even where commands would start one
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string line = line_of(r.out, "daemon");
  EXPECT_EQ(line.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(line.find("not running"), std::string::npos) << line;
  EXPECT_NE(line.find("fix: kosli-credd"), std::string::npos) << line;
  struct stat st {};
  EXPECT_NE(::lstat(socket().c_str(), &st), 0) << "doctor started a daemon";

  const json report = doctor_json({{"KOSLI_CRED_AUTOSTART", "1"}});
  EXPECT_EQ(find(report, "daemon")["status"], "fail") << report;
  EXPECT_TRUE(find(report, "daemon")["fix"].is_string()) << report;
  EXPECT_NE(::lstat(socket().c_str(), &st), 0) << "doctor --json started a daemon";
}

TEST_F(DoctorTest, ALockedKeyringFailsWithHowToUnlockIt) {
  if (!in_sandbox()) GTEST_SKIP() << "needs gnome-keyring (run under scripts/with-keyring)";
  PrivateKeyring keyring;
  const Env bus = {keyring.bus_env()};
  Daemon daemon(socket(), {"--backend", "secret-service"}, {keyring.bus_env(), {"DBUS_SYSTEM_BUS_ADDRESS", ""}});
  ASSERT_EQ(store("it-doctor-locked", rfc3339(now_s() + 200 * 86400)).exit_code, 0);
  EXPECT_EQ(doctor().exit_code, 0) << "unlocked, all is well";

  const auto alias = run({"gdbus", "call", "--session", "--dest", "org.freedesktop.secrets", "--object-path",
                          "/org/freedesktop/secrets", "--method", "org.freedesktop.Secret.Service.ReadAlias", "default"},
                         RunOptions{{}, bus});
  ASSERT_EQ(alias.exit_code, 0) << alias.err;
  const auto start = alias.out.find('\'') + 1;
  const std::string collection = alias.out.substr(start, alias.out.find('\'', start) - start);
  const auto locked = run({"gdbus", "call", "--session", "--dest", "org.freedesktop.secrets", "--object-path",
                           "/org/freedesktop/secrets", "--method", "org.freedesktop.Secret.Service.Lock",
                           "['" + collection + "']"},
                          RunOptions{{}, bus});
  ASSERT_EQ(locked.exit_code, 0) << locked.err;

  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string line = line_of(r.out, "backend");
  EXPECT_EQ(line.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(line.find("locked"), std::string::npos) << line;
  EXPECT_NE(line.find("fix: unlock it"), std::string::npos) << line;
  const json report = doctor_json();
  EXPECT_EQ(find(report, "backend")["status"], "fail") << report;
  EXPECT_NE(find(report, "backend")["fix"].get<std::string>().find("unlock"), std::string::npos) << report;
}

TEST_F(DoctorTest, AnExpiredKeyFailsWithTheRotateThatReplacesIt) {
  Daemon daemon(socket(), {"--backend", "memory"});
  ASSERT_EQ(store("it-doctor-expired", rfc3339(now_s() - 3 * 86400)).exit_code, 0);
  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string line = line_of(r.out, "expiry:it-doctor-expired");
  EXPECT_EQ(line.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(line.find("expired"), std::string::npos) << line;
  EXPECT_NE(line.find("fix: kosli-cred rotate --profile it-doctor-expired"), std::string::npos) << line;
  const json report = doctor_json();
  EXPECT_EQ(find(report, "expiry:it-doctor-expired")["status"], "fail") << report;
}

TEST_F(DoctorTest, AGitHelperThatWouldStoreTheKeyFailsUntilGitSetup) {
  Daemon daemon(socket(), {"--backend", "memory"});
  ASSERT_EQ(store("it-doctor-git", rfc3339(now_s() + 200 * 86400)).exit_code, 0);
  std::ofstream(gitconfig()) << "[credential]\n\thelper = store\n";
  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string line = line_of(r.out, "git");
  EXPECT_EQ(line.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(line.find("'store'"), std::string::npos) << line;
  EXPECT_NE(line.find("fix: kosli-cred git-setup --global"), std::string::npos) << line;
  EXPECT_EQ(find(doctor_json(), "git")["status"], "fail");

  // What the fix says to type, typed: git asks only kosli, and all is well.
  const auto setup = run({bin("kosli-cred"), "--socket", socket(), "git-setup", "--global"}, RunOptions{{}, env()});
  ASSERT_EQ(setup.exit_code, 0) << setup.err;
  const auto fixed = doctor();
  EXPECT_EQ(fixed.exit_code, 0) << fixed.out << fixed.err;
  EXPECT_NE(line_of(fixed.out, "git").find("ok    git: git asks only kosli"), std::string::npos) << fixed.out;

  // A helper added for every host after the setup would be asked too.
  std::ofstream(gitconfig(), std::ios::app) << "[credential]\n\thelper = cache\n";
  EXPECT_EQ(find(doctor_json(), "git")["status"], "fail");
}

}  // namespace
}  // namespace kosli::test
