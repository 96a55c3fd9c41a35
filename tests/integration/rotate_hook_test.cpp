// The rotation hook (a profile's on_rotate), end to end against the Kosli
// stand-in: the hook gets the new key on its standard input only and the
// metadata in its environment; it can publish the key as the kubelet lays out
// a Secret volume; a failing hook is retried, shown, audited and counted, and
// the key is kept; one that keeps failing is given up loudly; one that never
// exits is killed at the timeout, its process group with it.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "tests/integration/kosli_fixture.hpp"
#include "tests/integration/raw_http.hpp"
#include "tests/integration/secret_volume.hpp"

namespace kosli::test {
namespace {

class RotateHookTest : public KosliTest {
 protected:
  // An executable shell script in the test's directory.
  std::string script(const std::string& name, const std::string& body) const {
    const std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0700);
    return path;
  }
  std::string out_dir(const std::string& name) const {
    const std::string path = dir_.path() + "/" + name;
    std::filesystem::create_directories(path);
    return path;
  }
  void configure_hook(const std::string& profile, const json& argv) const {
    write_config(json{{"profiles", {{profile, {{"on_rotate", argv}}}}}}.dump());
  }
  std::vector<std::string> daemon_args() const {
    auto args = memory_daemon_args();
    args.insert(args.end(), {"--config", config_path()});
    return args;
  }
  // The one entry of "rotate_hooks" in the health answer.
  json hook_state() {
    const auto r = cred(socket(), {"status", "--json"});
    const json health = json::parse(r.out, nullptr, false);
    if (!health.is_object() || !health.contains("rotate_hooks") || health["rotate_hooks"].size() != 1) return {};
    return health["rotate_hooks"][0];
  }
  // kosli_credd_rotate_hook_runs_total{result="<result>"}; -1 when missing.
  long hook_runs(const std::string& result) {
    const auto scrape = exchange(socket(), http_request("GET", "/v1/metrics"));
    if (!scrape || scrape->status != 200) return -1;
    const std::string prefix = "kosli_credd_rotate_hook_runs_total{result=\"" + result + "\"} ";
    const auto at = scrape->body.find(prefix);
    return at == std::string::npos ? -1 : std::stol(scrape->body.substr(at + prefix.size()));
  }
  RunResult rotate_via_api(const std::string& profile) {
    return cred(socket(), {"rotate", "--profile", profile, "--via-api", "--grace-hours", "2"});
  }
};

// Records what the hook got: its stdin, argv, environment (as the kernel shows
// them to anyone who can read /proc) and open descriptors, then marks itself done.
constexpr const char* kRecordingHook = R"SH(out="$1"
cat > "$out/stdin"
tr '\0' '\n' < /proc/$$/cmdline > "$out/cmdline"
tr '\0' '\n' < /proc/$$/environ > "$out/environ"
ls -l /proc/$$/fd > "$out/fds"
touch "$out/done"
)SH";

TEST_F(RotateHookTest, TheHookGetsTheNewKeyOnStdinAndOnlyTheMetadataInItsEnvironment) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  const std::string out = out_dir("published");
  configure_hook("it-hook", {script("record-hook", kRecordingHook), out});
  Daemon daemon(socket(), daemon_args(), no_proxy({{"KOSLI_API_TOKEN", old_key}}));
  ASSERT_EQ(store("it-hook", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  const json before = hook_state();
  EXPECT_EQ(before["profile"], "it-hook") << "a profile with a hook is shown before its first run";
  EXPECT_TRUE(before["result"].is_null()) << "no rotation yet, no run";

  const auto rotated = rotate_via_api("it-hook");
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(out + "/done"); }, std::chrono::seconds(10)))
      << daemon.log();
  const json shown = show("it-hook");
  const std::string new_key = token("it-hook");
  ASSERT_NE(new_key, old_key);
  EXPECT_EQ(read_file(out + "/stdin"), new_key) << "the key, and nothing after it";

  const std::string environ = read_file(out + "/environ");
  EXPECT_NE(environ.find("\nKOSLI_CRED_PROFILE=it-hook\n"), std::string::npos) << environ;
  EXPECT_NE(environ.find("\nKOSLI_ORG=acme\n"), std::string::npos) << environ;
  EXPECT_NE(environ.find("\nKOSLI_HOST=" + standin.url() + "\n"), std::string::npos) << environ;
  EXPECT_NE(environ.find("\nKOSLI_KEY_ID=" + shown["key_id"].get<std::string>() + "\n"), std::string::npos);
  EXPECT_NE(environ.find("\nKOSLI_KEY_FINGERPRINT=" + shown["fingerprint"].get<std::string>() + "\n"),
            std::string::npos);
  EXPECT_NE(environ.find("\nKOSLI_KEY_EXPIRES_AT="), std::string::npos) << environ;
  const auto grace = environ.find("\nKOSLI_GRACE_PERIOD_EXPIRES_AT=20");
  EXPECT_NE(grace, std::string::npos) << "the end of the old key's grace period, RFC 3339: " << environ;
  EXPECT_EQ(environ.find("KOSLI_API_TOKEN"), std::string::npos) << "kosli-credd's own KOSLI_* is not passed on";
  for (const auto& key : {old_key, new_key}) {
    EXPECT_EQ(environ.find(key), std::string::npos) << "a key in the hook's environment";
    EXPECT_EQ(read_file(out + "/cmdline").find(key), std::string::npos) << "a key in the hook's arguments";
  }
  EXPECT_EQ(read_file(out + "/fds").find("socket:"), std::string::npos)
      << "the hook inherited a socket of kosli-credd's: " << read_file(out + "/fds");
  EXPECT_NE(read_file(out + "/cmdline").find("/record-hook\n" + out + "\n"), std::string::npos)
      << "its arguments are on_rotate's, as configured: " << read_file(out + "/cmdline");

  EXPECT_TRUE(eventually([&] { return hook_state()["result"] == "ok"; }, std::chrono::seconds(5)));
  const json state = hook_state();
  EXPECT_EQ(state["attempts"], 1);
  EXPECT_EQ(state["fingerprint"], shown["fingerprint"]);
  EXPECT_FALSE(state["gave_up"].get<bool>());
  EXPECT_EQ(hook_runs("ok"), 1);
  EXPECT_EQ(hook_runs("failed"), 0);
  EXPECT_EQ(count_records(audit_records(daemon.audit_log()), "rotate_hook", "ok"), 1u);
  expect_no_keys_logged(daemon, {old_key, new_key});
}

TEST_F(RotateHookTest, AKeyTheKeyringCouldNotTakeIsPublishedFromMemory) {
  PrivateKeyring keyring;  // this test's own, so it can hang it
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}, {"hold_rotate", true}}.dump());
  const std::string out = out_dir("from-memory");
  configure_hook("it-held", {script("record-hook", kRecordingHook), out});
  Daemon daemon(socket(), {"--backend", "secret-service", "--ca-file", pki_.ca_cert, "--config", config_path()},
                no_proxy({keyring.bus_env()}));
  ASSERT_EQ(store("it-held", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

  std::future<RunResult> rotation = std::async(std::launch::async, [&] {
    return cred(socket(), {"rotate", "--profile", "it-held", "--via-api"});
  });
  // Kosli has the request: hang the keyring, then let Kosli answer.
  ASSERT_TRUE(eventually([&] { return state(standin)["held"] == 1; }, std::chrono::seconds(10)));
  keyring.pause();
  standin.control(pki_.ca_cert, "release");
  EXPECT_EQ(rotation.get().exit_code, 6) << "the keyring did not take the new key";

  // The hook publishes the key held in memory while the keyring still hangs.
  const std::string new_key = state(standin)["keys"][1]["key"];
  EXPECT_TRUE(eventually([&] { return std::filesystem::exists(out + "/done"); }, std::chrono::seconds(10)))
      << daemon.log();
  EXPECT_EQ(read_file(out + "/stdin"), new_key);
  EXPECT_EQ(hook_state()["result"], "ok");
  keyring.resume();
  EXPECT_TRUE(eventually([&] {
    const json health = json::parse(cred(socket(), {"status", "--json"}).out, nullptr, false);
    return health.is_object() && health["waiting_keys"].empty();
  }, std::chrono::seconds(60))) << daemon.log();
  EXPECT_EQ(token("it-held"), new_key);
  EXPECT_EQ(daemon.stop(), 0);
  expect_no_keys_logged(daemon, {old_key, new_key});
}

TEST_F(RotateHookTest, AScheduledRotationRunsTheHookToo) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  const std::string out = out_dir("scheduled");
  // Each key it is handed, in a file named after the key's fingerprint.
  const std::string hook = script("by-fingerprint", "cat > \"$1/$KOSLI_KEY_FINGERPRINT.tmp\" && "
                                                    "mv \"$1/$KOSLI_KEY_FINGERPRINT.tmp\" \"$1/$KOSLI_KEY_FINGERPRINT\"\n");
  // Due about 3 s after it is stored, and again after each rotation.
  write_config(json{{"profiles", {{"it-sched", {{"rotate_every_days", 0.00003}, {"rotate_grace_hours", 1},
                                                {"on_rotate", {hook, out}}}}}}}.dump());
  Daemon daemon(socket(), daemon_args(), no_proxy());
  ASSERT_EQ(store("it-sched", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

  std::string published;
  ASSERT_TRUE(eventually([&] {
    for (const auto& entry : std::filesystem::directory_iterator(out)) {
      if (entry.path().extension() != ".tmp") published = read_file(entry.path());
    }
    return !published.empty();
  }, std::chrono::seconds(30))) << daemon.log();
  bool issued = false;
  const json now = state(standin);
  for (const auto& k : now["keys"]) issued = issued || (k["key"] == published && k["key_id"] != "k1");
  EXPECT_TRUE(issued) << "the hook got a key Kosli issued on the schedule";
  EXPECT_NE(published, old_key);
  expect_no_keys_logged(daemon, {old_key, published});
}


TEST_F(RotateHookTest, AHookPublishesEachRotatedKeyAsAKubernetesSecretVolume) {
  const std::string first = unique_key(), second = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(first)}}}.dump());
  const std::string volume = out_dir("secret-volume");
  configure_hook("it-kube", {script("kube-hook", kPublishHook), volume});
  Daemon daemon(socket(), daemon_args(), no_proxy());
  ASSERT_EQ(store("it-kube", first, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

  // Through Kosli's API, then by hand: every successful rotation runs the hook.
  ASSERT_EQ(rotate_via_api("it-kube").exit_code, 0);
  const std::string from_api = token("it-kube");
  EXPECT_TRUE(eventually([&] { return read_file(volume + "/api-key") == from_api; }, std::chrono::seconds(10)))
      << daemon.log();
  const auto by_hand = cred(socket(), {"rotate", "--profile", "it-kube", "--no-verify"}, RunOptions{second + "\n"});
  ASSERT_EQ(by_hand.exit_code, 0) << by_hand.err;
  EXPECT_TRUE(eventually([&] { return read_file(volume + "/api-key") == second; }, std::chrono::seconds(10)))
      << daemon.log();
  EXPECT_TRUE(eventually([&] { return hook_state()["attempts"] == 1 && hook_state()["result"] == "ok"; },
                         std::chrono::seconds(5)));

  std::size_t timestamped = 0;
  for (const auto& entry : std::filesystem::directory_iterator(volume)) {
    const std::string name = entry.path().filename();
    if (name.starts_with("..") && name != "..data") ++timestamped;
  }
  EXPECT_EQ(timestamped, 1u) << "the hook swapped ..data and removed the old directory";
  EXPECT_EQ(hook_runs("ok"), 2);
  expect_no_keys_logged(daemon, {first, from_api, second});
}

// Fails (saying so on stderr) until $1/ok exists; the second attempt echoes its
// stdin, the key, to stderr: that line must not reach the log.
constexpr const char* kFlakyHook = R"SH(out="$1"
echo x >> "$out/attempts"
key=$(cat)
[ -e "$out/ok" ] && exit 0
if [ "$(wc -l < "$out/attempts")" -eq 2 ]; then echo "cannot publish $key" >&2; else echo "engine said no" >&2; fi
exit 3
)SH";

TEST_F(RotateHookTest, AFailingHookIsRetriedShownAuditedAndCountedAndTheKeyIsKept) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  const std::string out = out_dir("flaky");
  configure_hook("it-flaky", {script("flaky-hook", kFlakyHook), out});
  Daemon daemon(socket(), daemon_args(), no_proxy({{"KOSLI_CREDD_TEST_HOOK_RETRY_MS", "300"}}));
  ASSERT_EQ(store("it-flaky", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

  const auto rotated = rotate_via_api("it-flaky");
  ASSERT_EQ(rotated.exit_code, 0) << "a failing hook does not fail the rotation: " << rotated.err;
  const std::string new_key = token("it-flaky");
  ASSERT_NE(new_key, old_key);

  // Shown while it fails: the exit status, the attempts so far, the next attempt.
  ASSERT_TRUE(eventually([&] {
    const json s = hook_state();
    return s["result"] == "failed" && s["attempts"].get<int>() >= 2 && !s["next_attempt_at"].is_null();
  }, std::chrono::seconds(15))) << daemon.log();
  EXPECT_EQ(hook_state()["last_error"], "exited with status 3");
  const auto status = cred(socket(), {"status"});
  EXPECT_NE(status.out.find("on_rotate for key"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("failed"), std::string::npos) << status.out;
  EXPECT_EQ(token("it-flaky"), new_key) << "the new key is served whatever the hook does";

  std::ofstream(out + "/ok") << "";
  ASSERT_TRUE(eventually([&] { return hook_state()["result"] == "ok"; }, std::chrono::seconds(15))) << daemon.log();
  const int attempts = hook_state()["attempts"];
  EXPECT_GE(attempts, 3);
  EXPECT_EQ(read_file(out + "/attempts").size(), static_cast<std::size_t>(attempts) * 2) << "one run per attempt";
  EXPECT_EQ(token("it-flaky"), new_key);

  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "rotate_hook", "failed"), static_cast<std::size_t>(attempts - 1));
  EXPECT_EQ(count_records(records, "rotate_hook", "ok"), 1u);
  EXPECT_EQ(hook_runs("failed"), attempts - 1);
  EXPECT_EQ(hook_runs("ok"), 1);
  const std::string log = daemon.log();
  EXPECT_NE(log.find("engine said no"), std::string::npos) << "the last line of a hook's stderr is logged";
  EXPECT_NE(log.find("not logged: it holds the key"), std::string::npos) << log;
  expect_no_keys_logged(daemon, {old_key, new_key});
}

TEST_F(RotateHookTest, AHookThatKeepsFailingIsGivenUpLoudlyAndTheKeyIsKept) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  configure_hook("it-broken", {"/nonexistent/publish-key"});
  Daemon daemon(socket(), daemon_args(),
                no_proxy({{"KOSLI_CREDD_TEST_HOOK_RETRY_MS", "200"}, {"KOSLI_CREDD_TEST_HOOK_GIVE_UP_MS", "2000"}}));
  ASSERT_EQ(store("it-broken", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  ASSERT_EQ(rotate_via_api("it-broken").exit_code, 0);
  const std::string new_key = token("it-broken");

  ASSERT_TRUE(eventually([&] { return hook_state()["gave_up"] == true; }, std::chrono::seconds(15))) << daemon.log();
  const json state = hook_state();
  EXPECT_EQ(state["result"], "not_started");
  EXPECT_NE(state["last_error"].get<std::string>().find("cannot be started"), std::string::npos) << state;
  EXPECT_TRUE(state["next_attempt_at"].is_null());
  const auto status = cred(socket(), {"status"});
  EXPECT_NE(status.out.find("GAVE UP"), std::string::npos) << status.out;
  EXPECT_NE(status.err.find("gave up"), std::string::npos) << status.err;
  EXPECT_NE(daemon.log().find("GAVE UP"), std::string::npos);
  // The hook gets the key without a newline; so does the command given to publish it by hand.
  EXPECT_NE(daemon.log().find("kosli-cred token --profile it-broken | tr -d '\\n' | /nonexistent/publish-key"),
            std::string::npos) << daemon.log();
  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "rotate_hook", "given_up"), 1u);
  EXPECT_EQ(count_records(records, "rotate_hook", "not_started"), static_cast<std::size_t>(state["attempts"].get<int>()));
  EXPECT_EQ(hook_runs("not_started"), state["attempts"].get<int>());
  EXPECT_EQ(token("it-broken"), new_key);
}

// Never exits, and has started a child of its own.
constexpr const char* kHangingHook = R"SH(out="$1"
sleep 600 &
echo $! > "$out/child"
echo $$ > "$out/pid"
wait
)SH";

bool gone(const std::string& pid_file) {
  const std::string text = read_file(pid_file);
  if (text.empty()) return false;
  const pid_t pid = std::stoi(text);
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  // A zombie no one reaped yet has exited all the same.
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] == 'Z';
}

TEST_F(RotateHookTest, AHookThatNeverExitsIsKilledAtTheTimeoutWithItsProcessGroup) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  const std::string out = out_dir("hanging");
  configure_hook("it-hang", {script("hang-hook", kHangingHook), out});
  Daemon daemon(socket(), daemon_args(),
                no_proxy({{"KOSLI_CREDD_TEST_HOOK_TIMEOUT_MS", "700"}, {"KOSLI_CREDD_TEST_HOOK_RETRY_MS", "60000"}}));
  ASSERT_EQ(store("it-hang", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  ASSERT_EQ(rotate_via_api("it-hang").exit_code, 0);
  EXPECT_NE(token("it-hang"), old_key) << "requests are served while the hook runs";

  ASSERT_TRUE(eventually([&] { return hook_state()["result"] == "timed_out"; }, std::chrono::seconds(10)))
      << daemon.log();
  EXPECT_NE(hook_state()["last_error"].get<std::string>().find("did not exit in time"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return gone(out + "/pid") && gone(out + "/child"); }, std::chrono::seconds(5)))
      << "the hook and its child were killed";
  EXPECT_EQ(hook_runs("timed_out"), 1);
  EXPECT_EQ(count_records(audit_records(daemon.audit_log()), "rotate_hook", "timed_out"), 1u);
}

TEST_F(RotateHookTest, TheConfigurationRefusesAHookThatIsNotAnAbsoluteProgram) {
  for (const json& bad : {json("/usr/bin/publish-key"), json::array(), json{"publish-key", "x"}, json{"/bin/x", 1}}) {
    write_config(json{{"profiles", {{"it-conf", {{"on_rotate", bad}}}}}}.dump());
    const auto r = run({bin("kosli-credd"), "--check-config", "--config", config_path()});
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("profiles.it-conf.on_rotate' must be a list of strings"), std::string::npos) << r.err;
  }
  write_config(json{{"profiles", {{"it-conf", {{"on_rotate", {"/usr/bin/vault", "kv", "put", "x", "k=-"}}}}}}}.dump());
  const auto good = run({bin("kosli-credd"), "--check-config", "--config", config_path()});
  EXPECT_EQ(good.exit_code, 0) << good.err;
}

}  // namespace
}  // namespace kosli::test
