// The workstation session, end to end: a private system bus with a stand-in
// logind (tests/support/logind_standin.py) whose Lock and PrepareForSleep make
// the daemon forget its cached keys; a private keyring whose default collection
// is locked; a recording stand-in notification server
// (tests/support/notify_standin.py) on a private session bus; and none of them,
// where the daemon works as before.
#include <fstream>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

using Env = std::vector<std::pair<std::string, std::string>>;

// The system's python3: the one with python3-dbus.
constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kNoBus = "unix:path=/nonexistent/kosli-no-bus";

std::string support(const std::string& script) { return std::string(KOSLI_TEST_SOURCE_DIR) + "/tests/support/" + script; }

// A D-Bus daemon of our own, of `type` "system" or "session", from a minimal
// configuration written here.
class PrivateBus {
 public:
  explicit PrivateBus(const std::string& type)
      : variable_(type == "system" ? "DBUS_SYSTEM_BUS_ADDRESS" : "DBUS_SESSION_BUS_ADDRESS") {
    const std::string config = dir_.path() + "/bus.conf";
    std::ofstream(config) << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                             " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                             "<busconfig><type>"
                          << type << "</type><listen>unix:path=" << dir_.path()
                          << "/bus</listen><auth>EXTERNAL</auth>"
                             "<policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>"
                             "<allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>\n";
    int out = 0;
    pid_ = spawn_background({"dbus-daemon", "--config-file=" + config, "--nofork", "--nopidfile", "--print-address=1"},
                            {}, {}, dir_.path() + "/bus.log", out);
    address_ = first_line(out, std::chrono::seconds(10));  // printed once it listens
    if (address_.empty()) {
      stop_process(pid_);
      throw std::runtime_error("the private " + type + " bus did not start: " + read_file(dir_.path() + "/bus.log"));
    }
  }
  ~PrivateBus() { stop_process(pid_); }
  PrivateBus(const PrivateBus&) = delete;
  PrivateBus& operator=(const PrivateBus&) = delete;

  // The variable that points a program at this bus, and its value.
  Env::value_type env() const { return {variable_, address_}; }
  void stop() { stop_process(pid_); }

 private:
  std::string variable_;
  TempDir dir_;
  pid_t pid_ = -1;
  std::string address_;
};

// A python stand-in on a bus; returns once it printed "ready" (its name is owned).
class BusStandIn {
 public:
  BusStandIn(std::vector<std::string> argv, const Env& env) {
    int out = 0;
    pid_ = spawn_background(std::move(argv), env, {}, dir_.path() + "/log", out);
    const std::string line = first_line(out, std::chrono::seconds(10));
    if (line != "ready") {
      stop_process(pid_);
      throw std::runtime_error("a D-Bus stand-in did not start: " + line + read_file(dir_.path() + "/log"));
    }
  }
  ~BusStandIn() { stop_process(pid_); }
  BusStandIn(const BusStandIn&) = delete;
  BusStandIn& operator=(const BusStandIn&) = delete;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
};

class SessionTest : public KosliTest {
 protected:
  void SetUp() override {
    if (run({"dbus-daemon", "--version"}).exit_code != 0) GTEST_SKIP() << "needs dbus-daemon";
    if (run({kPython, "-c", "import dbus, gi"}).exit_code != 0) GTEST_SKIP() << "needs python3-dbus and python3-gi";
    KosliTest::SetUp();
  }

  // Asks the stand-in logind to emit Lock on session `id`, or PrepareForSleep(`start`).
  static void lock(const PrivateBus& system, const std::string& id) { logind(system, "Lock", id); }
  static void sleep(const PrivateBus& system, bool start) { logind(system, "Sleep", start ? "true" : "false"); }
  // Asks it to set session `id`'s LockedHint, as GNOME's and KDE's lockers do.
  static void locked_hint(const PrivateBus& system, const std::string& id, bool locked) {
    logind(system, "SetLockedHint", id, locked ? "true" : "false");
  }
  static void logind(const PrivateBus& system, const std::string& method, const std::string& arg,
                     const std::string& arg2 = {}) {
    std::vector<std::string> argv{"gdbus", "call", "--system", "--dest", "org.freedesktop.login1", "--object-path",
                                  "/org/freedesktop/login1", "--method", "org.kosli.StandIn." + method, arg};
    if (!arg2.empty()) argv.push_back(arg2);
    const auto r = run(argv, RunOptions{{}, {system.env()}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  json status() { return json::parse(cred(socket(), {"status", "--json"}).out, nullptr, false); }

  // Waits until status says the watch subscribed to exactly `what`.
  bool subscribed(const std::vector<std::string>& what) {
    return eventually(
        [&] {
          const json s = status();
          return s.contains("session") && s["session"]["forget_on"] == json(what);
        },
        std::chrono::seconds(15));
  }

  // The daemon's "forget" audit records, in order.
  static std::vector<json> forgets(const Daemon& daemon) {
    std::vector<json> out;
    for (const auto& r : audit_records(daemon.audit_log())) {
      if (r["event"] == "forget") out.push_back(r);
    }
    return out;
  }

  // The detail of the last token record for `profile`.
  static std::string last_token_detail(const Daemon& daemon, const std::string& profile) {
    std::string detail = "none";
    for (const auto& r : audit_records(daemon.audit_log())) {
      if (r["event"] == "token" && r["profile"] == profile) detail = r.value("detail", "");
    }
    return detail;
  }
};

TEST_F(SessionTest, ScreenLockAndSleepForgetCachedKeysEachWithOneAuditRecord) {
  PrivateBus system("system"), session("session");
  BusStandIn logind({kPython, support("logind_standin.py")}, {system.env()});
  Daemon daemon(socket(), {"--backend", "memory"},
                {system.env(), session.env()});
  ASSERT_TRUE(subscribed({"screen", "sleep"})) << daemon.log();
  const std::string key = unique_key();
  ASSERT_EQ(store("it-lock", key, "https://app.kosli.com").exit_code, 0);
  token("it-lock");
  EXPECT_EQ(token("it-lock"), key);
  ASSERT_EQ(last_token_detail(daemon, "it-lock"), "cached");
  EXPECT_EQ(status()["cached"], 1);

  lock(system, "display1");  // another session's lock is not ours
  lock(system, "pid1");
  ASSERT_TRUE(eventually([&] { return !forgets(daemon).empty(); }, std::chrono::seconds(10))) << daemon.log();
  auto records = forgets(daemon);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["detail"], "screen_locked");
  EXPECT_EQ(records[0]["result"], "ok");
  json s = status();
  EXPECT_EQ(s["cached"], 0);
  EXPECT_EQ(s["session"]["last_forgot_reason"], "screen_locked");
  EXPECT_TRUE(s["session"]["last_forgot_at"].is_string());
  const auto text = cred(socket(), {"status"});
  EXPECT_NE(text.out.find("forget:    cached keys are forgotten on screen, sleep; last forgot at "),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find(" (screen_locked)"), std::string::npos) << text.out;
  EXPECT_EQ(token("it-lock"), key) << "the stored key is kept";
  EXPECT_EQ(last_token_detail(daemon, "it-lock"), "") << "the next token reads the store again";

  // Waking up forgets nothing; going to sleep forgets once more.
  sleep(system, false);
  sleep(system, true);
  ASSERT_TRUE(eventually([&] { return forgets(daemon).size() >= 2; }, std::chrono::seconds(10))) << daemon.log();
  records = forgets(daemon);
  ASSERT_EQ(records.size(), 2u) << "PrepareForSleep(false) forgot nothing";
  EXPECT_EQ(records[1]["detail"], "sleep");
  EXPECT_EQ(status()["cached"], 0);
  EXPECT_EQ(daemon.stop(), 0);
  expect_no_keys_logged(daemon, {key});
}

TEST_F(SessionTest, ADesktopLockersLockedHintForgetsOncePerLock) {
  PrivateBus system("system"), session("session");
  BusStandIn logind({kPython, support("logind_standin.py")}, {system.env()});
  Daemon daemon(socket(), {"--backend", "memory"},
                {system.env(), session.env()});
  ASSERT_TRUE(subscribed({"screen", "sleep"})) << daemon.log();
  const std::string key = unique_key();
  ASSERT_EQ(store("it-hint", key, "https://app.kosli.com").exit_code, 0);
  token("it-hint");
  ASSERT_EQ(status()["cached"], 1);

  // GNOME's and KDE's lockers set LockedHint; logind sends no Lock then.
  locked_hint(system, "display1", true);  // another session's lock is not ours
  locked_hint(system, "pid1", true);
  ASSERT_TRUE(eventually([&] { return !forgets(daemon).empty(); }, std::chrono::seconds(10))) << daemon.log();
  EXPECT_EQ(forgets(daemon)[0]["detail"], "screen_locked");
  EXPECT_EQ(status()["cached"], 0);

  // Unlocked, then loginctl lock-session: logind's Lock, then the locker's
  // LockedHint true, is one lock and one forget. Sleep comes after both (one
  // sender's signals arrive in order) and ends the count.
  locked_hint(system, "pid1", false);
  lock(system, "pid1");
  locked_hint(system, "pid1", true);
  sleep(system, true);
  ASSERT_TRUE(eventually([&] { return forgets(daemon).size() >= 3; }, std::chrono::seconds(10))) << daemon.log();
  const auto records = forgets(daemon);
  ASSERT_EQ(records.size(), 3u) << daemon.audit_log();
  EXPECT_EQ(records[1]["detail"], "screen_locked");
  EXPECT_EQ(records[2]["detail"], "sleep");
  EXPECT_EQ(daemon.stop(), 0);
  expect_no_keys_logged(daemon, {key});
}

TEST_F(SessionTest, OutsideAnySessionTheUsersDisplaySessionIsFollowed) {
  PrivateBus system("system"), session("session");
  BusStandIn logind({kPython, support("logind_standin.py"), "--outside-session"},
                    {system.env()});
  // As systemd --user starts it: no session of its own, no XDG_SESSION_ID.
  Daemon daemon(socket(), {"--backend", "memory"},
                {system.env(),
                 session.env(),
                 {"XDG_SESSION_ID", ""}});
  ASSERT_TRUE(subscribed({"screen", "sleep"})) << daemon.log();
  lock(system, "display1");
  ASSERT_TRUE(eventually([&] { return !forgets(daemon).empty(); }, std::chrono::seconds(10))) << daemon.log();
  EXPECT_EQ(forgets(daemon)[0]["detail"], "screen_locked");
}

TEST_F(SessionTest, LockOnSleepOnlyIgnoresTheScreenLock) {
  PrivateBus system("system"), session("session");
  BusStandIn logind({kPython, support("logind_standin.py")}, {system.env()});
  write_config(R"({"lock_on": ["sleep"], "notify": false})");
  Daemon daemon(socket(), {"--backend", "memory", "--config", config_path()},
                {system.env(), session.env()});
  ASSERT_TRUE(subscribed({"sleep"})) << daemon.log();
  EXPECT_EQ(status()["session"]["notify"], false);
  ASSERT_EQ(store("it-sleep", unique_key(), "https://app.kosli.com").exit_code, 0);
  token("it-sleep");
  lock(system, "pid1");
  sleep(system, true);  // signals from one sender arrive in order: this one comes after the Lock
  ASSERT_TRUE(eventually([&] { return !forgets(daemon).empty(); }, std::chrono::seconds(10))) << daemon.log();
  const auto records = forgets(daemon);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["detail"], "sleep");
}

TEST_F(SessionTest, TheKeyringLockingForgetsCachedKeys) {
  if (!in_sandbox()) GTEST_SKIP() << "needs gnome-keyring (run under scripts/with-keyring)";
  PrivateKeyring keyring;
  Daemon daemon(socket(), {"--backend", "secret-service"}, {keyring.bus_env(), {"DBUS_SYSTEM_BUS_ADDRESS", kNoBus}});
  ASSERT_TRUE(subscribed({"keyring"})) << daemon.log();
  const std::string key = unique_key();
  ASSERT_EQ(store("it-keyring", key, "https://app.kosli.com").exit_code, 0);
  EXPECT_EQ(token("it-keyring"), key);
  EXPECT_EQ(status()["cached"], 1);

  const Env bus = {keyring.bus_env()};
  const auto failed = lock_default_collection(bus);
  ASSERT_FALSE(failed) << failed->err;
  ASSERT_TRUE(eventually([&] { return !forgets(daemon).empty(); }, std::chrono::seconds(10))) << daemon.log();
  const auto records = forgets(daemon);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["detail"], "keyring_locked");
  EXPECT_EQ(status()["cached"], 0);
  EXPECT_EQ(daemon.stop(), 0);
  expect_no_keys_logged(daemon, {key});
}

TEST_F(SessionTest, AFailedScheduledRotationAndAnExpiringKeyEachNotifyOnce) {
  KosliStandIn standin(pki_, json{{"keys", json::array()}}.dump());
  PrivateBus session("session");
  TempDir notes_dir;
  const std::string notes = notes_dir.path() + "/notifications.jsonl";
  BusStandIn server({kPython, support("notify_standin.py"), "--log", notes},
                    {session.env()});
  // Due at once (expires in 2 days), but without a key id Kosli cannot be asked: it fails.
  write_config(R"({"profiles": {"it-bad": {"rotate_before_expiry_days": 7}}})");
  auto args = memory_daemon_args();
  args.insert(args.end(), {"--config", config_path()});
  Daemon daemon(socket(), args,
                no_proxy({session.env(), {"DBUS_SYSTEM_BUS_ADDRESS", kNoBus}}));
  const std::string bad = unique_key(), other = unique_key();
  // Two days and a half: "in 2 days" however long the rotation's failure takes to arrive.
  ASSERT_EQ(store("it-bad", bad, standin.url(), {"--expires-at", rfc3339(now_s() + 2 * 86400 + 43200)}).exit_code, 0);
  const auto count = [&](const std::string& part) {
    std::size_t n = 0;
    std::ifstream in(notes);
    for (std::string line; std::getline(in, line);) {
      const json note = json::parse(line, nullptr, false);
      if ((note.value("summary", "") + " " + note.value("body", "")).find(part) != std::string::npos) ++n;
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return count("'it-bad' was not rotated") > 0; }, std::chrono::seconds(15)))
      << daemon.log();

  token("it-bad");
  token("it-bad");  // the same day: not told again
  // A notice sent after the last token's: once it is in, any from that token would be too.
  ASSERT_EQ(store("it-later", other, standin.url(), {"--expires-at", rfc3339(now_s() + 3 * 86400 + 43200)}).exit_code, 0);
  token("it-later");
  ASSERT_TRUE(eventually([&] { return count("'it-later' expires in") > 0; }, std::chrono::seconds(10))) << daemon.log();

  EXPECT_EQ(count("'it-bad' was not rotated"), 1u);
  EXPECT_EQ(count("'it-bad' expires in 2 days"), 1u) << read_file(notes);
  const std::string all = read_file(notes);
  EXPECT_EQ(all.find(bad), std::string::npos) << "a notification holds a key";
  EXPECT_EQ(all.find(other), std::string::npos) << "a notification holds a key";
  EXPECT_NE(all.find("\"app\": \"kosli-credd\""), std::string::npos) << all;
}

TEST_F(SessionTest, WithoutLogindOrANotificationServerTheDaemonWorksAsBefore) {
  PrivateBus system("system"), session("session");  // neither has anyone on it
  write_config(R"({"profiles": {"it-quiet": {"rotate_before_expiry_days": 7}}})");
  auto args = memory_daemon_args();
  args.insert(args.end(), {"--config", config_path()});
  Daemon daemon(socket(), args,
                no_proxy({system.env(),
                          session.env()}));
  const std::string key = unique_key();
  ASSERT_EQ(store("it-quiet", key, "https://127.0.0.1:9", {"--expires-at", rfc3339(now_s() + 2 * 86400)}).exit_code,
            0);
  EXPECT_EQ(token("it-quiet"), key);
  EXPECT_EQ(token("it-quiet"), key);
  // The scheduled rotation fails (no key id) and would be told of: no one listens.
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& r : status().value("rotation", json::array())) {
          if (r["last_error"].is_string()) return true;
        }
        return false;
      },
      std::chrono::seconds(15)));
  const json s = status();
  EXPECT_EQ(s["session"]["forget_on"], json::array());
  EXPECT_TRUE(s["session"]["last_forgot_reason"].is_null());
  EXPECT_EQ(daemon.stop(), 0);
  const std::string log = daemon.log();
  EXPECT_NE(log.find("no logind on the system bus"), std::string::npos) << log;
  const auto occurrences = [&](const std::string& part) {
    std::size_t n = 0;
    for (auto at = log.find(part); at != std::string::npos; at = log.find(part, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences("no logind on the system bus"), 1u);
  EXPECT_LE(occurrences("no desktop notification shown"), 1u) << log;
  EXPECT_EQ(log.find(" error "), std::string::npos) << log;
  expect_no_keys_logged(daemon, {key});
}

TEST_F(SessionTest, TheSystemBusGoingAwayDoesNotStopTheDaemon) {
  PrivateBus system("system"), session("session");
  BusStandIn logind({kPython, support("logind_standin.py")}, {system.env()});
  Daemon daemon(socket(), {"--backend", "memory"},
                {system.env(), session.env()});
  ASSERT_TRUE(subscribed({"screen", "sleep"})) << daemon.log();
  system.stop();
  ASSERT_TRUE(subscribed({})) << "nothing is subscribed while the bus is gone\n" << daemon.log();
  EXPECT_NE(daemon.log().find("the system bus closed"), std::string::npos) << daemon.log();
  const std::string key = unique_key();
  ASSERT_EQ(store("it-bus", key, "https://app.kosli.com").exit_code, 0);
  EXPECT_EQ(token("it-bus"), key);
  EXPECT_TRUE(forgets(daemon).empty());
  EXPECT_EQ(daemon.stop(), 0);
}

TEST_F(SessionTest, ARotatedKeyWaitingForTheKeyringNotifiesOnce) {
  if (!in_sandbox()) GTEST_SKIP() << "needs gnome-keyring (run under scripts/with-keyring)";
  PrivateKeyring keyring;  // this test's own, so it can hang it
  TempDir notes_dir;
  const std::string notes = notes_dir.path() + "/notifications.jsonl";
  BusStandIn server({kPython, support("notify_standin.py"), "--log", notes}, {keyring.bus_env()});
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}, {"hold_rotate", true}}.dump());
  Daemon daemon(socket(), {"--backend", "secret-service", "--ca-file", pki_.ca_cert},
                no_proxy({keyring.bus_env(), {"DBUS_SYSTEM_BUS_ADDRESS", kNoBus}}));
  ASSERT_EQ(store("it-held", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  std::future<RunResult> rotation =
      std::async(std::launch::async, [&] { return cred(socket(), {"rotate", "--profile", "it-held", "--via-api"}); });
  // Kosli has the request: hang the keyring, then let Kosli answer.
  ASSERT_TRUE(eventually([&] { return state(standin)["held"] == 1; }, std::chrono::seconds(10)));
  keyring.pause();
  standin.control(pki_.ca_cert, "release");
  EXPECT_EQ(rotation.get().exit_code, 6);
  const auto told = [&] {
    std::size_t n = 0;
    std::ifstream in(notes);
    for (std::string line; std::getline(in, line);) {
      if (line.find("'it-held' is not in the keyring") != std::string::npos) ++n;
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return told() > 0; }, std::chrono::seconds(10))) << daemon.log();
  keyring.resume();
  ASSERT_TRUE(eventually(
      [&] {
        const json s = status();
        return s.is_object() && s["waiting_keys"].empty();
      },
      std::chrono::seconds(60)))
      << daemon.log();
  EXPECT_EQ(told(), 1u) << read_file(notes);
  const std::string new_key = state(standin)["keys"][1]["key"];
  EXPECT_EQ(read_file(notes).find(new_key), std::string::npos) << "a notification holds a key";
  EXPECT_EQ(daemon.stop(), 0);
  expect_no_keys_logged(daemon, {old_key, new_key});
}

}  // namespace
}  // namespace kosli::test
