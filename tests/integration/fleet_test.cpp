// Issue #20 end to end, as a fleet runs it: one ROTATOR daemon holds a
// service-account key and rotates it through Kosli's API (the stand-in); its
// on_rotate hook publishes the new key into a directory laid out as the kubelet
// lays out a Secret volume; a SIDECAR daemon watching that file serves the new
// key within 2 s. Kosli accepts the old key until its grace period ends and
// refuses it after; a malformed publish keeps the sidecar's key and shows in
// its metrics and status; no key is in any process's arguments or environment
// while they run, nor in any log. (The rename and in-place forms are in
// watch_test.cpp, a failing hook in rotate_hook_test.cpp.)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include "tests/integration/kosli_fixture.hpp"
#include "tests/integration/raw_http.hpp"
#include "tests/integration/secret_volume.hpp"

namespace kosli::test {
namespace {

namespace fs = std::filesystem;

// The contract says 1 s; the issue's test allows 2 on a loaded machine.
constexpr std::chrono::milliseconds kServeDeadline{2000};


// Every process below `root` (its children, theirs, ...), from /proc.
std::set<pid_t> descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const std::string stat = read_file(entry.path() / "stat");
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos || stat.size() < paren + 4) continue;
    // "pid (comm) S ppid ..."
    children.emplace(std::stoi(stat.substr(paren + 4)), std::stoi(name));
  }
  std::set<pid_t> out;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    const pid_t pid = todo.back();
    todo.pop_back();
    const auto [from, to] = children.equal_range(pid);
    for (auto it = from; it != to; ++it) {
      if (out.insert(it->second).second) todo.push_back(it->second);
    }
  }
  return out;
}

class FleetTest : public KosliTest {
 protected:
  std::string sidecar_socket() const { return dir_.path() + "/sidecar/sock"; }

  std::string make_script(const std::string& name, const std::string& body) const {
    const std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0700);
    return path;
  }

  std::string sidecar_token() {
    const auto r = cred(sidecar_socket(), {"token", "--profile", "fleet"});
    return r.exit_code == 0 && !r.out.empty() ? r.out.substr(0, r.out.size() - 1) : "";
  }
  bool sidecar_serves_within(const std::string& key, std::chrono::milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    do {
      if (sidecar_token() == key) return true;
    } while (Clock::now() < until);
    return false;
  }
  std::string sidecar_metrics() {
    const auto answer = exchange(sidecar_socket(), http_request("GET", "/v1/metrics"));
    return answer && answer->status == 200 ? answer->body : "";
  }
  bool sidecar_metrics_show(const std::string& line) {
    return eventually([&] { return sidecar_metrics().find("\n" + line + "\n") != std::string::npos; },
                      std::chrono::seconds(2));
  }

  // The status Kosli (the stand-in) gives `key` for a call of the org's;
  // the key goes to curl on its standard input, never in its arguments.
  int kosli_answer(const KosliStandIn& standin, const std::string& key) const {
    const auto r = run({"curl", "-sS", "--noproxy", "*", "--cacert", pki_.ca_cert, "-o", "/dev/null", "-w",
                        "%{http_code}", "-H", "@-", standin.url() + "/api/v2/environments/acme"},
                       RunOptions{"Authorization: Bearer " + key + "\n"});
    return r.exit_code == 0 ? std::stoi(r.out) : -1;
  }

  // Scans the arguments and environment of every process this test started
  // (the daemons, the hook, its child) for `keys`; returns the pids scanned.
  std::set<pid_t> scan_processes(const std::vector<std::string>& keys) const {
    std::set<pid_t> scanned;
    for (const pid_t pid : descendants(::getpid())) {
      const std::string proc = "/proc/" + std::to_string(pid);
      const std::string cmdline = read_file(proc + "/cmdline"), environ = read_file(proc + "/environ");
      if (cmdline.empty() && environ.empty()) continue;  // gone, or a zombie
      scanned.insert(pid);
      for (const auto& key : keys) {
        EXPECT_EQ(cmdline.find(key), std::string::npos) << "a key in the arguments of " << pid;
        EXPECT_EQ(environ.find(key), std::string::npos) << "a key in the environment of " << pid;
      }
    }
    return scanned;
  }
};

// Lets the hook blocked on `fifo` go on: true once it had it open. Never blocks.
bool release_hook(const std::string& fifo) {
  const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;  // ENXIO: no reader (yet)
  ::close(fd);
  return true;
}

pid_t parent_of(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || stat.size() < paren + 4 ? -1 : std::stoi(stat.substr(paren + 4));
}

TEST_F(FleetTest, ARotatorsHookPublishesIntoASecretVolumeAndASidecarFollowsIt) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  const std::string volume = dir_.path() + "/secret-volume", gate = dir_.path() + "/gate";
  fs::create_directories(volume);
  fs::create_directories(gate);
  fs::create_directories(dir_.path() + "/sidecar");
  ::chmod((dir_.path() + "/sidecar").c_str(), 0700);
  const std::string fifo = gate + "/release";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string hook = make_script("publish-to-secret", kPublishHook);

  // The Secret as the fleet has it before the rotation: the old key.
  ASSERT_EQ(run({hook, volume}, RunOptions{old_key}).exit_code, 0);
  ASSERT_TRUE(fs::is_symlink(volume + "/api-key"));

  write_config(json{{"profiles", {{"fleet", {{"on_rotate", {hook, volume, gate}}}}}}}.dump());
  Daemon rotator(socket(), {"--backend", "memory", "--ca-file", pki_.ca_cert, "--config", config_path()},
                 no_proxy({{"KOSLI_CREDD_TEST_HOOK_TIMEOUT_MS", "60000"}}));
  ASSERT_EQ(store("fleet", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  Daemon sidecar(sidecar_socket(),
                 {"--backend", "memory", "--ca-file", pki_.ca_cert, "--import-key", volume + "/api-key", "--org",
                  "acme", "--host", standin.url(), "--profile", "fleet", "--watch"},
                 no_proxy());
  ASSERT_EQ(sidecar_token(), old_key) << sidecar.log();
  struct Release {
    std::string fifo;
    ~Release() { eventually([&] { return release_hook(fifo); }, std::chrono::seconds(2)); }  // whatever failed
  } release{fifo};

  // The rotator rotates through Kosli's API; its hook publishes; the sidecar serves it.
  const auto rotated = cred(socket(), {"rotate", "--profile", "fleet", "--via-api", "--grace-hours", "1"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  const std::string new_key = token("fleet");
  ASSERT_NE(new_key, old_key);
  ASSERT_TRUE(eventually([&] { return fs::exists(gate + "/hook.pid"); }, std::chrono::seconds(10)))
      << rotator.log();
  EXPECT_EQ(read_file(volume + "/api-key"), new_key);
  EXPECT_TRUE(sidecar_serves_within(new_key, kServeDeadline)) << sidecar.log();

  // While the hook still runs (blocked in its child): no key in anyone's arguments or environment.
  const pid_t hook_pid = std::stoi(read_file(gate + "/hook.pid"));
  pid_t hook_child = -1;
  ASSERT_TRUE(eventually([&] {
    for (const pid_t pid : descendants(hook_pid)) hook_child = pid;
    return hook_child > 0;
  }, std::chrono::seconds(10)));
  const std::set<pid_t> scanned = scan_processes({old_key, new_key});
  EXPECT_TRUE(scanned.contains(rotator.pid()));
  EXPECT_TRUE(scanned.contains(sidecar.pid()));
  EXPECT_TRUE(scanned.contains(hook_pid)) << "the hook is the rotator's child while it runs";
  EXPECT_TRUE(scanned.contains(hook_child)) << "the hook's child (cat) was scanned too";
  EXPECT_EQ(parent_of(hook_pid), rotator.pid());
  ASSERT_TRUE(eventually([&] { return release_hook(fifo); }, std::chrono::seconds(10)));
  EXPECT_TRUE(eventually([&] {
    const json health = json::parse(cred(socket(), {"status", "--json"}).out, nullptr, false);
    return health.is_object() && !health["rotate_hooks"].empty() && health["rotate_hooks"][0]["result"] == "ok";
  }, std::chrono::seconds(10))) << rotator.log();

  // Kosli's grace period: the old key works until it ends, then it is refused.
  const auto rotations = requests(standin, "POST", "/api-keys/k1/rotate");
  ASSERT_EQ(rotations.size(), 1u);
  EXPECT_EQ(rotations[0]["body"]["grace_period_hours"], 1) << "--grace-hours reached Kosli";
  EXPECT_EQ(kosli_answer(standin, old_key), 200) << "runners not yet updated keep working";
  EXPECT_EQ(kosli_answer(standin, new_key), 200);
  EXPECT_EQ(cred(sidecar_socket(), {"verify", "--profile", "fleet"}).exit_code, 0);
  standin.control(pki_.ca_cert, "end_grace", json{{"key_id", "k1"}}.dump());
  EXPECT_EQ(kosli_answer(standin, old_key), 401) << "the grace period is over";
  EXPECT_EQ(kosli_answer(standin, new_key), 200);
  const auto verified = cred(sidecar_socket(), {"verify", "--profile", "fleet"});
  EXPECT_EQ(verified.exit_code, 0) << "the sidecar serves the key Kosli accepts now: " << verified.err;

  // A malformed publish (empty, then not a key) keeps the sidecar's key, and says so.
  ASSERT_EQ(run({hook, volume}, RunOptions{""}).exit_code, 0);
  EXPECT_TRUE(sidecar_metrics_show("kosli_credd_import_refused_total 1")) << sidecar_metrics() << sidecar.log();
  EXPECT_EQ(sidecar_token(), new_key);
  ASSERT_EQ(run({hook, volume}, RunOptions{"not a key\n"}).exit_code, 0);
  EXPECT_TRUE(sidecar_metrics_show("kosli_credd_import_refused_total 2")) << sidecar_metrics();
  EXPECT_TRUE(sidecar_metrics_show("kosli_credd_import_ok 0")) << sidecar_metrics();
  EXPECT_EQ(sidecar_token(), new_key);
  const json health = json::parse(cred(sidecar_socket(), {"status", "--json"}).out, nullptr, false);
  ASSERT_TRUE(health.is_object());
  EXPECT_EQ(health["import"]["refused"], 2) << health;
  const auto status = cred(sidecar_socket(), {"status"});
  EXPECT_NE(status.out.find("REFUSED"), std::string::npos) << status.out;
  EXPECT_EQ(count_records(audit_records(sidecar.audit_log()), "import", "refused"), 2u);
  EXPECT_NE(sidecar.log().find("keeping the keys it gave before"), std::string::npos) << sidecar.log();

  expect_no_keys_logged(rotator, {old_key, new_key});
  expect_no_keys_logged(sidecar, {old_key, new_key});
}

// "Many runners": a rotator that starts fresh each run (a scheduled pipeline
// importing the key) must publish KOSLI_KEY_ID too, so the next run can say
// which key it holds: --import-key with --service-account and --key-id.
constexpr const char* kPublishWithId = R"SH(set -e
cat > "$1/api-key.tmp"
mv "$1/api-key.tmp" "$1/api-key"
printf %s "$KOSLI_KEY_ID" > "$1/key-id"
)SH";

TEST_F(FleetTest, ARotatorStartedFreshEachRunRotatesWithTheKeyIdItsHookPublished) {
  const std::string first = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(first)}}}.dump());
  const std::string engine = dir_.path() + "/engine";
  fs::create_directories(engine);
  std::ofstream(engine + "/api-key") << first << "\n";
  std::ofstream(engine + "/key-id") << "k1";
  write_config(json{{"profiles", {{"ci", {{"on_rotate", {make_script("publish-with-id", kPublishWithId), engine}}}}}}}
                   .dump());

  std::vector<std::string> issued = {first};
  for (int run_no = 1; run_no <= 2; ++run_no) {
    SCOPED_TRACE("run " + std::to_string(run_no));
    const std::string key_id = read_file(engine + "/key-id");
    Daemon rotator(socket(), {"--backend", "memory", "--ca-file", pki_.ca_cert, "--config", config_path(),
                              "--import-key", engine + "/api-key", "--org", "acme", "--host", standin.url(),
                              "--profile", "ci", "--service-account", "ci", "--key-id", key_id},
                   no_proxy());
    const auto rotated = cred(socket(), {"rotate", "--profile", "ci", "--via-api", "--grace-hours", "1"});
    ASSERT_EQ(rotated.exit_code, 0) << rotated.err << rotator.log();
    EXPECT_EQ(requests(standin, "POST", "/api-keys/" + key_id + "/rotate").size(), 1u);
    ASSERT_TRUE(eventually([&] { return read_file(engine + "/key-id") != key_id; }, std::chrono::seconds(10)))
        << rotator.log();
    const std::string published = read_file(engine + "/api-key");
    EXPECT_EQ(published, key_with_id(standin, read_file(engine + "/key-id"))) << "the key and its id, together";
    issued.push_back(published);
    EXPECT_EQ(rotator.stop(), 0);
    expect_no_keys_logged(rotator, issued);
  }
}

}  // namespace
}  // namespace kosli::test
