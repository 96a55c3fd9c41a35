// Every Kosli key expires: a service-account key's expiry is learned from
// Kosli (GET …/api-keys/<key_id> with the key) and shows in list, show, status
// and verify, drives the warning and the refusal of an expired key; where it
// cannot be known it reads "unknown", with how to learn it. Against the stand-in,
// whose keys all expire (365 days at most) and whose times are fractional.
#include <chrono>
#include <cmath>
#include <string>
#include <thread>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

class LearnedExpiryTest : public KosliTest {
 protected:
  // The stand-in's key entry with a fractional expiry.
  static json entry(const std::string& key, const std::string& key_id, double expires_at) {
    auto e = key_entry(key, "acme", key_id);
    e["expires_at"] = expires_at;
    return e;
  }
  RunResult store_sa(const std::string& profile, const std::string& key, const std::string& host,
                     const std::string& key_id, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--service-account", "ci", "--key-id", key_id};
    args.insert(args.end(), extra.begin(), extra.end());
    return store(profile, key, host, args);
  }
  bool learned(const std::string& profile) { return show(profile)["expiry_source"] == "kosli"; }
};

TEST_F(LearnedExpiryTest, KoslisExpiryShowsEverywhereDrivesTheWarningAndWinsOverAGivenOne) {
  const std::string key = unique_key(), given_key = unique_key();
  const double expires = static_cast<double>(now_s()) + 3 * 86400 - 60 + 0.75;  // fractional, as Kosli sends it
  KosliStandIn standin(pki_, json{{"keys", {entry(key, "k1", expires), entry(given_key, "k2", 0)}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());

  const auto stored = store_sa("it-sa", key, standin.url(), "k1");
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_NE(stored.out.find("expiry is being learned from Kosli"), std::string::npos) << stored.out;
  ASSERT_TRUE(eventually([&] { return learned("it-sa"); }, std::chrono::seconds(20))) << show("it-sa").dump();
  const std::string when = rfc3339(static_cast<std::int64_t>(std::floor(expires)));
  EXPECT_EQ(show("it-sa")["expires_at"], when);
  ASSERT_FALSE(requests(standin, "GET", "/service-accounts/acme/ci/api-keys/k1").empty());
  EXPECT_EQ(requests(standin, "GET", "/api-keys/k1").front()["key_id"], "k1") << "asked with the key itself";

  const auto list = cred(socket(), {"list"});
  EXPECT_NE(list.out.find(when), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("in 2 days"), std::string::npos) << list.out;
  const auto list_json = json::parse(cred(socket(), {"list", "--json"}).out);
  EXPECT_EQ(list_json["profiles"][0]["expires_at"], when);
  EXPECT_EQ(list_json["profiles"][0]["expiry_source"], "kosli");
  const auto shown = cred(socket(), {"show", "--profile", "it-sa"});
  EXPECT_NE(shown.out.find("expires:          " + when + " (in 2 days; from Kosli)"), std::string::npos) << shown.out;
  const auto status = cred(socket(), {"status"});
  EXPECT_NE(status.out.find("profile 'it-sa': the key expires in 2 days"), std::string::npos) << status.out;
  const auto status_json = json::parse(cred(socket(), {"status", "--json"}).out);
  ASSERT_EQ(status_json["expiring"].size(), 1u) << status_json.dump();
  EXPECT_EQ(status_json["expiring"][0]["profile"], "it-sa");

  // The learned expiry drives the warning (the cached copy included).
  const auto t = cred(socket(), {"token", "--profile", "it-sa"});
  EXPECT_EQ(t.out, key + "\n");
  EXPECT_NE(t.err.find("warning: the key of profile 'it-sa' expires in 2 days"), std::string::npos) << t.err;

  // A service-account key stored with --expires-at: Kosli's expiry wins, and the audit says so.
  const auto given = store_sa("it-given", given_key, standin.url(), "k2",
                              {"--expires-at", rfc3339(now_s() + 30 * 86400)});
  ASSERT_EQ(given.exit_code, 0) << given.err;
  ASSERT_TRUE(eventually([&] { return learned("it-given"); }, std::chrono::seconds(20))) << show("it-given").dump();
  double created = 0;
  const json now_state = state(standin);
  for (const auto& k : now_state["keys"]) {
    if (k["key_id"] == "k2") created = k["created_at"].get<double>();
  }
  EXPECT_GT(created, 0) << now_state.dump();
  EXPECT_EQ(show("it-given")["expires_at"], rfc3339(static_cast<std::int64_t>(std::floor(created + 365 * 86400))))
      << "Kosli's expiry (the stand-in's maximum lifetime), not the given 30 days";
  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "expiry", "learned"), 1u) << daemon.audit_log();
  EXPECT_EQ(count_records(records, "expiry", "changed"), 1u) << daemon.audit_log();
  EXPECT_NE(daemon.audit_log().find("Kosli's wins for a service-account key"), std::string::npos);
  expect_no_keys_logged(daemon, {key, given_key});
}

TEST_F(LearnedExpiryTest, AnExpiryThatCannotBeKnownReadsUnknownWithHowToLearnIt) {
  KosliStandIn standin(pki_, json{{"keys", json::array()}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  const auto personal = cred(socket(), {"store", "--profile", "me", "--org", "acme", "--kind", "personal"},
                             RunOptions{unique_key() + "\n"});
  ASSERT_EQ(personal.exit_code, 0) << personal.err;
  EXPECT_NE(personal.out.find("expiry is unknown"), std::string::npos) << personal.out;
  EXPECT_NE(personal.out.find("--expires-at"), std::string::npos) << personal.out;
  ASSERT_EQ(store("it-noid", unique_key(), standin.url()).exit_code, 0);

  const auto list = cred(socket(), {"list"});
  EXPECT_EQ(list.out.find("never"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("unknown"), std::string::npos) << list.out;
  for (const std::string profile : {"me", "it-noid"}) {
    const auto j = show(profile);
    EXPECT_TRUE(j["expires_at"].is_null()) << j.dump();
    EXPECT_TRUE(j["expiry_source"].is_null()) << j.dump();
  }
  const auto me = cred(socket(), {"show", "--profile", "me"});
  EXPECT_NE(me.out.find("expires:          unknown: "), std::string::npos) << me.out;
  EXPECT_NE(me.out.find("--kind personal --expires-at TIME"), std::string::npos) << me.out;
  const auto noid = cred(socket(), {"show", "--profile", "it-noid"});
  EXPECT_NE(noid.out.find("--service-account SA --key-id ID"), std::string::npos) << noid.out;
  const auto status = cred(socket(), {"status"});
  EXPECT_NE(status.out.find("profile 'me': unknown: "), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("profile 'it-noid': unknown: "), std::string::npos) << status.out;
  const auto status_json = json::parse(cred(socket(), {"status", "--json"}).out);
  EXPECT_EQ(status_json["expiry_unknown"].size(), 2u) << status_json.dump();
  const auto t = cred(socket(), {"token", "--profile", "me"});
  EXPECT_EQ(t.exit_code, 0);
  EXPECT_EQ(t.err, "") << "an unknown expiry is not a warning on every token";

  // A personal key's given expiry stays what the user said; no one asks Kosli.
  ASSERT_EQ(cred(socket(), {"store", "--profile", "me2", "--org", "acme", "--kind", "personal", "--expires-at",
                            rfc3339(now_s() + 40 * 86400)},
                 RunOptions{unique_key() + "\n"})
                .exit_code,
            0);
  EXPECT_EQ(show("me2")["expiry_source"], "user");
  EXPECT_TRUE(requests(standin, "GET", "/api-keys").empty());
}

TEST_F(LearnedExpiryTest, KosliUnreachableAtStoreStillStoresAtOnceAndVerifyLearnsItLater) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {entry(key, "k1", 0)}}, {"key_info_down", true}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  const auto started = Clock::now();
  const auto stored = store_sa("it-down", key, standin.url(), "k1");
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(2)) << "the store waited for Kosli";
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_EQ(token("it-down"), key);
  ASSERT_TRUE(eventually([&] { return count_records(audit_records(daemon.audit_log()), "expiry", "error") > 0; },
                         std::chrono::seconds(30)))
      << daemon.audit_log();
  EXPECT_TRUE(show("it-down")["expires_at"].is_null());
  EXPECT_NE(cred(socket(), {"show", "--profile", "it-down"}).out.find("not learned from Kosli yet"), std::string::npos);

  standin.control(pki_.ca_cert, "set", R"({"key_info_down": false})");
  const auto verified = cred(socket(), {"verify", "--profile", "it-down"});
  EXPECT_EQ(verified.exit_code, 0) << verified.err;
  EXPECT_NE(verified.out.find("(from Kosli)"), std::string::npos) << verified.out;
  const auto j = show("it-down");
  EXPECT_EQ(j["expiry_source"], "kosli") << j.dump();
  EXPECT_EQ(json::parse(cred(socket(), {"verify", "--profile", "it-down", "--json"}).out)["expires_at"],
            j["expires_at"]);
}

TEST_F(LearnedExpiryTest, AKeyPastItsKosliExpiryIsExpired) {
  const std::string key = unique_key();
  const double expires = static_cast<double>(now_s()) + 4.5;
  KosliStandIn standin(pki_, json{{"keys", {entry(key, "k1", expires)}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store_sa("it-past", key, standin.url(), "k1").exit_code, 0);
  ASSERT_TRUE(eventually([&] { return learned("it-past"); }, std::chrono::seconds(4)));
  // The clock, not a daemon, has to move on here: wait out the key's last seconds.
  while (now_s() <= static_cast<std::int64_t>(expires)) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto t = cred(socket(), {"token", "--profile", "it-past"});
  EXPECT_EQ(t.exit_code, 7) << t.err;
  EXPECT_TRUE(t.out.empty());
  EXPECT_NE(t.err.find("expired at"), std::string::npos) << t.err;
  EXPECT_NE(cred(socket(), {"list"}).out.find("expired"), std::string::npos);
}

TEST_F(LearnedExpiryTest, TheLearnedExpiryDrivesScheduledRotation) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {entry(key, "k1", static_cast<double>(now_s()) + 12.5)}}}.dump());
  // Due about 4 s before the expiry Kosli tells; nothing else would make it due.
  write_config(R"({"profiles": {"it-due": {"rotate_before_expiry_days": 0.00005, "rotate_grace_hours": 1}}})");
  Daemon daemon(socket(), {"--backend", "memory", "--ca-file", pki_.ca_cert, "--config", config_path()}, no_proxy());
  ASSERT_EQ(store_sa("it-due", key, standin.url(), "k1").exit_code, 0);
  ASSERT_TRUE(eventually([&] { return show("it-due")["key_id"] != "k1"; }, std::chrono::seconds(20))) << daemon.log();
  const auto rotations = requests(standin, "POST", "/rotate");
  ASSERT_GE(rotations.size(), 1u);
  EXPECT_EQ(rotations[0]["path"], "/api/v2/service-accounts/acme/ci/api-keys/k1/rotate");
  EXPECT_EQ(show("it-due")["expiry_source"], "kosli") << "the rotation's answer carries the new expiry";
}

// Keyring tests run only inside scripts/test's sandbox: never the user's own keyring.
class LearnedExpiryKeyringTest : public LearnedExpiryTest {
 protected:
  void SetUp() override {
    if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
    LearnedExpiryTest::SetUp();
  }
};

TEST_F(LearnedExpiryKeyringTest, ALearnedExpiryIsKeptWithTheProfileAcrossARestart) {
  const std::string key = unique_key();
  const double expires = static_cast<double>(now_s()) + 50 * 86400 + 0.5;
  KosliStandIn standin(pki_, json{{"keys", {entry(key, "k1", expires)}}}.dump());
  const std::vector<std::string> args = {"--backend", "secret-service", "--ca-file", pki_.ca_cert};
  const std::string when = rfc3339(static_cast<std::int64_t>(std::floor(expires)));
  {
    Daemon daemon(socket(), args, no_proxy());
    ASSERT_EQ(store_sa("it-kept", key, standin.url(), "k1").exit_code, 0);
    ASSERT_TRUE(eventually([&] { return learned("it-kept"); }, std::chrono::seconds(20))) << daemon.log();
    ASSERT_EQ(cred(socket(), {"store", "--profile", "it-kept-me", "--org", "acme", "--kind", "personal",
                              "--expires-at", "2030-01-31T00:00:00Z"},
                   RunOptions{unique_key() + "\n"})
                  .exit_code,
              0);
  }
  Daemon daemon(socket(), args, no_proxy());
  const auto kept = show("it-kept");
  EXPECT_EQ(kept["expires_at"], when) << kept.dump();
  EXPECT_EQ(kept["expiry_source"], "kosli");
  EXPECT_EQ(show("it-kept-me")["expiry_source"], "user");
  EXPECT_EQ(show("it-kept-me")["expires_at"], "2030-01-31T00:00:00Z");
  for (const std::string profile : {"it-kept", "it-kept-me"}) cred(socket(), {"erase", "--profile", profile});
}

}  // namespace
}  // namespace kosli::test
