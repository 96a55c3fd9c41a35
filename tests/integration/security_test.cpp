// What a user, or someone trying to take a key, can observe of the defenses of the
// daemon and the client: the audit trail, locked memory, no core dumps, per-profile allowed
// programs, and a configuration file that says exactly what is wrong with it.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

extern char** environ;

namespace kosli::test {
namespace {

using nlohmann::json;

// A field of /proc/<pid>/status such as "VmLck" (in kB).
long proc_status_kb(pid_t pid, const std::string& field) {
  std::istringstream status(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}

// The soft and hard "Max core file size" of /proc/<pid>/limits ("0", "unlimited", …).
std::pair<std::string, std::string> core_limit(pid_t pid) {
  std::istringstream lines(read_file("/proc/" + std::to_string(pid) + "/limits"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Max core file size", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max core file size").size()));
    std::string soft, hard;
    fields >> soft >> hard;
    return {soft, hard};
  }
  return {};
}

class SecurityTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string config_path() const { return dir_.path() + "/config.json"; }

  void write_config(const std::string& text) const { std::ofstream(config_path()) << text; }

  RunResult store(const std::string& profile, const std::string& key) {
    return cred(socket(), {"store", "--profile", profile, "--org", "acme"}, RunOptions{key});
  }

  RunResult check_config(const std::string& text) {
    write_config(text);
    return run({bin("kosli-credd"), "--check-config", "--config", config_path()});
  }

  TempDir dir_;
};

TEST_F(SecurityTest, AuditLogRecordsWhoTookWhichKeyAndNeverTheKey) {
  Daemon daemon(socket(), {"--backend", "memory", "--log-level", "trace"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-audit", key).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"token", "--profile", "it-audit"}).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"header", "--profile", "it-audit"}).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"token", "--profile", "it-nobody"}).exit_code, 3);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"erase", "--profile", "it-audit"}).exit_code, 0);

  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "store", "ok"), 1u);
  EXPECT_EQ(count_records(records, "token", "issued"), 2u);
  EXPECT_EQ(count_records(records, "token", "not_found"), 1u);
  EXPECT_EQ(count_records(records, "lock", "ok"), 1u);
  EXPECT_EQ(count_records(records, "erase", "ok"), 1u);
  for (const auto& r : records) {
    EXPECT_TRUE(r.contains("time") && r.contains("pid") && r.contains("uid")) << r.dump();
    EXPECT_EQ(r["uid"], ::geteuid());
    // token and header are bin/kosli-cred's own; it hands the rest to its full command line.
    const bool fast = r["event"] == "token";
    EXPECT_EQ(r["exe"], real_path(fast ? bin("kosli-cred") : KOSLI_TEST_FULL_CLI)) << r.dump();
    // kosli-cred asked for the test program that ran it.
    EXPECT_EQ(r["requester"], real_path("/proc/self/exe")) << r.dump();
    EXPECT_EQ(r["requester_pid"], ::getpid());
  }
  EXPECT_EQ(daemon.audit_log().find(key), std::string::npos) << "the audit log holds the key";
  EXPECT_EQ(daemon.log().find(key), std::string::npos) << "the daemon's log holds the key";

  struct stat st {};
  ASSERT_EQ(::stat(daemon.audit_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SecurityTest, DefaultAuditLogIsPrivateUnderXdgStateHome) {
  const std::string state = dir_.path() + "/state";
  Daemon daemon(socket(), {"--backend", "memory"}, {{"XDG_STATE_HOME", state}});
  ASSERT_EQ(store("it-default-audit", unique_key()).exit_code, 0);
  const std::string path = state + "/kosli-cred/audit.log";
  struct stat file {}, dir {};
  ASSERT_EQ(::stat(path.c_str(), &file), 0) << "no audit log at " << path;
  ASSERT_EQ(::stat((state + "/kosli-cred").c_str(), &dir), 0);
  EXPECT_EQ(file.st_mode & 0777, 0600u);
  EXPECT_EQ(dir.st_mode & 0777, 0700u);
  EXPECT_EQ(count_records(audit_records(daemon.audit_log(path)), "store", "ok"), 1u);
}

TEST_F(SecurityTest, KeysLiveInLockedMemoryOfAProcessThatCannotDumpCore) {
  Daemon daemon(socket(), {"--backend", "memory"});
  ASSERT_EQ(store("it-locked", unique_key()).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"token", "--profile", "it-locked"}).exit_code, 0);
  EXPECT_GT(proc_status_kb(daemon.pid(), "VmLck"), 0) << read_file("/proc/" + std::to_string(daemon.pid()) + "/status");
  const auto [soft, hard] = core_limit(daemon.pid());
  EXPECT_EQ(soft, "0");
  EXPECT_EQ(hard, "0");
}

TEST_F(SecurityTest, TheClientWritesNoCoreFileButTheCommandItRunsKeepsItsLimit) {
  rlimit ours{};
  ASSERT_EQ(::getrlimit(RLIMIT_CORE, &ours), 0);
  if (ours.rlim_max != RLIM_INFINITY && ours.rlim_max < 4096 * 1024) {
    GTEST_SKIP() << "the hard core-file limit here is too low to show a limit being kept";
  }
  Daemon daemon(socket(), {"--backend", "memory"});
  ASSERT_EQ(store("it-core", unique_key()).exit_code, 0);
  // Both run with a soft limit of 4096 blocks, so a 0 can only be kosli-cred's doing.
  // (AddressSanitizer sets it to 0 itself before main unless told not to.)
  const std::string with_limit =
      "ulimit -S -c 4096 && ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}disable_coredump=0\" exec \"$@\"";

  // kosli-cred waiting for git's request on stdin, a key possibly on its way.
  int input[2];
  ASSERT_EQ(::pipe2(input, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input[0], STDIN_FILENO);
  const std::vector<std::string> args{"sh", "-c", with_limit, "sh", bin("git-credential-kosli"), "--socket", socket(),
                                      "get"};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, "/bin/sh", &actions, child_spawn_attributes(), argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(input[0]);
  ASSERT_EQ(spawned, 0);
  // Ready once blocked reading stdin: read(2) on fd 0 is "0 0x0 …" in /proc/<pid>/syscall.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool reading = false;
  while (!reading && std::chrono::steady_clock::now() < deadline) {
    reading = read_file("/proc/" + std::to_string(pid) + "/syscall").rfind("0 0x0 ", 0) == 0;
    if (!reading) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // no event says "now reading"
  }
  EXPECT_TRUE(reading) << "git-credential-kosli never waited for its request";
  const auto [soft, hard] = core_limit(pid);
  EXPECT_EQ(soft, "0");
  EXPECT_NE(hard, "0") << "the hard limit stays, for the command exec runs";
  ASSERT_EQ(::write(input[1], "\n", 1), 1);
  ::close(input[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << status;

  // The command `exec` runs has the limit kosli-cred was given.
  const auto ran = run({"sh", "-c", with_limit, "sh", bin("kosli-cred"), "--socket", socket(), "exec", "--profile",
                        "it-core", "--", "sh", "-c", "ulimit -S -c"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "4096\n");
}

TEST_F(SecurityTest, OnlyAllowedProgramsGetATokenForAGuardedProfile) {
  const std::string shell = real_path("/bin/sh");
  write_config(R"({"profiles": {"it-guarded": {"allowed_clients": [")" + shell + R"("]}}})");
  Daemon daemon(socket(), {"--backend", "memory", "--config", config_path()});
  const std::string key = unique_key();
  // A guarded profile is stored from a listed program too.
  const auto stored = run({"/bin/sh", "-c", "\"$0\" --socket \"$1\" store --profile it-guarded --org acme; exit $?",
                           bin("kosli-cred"), socket()},
                          RunOptions{key});
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  ASSERT_EQ(store("it-open", key).exit_code, 0);

  // Run by the allowed shell (not exec'd by it: the trailing command keeps sh the parent).
  const auto allowed = run({"/bin/sh", "-c", "\"$0\" --socket \"$1\" token --profile it-guarded; exit $?",
                            bin("kosli-cred"), socket()});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_EQ(allowed.out, key + "\n");

  // Run by this test program, which is not on the list.
  const auto refused = cred(socket(), {"token", "--profile", "it-guarded"});
  EXPECT_EQ(refused.exit_code, 5);
  EXPECT_TRUE(refused.out.empty());
  EXPECT_NE(refused.err.find(real_path("/proc/self/exe")), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("profiles.it-guarded.allowed_clients"), std::string::npos) << refused.err;

  // curl is its own requesting program, and is not listed either.
  const auto by_curl = run({"curl", "-s", "--unix-socket", socket(), "http://localhost/v1/profiles/it-guarded/token"});
  EXPECT_EQ(json::parse(by_curl.out)["error"]["code"], "policy_refused");
  EXPECT_EQ(by_curl.out.find(key), std::string::npos);

  // A profile without a list is served to any program of the user.
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-open"}).exit_code, 0);

  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "token", "refused"), 2u);
  bool curl_recorded = false;
  for (const auto& r : records) {
    if (r["event"] == "token" && r["result"] == "refused") {
      EXPECT_NE(r["detail"].get<std::string>().find("may not have a token"), std::string::npos) << r.dump();
      curl_recorded |= r["requester"].get<std::string>().find("curl") != std::string::npos;
    }
  }
  EXPECT_TRUE(curl_recorded);
  EXPECT_EQ(daemon.audit_log().find(key), std::string::npos);
}

TEST_F(SecurityTest, AFailingAuditLogIsLoudButTokensAreStillServed) {
  const std::string blocker = dir_.path() + "/not-a-directory";
  std::ofstream(blocker) << "x";
  Daemon daemon(socket(), {"--backend", "memory", "--audit-log", blocker + "/audit.log"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-noaudit", key).exit_code, 0);
  const auto token = cred(socket(), {"token", "--profile", "it-noaudit"});
  EXPECT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out, key + "\n");
  EXPECT_NE(daemon.log().find("AUDIT LOG"), std::string::npos) << daemon.log();
}

TEST_F(SecurityTest, ABadConfigurationNamesTheKey) {
  struct Case {
    const char* text;
    const char* names;
  };
  for (const Case& c : {Case{R"({"cache_ttl_s": "ten"})", "'cache_ttl_s'"},
                        Case{R"({"cache_ttl_s": -1})", "'cache_ttl_s'"},
                        Case{R"({"bogus": 1})", "'bogus'"},
                        Case{R"({"git_erase": "shred"})", "'git_erase'"},
                        Case{R"({"allow_uids": ["root"]})", "'allow_uids'"},
                        Case{R"({"profiles": {"ci": {"allowed_clients": "curl"}}})", "'profiles.ci.allowed_clients'"},
                        Case{R"({"profiles": {"ci": {"allowed_clients": ["curl"]}}})", "'profiles.ci.allowed_clients'"},
                        Case{R"({"profiles": {"ci": {"colour": "red"}}})", "'profiles.ci.colour'"},
                        Case{R"({"profiles": {"Bad Name": {}}})", "'profiles.Bad Name'"},
                        Case{R"([1, 2])", "one JSON object"},
                        Case{R"({"cache_ttl_s": )", "not valid JSON"}}) {
    const auto r = check_config(c.text);
    EXPECT_EQ(r.exit_code, 1) << c.text;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << c.text << " -> " << r.err;
  }
  const auto good = check_config(R"({"cache_ttl_s": 60, "idle_exit_s": 0, "audit_log": "journal",
      "allow_uids": [1001], "git_erase": "delete", "ca_file": "/etc/ssl/certs/ca-certificates.crt",
      "profiles": {"ci": {"allowed_clients": ["/usr/bin/kosli"]}}})");
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_NE(good.out.find("OK"), std::string::npos) << good.out;

  // The daemon itself refuses to start on a bad file.
  write_config(R"({"bogus": true})");
  const auto start = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--config", config_path()});
  EXPECT_EQ(start.exit_code, 1);
  EXPECT_NE(start.err.find("'bogus'"), std::string::npos) << start.err;
  EXPECT_NE(::access(socket().c_str(), F_OK), 0) << "a daemon with a bad config must not listen";
}

TEST_F(SecurityTest, FlagsOverrideTheConfigurationFile) {
  write_config(R"({"cache_ttl_s": 0})");
  Daemon daemon(socket(), {"--backend", "memory", "--config", config_path(), "--cache-ttl", "300"});
  ASSERT_EQ(store("it-ttl", unique_key()).exit_code, 0);
  const auto status = json::parse(cred(socket(), {"status", "--json"}).out);
  EXPECT_EQ(status["cached"], 1) << "--cache-ttl 300 should have won over cache_ttl_s: 0";
}

}  // namespace
}  // namespace kosli::test
