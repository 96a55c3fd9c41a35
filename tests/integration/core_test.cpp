// The core promise, end to end with the real binaries: a key stored once comes
// back as a token, survives a daemon restart through the keyring, is never
// printed where it should not be, and is gone after erase.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

namespace kosli::test {
namespace {

using nlohmann::json;

class CoreTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  RunResult store(const std::string& profile, const std::string& key, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"store", "--profile", profile, "--org", "acme"};
    args.insert(args.end(), extra.begin(), extra.end());
    return cred(socket(), args, RunOptions{key + "\n"});
  }

  RunResult curl(const std::string& method, const std::string& path) {
    return run({"curl", "-s", "-X", method, "--unix-socket", socket(), "http://localhost" + path});
  }

  TempDir dir_;
};

// Keyring tests run only inside scripts/test's sandbox: never the user's own keyring.
class KeyringTest : public CoreTest {
 protected:
  void SetUp() override {
    if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
  }
};

TEST_F(KeyringTest, StoreTokenRestartEraseCycle) {
  const std::string key = unique_key();
  {
    Daemon daemon(socket(), {"--backend", "secret-service"});
    const auto stored = store("it-cycle", key);
    ASSERT_EQ(stored.exit_code, 0) << stored.err;
    EXPECT_NE(stored.out.find("it-cycle"), std::string::npos);

    const auto token = cred(socket(), {"token", "--profile", "it-cycle"});
    ASSERT_EQ(token.exit_code, 0) << token.err;
    EXPECT_EQ(token.out, key + "\n");
    EXPECT_EQ(daemon.stop(), 0);
    EXPECT_EQ(daemon.log().find(key), std::string::npos) << "the daemon logged the key";
  }
  EXPECT_FALSE(std::filesystem::exists(socket())) << "the daemon left its socket behind";
  {
    // A new daemon has an empty cache: the key must come from the keyring.
    Daemon daemon(socket(), {"--backend", "secret-service"});
    const auto token = cred(socket(), {"token", "--profile", "it-cycle"});
    ASSERT_EQ(token.exit_code, 0) << token.err;
    EXPECT_EQ(token.out, key + "\n");

    const auto erased = cred(socket(), {"erase", "--profile", "it-cycle"});
    EXPECT_EQ(erased.exit_code, 0) << erased.err;
    const auto gone = cred(socket(), {"token", "--profile", "it-cycle"});
    EXPECT_EQ(gone.exit_code, 3);
    EXPECT_TRUE(gone.out.empty());
    EXPECT_NE(gone.err.find("it-cycle"), std::string::npos) << gone.err;
  }
  // The keyring keeps it encrypted; nothing anywhere holds it in plaintext.
  for (const char* root : {"HOME", "XDG_RUNTIME_DIR"}) {
    EXPECT_EQ(files_containing(std::getenv(root), key), std::vector<std::string>{}) << root;
  }
  EXPECT_EQ(files_containing(dir_.path(), key), std::vector<std::string>{});
}

TEST_F(KeyringTest, ListShowAndStatusNeverPrintTheKey) {
  const std::string key = unique_key();
  Daemon daemon(socket(), {"--backend", "secret-service"});
  ASSERT_EQ(store("it-listing", key, {"--description", "listing test"}).exit_code, 0);

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"list"}, {"list", "--json"}, {"show", "--profile", "it-listing"},
        {"show", "--profile", "it-listing", "--json"}, {"status"}, {"status", "--json"}}) {
    const auto r = cred(socket(), args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
    EXPECT_EQ(r.out.find(key), std::string::npos) << args[0] << " printed the key";
    EXPECT_EQ(r.err.find(key), std::string::npos) << args[0] << " printed the key";
  }
  const auto shown = json::parse(cred(socket(), {"show", "--profile", "it-listing", "--json"}).out);
  EXPECT_EQ(shown["name"], "it-listing");
  EXPECT_EQ(shown["org"], "acme");
  EXPECT_EQ(shown["host"], "https://app.kosli.com");
  EXPECT_EQ(shown["kind"], "service-account");
  EXPECT_EQ(shown["description"], "listing test");
  EXPECT_EQ(shown["persistent"], true);
  EXPECT_TRUE(shown["expires_at"].is_null());
  EXPECT_EQ(shown["fingerprint"].get<std::string>().rfind("sha256:", 0), 0u);
  EXPECT_EQ(shown["fingerprint"].get<std::string>().size(), 7u + 12u);

  const auto listed = json::parse(cred(socket(), {"list", "--json"}).out);
  bool found = false;
  for (const auto& p : listed["profiles"]) found |= p["name"] == "it-listing";
  EXPECT_TRUE(found) << listed.dump();

  const auto status = json::parse(cred(socket(), {"status", "--json"}).out);
  EXPECT_EQ(status["backend"], "secret-service");
  EXPECT_EQ(status["persistent"], true);
  EXPECT_GE(status["profiles"].get<int>(), 1);
  cred(socket(), {"erase", "--profile", "it-listing"});
}

TEST_F(KeyringTest, ReplacingAProfileKeepsOneKeyTheNewOne) {
  Daemon daemon(socket(), {"--backend", "secret-service"});
  const std::string first = unique_key(), second = unique_key();
  ASSERT_EQ(store("it-replace", first).exit_code, 0);
  const auto replaced = cred(socket(), {"store", "--profile", "it-replace", "--org", "other", "--region", "us"},
                             RunOptions{second});
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_NE(replaced.out.find("Replaced"), std::string::npos) << replaced.out;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-replace"}).out, second + "\n");
  EXPECT_EQ(cred(socket(), {"lock"}).exit_code, 0);  // the next read goes to the keyring
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-replace"}).out, second + "\n");
  const auto shown = json::parse(cred(socket(), {"show", "--profile", "it-replace", "--json"}).out);
  EXPECT_EQ(shown["org"], "other");
  EXPECT_EQ(shown["host"], "https://app.us.kosli.com");
  // Exactly one item is left in the keyring for the profile.
  const auto items = run({"secret-tool", "search", "--all", "profile", "it-replace"});
  std::size_t count = 0;
  for (std::size_t at = items.out.find("label = "); at != std::string::npos; at = items.out.find("label = ", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << items.out << items.err;
  cred(socket(), {"erase", "--profile", "it-replace"});
}

TEST_F(CoreTest, MemoryBackendSaysItIsNotPersistent) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  const auto stored = store("it-memory", key);
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_NE(stored.err.find("warning"), std::string::npos) << stored.err;
  EXPECT_NE(stored.err.find("memory"), std::string::npos) << stored.err;
  const auto shown = json::parse(cred(socket(), {"show", "--profile", "it-memory", "--json"}).out);
  EXPECT_EQ(shown["persistent"], false);
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-memory"}).out, key + "\n");
  EXPECT_NE(daemon.log().find("memory"), std::string::npos);
}

TEST_F(CoreTest, CurlOverTheSocketGetsWhatTheClientGets) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-curl", key, {"--expires-at", "2031-05-06T07:08:09Z"}).exit_code, 0);

  const auto client = json::parse(cred(socket(), {"token", "--profile", "it-curl", "--json"}).out);
  const auto raw = curl("GET", "/v1/profiles/it-curl/token");
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  EXPECT_EQ(json::parse(raw.out), client);
  EXPECT_EQ(client["token"], key);
  EXPECT_EQ(client["token_type"], "Bearer");
  EXPECT_EQ(client["org"], "acme");
  EXPECT_EQ(client["host"], "https://app.kosli.com");
  EXPECT_EQ(client["expires_at"], "2031-05-06T07:08:09Z");

  const auto headers = run({"curl", "-s", "-D", "-", "-o", "/dev/null", "--unix-socket", socket(),
                            "http://localhost/v1/profiles/it-curl/token"});
  EXPECT_NE(headers.out.find("Cache-Control: no-store"), std::string::npos) << headers.out;

  EXPECT_EQ(json::parse(curl("GET", "/v1/profiles/it-curl").out),
            json::parse(cred(socket(), {"show", "--profile", "it-curl", "--json"}).out));
  const auto missing = json::parse(curl("GET", "/v1/profiles/it-nobody/token").out);
  EXPECT_EQ(missing["error"]["code"], "not_found");
  const auto header = cred(socket(), {"header", "--profile", "it-curl"});
  EXPECT_EQ(header.out, "Authorization: Bearer " + key + "\n");
}

// What a Prometheus scrape of the socket shows after a few requests: tokens by
// profile, the cache at work, requests refused before routing, the open
// connection the scrape itself came in on. Never a key.
TEST_F(CoreTest, MetricsOverTheSocketCountWhatHappened) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-metrics", key).exit_code, 0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cred(socket(), {"token", "--profile", "it-metrics"}).exit_code, 0);
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-nobody"}).exit_code, 3);
  // A request line and headers over the 8 KiB limit: refused with 431 before routing.
  const auto big = curl("GET", "/v1/health?" + std::string(9000, 'x'));
  EXPECT_EQ(big.exit_code, 0);

  const auto scrape = curl("GET", "/v1/metrics");
  ASSERT_EQ(scrape.exit_code, 0);
  const std::string& m = scrape.out;
  EXPECT_NE(m.find("kosli_credd_tokens_issued_total{profile=\"it-metrics\"} 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("kosli_credd_cache_hits_total 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("kosli_credd_cache_misses_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("kosli_credd_requests_total{route=\"token\",status=\"404\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("kosli_credd_requests_total{route=\"unmatched\",status=\"431\"} 1\n"), std::string::npos) << m;
  // At least the scrape's own (the clients' closed connections may not all be reaped yet).
  const std::string sample = "\nkosli_credd_open_connections ";
  const auto gauge = m.find(sample);
  ASSERT_NE(gauge, std::string::npos) << m;
  EXPECT_GE(std::atoi(m.c_str() + gauge + sample.size()), 1) << m;
  EXPECT_EQ(m.find(key), std::string::npos) << "the metrics hold the key";
}

TEST_F(CoreTest, UnknownProfileExitsThree) {
  Daemon daemon(socket(), {"--backend", "memory"});
  for (const char* command : {"token", "header", "show", "erase"}) {
    const auto r = cred(socket(), {command, "--profile", "it-nobody"});
    EXPECT_EQ(r.exit_code, 3) << command << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << command;
    EXPECT_NE(r.err.find("no profile named 'it-nobody'"), std::string::npos) << r.err;
  }
  const auto env = cred(socket(), {"token"}, RunOptions{"", {{"KOSLI_PROFILE", "it-from-env"}}});
  EXPECT_EQ(env.exit_code, 3);
  EXPECT_NE(env.err.find("it-from-env"), std::string::npos) << "KOSLI_PROFILE was not used: " << env.err;
}

TEST_F(CoreTest, BadProfileNamesAreRejected) {
  Daemon daemon(socket(), {"--backend", "memory"});
  for (const char* name : {"Bad", "../etc", "a/b", "-x", ""}) {
    const auto r = cred(socket(), {"token", "--profile", name});
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.err;
  }
  for (const char* path : {"/v1/profiles/Bad/token", "/v1/profiles/..%2F..%2Fetc/token", "/v1/profiles/.x"}) {
    const auto r = json::parse(curl("GET", path).out);
    EXPECT_EQ(r["error"]["code"], "bad_request") << path;
  }
  // The daemon keeps serving.
  EXPECT_EQ(cred(socket(), {"status"}).exit_code, 0);
}

TEST_F(CoreTest, EmptyOrMalformedKeysAreRefused) {
  Daemon daemon(socket(), {"--backend", "memory"});
  for (const std::string& input : std::vector<std::string>{"", "\n", "two\nlines", std::string("nul\0byte", 8)}) {
    const auto r = cred(socket(), {"store", "--profile", "it-empty", "--org", "acme"}, RunOptions{input});
    EXPECT_EQ(r.exit_code, 2) << r.err;
  }
  EXPECT_EQ(cred(socket(), {"show", "--profile", "it-empty"}).exit_code, 3);
}

TEST_F(CoreTest, ExecPassesTheEnvironmentAndTheExitCode) {
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-exec", key, {"--region", "us"}).exit_code, 0);
  const std::string script =
      "test \"$KOSLI_API_TOKEN\" = '" + key + "' && test \"$KOSLI_ORG\" = acme && "
      "test \"$KOSLI_HOST\" = https://app.us.kosli.com && test \"$KOSLI_API_URL\" = \"$KOSLI_HOST\" && "
      "test \"$KOSLI_BASE_URL\" = \"$KOSLI_HOST\" && exit 42; exit 1";
  const auto r = cred(socket(), {"exec", "--profile", "it-exec", "--", "sh", "-c", script});
  EXPECT_EQ(r.exit_code, 42) << r.err;
  const auto missing = cred(socket(), {"exec", "--profile", "it-exec", "--", "/nonexistent/cmd"});
  EXPECT_EQ(missing.exit_code, 127);
  const auto no_profile = cred(socket(), {"exec", "--profile", "it-nobody", "--", "true"});
  EXPECT_EQ(no_profile.exit_code, 3);
}

TEST_F(CoreTest, NoDaemonExitsFour) {
  // With on-demand start off, nothing is started: the client just says so.
  const auto r = cred(dir_.path() + "/nothing-here/sock", {"token"}, RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}}});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r.err;
}

TEST_F(CoreTest, SocketIsPrivateAndLooseDirectoriesAreRefused) {
  {
    Daemon daemon(socket(), {"--backend", "memory"});
    struct stat dir {}, sock {};
    ASSERT_EQ(::stat((dir_.path() + "/kosli-cred").c_str(), &dir), 0);
    ASSERT_EQ(::stat(socket().c_str(), &sock), 0);
    EXPECT_EQ(dir.st_mode & 07777, 0700u);
    EXPECT_EQ(sock.st_mode & 0777, 0600u);
    // A second daemon on the same socket refuses to start.
    const auto second = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket()}, RunOptions{"", {}, std::chrono::seconds(10)});
    EXPECT_NE(second.exit_code, 0);
    EXPECT_NE(second.err.find("already serving"), std::string::npos) << second.err;
    EXPECT_EQ(cred(socket(), {"status"}).exit_code, 0) << "the first daemon must keep its socket";
  }
  ASSERT_EQ(::chmod((dir_.path() + "/kosli-cred").c_str(), 0755), 0);
  const auto loose = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket()});
  EXPECT_EQ(loose.exit_code, 1);
  EXPECT_NE(loose.err.find("chmod 700"), std::string::npos) << loose.err;
}

TEST_F(CoreTest, AnotherUserIsRefusedEvenWhenModesAreLoosened) {
  if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs root and setpriv";
  Daemon daemon(socket(), {"--backend", "memory"});
  const std::string key = unique_key();
  ASSERT_EQ(store("it-peer", key).exit_code, 0);
  // Loosen every mode on purpose: the SO_PEERCRED check must still refuse.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod((dir_.path() + "/kosli-cred").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(socket().c_str(), 0666), 0);
  // The client trusts a daemon of root's only when told to (it refuses by itself
  // otherwise, tests/integration/client_trust_test.cpp): here the daemon must refuse.
  const auto r = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin("kosli-cred"), "--socket",
                      socket(), "--daemon-uid", "0", "token", "--profile", "it-peer"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(r.out.find(key), std::string::npos);
  EXPECT_NE(daemon.log().find("refused a connection from uid 65534"), std::string::npos) << daemon.log();
  const std::string audit = daemon.audit_log();
  EXPECT_NE(audit.find(R"("event":"connection")"), std::string::npos) << audit;
  EXPECT_NE(audit.find(R"("uid":65534)"), std::string::npos) << audit;
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-peer"}).out, key + "\n");
}

}  // namespace
}  // namespace kosli::test
