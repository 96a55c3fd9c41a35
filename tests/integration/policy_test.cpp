// Who may use a guarded profile, as a user or someone trying to take its key
// can observe it: allowed_clients decided by what really asks (not a program's
// name, not what it was when it connected), on every route that reads or
// changes the profile; other uids reading tokens only; and `kosli-cred exec`
// asking on behalf of the program it runs.
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;

// Another uid with no account (setpriv needs none).
constexpr uid_t kOtherUid = 4301;

bool can_run(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// The last line of curl's output is the status (-w), the rest the body.
HttpAnswer curl_answer(const RunResult& r) {
  const auto nl = r.out.rfind('\n');
  if (nl == std::string::npos) return {0, r.out};
  return {std::atoi(r.out.c_str() + nl + 1), r.out.substr(0, nl)};
}

std::string error_code(const HttpAnswer& a) {
  const auto j = json::parse(a.body, nullptr, false);
  return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
}

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!can_run("/usr/bin/curl")) GTEST_SKIP() << "needs curl";
  }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  std::string config_path() const { return dir_.path() + "/config.json"; }
  void write_config(const json& config) const { std::ofstream(config_path()) << config.dump(); }

  // A profile list for --import: what the daemon stores itself at start, so a
  // guarded profile needs no listed program to be stored.
  std::string import_file(const std::string& profile, const std::string& key) const {
    const std::string file = dir_.path() + "/import.json";
    std::ofstream(file) << json::array({{{"name", profile}, {"org", "acme"}, {"api_key", key}}}).dump();
    ::chmod(file.c_str(), 0600);
    return file;
  }

  // curl (a program on no list) on the socket; `prefix` runs it (setpriv …).
  HttpAnswer http(const std::string& method, const std::string& target, const std::string& body = {},
                  std::vector<std::string> prefix = {}) const {
    std::vector<std::string> argv = std::move(prefix);
    for (const std::string arg : {"/usr/bin/curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X"}) argv.push_back(arg);
    argv.push_back(method);
    if (!body.empty()) {
      for (const std::string arg : {"-H", "Content-Type: application/json", "--data-binary", body.c_str()}) {
        argv.push_back(arg);
      }
    }
    argv.push_back("--unix-socket");
    argv.push_back(socket());
    argv.push_back("http://localhost" + target);
    return curl_answer(run(argv));
  }

  // kosli-cred token, run by `program` (which stays its parent).
  RunResult token_run_by(const std::string& program, const std::string& profile) const {
    return run({program, "-c", "\"$0\" --socket \"$1\" token --profile \"$2\"; exit $?", bin("kosli-cred"),
                socket(), profile});
  }

  TempDir dir_;
};

// The parent exception is for this installation's kosli-cred, by real path: a
// copy of curl named kosli-cred, run by an allowed shell, asks as itself.
TEST_F(PolicyTest, AProgramNamedKosliCredIsNotTheInstalledClient) {
  const std::string shell = real_path("/bin/sh");
  write_config({{"profiles", {{"it-guarded", {{"allowed_clients", {shell}}}}}}});
  const std::string key = unique_key();
  Daemon daemon(socket(),
                {"--backend", "memory", "--config", config_path(), "--import", import_file("it-guarded", key)});

  const auto allowed = token_run_by("/bin/sh", "it-guarded");
  ASSERT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_EQ(allowed.out, key + "\n");

  std::filesystem::create_directory(dir_.path() + "/impostor");
  const std::string impostor = dir_.path() + "/impostor/kosli-cred";
  std::filesystem::copy_file("/usr/bin/curl", impostor);
  ASSERT_EQ(::chmod(impostor.c_str(), 0755), 0);
  const auto r = run({"/bin/sh", "-c",
                      "\"$0\" -s -o - -w '\n%{http_code}' --unix-socket \"$1\" "
                      "http://localhost/v1/profiles/it-guarded/token; exit $?",
                      impostor, socket()});
  const auto answer = curl_answer(r);
  EXPECT_EQ(answer.status, 403) << r.out << r.err;
  EXPECT_EQ(error_code(answer), "policy_refused") << answer.body;
  EXPECT_EQ(r.out.find(key), std::string::npos);

  bool recorded = false;
  for (const auto& rec : audit_records(daemon.audit_log())) {
    if (rec["event"] != "token" || rec["result"] != "refused") continue;
    recorded = true;
    EXPECT_EQ(rec["requester"], real_path(impostor)) << rec.dump();
    EXPECT_EQ(rec["requester_by"], "peer") << rec.dump();
  }
  EXPECT_TRUE(recorded);
}

// An allowed program connects and is served; then it execs a program on no
// list, which inherits the connection and asks again: refused.
// A program that connects, then execs the installed kosli-cred (which waits at
// a prompt) while a child of its sends on the shared connection, naming a
// listed program in Kosli-Exec-Program: the connection was not made by the
// client, so neither the header nor the parent rule is believed.
TEST_F(PolicyTest, AClientExecdOnAnotherProgramsConnectionVouchesForNothing) {
  const std::string python = "/usr/bin/python3";
  if (!can_run(python)) GTEST_SKIP() << "needs /usr/bin/python3";
  const std::string listed = dir_.path() + "/listed";  // never runs
  std::ofstream(listed) << "#!/bin/sh\n";
  ::chmod(listed.c_str(), 0755);
  write_config({{"profiles", {{"it-guarded", {{"allowed_clients", {real_path(listed)}}}}}}});
  const std::string key = unique_key();
  Daemon daemon(socket(),
                {"--backend", "memory", "--config", config_path(), "--import", import_file("it-guarded", key)});

  const std::string script = dir_.path() + "/connect-fork-exec.py";
  std::ofstream(script) << R"PY(import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
os.set_inheritable(s.fileno(), True)
ready_r, ready_w = os.pipe()
stdin_r, stdin_w = os.pipe()
if os.fork() == 0:
    os.close(ready_w)
    os.read(ready_r, 1)  # the parent is about to exec kosli-cred
    # kosli-cred is waiting for its key on stdin by the time this is sent
    import time
    deadline = time.time() + 10
    # (bin/kosli-cred hands store on to libexec/kosli-cred/kosli-cred: either is the installed client)
    while not os.readlink("/proc/%d/exe" % os.getppid()).endswith("/kosli-cred") and time.time() < deadline:
        time.sleep(0.01)
    s.sendall(b"GET /v1/profiles/it-guarded/token HTTP/1.1\r\nHost: localhost\r\nKosli-Exec-Program: "
              + sys.argv[3].encode() + b"\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    sys.stdout.write(data.decode(errors="replace"))
    sys.stdout.flush()
    os.close(stdin_w)  # kosli-cred's prompt gets EOF and exits
    os._exit(0)
os.dup2(stdin_r, 0)
os.close(ready_r)
os.write(ready_w, b"x")
env = dict(os.environ, KOSLI_CRED_SOCKET=sys.argv[1], KOSLI_CRED_AUTOSTART="0")
os.execve(sys.argv[2], ["kosli-cred", "store", "-p", "it-other", "--org", "acme"], env)
)PY";
  const auto r = run({python, script, socket(), bin("kosli-cred"), real_path(listed)});
  EXPECT_NE(r.out.find("HTTP/1.1 403"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(r.out.find(key), std::string::npos) << "a program not on the list got the key";
  for (const auto& rec : audit_records(daemon.audit_log())) {
    if (rec["event"] == "token") EXPECT_EQ(rec["result"], "refused") << rec.dump();
  }
}

TEST_F(PolicyTest, APeerThatExecsAnotherProgramIsRefusedOnItsNextRequest) {
  const std::string python = "/usr/bin/python3";
  if (!can_run(python) || !can_run("/bin/bash")) GTEST_SKIP() << "needs /usr/bin/python3 and /bin/bash";
  write_config({{"profiles", {{"it-guarded", {{"allowed_clients", {real_path(python)}}}}}}});
  const std::string key = unique_key();
  Daemon daemon(socket(),
                {"--backend", "memory", "--config", config_path(), "--import", import_file("it-guarded", key)});

  const std::string script = dir_.path() + "/ask-then-exec.py";
  std::ofstream(script) << R"PY(import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/profiles/it-guarded/token HTTP/1.1\r\nHost: localhost\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(4096)
head, _, body = data.partition(b"\r\n\r\n")
length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
while len(body) < length:
    body += s.recv(4096)
sys.stdout.write(head.split(b"\r\n")[0].decode() + "\n" + body.decode() + "\n")
sys.stdout.flush()
os.dup2(s.fileno(), 9)  # inheritable: the same connection, open in what comes next
os.execv(sys.argv[2], [sys.argv[2], "-c",
    r'printf "GET /v1/profiles/it-guarded/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" >&9; cat <&9'])
)PY";
  const auto r = run({python, script, socket(), "/bin/bash"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("HTTP/1.1 200", 0), 0u) << r.out;  // served while it was python
  const auto second = r.out.find("HTTP/1.1 ", 1);
  ASSERT_NE(second, std::string::npos) << r.out;
  EXPECT_EQ(r.out.compare(second, 12, "HTTP/1.1 403"), 0) << r.out;
  EXPECT_NE(r.out.find("\"policy_refused\"", second), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(key, second), std::string::npos) << "the key went to the program exec'd";

  std::vector<json> tokens;
  for (const auto& rec : audit_records(daemon.audit_log())) {
    if (rec["event"] == "token") tokens.push_back(rec);
  }
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0]["result"], "issued");
  EXPECT_EQ(tokens[0]["requester"], real_path(python));
  EXPECT_EQ(tokens[1]["result"], "refused");
  EXPECT_EQ(tokens[1]["requester"], real_path("/bin/bash"));
  EXPECT_EQ(tokens[0]["pid"], tokens[1]["pid"]);  // one process, two programs
}

// Every route that reads or changes a guarded profile answers 403 to a program
// on no list, and nothing about the profile changes. Its metadata stays open.
TEST_F(PolicyTest, AnUnlistedProgramCanNeitherReplaceNorEraseNorRotateAGuardedProfile) {
  const std::string shell = real_path("/bin/sh");
  const json guard = {{"allowed_clients", {shell}}};
  // git_erase "delete": a reject that got through would erase the profile.
  write_config({{"git_erase", "delete"}, {"profiles", {{"it-guarded", guard}, {"it-new", guard}}}});
  const std::string key = unique_key();
  Daemon daemon(socket(),
                {"--backend", "memory", "--config", config_path(), "--import", import_file("it-guarded", key)});
  const auto before = http("GET", "/v1/profiles/it-guarded");
  ASSERT_EQ(before.status, 200) << before.body;

  const std::string other_key = unique_key();
  const std::string repointed =
      json{{"org", "acme"}, {"api_key", other_key}, {"host", "https://app.us.kosli.com"}, {"kind", "personal"}}.dump();
  struct Case {
    std::string method, target, body;
  };
  for (const auto& c : {Case{"PUT", "/v1/profiles/it-guarded", repointed},
                        Case{"PUT", "/v1/profiles/it-new", repointed},
                        Case{"DELETE", "/v1/profiles/it-guarded", ""},
                        Case{"POST", "/v1/profiles/it-guarded/verify", ""},
                        Case{"POST", "/v1/profiles/it-guarded/rotate", json{{"api_key", other_key}}.dump()},
                        Case{"POST", "/v1/profiles/it-guarded/reject", ""}}) {
    const auto a = http(c.method, c.target, c.body);
    EXPECT_EQ(a.status, 403) << c.method << " " << c.target << ": " << a.body;
    EXPECT_EQ(error_code(a), "policy_refused") << a.body;
    EXPECT_NE(a.body.find("allowed_clients"), std::string::npos) << a.body;
  }
  // The client, run by this test program (on no list), is refused the same way.
  const auto erase = cred(socket(), {"erase", "--profile", "it-guarded"});
  EXPECT_EQ(erase.exit_code, 5) << erase.err;
  EXPECT_NE(erase.err.find("may not erase profile 'it-guarded'"), std::string::npos) << erase.err;

  // Intact: the same host, org and key; no profile created.
  const auto after = http("GET", "/v1/profiles/it-guarded");
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(json::parse(after.body), json::parse(before.body));
  EXPECT_EQ(http("GET", "/v1/profiles/it-new").status, 404);
  EXPECT_EQ(token_run_by("/bin/sh", "it-guarded").out, key + "\n");

  const auto records = audit_records(daemon.audit_log());
  for (const char* event : {"store", "erase", "verify", "rotate", "reject"}) {
    EXPECT_GE(count_records(records, event, "refused"), 1u) << event;
  }
  EXPECT_EQ(daemon.audit_log().find(other_key), std::string::npos);
}

// A uid admitted with --allow-uid reads tokens; it changes nothing unless the
// owner sets allow_uid_access to "manage".
TEST_F(PolicyTest, AnotherUidReadsTokensOnlyUnlessGrantedManage) {
  if (::geteuid() != 0 || !can_run("/usr/bin/setpriv")) GTEST_SKIP() << "needs root and setpriv";
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  const std::string key = unique_key();
  const std::string import = import_file("it-shared", key);
  const std::vector<std::string> as_other = {"setpriv", "--reuid=" + std::to_string(kOtherUid),
                                             "--regid=" + std::to_string(kOtherUid), "--clear-groups"};
  const auto other_cred = [&](std::vector<std::string> args, const std::string& input = {}) {
    std::vector<std::string> argv = as_other;
    argv.push_back(bin("kosli-cred"));
    argv.push_back("--socket");
    argv.push_back(socket());
    argv.push_back("--daemon-uid");  // the daemon runs as root: the other uid trusts it by name
    argv.push_back(std::to_string(::geteuid()));
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, RunOptions{input});
  };
  {
    Daemon daemon(socket(), {"--backend", "memory", "--import", import, "--allow-uid", std::to_string(kOtherUid)});
    const auto token = other_cred({"token", "--profile", "it-shared"});
    ASSERT_EQ(token.exit_code, 0) << token.err << daemon.log();
    EXPECT_EQ(token.out, key + "\n");
    EXPECT_EQ(other_cred({"list"}).exit_code, 0);

    const auto erase = other_cred({"erase", "--profile", "it-shared"});
    EXPECT_EQ(erase.exit_code, 5) << erase.err;
    EXPECT_NE(erase.err.find("\"allow_uid_access\": \"manage\""), std::string::npos) << erase.err;
    EXPECT_EQ(other_cred({"rotate", "--profile", "it-shared"}, unique_key() + "\n").exit_code, 5);
    EXPECT_EQ(other_cred({"store", "--profile", "it-mine", "--org", "acme"}, unique_key() + "\n").exit_code, 5);
    const std::string replacement = json{{"org", "evil"}, {"api_key", unique_key()}, {"kind", "personal"}}.dump();
    const auto put = http("PUT", "/v1/profiles/it-shared", replacement, as_other);
    EXPECT_EQ(put.status, 403) << put.body;
    EXPECT_EQ(http("POST", "/v1/profiles/it-shared/reject", {}, as_other).status, 403);
    EXPECT_EQ(http("POST", "/v1/lock", {}, as_other).status, 403);

    // The owner's key is intact.
    EXPECT_EQ(cred(socket(), {"token", "--profile", "it-shared"}).out, key + "\n");
    const auto records = audit_records(daemon.audit_log());
    EXPECT_GE(count_records(records, "erase", "refused"), 1u);
    EXPECT_GE(count_records(records, "store", "refused"), 2u);
  }
  write_config({{"allow_uid_access", "manage"}});
  Daemon daemon(socket(), {"--backend", "memory", "--import", import, "--allow-uid", std::to_string(kOtherUid),
                           "--config", config_path()});
  const auto erase = other_cred({"erase", "--profile", "it-shared"});
  EXPECT_EQ(erase.exit_code, 0) << erase.err;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-shared"}).exit_code, 3);  // erased
}

// README's example, `"allowed_clients": ["/usr/local/bin/kosli"]`, works for
// `kosli-cred exec -- kosli …` as written: the requester is the program exec
// runs, found on PATH. A stand-in at a known path plays kosli.
TEST_F(PolicyTest, ExecAsksForTheProgramItRunsSoTheListNamesWhatUsersRun) {
  std::filesystem::create_directory(dir_.path() + "/bin");
  const std::string kosli = dir_.path() + "/bin/kosli";
  std::filesystem::copy_file("/usr/bin/printenv", kosli);  // prints the token it is given
  ASSERT_EQ(::chmod(kosli.c_str(), 0755), 0);
  write_config({{"profiles", {{"it-kosli", {{"allowed_clients", {real_path(kosli)}}}}}}});
  const std::string key = unique_key();
  Daemon daemon(socket(),
                {"--backend", "memory", "--config", config_path(), "--import", import_file("it-kosli", key)});

  const auto by_path = cred(socket(), {"exec", "--profile", "it-kosli", "--", kosli, "KOSLI_API_TOKEN"});
  EXPECT_EQ(by_path.exit_code, 0) << by_path.err;
  EXPECT_EQ(by_path.out, key + "\n");
  const std::string path = dir_.path() + "/bin:" + std::getenv("PATH");
  const auto on_path = cred(socket(), {"exec", "--profile", "it-kosli", "--", "kosli", "KOSLI_API_TOKEN"},
                            RunOptions{"", {{"PATH", path}}});
  EXPECT_EQ(on_path.exit_code, 0) << on_path.err;
  EXPECT_EQ(on_path.out, key + "\n");

  // Any other program, through exec or not, is refused.
  const auto unlisted = cred(socket(), {"exec", "--profile", "it-kosli", "--", "printenv", "KOSLI_API_TOKEN"});
  EXPECT_EQ(unlisted.exit_code, 5);
  EXPECT_TRUE(unlisted.out.empty());
  EXPECT_NE(unlisted.err.find(real_path("/usr/bin/printenv") + " (run by kosli-cred exec)"), std::string::npos)
      << unlisted.err;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-kosli"}).exit_code, 5);
  // The header names the program only when this installation's kosli-cred sends it.
  const auto forged = run({"/usr/bin/curl", "-s", "-H", "Kosli-Exec-Program: " + real_path(kosli), "--unix-socket",
                           socket(), "http://localhost/v1/profiles/it-kosli/token"});
  EXPECT_EQ(forged.out.find(key), std::string::npos);
  EXPECT_NE(forged.out.find("policy_refused"), std::string::npos) << forged.out;

  std::size_t issued = 0;
  for (const auto& rec : audit_records(daemon.audit_log())) {
    if (rec["event"] != "token" || rec["result"] != "issued") continue;
    ++issued;
    EXPECT_EQ(rec["requester"], real_path(kosli)) << rec.dump();
    EXPECT_EQ(rec["requester_by"], "kosli_cred_exec") << rec.dump();
  }
  EXPECT_EQ(issued, 2u);
}

// What the README says to list for git: git runs the helper from its exec
// path, so "$(git --exec-path)/git" is the requester, not the shell.
TEST_F(PolicyTest, GitsHelperAsksForTheGitInGitsExecPath) {
  const auto exec_path = run({"git", "--exec-path"});
  if (exec_path.exit_code != 0) GTEST_SKIP() << "needs git";
  const std::string git = real_path(exec_path.out.substr(0, exec_path.out.find('\n')) + "/git");
  write_config({{"profiles", {{"it-git", {{"allowed_clients", {git}}}}}}});
  const std::string key = unique_key();
  std::ofstream(dir_.path() + "/import.json")
      << json::array({{{"name", "it-git"}, {"org", "acme"}, {"api_key", key}, {"host", "https://app.us.kosli.com"}}})
             .dump();
  Daemon daemon(socket(),
                {"--backend", "memory", "--config", config_path(), "--import", dir_.path() + "/import.json"});
  const auto fill = run({"git", "-c", "credential.helper=", "-c", "credential.helper=kosli", "credential", "fill"},
                        RunOptions{"protocol=https\nhost=app.us.kosli.com\n\n", git_env(socket(), dir_.path())});
  EXPECT_EQ(fill.exit_code, 0) << fill.err;
  EXPECT_NE(fill.out.find("password=" + key + "\n"), std::string::npos) << fill.err;

  bool issued = false;
  for (const auto& rec : audit_records(daemon.audit_log())) {
    if (rec["event"] != "token" || rec["result"] != "issued") continue;
    issued = true;
    EXPECT_EQ(rec["requester"], git) << rec.dump();
    EXPECT_EQ(rec["requester_by"], "parent_of_kosli_cred") << rec.dump();
  }
  EXPECT_TRUE(issued);
}

}  // namespace
}  // namespace kosli::test
