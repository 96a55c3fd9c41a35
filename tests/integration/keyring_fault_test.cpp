// What happens to the keyring does not take the daemon down, and never costs a
// stored key: a killed or hung gnome-keyring gives a clear 503 within seconds
// while cached tokens are still served, and the daemon recovers when a keyring
// comes back; a locked keyring says how to unlock it; without any D-Bus
// session `auto` falls back to memory and `secret-service` refuses to start;
// and a replace cut short by SIGKILL leaves the old key or the new one.
//
// Every test runs its own D-Bus session bus and gnome-keyring (own HOME, data
// and runtime directories) so it can kill, stop and lock them: never the
// sandbox's keyring other tests use, never a user's.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proto/limits.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/raw_http.hpp"

extern char** environ;

namespace kosli::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// A store call that fails must fail within its deadline plus this much.
constexpr milliseconds kFailureSlack{3000};
// How long the keyring and bus get to come up.
constexpr seconds kStartDeadline{15};
// Kill points tried by the nothing-lost test.
constexpr int kKillRounds = 16;

constexpr const char* kKeyringPassword = "kosli-fault-test";

bool have(const std::string& program) {
  return run({"sh", "-c", "command -v " + program + " >/dev/null"}).exit_code == 0;
}

// posix_spawn with the environment plus `env`, stdin from `stdin_fd` (or
// /dev/null), stdout and stderr appended to `log`, and `extra_fd` as fd 3.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& env,
            const std::string& log, int stdin_fd = -1, int extra_fd = -1) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const bool replaced = std::any_of(env.begin(), env.end(), [&](const auto& kv) {
      return entry.rfind(kv.first + "=", 0) == 0;
    });
    if (!replaced) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_copy = args;
  for (auto& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  if (extra_fd >= 0) posix_spawn_file_actions_adddup2(&actions, extra_fd, 3);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, child_spawn_attributes(), argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
  return pid;
}

void reap(pid_t& pid, int signal) {
  if (pid <= 0) return;
  ::kill(pid, SIGCONT);  // a stopped process must run to die of SIGTERM
  ::kill(pid, signal);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid = -1;
}

// A D-Bus session bus with no activatable services (a killed keyring stays
// gone) and a gnome-keyring on it whose login keyring is unlocked.
class PrivateKeyring {
 public:
  PrivateKeyring() {
    for (const char* d : {"/home", "/home/.local/share", "/run"}) ::mkdir((dir_.path() + d).c_str(), 0700);
    start_bus();
    start_keyring();
  }

  ~PrivateKeyring() {
    reap(keyring_pid_, SIGTERM);
    reap(bus_pid_, SIGTERM);
  }

  // What a process needs to use this session and no other.
  std::vector<std::pair<std::string, std::string>> env() const {
    return {{"DBUS_SESSION_BUS_ADDRESS", address_}};
  }

  // Starts gnome-keyring and waits until it owns org.freedesktop.secrets.
  // `unlocked`: given the password, as a desktop login does; otherwise the
  // login keyring on disk stays locked (an SSH login, an autologin desktop, a
  // keyring started by D-Bus activation).
  void start_keyring(bool unlocked = true) {
    const std::string previous_owner = owner();
    int password[2];
    if (::pipe2(password, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    std::vector<std::string> args = {"gnome-keyring-daemon", "--foreground", "--components=secrets"};
    if (unlocked) args.push_back("--unlock");
    keyring_pid_ = spawn(args, keyring_env(), dir_.path() + "/keyring.log", unlocked ? password[0] : -1);
    ::close(password[0]);
    const ssize_t written = ::write(password[1], kKeyringPassword, std::strlen(kKeyringPassword));
    ::close(password[1]);
    if (unlocked && written < 0) throw std::runtime_error("cannot give gnome-keyring its password");
    // A new owner of the name (not the one a killed keyring may still hold on
    // the bus for a moment) is the readiness signal; there is no other.
    const auto deadline = Clock::now() + kStartDeadline;
    while (owner().empty() || owner() == previous_owner) {
      if (Clock::now() > deadline) {
        throw std::runtime_error("gnome-keyring did not start: " + read_file(dir_.path() + "/keyring.log"));
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  void kill_keyring() { reap(keyring_pid_, SIGKILL); }

  // Kills the session bus and the keyring, and starts a new bus at the same
  // address with a keyring on it, as a crashed and restarted session would.
  void restart_bus() {
    kill_bus();
    bring_bus_back();
  }
  void kill_bus() {
    reap(keyring_pid_, SIGKILL);
    reap(bus_pid_, SIGKILL);
    ::unlink((dir_.path() + "/run/bus").c_str());
  }
  void bring_bus_back() {
    const std::string previous = address_;
    start_bus();
    if (address_ != previous) throw std::runtime_error("the new bus listens at " + address_ + ", not " + previous);
    start_keyring();
  }

  void pause_keyring() { ::kill(keyring_pid_, SIGSTOP); }
  void resume_keyring() { ::kill(keyring_pid_, SIGCONT); }

  // Locks the login keyring (the default collection), as a screen locker would.
  RunResult lock_login() const {
    return run({"gdbus", "call", "--session", "--dest", "org.freedesktop.secrets", "--object-path",
                "/org/freedesktop/secrets", "--method", "org.freedesktop.Secret.Service.Lock",
                "['/org/freedesktop/secrets/collection/login']"},
               RunOptions{{}, env()});
  }

  // How many items the keyring holds for `profile`.
  std::size_t items_for(const std::string& profile) const {
    const auto found = run({"secret-tool", "search", "--all", "profile", profile}, RunOptions{{}, env()});
    std::size_t count = 0;
    for (auto at = found.out.find("label = "); at != std::string::npos; at = found.out.find("label = ", at + 1)) {
      ++count;
    }
    return count;
  }

 private:
  std::vector<std::pair<std::string, std::string>> keyring_env() const {
    return {{"DBUS_SESSION_BUS_ADDRESS", address_},
            {"HOME", dir_.path() + "/home"},
            {"XDG_DATA_HOME", dir_.path() + "/home/.local/share"},
            {"XDG_RUNTIME_DIR", dir_.path() + "/run"}};
  }

  void start_bus() {
    const std::string config = dir_.path() + "/bus.conf";
    std::ofstream(config) << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                             " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                             "<busconfig><type>session</type>\n"
                             "<listen>unix:path=" << dir_.path() << "/run/bus</listen>\n"
                             "<auth>EXTERNAL</auth>\n"
                             "<policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>"
                             "<allow eavesdrop=\"true\"/><allow own=\"*\"/></policy>\n"
                             "</busconfig>\n";
    // The bus prints its address on fd 3 once it listens: that is its readiness.
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    bus_pid_ = spawn({"dbus-daemon", "--config-file=" + config, "--nofork", "--nopidfile", "--print-address=3"}, {},
                     dir_.path() + "/bus.log", -1, ready[1]);
    ::close(ready[1]);
    pollfd pfd{ready[0], POLLIN, 0};
    char buf[512] = {};
    const ssize_t n = ::poll(&pfd, 1, 15000) == 1 ? ::read(ready[0], buf, sizeof buf - 1) : -1;
    ::close(ready[0]);
    if (n <= 0) throw std::runtime_error("dbus-daemon did not start: " + read_file(dir_.path() + "/bus.log"));
    address_ = std::string(buf, static_cast<std::size_t>(n));
    address_.erase(address_.find_last_not_of("\r\n") + 1);
    // The address carries a guid, new with each bus: compare the path only.
    address_ = address_.substr(0, address_.find(','));
  }

  // The unique name owning org.freedesktop.secrets, "" when none does.
  std::string owner() const {
    const auto r = run({"gdbus", "call", "--session", "--dest", "org.freedesktop.DBus", "--object-path",
                        "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.GetNameOwner",
                        "org.freedesktop.secrets"},
                       RunOptions{{}, env(), seconds(5)});
    return r.exit_code == 0 ? r.out : "";
  }

  TempDir dir_;
  std::string address_;
  pid_t bus_pid_ = -1;
  pid_t keyring_pid_ = -1;
};

class KeyringFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have("dbus-daemon") || !have("gnome-keyring-daemon") || !have("gdbus")) {
      GTEST_SKIP() << "needs dbus-daemon, gnome-keyring-daemon and gdbus (scripts/install-deps)";
    }
  }

  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }

  RunResult store(const std::string& profile, const std::string& key) {
    return cred(socket(), {"store", "--profile", profile, "--org", "acme"}, RunOptions{key});
  }

  // `kosli-cred token`, and how long it took.
  std::pair<RunResult, milliseconds> timed_token(const std::string& profile) {
    const auto started = Clock::now();
    auto r = cred(socket(), {"token", "--profile", profile});
    return {r, std::chrono::duration_cast<milliseconds>(Clock::now() - started)};
  }

  // kosli_credd_store_errors_total{kind="<kind>"} from GET /v1/metrics; -1 when missing.
  long store_errors(const std::string& kind) {
    const auto scrape = exchange(socket(), http_request("GET", "/v1/metrics"));
    if (!scrape || scrape->status != 200) return -1;
    const std::string prefix = "kosli_credd_store_errors_total{kind=\"" + kind + "\"} ";
    const auto at = scrape->body.find(prefix);
    return at == std::string::npos ? -1 : std::stol(scrape->body.substr(at + prefix.size()));
  }

  void expect_health_answers() {
    const auto health = exchange(socket(), http_request("GET", "/v1/health"));
    ASSERT_TRUE(health.has_value()) << "GET /v1/health got no answer";
    EXPECT_EQ(health->status, 200) << health->body;
  }

  TempDir dir_;
};

TEST_F(KeyringFaultTest, AKilledKeyringGives503FastCachedTokensStayAndTheDaemonRecovers) {
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
  const std::string cached_key = unique_key(), stored_key = unique_key();
  ASSERT_EQ(store("it-cached", cached_key).exit_code, 0);
  ASSERT_EQ(store("it-stored", stored_key).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);  // forget both …
  ASSERT_EQ(cred(socket(), {"token", "--profile", "it-cached"}).out, cached_key + "\n");  // … cache one

  keyring.kill_keyring();

  // The cached key is served as before, without the keyring.
  const auto [cached, cached_took] = timed_token("it-cached");
  EXPECT_EQ(cached.exit_code, 0) << cached.err;
  EXPECT_EQ(cached.out, cached_key + "\n");
  EXPECT_LT(cached_took, seconds(2));

  // What needs the keyring fails at once, with exit code 6 and advice.
  const auto [missing, missing_took] = timed_token("it-stored");
  EXPECT_EQ(missing.exit_code, 6) << missing.err;
  EXPECT_TRUE(missing.out.empty());
  EXPECT_NE(missing.err.find("Secret Service"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("gnome-keyring-daemon"), std::string::npos) << missing.err;
  EXPECT_LT(missing_took, limits::kStoreCallDeadline + kFailureSlack);
  for (const auto& request :
       {http_request("GET", "/v1/profiles/it-stored/token"), http_request("GET", "/v1/profiles"),
        http_request("PUT", "/v1/profiles/it-new",
                     json{{"org", "acme"}, {"host", "https://app.kosli.com"}, {"kind", "personal"}, {"api_key", "k"}}
                         .dump())}) {
    const auto answer = exchange(socket(), request);
    ASSERT_TRUE(answer.has_value()) << request;
    EXPECT_EQ(answer->status, 503) << request << answer->body;
    EXPECT_EQ(answer->error_code(), "backend_unavailable") << answer->body;
    EXPECT_NE(answer->error_message().find("Secret Service"), std::string::npos) << answer->body;
  }
  // Verification needs the key too; its failure is counted with the router's.
  const long unavailable = store_errors("unavailable");
  EXPECT_GE(unavailable, 4);  // the token, list and store calls above
  const auto verify = cred(socket(), {"verify", "--profile", "it-stored"});
  EXPECT_EQ(verify.exit_code, 6) << verify.err;
  EXPECT_EQ(store_errors("unavailable"), unavailable + 1);
  expect_health_answers();

  // A keyring comes back (the same login keyring, unlocked): no restart needed.
  keyring.start_keyring();
  const auto [back, back_took] = timed_token("it-stored");
  EXPECT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, stored_key + "\n");
  EXPECT_EQ(store("it-after", unique_key()).exit_code, 0);
  EXPECT_EQ(daemon.stop(), 0);
}

TEST_F(KeyringFaultTest, AHungKeyringGives503WithinTheStoreDeadline) {
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
  const std::string key = unique_key();
  ASSERT_EQ(store("it-hung", key).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);

  keyring.pause_keyring();  // alive on the bus, answering nothing
  const auto [hung, took] = timed_token("it-hung");
  keyring.resume_keyring();
  EXPECT_EQ(hung.exit_code, 6) << hung.err;
  EXPECT_NE(hung.err.find("did not answer within"), std::string::npos) << hung.err;
  EXPECT_GE(took, limits::kStoreCallDeadline - seconds(1));
  EXPECT_LT(took, limits::kStoreCallDeadline + kFailureSlack);

  // Once it answers again, so does the daemon.
  const auto [again, again_took] = timed_token("it-hung");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, key + "\n");
  expect_health_answers();
}

TEST_F(KeyringFaultTest, ALockedKeyringGives503SayingHowToUnlockIt) {
  PrivateKeyring keyring;
  // Cached keys stay while the keyring is locked when lock_on leaves it out
  // (by default they are forgotten: session_test.cpp).
  const std::string config = dir_.path() + "/config.json";
  std::ofstream(config) << R"({"lock_on": ["screen", "sleep"]})";
  Daemon daemon(socket(), {"--backend", "secret-service", "--config", config}, keyring.env());
  const std::string key = unique_key(), cached_key = unique_key();
  ASSERT_EQ(store("it-locked", key).exit_code, 0);
  ASSERT_EQ(store("it-cached", cached_key).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);  // the daemon's cache, not the keyring
  ASSERT_EQ(cred(socket(), {"token", "--profile", "it-cached"}).exit_code, 0);  // cached again

  const auto locked = keyring.lock_login();
  ASSERT_EQ(locked.exit_code, 0) << locked.err;
  ASSERT_NE(locked.out.find("collection/login"), std::string::npos) << locked.out;

  const auto [token, took] = timed_token("it-locked");
  EXPECT_EQ(token.exit_code, 6) << token.err;
  EXPECT_TRUE(token.out.empty());
  EXPECT_NE(token.err.find("locked"), std::string::npos) << token.err;
  EXPECT_NE(token.err.find("unlock"), std::string::npos) << token.err;
  EXPECT_LT(took, seconds(3)) << "a locked keyring must not wait for a prompt";
  for (const auto& request :
       {http_request("GET", "/v1/profiles/it-locked/token"),
        http_request("PUT", "/v1/profiles/it-locked",
                     json{{"org", "acme"}, {"host", "https://app.kosli.com"}, {"kind", "personal"}, {"api_key", "k"}}
                         .dump())}) {
    const auto answer = exchange(socket(), request);
    ASSERT_TRUE(answer.has_value()) << request;
    EXPECT_EQ(answer->status, 503) << answer->body;
    EXPECT_EQ(answer->error_code(), "backend_unavailable") << answer->body;
    EXPECT_NE(answer->error_message().find("locked"), std::string::npos) << answer->body;
    EXPECT_NE(answer->error_message().find("unlock"), std::string::npos) << answer->body;
  }
  expect_health_answers();
  const auto cached = cred(socket(), {"token", "--profile", "it-cached"});
  EXPECT_EQ(cached.exit_code, 0) << cached.err;
  EXPECT_EQ(cached.out, cached_key + "\n");
  EXPECT_EQ(daemon.log().find(key), std::string::npos);
}

TEST_F(KeyringFaultTest, WithoutADbusSessionAutoFallsBackToMemoryAndSecretServiceRefusesToStart) {
  // No bus configured at all: no address, and a runtime directory without one.
  TempDir runtime;
  const std::vector<std::pair<std::string, std::string>> no_bus = {{"DBUS_SESSION_BUS_ADDRESS", ""},
                                                                   {"XDG_RUNTIME_DIR", runtime.path()}};
  {
    Daemon daemon(socket(), {"--backend", "auto"}, no_bus);
    EXPECT_NE(daemon.log().find("falling back to backend 'memory'"), std::string::npos) << daemon.log();
    const auto stored = store("it-nobus", unique_key());
    EXPECT_EQ(stored.exit_code, 0) << stored.err;
    EXPECT_NE(stored.err.find("memory only"), std::string::npos) << stored.err;
    const auto status = cred(socket(), {"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_EQ(json::parse(status.out)["backend"], "memory");
  }
  const auto refused = run({bin("kosli-credd"), "--backend", "secret-service", "--socket", socket(), "--audit-log",
                            dir_.path() + "/audit.log"},
                           RunOptions{{}, no_bus, seconds(10)});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("backend 'secret-service' is not usable"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("no D-Bus session bus"), std::string::npos) << refused.err;

  // A bus with no Secret Service on it: the same two outcomes, as fast.
  PrivateKeyring keyring;
  keyring.kill_keyring();
  {
    Daemon daemon(socket(), {"--backend", "auto"}, keyring.env());
    EXPECT_NE(daemon.log().find("falling back to backend 'memory'"), std::string::npos) << daemon.log();
  }
  const auto started = Clock::now();
  const auto no_service = run({bin("kosli-credd"), "--backend", "secret-service", "--socket", socket(),
                               "--audit-log", dir_.path() + "/audit.log"},
                              RunOptions{{}, keyring.env(), seconds(10)});
  EXPECT_NE(no_service.exit_code, 0);
  EXPECT_NE(no_service.err.find("backend 'secret-service' is not usable"), std::string::npos) << no_service.err;
  EXPECT_LT(Clock::now() - started, seconds(5));
}

// The store writes the new item before it deletes the old one: SIGKILL at any
// point of a replace leaves the old key or the new one, never neither.
TEST_F(KeyringFaultTest, AReplaceCutShortBySigkillLeavesTheOldKeyOrTheNewOne) {
  PrivateKeyring keyring;
  const std::string profile = "it-nothing-lost";
  std::string current = unique_key();
  milliseconds replace_time{0};
  {
    Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
    ASSERT_EQ(store(profile, current).exit_code, 0);
    // How long one whole replace takes: the kill points are spread over it.
    const std::string next = unique_key();
    const auto started = Clock::now();
    ASSERT_EQ(store(profile, next).exit_code, 0);
    replace_time = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
    current = next;
  }
  std::random_device seed_source;
  const auto seed = seed_source();
  std::mt19937 random(seed);
  std::uniform_int_distribution<long> kill_after_us(0, std::max<long>(1000, replace_time.count() * 1000));
  int kept_old = 0, took_new = 0, both_kept = 0;
  std::string pending;  // the key of the replace last cut short
  long delay = 0;
  // Each round's fresh daemon first checks what the last kill left (it has
  // nothing cached: what it serves is what the keyring kept), then starts a
  // replace of its own and is killed at a random point of it.
  for (int round = 0; round <= kKillRounds; ++round) {
    Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
    if (!pending.empty()) {
      const auto token = cred(socket(), {"token", "--profile", profile});
      ASSERT_EQ(token.exit_code, 0) << "round " << round << " (seed " << seed << ", killed after " << delay
                                    << " us): " << token.err;
      ASSERT_TRUE(token.out == current + "\n" || token.out == pending + "\n")
          << "round " << round << " (seed " << seed << ", killed after " << delay << " us): neither key";
      (token.out == pending + "\n" ? took_new : kept_old) += 1;
      if (token.out == pending + "\n") current = pending;
    }
    if (round == kKillRounds) break;
    pending = unique_key();
    delay = kill_after_us(random);
    RawConnection c(socket());
    ASSERT_TRUE(c.connected());
    // Half the rounds replace by PUT, half by a rotation given the new key.
    const std::string request =
        round % 2 == 0
            ? http_request("PUT", "/v1/profiles/" + profile,
                           json{{"org", "acme"}, {"host", "https://app.kosli.com"}, {"kind", "service-account"},
                                {"api_key", pending}}
                               .dump())
            : http_request("POST", "/v1/profiles/" + profile + "/rotate",
                           json{{"api_key", pending}, {"verify", false}}.dump());
    ASSERT_TRUE(c.send(request));
    std::this_thread::sleep_for(std::chrono::microseconds(delay));
    ::kill(daemon.pid(), SIGKILL);
    EXPECT_EQ(daemon.stop(), 128 + SIGKILL);
    both_kept += keyring.items_for(profile) > 1 ? 1 : 0;  // killed between writing the new and dropping the old
  }
  // The next replace that runs to its end leaves exactly one item behind.
  {
    Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
    const std::string last = unique_key();
    ASSERT_EQ(store(profile, last).exit_code, 0);
    EXPECT_EQ(cred(socket(), {"token", "--profile", profile}).out, last + "\n");
  }
  EXPECT_EQ(keyring.items_for(profile), 1u);
  RecordProperty("kept_old", kept_old);
  RecordProperty("took_new", took_new);
  std::printf("nothing-lost: of %d kills, %d kept the old key, %d the new one, %d left both in the keyring "
              "(a replace takes %lld ms; seed %u)\n",
              kKillRounds, kept_old, took_new, both_kept, static_cast<long long>(replace_time.count()), seed);
}


// An item of this profile written the way the daemon writes one, with `secret`
// as its secret: what gnome-keyring killed during a replace leaves is such an
// item, newest, with an empty secret. `created_at` orders it among the others.
RunResult add_raw_item(const PrivateKeyring& keyring, const std::string& profile, const std::string& secret,
                       long long created_at) {
  return run({"secret-tool", "store", "--label", "Kosli API key '" + profile + "' (acme)", "xdg:schema",
              "com.kosli.CredentialHelper.ApiKey", "profile", profile, "org", "acme", "host",
              "https://app.kosli.com", "kind", "service-account", "created_at", std::to_string(created_at),
              "stored_at_ns", "0", "fingerprint", "sha256:made-by-the-test"},
             RunOptions{secret, keyring.env()});
}

TEST_F(KeyringFaultTest, AnItemWithAnEmptySecretIsNeverServedTheKeyBeforeItIs) {
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
  const std::string key = unique_key();
  ASSERT_EQ(store("it-empty", key).exit_code, 0);
  const long long later = static_cast<long long>(std::time(nullptr)) + 3600;
  ASSERT_EQ(add_raw_item(keyring, "it-empty", "", later).exit_code, 0);  // a replace cut short
  ASSERT_EQ(keyring.items_for("it-empty"), 2u);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);  // what is served comes from the keyring

  const auto token = cred(socket(), {"token", "--profile", "it-empty"});
  EXPECT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out, key + "\n");
  const auto exec = cred(socket(), {"exec", "--profile", "it-empty", "--", "sh", "-c", "printf %s \"$KOSLI_API_TOKEN\""});
  EXPECT_EQ(exec.exit_code, 0) << exec.err;
  EXPECT_EQ(exec.out, key);
  // The empty item held nothing and is gone; the key served stays.
  EXPECT_EQ(keyring.items_for("it-empty"), 1u);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-empty"}).out, key + "\n");
  EXPECT_NE(daemon.log().find("newest item held no valid key"), std::string::npos) << daemon.log();

  // A profile whose only item has no key: a clear error, never an empty token,
  // and the item is left for the user to see.
  ASSERT_EQ(add_raw_item(keyring, "it-nokey", "", later).exit_code, 0);
  const auto none = cred(socket(), {"token", "--profile", "it-nokey"});
  EXPECT_EQ(none.exit_code, 1) << none.err;
  EXPECT_TRUE(none.out.empty()) << none.out;
  EXPECT_NE(none.err.find("no valid key"), std::string::npos) << none.err;
  EXPECT_NE(none.err.find("kosli-cred store --profile it-nokey"), std::string::npos) << none.err;
  const auto answer = exchange(socket(), http_request("GET", "/v1/profiles/it-nokey/token"));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 500) << answer->body;
  EXPECT_EQ(answer->error_code(), "internal") << answer->body;
  EXPECT_EQ(keyring.items_for("it-nokey"), 1u);
  expect_health_answers();
  EXPECT_EQ(daemon.log().find(key), std::string::npos);
}

// The fault as it happens, not only the item it leaves: gnome-keyring killed
// at a random point of a replace, then started again. Whatever it kept (the
// old key, the new one, both, or the new item without its secret), the next
// token is one of the two keys, or a clear error with nothing on stdout:
// never an empty or invalid token with exit code 0.
TEST_F(KeyringFaultTest, AKeyringKilledDuringAReplaceNeverYieldsAnEmptyToken) {
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
  const std::string profile = "it-killed-keyring";
  std::string current = unique_key();
  ASSERT_EQ(store(profile, current).exit_code, 0);
  const auto started = Clock::now();
  const std::string next = unique_key();
  ASSERT_EQ(store(profile, next).exit_code, 0);
  const auto replace_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
  current = next;

  std::random_device seed_source;
  const auto seed = seed_source();
  std::mt19937 random(seed);
  // Half the kills land in the first milliseconds, where gnome-keyring leaves
  // the new item without its secret; the rest anywhere in the replace. The
  // rounds go on (boundedly) until that item has been seen twice.
  std::uniform_int_distribution<long> early_us(0, 8000);
  std::uniform_int_distribution<long> anywhere_us(0, std::max<long>(2000, replace_us));
  constexpr int kMaxRounds = 48;
  int emptied = 0, kept_old = 0, took_new = 0, refused = 0, round = 0;
  for (; round < kMaxRounds && (round < kKillRounds || emptied < 2); ++round) {
    const std::string pending = unique_key();
    const long delay = round % 2 == 0 ? early_us(random) : anywhere_us(random);
    const std::string where = "round " + std::to_string(round) + " (seed " + std::to_string(seed) +
                              ", keyring killed after " + std::to_string(delay) + " us)";
    {
      RawConnection c(socket());
      ASSERT_TRUE(c.connected());
      ASSERT_TRUE(c.send(http_request("PUT", "/v1/profiles/" + profile,
                                      json{{"org", "acme"}, {"host", "https://app.kosli.com"},
                                           {"kind", "service-account"}, {"api_key", pending}}
                                          .dump())));
      std::this_thread::sleep_for(std::chrono::microseconds(delay));
      keyring.kill_keyring();
      c.response(seconds(10));  // 200, or 503 from the keyring's death: either way, done
    }
    keyring.start_keyring();
    const auto items = run({"secret-tool", "search", "--all", "profile", profile}, RunOptions{{}, keyring.env()});
    if (items.out.find("secret = \n") != std::string::npos) {
      ++emptied;
    }
    ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0) << where;  // what follows is read from the keyring
    const auto token = cred(socket(), {"token", "--profile", profile});
    if (token.exit_code != 0) {
      ++refused;
      EXPECT_TRUE(token.out.empty()) << where << ": " << token.out;
      EXPECT_FALSE(token.err.empty()) << where;
      // The next store puts things right.
      ASSERT_EQ(store(profile, pending).exit_code, 0) << where;
      current = pending;
      continue;
    }
    ASSERT_TRUE(token.out == current + "\n" || token.out == pending + "\n")
        << where << ": served neither the old key nor the new one (" << token.out.size() << " bytes)";
    (token.out == pending + "\n" ? took_new : kept_old) += 1;
    current = token.out.substr(0, token.out.size() - 1);
  }
  expect_health_answers();
  EXPECT_EQ(daemon.log().find(current), std::string::npos);
  std::printf("killed-keyring: of %d kills, %d left the new item without its secret; %d served the old key, "
              "%d the new one, %d answered an error (a replace takes %lld us; seed %u)\n",
              round, emptied, kept_old, took_new, refused, static_cast<long long>(replace_us), seed);
}

TEST_F(KeyringFaultTest, WhatAnInterruptedReplaceLeftIsRemovedOnTheNextRead) {
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
  const std::string key = unique_key();
  ASSERT_EQ(store("it-leftover", key).exit_code, 0);
  // The replaced key a replace cut short did not get to delete: older, valid.
  ASSERT_EQ(add_raw_item(keyring, "it-leftover", unique_key(), 1).exit_code, 0);
  ASSERT_EQ(keyring.items_for("it-leftover"), 2u);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);

  const auto token = cred(socket(), {"token", "--profile", "it-leftover"});
  EXPECT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out, key + "\n");
  EXPECT_EQ(keyring.items_for("it-leftover"), 1u);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);
  EXPECT_EQ(cred(socket(), {"token", "--profile", "it-leftover"}).out, key + "\n");
}

TEST_F(KeyringFaultTest, AKeyringStartedLockedGivesExit6NotNoProfile) {
  PrivateKeyring keyring;
  const std::string key = unique_key();
  {
    Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
    ASSERT_EQ(store("it-locked-start", key).exit_code, 0);
  }
  // The login keyring is on disk; this gnome-keyring never got its password.
  keyring.kill_keyring();
  keyring.start_keyring(/*unlocked=*/false);
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());

  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"token", "--profile", "it-locked-start"},
        std::vector<std::string>{"show", "--profile", "it-locked-start"},
        std::vector<std::string>{"erase", "--profile", "it-locked-start"}, std::vector<std::string>{"list"}}) {
    const auto r = cred(socket(), command);
    EXPECT_EQ(r.exit_code, 6) << command[0] << ": " << r.out << r.err;
    EXPECT_TRUE(r.out.empty()) << command[0] << ": " << r.out;
    EXPECT_NE(r.err.find("keyring is locked"), std::string::npos) << command[0] << ": " << r.err;
    EXPECT_NE(r.err.find("unlock"), std::string::npos) << command[0] << ": " << r.err;
    EXPECT_EQ(r.err.find("no profile"), std::string::npos) << command[0] << ": " << r.err;
  }
  const auto answer = exchange(socket(), http_request("GET", "/v1/profiles/it-locked-start/token"));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 503) << answer->body;
  EXPECT_EQ(answer->error_code(), "backend_unavailable") << answer->body;
  expect_health_answers();

  // Unlocked (a keyring given the password at login): the same daemon serves
  // the key, which the refused erase did not touch.
  keyring.kill_keyring();
  keyring.start_keyring(/*unlocked=*/true);
  const auto token = cred(socket(), {"token", "--profile", "it-locked-start"});
  EXPECT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out, key + "\n");
}

TEST_F(KeyringFaultTest, ARestartedKeyringServesTheFirstRequest) {
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
  const std::string key = unique_key();
  ASSERT_EQ(store("it-restart", key).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);

  // Nothing asks the keyring while it is gone: the daemon's connection to it
  // is stale by the time the first request comes.
  keyring.kill_keyring();
  keyring.start_keyring();
  const auto token = cred(socket(), {"token", "--profile", "it-restart"});
  EXPECT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out, key + "\n");
  EXPECT_EQ(store("it-restart-new", unique_key()).exit_code, 0);
}

TEST_F(KeyringFaultTest, ARestartedSessionBusIsUsedAgainWithoutRestartingTheDaemon) {
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, keyring.env());
  const std::string key = unique_key();
  ASSERT_EQ(store("it-bus", key).exit_code, 0);
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);

  keyring.restart_bus();
  const auto first = cred(socket(), {"token", "--profile", "it-bus"});
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, key + "\n");

  // And once more, with requests made while the bus is down: they fail at
  // once, and the daemon neither exits nor stays on the dead connection.
  ASSERT_EQ(cred(socket(), {"lock"}).exit_code, 0);
  keyring.kill_bus();
  for (int i = 0; i < 2; ++i) {
    const auto [down, took] = timed_token("it-bus");
    EXPECT_EQ(down.exit_code, 6) << down.err;
    EXPECT_NE(down.err.find("Secret Service"), std::string::npos) << down.err;
    EXPECT_LT(took, limits::kStoreCallDeadline + kFailureSlack);
  }
  expect_health_answers();
  keyring.bring_bus_back();
  const auto again = cred(socket(), {"token", "--profile", "it-bus"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, key + "\n");
  EXPECT_EQ(store("it-bus-new", unique_key()).exit_code, 0);
  EXPECT_EQ(daemon.log().find("CRITICAL"), std::string::npos) << daemon.log();
  EXPECT_EQ(daemon.stop(), 0);
}

// A stand-in for kosli-credd that answers every token with an empty one.
class EmptyTokenDaemon {
 public:
  explicit EmptyTokenDaemon(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 8) != 0) {
      throw std::runtime_error("cannot listen on " + path);
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~EmptyTokenDaemon() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }

 private:
  void serve() {
    for (;;) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      // Requests without bodies, one after another on the connection.
      std::string pending;
      char buf[4096];
      for (;;) {
        const auto end = pending.find("\r\n\r\n");
        if (end == std::string::npos) {
          const ssize_t n = ::read(c, buf, sizeof buf);
          if (n <= 0) break;
          pending.append(buf, static_cast<std::size_t>(n));
          continue;
        }
        const bool token = pending.substr(0, end).find("/token ") != std::string::npos;
        pending.erase(0, end + 4);
        const json profile = {{"name", "it-fake"}, {"org", "acme"}, {"host", "https://app.kosli.com"},
                              {"kind", "service-account"}, {"persistent", true}};
        const std::string body = token ? json{{"token", ""}, {"token_type", "Bearer"}, {"org", "acme"},
                                              {"host", "https://app.kosli.com"}}.dump()
                                       : json{{"profiles", json::array({profile})}}.dump();
        const std::string response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                                     std::to_string(body.size()) + "\r\n\r\n" + body;
        if (::write(c, response.data(), response.size()) < 0) break;
      }
      ::close(c);
    }
  }

  int fd_ = -1;
  std::thread thread_;
};

TEST(EmptyTokenTest, NoClientHandsOnAnEmptyTokenAsSuccess) {
  TempDir dir;
  const std::string socket = dir.path() + "/sock";
  EmptyTokenDaemon fake(socket);
  const std::vector<std::pair<std::string, std::string>> env = {{"KOSLI_CRED_SOCKET", socket}};
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"token", "--profile", "it-fake"},
        std::vector<std::string>{"token", "--profile", "it-fake", "--json"},
        std::vector<std::string>{"header", "--profile", "it-fake"},
        std::vector<std::string>{"exec", "--profile", "it-fake", "--", "sh", "-c", "echo ran"}}) {
    const auto r = cred(socket, command);
    EXPECT_EQ(r.exit_code, 1) << command[0] << ": " << r.out;
    EXPECT_TRUE(r.out.empty()) << command[0] << ": " << r.out;
    EXPECT_NE(r.err.find("an empty token"), std::string::npos) << command[0] << ": " << r.err;
  }
  const auto git = run({bin("git-credential-kosli"), "get"},
                       RunOptions{"protocol=https\nhost=app.kosli.com\n\n", env});
  EXPECT_EQ(git.exit_code, 1) << git.out;
  EXPECT_EQ(git.out.find("password="), std::string::npos) << git.out;
  EXPECT_NE(git.err.find("an empty token"), std::string::npos) << git.err;
}

}  // namespace
}  // namespace kosli::test
