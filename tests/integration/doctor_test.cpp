// kosli-cred doctor, as a user meets it: each broken link (a loose socket
// directory, a stopped daemon, a locked keyring, an expired key, a git that
// would hand the key to another helper) is a FAIL line with the command that
// fixes it, and exit 1; a healthy setup exits 0; --json is one valid JSON array
// whatever fails. git, the configuration and the HOME it reads are the test's own.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"
#include "tests/integration/kosli_fixture.hpp"
#include "tests/integration/standin.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;
using Env = std::vector<std::pair<std::string, std::string>>;

// A git reading only `home`'s gitconfig, no system one and no repository
// (doctor runs in `home`); no configuration file; no daemon started on demand.
Env doctor_env(const std::string& home, Env extra = {}) {
  Env e = {{"HOME", home},
           {"XDG_CONFIG_HOME", home + "/config"},
           {"GIT_CONFIG_NOSYSTEM", "1"},
           {"GIT_CONFIG_GLOBAL", home + "/gitconfig"},
           {"KOSLI_CRED_AUTOSTART", "0"}};
  e.insert(e.end(), extra.begin(), extra.end());
  return e;
}

// A systemctl that answers as where no user systemd runs (the sandbox, CI), so
// a developer's own units do not change what the tests see.
std::string no_systemd_path() {
  static const TempDir dir;
  static const std::string path = [] {
    std::ofstream(dir.path() + "/systemctl") << "#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n";
    ::chmod((dir.path() + "/systemctl").c_str(), 0755);
    return dir.path() + ":" + std::getenv("PATH");
  }();
  return path;
}

RunResult run_doctor(const std::string& socket, const std::string& home, std::vector<std::string> args = {},
                     Env extra = {}) {
  if (std::none_of(extra.begin(), extra.end(), [](const auto& kv) { return kv.first == "PATH"; })) {
    extra.emplace_back("PATH", no_systemd_path());
  }
  std::vector<std::string> argv = {"sh", "-c", "cd \"$0\" && exec \"$@\"", home, bin("kosli-cred"), "--socket",
                                   socket, "doctor"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, RunOptions{{}, doctor_env(home, std::move(extra))});
}

// doctor --json: one JSON array of {check, status, detail, fix}, whatever it
// found, and exit 1 exactly when one of them failed.
json doctor_json(const std::string& socket, const std::string& home, std::vector<std::string> args = {},
                 Env extra = {}) {
  args.insert(args.begin(), "--json");
  const auto r = run_doctor(socket, home, std::move(args), std::move(extra));
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
json find(const json& report, const std::string& name) {
  for (const auto& c : report) {
    if (c["check"] == name) return c;
  }
  return nullptr;
}

class DoctorTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string socket_dir() const { return dir_.path() + "/kosli-cred"; }
  std::string gitconfig() const { return home_.path() + "/gitconfig"; }
  Env env() const { return doctor_env(home_.path()); }
  RunResult doctor(std::vector<std::string> args = {}, Env extra = {}) const {
    return run_doctor(socket(), home_.path(), std::move(args), std::move(extra));
  }
  json doctor_json(Env extra = {}) const { return kosli::test::doctor_json(socket(), home_.path(), {}, std::move(extra)); }

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
  ASSERT_EQ(store("it-doctor-soon", rfc3339(now_s() + 3 * 86400 + 3600)).exit_code, 0);
  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
  EXPECT_EQ(line_of(r.out, "daemon").rfind("ok", 0), 0u) << r.out;
  EXPECT_EQ(line_of(r.out, "expiry:it-doctor-ok").rfind("ok", 0), 0u) << r.out;
  // Warnings are allowed: a key within the warning window, with the rotate that replaces it …
  const std::string soon = line_of(r.out, "expiry:it-doctor-soon");
  EXPECT_EQ(soon.rfind("warn", 0), 0u) << r.out;
  EXPECT_NE(soon.find("expires in 3 days"), std::string::npos) << soon;
  EXPECT_NE(soon.find("fix: kosli-cred rotate --profile it-doctor-soon"), std::string::npos) << soon;
  // … and the memory backend, whose keys are lost when the daemon stops.
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

  const auto failed = lock_default_collection(bus);
  ASSERT_FALSE(failed) << failed->err;

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

// A directory others may read but not write: the client still talks there, but
// a daemon of the user's would refuse to start in it, so the fix says both.
TEST_F(DoctorTest, AStoppedDaemonsFixFirstTightensADirectoryItWouldRefuse) {
  ASSERT_EQ(::mkdir(socket_dir().c_str(), 0700), 0);
  ASSERT_EQ(::chmod(socket_dir().c_str(), 0750), 0);
  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(line_of(r.out, "socket").rfind("ok", 0), 0u) << r.out;
  const std::string line = line_of(r.out, "daemon");
  EXPECT_NE(line.find("mode 0750"), std::string::npos) << line;
  EXPECT_NE(line.find("fix: chmod 700 " + socket_dir() + ", then: kosli-credd"), std::string::npos) << line;
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

TEST_F(DoctorTest, OnlyHelpersGitWouldAskForAKosliHostCount) {
  Daemon daemon(socket(), {"--backend", "memory"});
  // Another host's helper is not asked for a Kosli host; one for *.kosli.com is.
  std::ofstream(gitconfig()) << "[credential \"https://github.com\"]\n\thelper = store\n"
                                "[credential \"https://*.kosli.com\"]\n\thelper = cache\n";
  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string line = line_of(r.out, "git");
  EXPECT_EQ(line.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(line.find("https://app.kosli.com would also go to helper 'cache'"), std::string::npos) << line;
  // As git has it (git config --get-urlmatch agrees): "*" is one label, so not app.us.kosli.com.
  EXPECT_EQ(line.find("https://app.us.kosli.com"), std::string::npos) << line;
  EXPECT_EQ(line.find("'store'"), std::string::npos) << line;
}

TEST_F(DoctorTest, AConfigurationWithAnUnknownKeyFailsNamingIt) {
  Daemon daemon(socket(), {"--backend", "memory"});
  ASSERT_EQ(::mkdir((home_.path() + "/config").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((home_.path() + "/config/kosli-cred").c_str(), 0700), 0);
  std::ofstream(home_.path() + "/config/kosli-cred/config.json") << R"({"lock_onn": []})";
  const auto r = doctor();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string line = line_of(r.out, "config");
  EXPECT_EQ(line.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(line.find("'lock_onn' is not a known setting"), std::string::npos) << line;
  EXPECT_NE(line.find("fix: fix the file it names, then check it: kosli-credd --check-config"), std::string::npos)
      << line;
  EXPECT_EQ(find(doctor_json(), "config")["status"], "fail");
}

// Where the user's systemd answers (a stand-in systemctl here), a socket unit
// that is installed but neither enabled nor listening is a FAIL with the
// systemctl that fixes it, and so is how to start a stopped daemon.
TEST_F(DoctorTest, AnInstalledSocketUnitThatDoesNotListenFailsWithTheSystemctlThatFixesIt) {
  TempDir stub_dir;
  const std::string stub = stub_dir.path() + "/systemctl";
  std::ofstream(stub) << "#!/bin/sh\n"
                         "[ \"$1\" = --user ] || exit 1\n"
                         "case \"$2 $3\" in\n"
                         "  show-environment*) echo HOME=/x ;;\n"
                         "  'is-enabled kosli-credd.socket') echo disabled; exit 1 ;;\n"
                         "  'is-active kosli-credd.socket') echo inactive; exit 3 ;;\n"
                         "  *) exit 1 ;;\n"
                         "esac\n";
  ASSERT_EQ(::chmod(stub.c_str(), 0755), 0);
  const Env path = {{"PATH", stub_dir.path() + ":" + std::getenv("PATH")}};
  const auto r = doctor({}, path);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("warn  systemd: kosli-credd.socket is disabled, not enabled; fix: systemctl --user enable --now "
                       "kosli-credd.socket"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("FAIL  systemd: kosli-credd.socket is inactive: nothing listens; fix: systemctl --user restart "
                       "kosli-credd.socket"),
            std::string::npos)
      << r.out;
  EXPECT_NE(line_of(r.out, "daemon").find("fix: systemctl --user enable --now kosli-credd.socket"), std::string::npos)
      << r.out;
  // Without one, the units are skipped with a note, and skipped is not failed.
  const json report = doctor_json();
  EXPECT_EQ(find(report, "systemd")["status"], "skip") << report;
}

class DoctorOnlineTest : public KosliTest {
 protected:
  TempDir home_;
};

// --online asks Kosli about every key: a rejected one is a FAIL with the rotate
// that replaces it; an accepted one is ok. Without --online, Kosli is not asked.
TEST_F(DoctorOnlineTest, OnlineAsksKosliAboutEachKey) {
  const std::string good = unique_key(), unknown = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(good)}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  const std::string later = rfc3339(now_s() + 200 * 86400);
  ASSERT_EQ(store("it-good", good, standin.url(), {"--expires-at", later}).exit_code, 0);
  ASSERT_EQ(store("it-bad", unknown, standin.url(), {"--expires-at", later}).exit_code, 0);
  const auto verifies = [&] { return requests(standin, "GET", "/environments/").size(); };
  const std::size_t before = verifies();

  const json offline = doctor_json(socket(), home_.path());
  EXPECT_TRUE(find(offline, "online:it-bad").is_null()) << offline;
  EXPECT_EQ(verifies(), before) << "doctor without --online asked Kosli";

  const auto r = run_doctor(socket(), home_.path(), {"--online"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(line_of(r.out, "online:it-good").rfind("ok", 0), 0u) << r.out;
  const std::string bad = line_of(r.out, "online:it-bad");
  EXPECT_EQ(bad.rfind("FAIL", 0), 0u) << r.out;
  EXPECT_NE(bad.find("rejected"), std::string::npos) << bad;
  EXPECT_NE(bad.find("fix: kosli-cred rotate --profile it-bad"), std::string::npos) << bad;
  // What Kosli said is remembered: the next doctor shows it without asking.
  const json after = doctor_json(socket(), home_.path());
  EXPECT_EQ(find(after, "verified:it-bad")["status"], "fail") << after;
  EXPECT_EQ(find(after, "verified:it-good")["status"], "ok") << after;
  EXPECT_EQ(daemon.log().find(unknown), std::string::npos);
}

}  // namespace
}  // namespace kosli::test
