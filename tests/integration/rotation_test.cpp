// kosli-cred rotate, end to end: by hand, and through Kosli's API (with a
// restart after it, and a keyring that fails right after Kosli answered: the new
// key is held, served, retried and never lost).
#include <chrono>
#include <future>
#include <string>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

class RotationTest : public KosliTest {};

// ---- rotate by hand ------------------------------------------------------------

TEST_F(RotationTest, RotateByHandStoresANewKeyOnlyWhenKosliAcceptsIt) {
  const std::string old_key = unique_key(), new_key = unique_key(), bogus = unique_key(), offline = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key), key_entry(new_key, "acme", "k2")}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-hand", old_key, standin.url()).exit_code, 0);
  const std::string old_fingerprint = show("it-hand")["fingerprint"];

  // A key Kosli refuses is not stored; the old one stays.
  const auto refused = cred(socket(), {"rotate", "--profile", "it-hand"}, RunOptions{bogus + "\n"});
  EXPECT_EQ(refused.exit_code, 7) << refused.err;
  EXPECT_NE(refused.err.find("was kept"), std::string::npos) << refused.err;
  EXPECT_EQ(token("it-hand"), old_key);
  EXPECT_EQ(show("it-hand")["fingerprint"], old_fingerprint);

  // A key Kosli accepts replaces it, cache included.
  const auto accepted =
      cred(socket(), {"rotate", "--profile", "it-hand", "--key-id", "k2"}, RunOptions{new_key + "\n"});
  EXPECT_EQ(accepted.exit_code, 0) << accepted.err;
  EXPECT_NE(accepted.out.find("checked with Kosli"), std::string::npos) << accepted.out;
  EXPECT_EQ(token("it-hand"), new_key);
  const auto shown = show("it-hand");
  EXPECT_NE(shown["fingerprint"], old_fingerprint);
  EXPECT_EQ(shown["key_id"], "k2");
  EXPECT_EQ(shown["last_verify_result"], "valid");
  const auto checked = requests(standin, "GET", "/api/v2/environments/acme");
  ASSERT_EQ(checked.size(), 2u);
  EXPECT_EQ(checked[1]["key_id"], "k2") << "the new key itself was checked";

  // --no-verify: stored without asking Kosli, with a warning.
  const auto unchecked = cred(socket(), {"rotate", "--profile", "it-hand", "--no-verify"}, RunOptions{offline + "\n"});
  EXPECT_EQ(unchecked.exit_code, 0) << unchecked.err;
  EXPECT_NE(unchecked.err.find("--no-verify"), std::string::npos) << unchecked.err;
  EXPECT_EQ(token("it-hand"), offline);
  EXPECT_EQ(requests(standin, "GET", "/api/v2/").size(), 2u) << "--no-verify asked Kosli";

  // A key is never taken as an argument.
  EXPECT_EQ(cred(socket(), {"rotate", "--profile", "it-hand", new_key}).exit_code, 2);

  const auto records = audit_records(daemon.audit_log());
  EXPECT_EQ(count_records(records, "rotate", "refused"), 1u);
  EXPECT_EQ(count_records(records, "rotate", "ok"), 2u);
  expect_no_keys_logged(daemon, {old_key, new_key, bogus, offline});
}

// ---- rotate through Kosli's API --------------------------------------------------

TEST_F(RotationTest, RotateViaApiNeedsAServiceAccountKeyThatKosliAccepts) {
  const std::string key = unique_key(), revoked = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-personal", key, standin.url(), {"--kind", "personal"}).exit_code, 0);
  ASSERT_EQ(store("it-noid", key, standin.url()).exit_code, 0);
  ASSERT_EQ(store("it-revoked", revoked, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

  const auto personal = cred(socket(), {"rotate", "--profile", "it-personal", "--via-api"});
  EXPECT_EQ(personal.exit_code, 1);
  EXPECT_NE(personal.err.find("personal key"), std::string::npos) << personal.err;
  const auto no_id = cred(socket(), {"rotate", "--profile", "it-noid", "--via-api"});
  EXPECT_EQ(no_id.exit_code, 1);
  EXPECT_NE(no_id.err.find("--service-account"), std::string::npos) << no_id.err;
  const auto rejected = cred(socket(), {"rotate", "--profile", "it-revoked", "--via-api"});
  EXPECT_EQ(rejected.exit_code, 7) << rejected.err;
  EXPECT_NE(rejected.err.find("401"), std::string::npos) << rejected.err;
  EXPECT_EQ(token("it-revoked"), revoked);
  EXPECT_EQ(cred(socket(), {"rotate", "--profile", "it-noid", "--via-api", "--grace-hours", "0"}).exit_code, 2);

  EXPECT_EQ(requests(standin, "POST", "/rotate").size(), 1u) << "only the revoked key's rotation reached Kosli";
  EXPECT_EQ(count_records(audit_records(daemon.audit_log()), "rotate", "refused"), 3u);
}

TEST_F(RotationTest, RotateViaApiReadsTheApiKeyFieldToo) {
  const std::string key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(key)}}, {"key_field", "api_key"}}.dump());
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  ASSERT_EQ(store("it-field", key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
  const auto r = cred(socket(), {"rotate", "--profile", "it-field", "--via-api"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string new_id = show("it-field")["key_id"];
  EXPECT_NE(new_id, "k1");
  EXPECT_EQ(token("it-field"), key_with_id(standin, new_id));
}

// Keyring tests run only inside scripts/test's sandbox: never the user's own keyring.
class RotationKeyringTest : public KosliTest {
 protected:
  void SetUp() override {
    if (!in_sandbox()) GTEST_SKIP() << "run through scripts/test (private D-Bus session and keyring)";
    KosliTest::SetUp();
  }
};

TEST_F(RotationKeyringTest, RotateViaApiEndToEndAndAfterARestart) {
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}}.dump());
  const std::vector<std::string> args = {"--backend", "secret-service", "--ca-file", pki_.ca_cert};
  std::string new_key, new_id;
  {
    Daemon daemon(socket(), args, no_proxy());
    ASSERT_EQ(store("it-api", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);
    ASSERT_EQ(token("it-api"), old_key);  // now cached: rotation must replace the cached copy too
    const auto expires = now_s() + 90 * 86400;

    const auto r = cred(socket(), {"rotate", "--profile", "it-api", "--via-api", "--grace-hours", "2",
                                   "--expires-at", rfc3339(expires)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Rotated profile 'it-api' through Kosli"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("old key keeps working until"), std::string::npos) << r.out;

    // Kosli got the documented call, made with the old key.
    const auto rotations = requests(standin, "POST", "/rotate");
    ASSERT_EQ(rotations.size(), 1u);
    EXPECT_EQ(rotations[0]["path"], "/api/v2/service-accounts/acme/ci/api-keys/k1/rotate");
    EXPECT_EQ(rotations[0]["body"]["grace_period_hours"], 2);
    EXPECT_EQ(rotations[0]["body"]["expires_at"], expires);
    EXPECT_EQ(rotations[0]["key_id"], "k1");
    // The old key has its grace period; the new one is what the profile serves now.
    const auto keys = state(standin)["keys"];
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_GT(keys[0]["grace_until"].get<std::int64_t>(), now_s() + 3600);
    new_key = keys[1]["key"];
    new_id = keys[1]["key_id"];
    EXPECT_EQ(token("it-api"), new_key);
    const auto shown = show("it-api");
    EXPECT_EQ(shown["key_id"], new_id);
    EXPECT_EQ(shown["expires_at"], rfc3339(expires));
    EXPECT_EQ(shown["expiry_source"], "kosli") << "the rotation's answer said it";
    EXPECT_EQ(shown["last_verify_result"], "valid") << "the new key was checked before it was stored";
    EXPECT_EQ(requests(standin, "GET", "/api/v2/environments/acme").back()["key_id"], new_id);

    const auto records = audit_records(daemon.audit_log());
    ASSERT_EQ(count_records(records, "rotate", "ok"), 1u);
    for (const auto& rec : records) {
      if (rec["event"] == "rotate") {
        EXPECT_NE(rec["detail"].get<std::string>().find(new_id), std::string::npos) << rec.dump();
      }
    }
    EXPECT_EQ(daemon.stop(), 0);
    expect_no_keys_logged(daemon, {old_key, new_key});
  }
  {
    // A new daemon reads the keyring: the new key, with its metadata.
    Daemon daemon(socket(), args, no_proxy());
    EXPECT_EQ(token("it-api"), new_key);
    EXPECT_EQ(show("it-api")["key_id"], new_id);
    EXPECT_EQ(cred(socket(), {"verify", "--profile", "it-api"}).exit_code, 0);
    EXPECT_EQ(cred(socket(), {"erase", "--profile", "it-api"}).exit_code, 0);
  }
}

TEST_F(RotationTest, ANewKeyTheKeyringCannotTakeIsHeldServedRetriedAndNeverLost) {
  PrivateKeyring keyring;  // this test's own, so it can hang it
  const std::string old_key = unique_key();
  KosliStandIn standin(pki_, json{{"keys", {key_entry(old_key)}}, {"hold_rotate", true}}.dump());
  const std::vector<std::string> args = {"--backend", "secret-service", "--ca-file", pki_.ca_cert};
  std::string new_key;
  {
    Daemon daemon(socket(), args, no_proxy({keyring.bus_env()}));
    ASSERT_EQ(store("it-held", old_key, standin.url(), {"--service-account", "ci", "--key-id", "k1"}).exit_code, 0);

    std::future<RunResult> rotation = std::async(std::launch::async, [&] {
      return cred(socket(), {"rotate", "--profile", "it-held", "--via-api"});
    });
    // Kosli has the request: hang the keyring, then let Kosli answer.
    ASSERT_TRUE(eventually([&] { return state(standin)["held"] == 1; }, std::chrono::seconds(10)));
    keyring.pause();
    standin.control(pki_.ca_cert, "release");
    const auto r = rotation.get();
    EXPECT_EQ(r.exit_code, 6) << r.err;
    EXPECT_NE(r.err.find("could not be stored in the keyring"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("holds the new key in memory"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("kosli-cred token --profile it-held | kosli-cred store"), std::string::npos) << r.err;

    // While the keyring hangs, the new key is what tokens give.
    new_key = state(standin)["keys"][1]["key"];
    EXPECT_EQ(token("it-held"), new_key);
    EXPECT_NE(daemon.log().find("NEW KEY NOT IN THE KEYRING"), std::string::npos) << daemon.log();

    // Once the keyring answers again, the daemon stores it by itself.
    keyring.resume();
    ASSERT_TRUE(eventually(
        [&] {
          const auto status = cred(socket(), {"status", "--json"});
          const auto j = json::parse(status.out, nullptr, false);
          return status.exit_code == 0 && j.is_object() && j["waiting_keys"].empty() && j["profiles"] == 1;
        },
        std::chrono::seconds(60)))
        << daemon.log();
    EXPECT_EQ(daemon.stop(), 0);
    expect_no_keys_logged(daemon, {old_key, new_key});
    EXPECT_EQ(daemon.log().find("LOST"), std::string::npos) << daemon.log();
  }
  {
    Daemon daemon(socket(), args, no_proxy({keyring.bus_env()}));
    EXPECT_EQ(token("it-held"), new_key) << "the new key did not reach the keyring";
  }
}

}  // namespace
}  // namespace kosli::test
