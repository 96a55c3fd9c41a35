// Watched imports (--import FILE --watch, --import-key FILE --watch): a sidecar
// follows what a secret engine publishes, in each of the three ways engines
// publish: the kubelet's swap of a Secret volume's "..data" symlink, a rename
// over the file (Vault Agent, CSI providers) and a rewrite in place. A bad
// publish keeps the old keys and shows in the metrics, the status and the
// audit log; no key appears in the daemon's log or audit log.
#include <ctime>

#include "tests/integration/raw_http.hpp"
#include "tests/integration/run_fixture.hpp"

namespace kosli::test {
namespace {

// How long a publish may take to be served (the contract says 1 s).
constexpr milliseconds kServeDeadline{2000};

void write_whole(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Publishes `files` into `dir` exactly as the kubelet's AtomicWriter updates a
// Secret volume (kubernetes pkg/volume/util/atomic_writer.go): a new
// "..<UTC timestamp>.<random>" directory holding the files, the user-visible
// symlinks "name -> ..data/name" created when missing, a "..data_tmp" symlink
// to the new directory renamed over "..data", then the old directory removed.
void kubelet_publish(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& files) {
  const std::string data = dir + "/..data";
  std::error_code ec;
  const fs::path old_ts = fs::read_symlink(data, ec);
  char stamp[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "..%Y_%m_%d_%H_%M_%S.", &tm);
  std::string ts_template = dir + "/" + stamp + "XXXXXX";
  ASSERT_NE(::mkdtemp(ts_template.data()), nullptr);
  ASSERT_EQ(::chmod(ts_template.c_str(), 0755), 0);
  const std::string ts_name = fs::path(ts_template).filename();
  for (const auto& [name, content] : files) {
    write_whole(ts_template + "/" + name, content);
    ASSERT_EQ(::chmod((ts_template + "/" + name).c_str(), 0644), 0);
  }
  for (const auto& [name, content] : files) {
    if (!fs::is_symlink(dir + "/" + name)) fs::create_symlink("..data/" + name, dir + "/" + name);
  }
  fs::create_symlink(ts_name, dir + "/..data_tmp");
  ASSERT_EQ(::rename((dir + "/..data_tmp").c_str(), data.c_str()), 0);
  if (!old_ts.empty()) fs::remove_all(dir / old_ts);
}

class WatchTest : public RunTest {
 protected:
  RunResult token(const std::string& profile) {
    return cred(socket(), {"token", "--profile", profile}, RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}}});
  }

  // Polls the profile's token until it is `key` or the deadline passes.
  bool serves_within(const std::string& profile, const std::string& key, milliseconds deadline = kServeDeadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    do {
      if (token(profile).out == key + "\n") return true;
    } while (std::chrono::steady_clock::now() < until);
    return false;
  }

  std::string metrics() {
    const auto answer = exchange(socket(), http_request("GET", "/v1/metrics"));
    return answer ? answer->body : "";
  }

  // Polls /v1/metrics until it holds `line` (the daemon has handled a publish).
  bool metrics_show(const std::string& line, milliseconds deadline = kServeDeadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    do {
      if (metrics().find("\n" + line + "\n") != std::string::npos) return true;
    } while (std::chrono::steady_clock::now() < until);
    return false;
  }

  json import_status() {
    const auto status = cred(socket(), {"status", "--json"}, RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}}});
    return json::parse(status.out)["import"];
  }

  // No key in the daemon's log or its audit log.
  void expect_no_key_shown(const Daemon& daemon, const std::vector<std::string>& keys) {
    const std::string log = daemon.log(), audit = daemon.audit_log();
    for (const auto& key : keys) {
      EXPECT_EQ(log.find(key), std::string::npos) << "the daemon logged a key";
      EXPECT_EQ(audit.find(key), std::string::npos) << "the audit log holds a key";
    }
  }
};

TEST_F(WatchTest, KubeletSecretVolumeSwapIsServedAndABadPublishKeepsTheOldKey) {
  const std::string volume = dir_.path() + "/secret";
  fs::create_directory(volume);
  const std::string first = unique_key(), second = unique_key(), third = unique_key();
  kubelet_publish(volume, {{"api-token", first + "\n"}, {"org", "acme"}});
  ASSERT_TRUE(fs::is_symlink(volume + "/api-token"));
  Daemon daemon(socket(), {"--backend", "memory", "--import-key", volume + "/api-token", "--org", "acme",
                           "--profile", "ci", "--watch"});
  ASSERT_EQ(token("ci").out, first + "\n") << daemon.log();

  kubelet_publish(volume, {{"api-token", second + "\n"}, {"org", "acme"}});
  EXPECT_TRUE(serves_within("ci", second)) << daemon.log();
  EXPECT_EQ(std::count_if(fs::directory_iterator(volume), fs::directory_iterator(), [](const auto& e) {
              return e.path().filename().string().rfind("..20", 0) == 0;
            }),
            1) << "the kubelet's layout: one timestamped directory";

  // An empty publish, then one that is not a key: both refused, the key kept.
  kubelet_publish(volume, {{"api-token", ""}, {"org", "acme"}});
  EXPECT_TRUE(metrics_show("kosli_credd_import_refused_total 1")) << metrics() << daemon.log();
  EXPECT_EQ(token("ci").out, second + "\n");
  kubelet_publish(volume, {{"api-token", "not a key\n"}, {"org", "acme"}});
  EXPECT_TRUE(metrics_show("kosli_credd_import_refused_total 2")) << metrics();
  EXPECT_TRUE(metrics_show("kosli_credd_import_ok 0")) << metrics();
  EXPECT_EQ(token("ci").out, second + "\n");
  const json refused = import_status();
  EXPECT_EQ(refused["refused"], 2) << refused;
  EXPECT_EQ(refused["watch"], true) << refused;
  EXPECT_NE(refused["last_error"].get<std::string>().find("--import-key " + volume + "/api-token"),
            std::string::npos)
      << refused;
  EXPECT_NE(daemon.log().find("keeping the keys it gave before"), std::string::npos) << daemon.log();
  const auto status = cred(socket(), {"status"}, RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}}});
  EXPECT_NE(status.out.find("the latest publish was REFUSED at"), std::string::npos) << status.out;

  // The next good publish is taken.
  kubelet_publish(volume, {{"api-token", third + "\n"}, {"org", "acme"}});
  EXPECT_TRUE(serves_within("ci", third)) << daemon.log();
  EXPECT_TRUE(metrics_show("kosli_credd_import_ok 1")) << metrics();
  EXPECT_FALSE(import_status().contains("last_error"));
  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "import", "refused"), 2u);
  EXPECT_EQ(count_records(records, "import", "ok"), 3u);  // at start, then two publishes
  expect_no_key_shown(daemon, {first, second, third});
}

TEST_F(WatchTest, RenameOverTheFileSwapsChangedKeysRemovesDroppedProfilesAndLeavesTheRest) {
  const std::string file = dir_.path() + "/profiles.json";
  const std::string a1 = unique_key(), b1 = unique_key(), a2 = unique_key(), c1 = unique_key();
  const auto publish = [&](const json& list) {
    write_whole(file + ".tmp", list.dump());
    ASSERT_EQ(::rename((file + ".tmp").c_str(), file.c_str()), 0);
  };
  publish(json::array({{{"name", "a"}, {"org", "acme"}, {"api_key", a1}},
                       {{"name", "b"}, {"org", "acme"}, {"api_key", b1}}}));
  Daemon daemon(socket(), {"--backend", "memory", "--import", file, "--watch"});
  // A profile stored by hand is not the file's: it stays.
  ASSERT_EQ(store("mine", unique_key()).exit_code, 0);
  ASSERT_EQ(token("a").out, a1 + "\n");
  ASSERT_EQ(token("b").out, b1 + "\n");  // cached now

  publish(json::array({{{"name", "a"}, {"org", "acme"}, {"api_key", a2}},
                       {{"name", "b"}, {"org", "acme"}, {"api_key", b1}}}));
  EXPECT_TRUE(serves_within("a", a2)) << daemon.log();
  EXPECT_EQ(token("b").out, b1 + "\n");

  // b disappears from the file; c appears; a is unchanged.
  publish(json::array({{{"name", "a"}, {"org", "acme"}, {"api_key", a2}},
                       {{"name", "c"}, {"org", "acme"}, {"api_key", c1}}}));
  EXPECT_TRUE(serves_within("c", c1)) << daemon.log();
  EXPECT_EQ(token("b").exit_code, 3) << "a profile gone from the file is removed";
  EXPECT_EQ(token("a").out, a2 + "\n");
  EXPECT_EQ(token("mine").exit_code, 0);

  const auto records = audit_records(daemon.audit_log());
  std::size_t a_imports = 0, b_removed = 0;
  for (const auto& r : records) {
    if (r["event"] != "import" || r["result"] != "ok") continue;
    if (r["profile"] == "a") ++a_imports;
    if (r["profile"] == "b" && r["detail"].get<std::string>().rfind("removed", 0) == 0) ++b_removed;
  }
  EXPECT_EQ(a_imports, 2u) << "at start and when its key changed; not when it was unchanged";
  EXPECT_EQ(b_removed, 1u);
  EXPECT_TRUE(metrics_show("kosli_credd_imports_total 3")) << metrics();
  expect_no_key_shown(daemon, {a1, b1, a2, c1});
}

TEST_F(WatchTest, AProfileTheUserStoredOverAnImportedOneIsNotRemovedWhenTheFileDropsIt) {
  const std::string file = dir_.path() + "/profiles.json";
  const std::string a1 = unique_key(), b1 = unique_key(), mine = unique_key();
  const auto publish = [&](const json& list) {
    write_whole(file + ".tmp", list.dump());
    ASSERT_EQ(::rename((file + ".tmp").c_str(), file.c_str()), 0);
  };
  publish(json::array({{{"name", "a"}, {"org", "acme"}, {"api_key", a1}},
                       {{"name", "b"}, {"org", "acme"}, {"api_key", b1}}}));
  Daemon daemon(socket(), {"--backend", "memory", "--import", file, "--watch"});
  ASSERT_EQ(token("b").out, b1 + "\n") << daemon.log();
  // The user stores their own key under the imported name.
  ASSERT_EQ(store("b", mine).exit_code, 0);
  ASSERT_EQ(token("b").out, mine + "\n");

  // The file drops b: the user's key is not the file's to remove.
  publish(json::array({{{"name", "a"}, {"org", "acme"}, {"api_key", a1}}}));
  EXPECT_TRUE(metrics_show("kosli_credd_imports_total 2")) << metrics() << daemon.log();
  EXPECT_EQ(token("b").out, mine + "\n") << daemon.log();
  EXPECT_NE(daemon.log().find("no longer the import's"), std::string::npos) << daemon.log();

  // Nor is it the file's any more: listing b again, then dropping it, takes
  // the file's key and then removes only that.
  const std::string b2 = unique_key();
  publish(json::array({{{"name", "a"}, {"org", "acme"}, {"api_key", a1}},
                       {{"name", "b"}, {"org", "acme"}, {"api_key", b2}}}));
  EXPECT_TRUE(serves_within("b", b2)) << daemon.log();
  publish(json::array({{{"name", "a"}, {"org", "acme"}, {"api_key", a1}}}));
  EXPECT_TRUE(metrics_show("kosli_credd_imports_total 4")) << metrics() << daemon.log();
  EXPECT_EQ(token("b").exit_code, 3) << "the file's own key is removed";
  expect_no_key_shown(daemon, {a1, b1, mine, b2});
}

TEST_F(WatchTest, RewriteInPlaceIsServedAndAPartialWriteKeepsTheOldKeys) {
  const std::string file = dir_.path() + "/profiles.json";
  const std::string k1 = unique_key(), k2 = unique_key(), k3 = unique_key();
  write_whole(file, json::array({{{"name", "ci"}, {"org", "acme"}, {"api_key", k1}}}).dump());
  Daemon daemon(socket(), {"--backend", "memory", "--import", file, "--watch"});
  ASSERT_EQ(token("ci").out, k1 + "\n");

  write_whole(file, json::array({{{"name", "ci"}, {"org", "acme"}, {"api_key", k2}}}).dump());
  EXPECT_TRUE(serves_within("ci", k2)) << daemon.log();

  // A writer that stopped half way: not JSON, refused, the key kept.
  const std::string whole = json::array({{{"name", "ci"}, {"org", "acme"}, {"api_key", k3}}}).dump();
  write_whole(file, whole.substr(0, whole.size() / 2));
  EXPECT_TRUE(metrics_show("kosli_credd_import_refused_total 1")) << metrics() << daemon.log();
  EXPECT_EQ(token("ci").out, k2 + "\n");
  EXPECT_EQ(count_records(audit_records(daemon.audit_log()), "import", "refused"), 1u);

  write_whole(file, whole);
  EXPECT_TRUE(serves_within("ci", k3)) << daemon.log();
  expect_no_key_shown(daemon, {k1, k2, k3});
}

TEST_F(WatchTest, TheConfigurationsImportKeyIsWatchedToo) {
  const std::string file = dir_.path() + "/api-token", config = dir_.path() + "/config.json";
  const std::string k1 = unique_key(), k2 = unique_key();
  write_whole(file, k1 + "\n");
  write_whole(config, json{{"import_key", {{"file", file}, {"org", "acme"}, {"profile", "ci"}, {"watch", true}}}}.dump());
  Daemon daemon(socket(), {"--backend", "memory", "--config", config});
  ASSERT_EQ(token("ci").out, k1 + "\n") << daemon.log();
  write_whole(file + ".tmp", k2 + "\n");
  ASSERT_EQ(::rename((file + ".tmp").c_str(), file.c_str()), 0);
  EXPECT_TRUE(serves_within("ci", k2)) << daemon.log();
  EXPECT_EQ(import_status()["file"], file);
}

TEST_F(WatchTest, ImportKeyNeedsAnOrgAndWatchNeedsAFile) {
  const std::string file = dir_.path() + "/key";
  write_whole(file, unique_key() + "\n");
  const auto no_org = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--import-key", file});
  EXPECT_EQ(no_org.exit_code, 1);
  EXPECT_NE(no_org.err.find("--org"), std::string::npos) << no_org.err;
  const auto no_file = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--watch"});
  EXPECT_EQ(no_file.exit_code, 1);
  EXPECT_NE(no_file.err.find("--watch"), std::string::npos) << no_file.err;
}

}  // namespace
}  // namespace kosli::test
