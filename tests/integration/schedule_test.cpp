// Scheduled rotation, end to end: a due key rotated by the daemon itself and
// audited as such; a failure shown in status with what to do, the key kept.
#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

class ScheduleTest : public KosliTest {};

// ---- scheduled rotation ----------------------------------------------------------------

TEST_F(ScheduleTest, ScheduledRotationRotatesDueKeysAndReportsFailuresInStatus) {
  const std::string old_key = unique_key(), other = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  // About 3 s: short enough for a test, long enough to see the key before.
  write_config(R"({"profiles": {"it-sched": {"rotate_every_days": 0.00003, "rotate_grace_hours": 1},
                                "it-sched-bad": {"rotate_before_expiry_days": 7}}})");
  Daemon daemon(socket(), {"--backend", "memory", "--ca-file", pki_.ca_cert, "--config", config_path()}, no_proxy());
  ASSERT_EQ(store("it-sched", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  // Due at once (expires in 2 days), but without a key id Kosli cannot be asked.
  ASSERT_EQ(store("it-sched-bad", other, standin.url(), {"--expires-at", rfc3339(now_s() + 2 * 86400)}).exit_code, 0);
  EXPECT_EQ(token("it-sched"), old_key);

  // The daemon rotates by itself once the key is due.
  ASSERT_TRUE(eventually([&] { return show("it-sched")["key_id"] != "k1"; }, std::chrono::seconds(30)))
      << daemon.log();
  const auto rotations = requests(standin, "POST", "/rotate");
  ASSERT_GE(rotations.size(), 1u);
  EXPECT_EQ(rotations[0]["path"], "/api/v2/service-accounts/acme/ci/api-keys/k1/rotate");
  EXPECT_EQ(rotations[0]["body"]["grace_period_hours"], 1);
  const std::string served = token("it-sched");
  EXPECT_NE(served, old_key);
  EXPECT_EQ(cred(socket(), {"verify", "--profile", "it-sched"}).exit_code, 0) << "the served key works";

  // Audited as the daemon's own doing.
  bool audited = false;
  for (const auto& r : audit_records(daemon.audit_log())) {
    if (r["event"] == "rotate" && r["result"] == "ok" && r["profile"] == "it-sched") {
      audited = true;
      EXPECT_EQ(r["pid"], daemon.pid());
      EXPECT_EQ(r["detail"].get<std::string>().rfind("scheduled", 0), 0u) << r.dump();
    }
  }
  EXPECT_TRUE(audited);

  // The failure is in status, with what to do.
  json failed;
  ASSERT_TRUE(eventually(
      [&] {
        const auto status = json::parse(cred(socket(), {"status", "--json"}).out, nullptr, false);
        for (const auto& r : status.value("rotation", json::array())) {
          if (r["profile"] == "it-sched-bad" && r["last_error"].is_string()) failed = r;
        }
        return !failed.is_null();
      },
      std::chrono::seconds(10)));
  EXPECT_NE(failed["last_error"].get<std::string>().find("--service-account"), std::string::npos) << failed.dump();
  EXPECT_TRUE(failed["next_attempt_at"].is_string());
  const auto text = cred(socket(), {"status"});
  EXPECT_NE(text.out.find("rotation:  profile 'it-sched-bad': the last scheduled rotation FAILED"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("rotation:  profile 'it-sched': next due at"), std::string::npos) << text.out;
  EXPECT_EQ(token("it-sched-bad"), other) << "a failed rotation keeps the key";

  std::vector<std::string> keys = {old_key, other};
  const json last = state(standin);
  for (const auto& k : last["keys"]) keys.push_back(k["key"]);
  EXPECT_EQ(daemon.stop(), 0);
  expect_no_keys_logged(daemon, keys);
}

}  // namespace
}  // namespace kosli::test
