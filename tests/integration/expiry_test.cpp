// Keys that expire: a warning on stderr within the window (configurable), no
// token once expired, days left in list and status, both in the audit log.
#include <algorithm>
#include <string>
#include <vector>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

class ExpiryTest : public KosliTest {};

// ---- expiry ------------------------------------------------------------------------

TEST_F(ExpiryTest, ExpiringKeysWarnOnStderrAndExpiredKeysGetNoToken) {
  Daemon daemon(socket(), memory_daemon_args(), no_proxy());
  const std::string soon = unique_key(), later = unique_key(), expired = unique_key();
  const std::string host = "https://app.kosli.com";
  ASSERT_EQ(store("it-soon", soon, host, {"--expires-at", rfc3339(now_s() + 3 * 86400 - 60)}).exit_code, 0);
  ASSERT_EQ(store("it-later", later, host, {"--expires-at", rfc3339(now_s() + 30 * 86400 - 60)}).exit_code, 0);
  ASSERT_EQ(store("it-expired", expired, host, {"--expires-at", rfc3339(now_s() - 3600)}).exit_code, 0);

  // Within the window: the token on stdout, one warning line on stderr.
  for (int round = 0; round < 2; ++round) {  // from the store, then from the cache
    const auto t = cred(socket(), {"token", "--profile", "it-soon"});
    EXPECT_EQ(t.exit_code, 0);
    EXPECT_EQ(t.out, soon + "\n");
    EXPECT_EQ(std::count(t.err.begin(), t.err.end(), '\n'), 1) << t.err;
    EXPECT_NE(t.err.find("warning: the key of profile 'it-soon' expires in 2 days"), std::string::npos) << t.err;
  }
  const auto h = cred(socket(), {"header", "--profile", "it-soon"});
  EXPECT_EQ(h.out, "Authorization: Bearer " + soon + "\n");
  EXPECT_EQ(std::count(h.err.begin(), h.err.end(), '\n'), 1) << h.err;
  const auto e = cred(socket(), {"exec", "--profile", "it-soon", "--", "sh", "-c", "printf %s \"$KOSLI_API_TOKEN\""});
  EXPECT_EQ(e.exit_code, 0);
  EXPECT_EQ(e.out, soon);
  EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;

  // Outside it: silence.
  const auto quiet = cred(socket(), {"token", "--profile", "it-later"});
  EXPECT_EQ(quiet.out, later + "\n");
  EXPECT_EQ(quiet.err, "");

  // Past it: no token at all.
  for (const std::vector<std::string>& args : {std::vector<std::string>{"token", "--profile", "it-expired"},
                                               {"token", "--profile", "it-expired", "--json"},
                                               {"header", "--profile", "it-expired"},
                                               {"exec", "--profile", "it-expired", "--", "true"}}) {
    const auto r = cred(socket(), args);
    EXPECT_EQ(r.exit_code, 7) << args[0] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << args[0];
    EXPECT_NE(r.err.find("expired at"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("kosli-cred rotate --profile it-expired"), std::string::npos) << r.err;
  }

  // list and status show the days left.
  const auto list = cred(socket(), {"list"});
  EXPECT_NE(list.out.find("in 2 days"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("in 29 days"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("expired"), std::string::npos) << list.out;
  const auto status = cred(socket(), {"status"});
  EXPECT_NE(status.out.find("profile 'it-soon': the key expires in 2 days"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("profile 'it-expired': the key expired"), std::string::npos) << status.out;
  EXPECT_EQ(status.out.find("it-later"), std::string::npos) << status.out;

  // The audit log records both.
  std::size_t warned = 0, refused = 0;
  for (const auto& r : audit_records(daemon.audit_log())) {
    if (r["event"] != "token") continue;
    const std::string detail = r.value("detail", "");
    warned += r["result"] == "issued" && r["profile"] == "it-soon" && detail.find("expires in 2 days") != std::string::npos;
    refused += r["result"] == "refused" && r["profile"] == "it-expired" && detail == "expired";
  }
  EXPECT_EQ(warned, 4u);
  EXPECT_EQ(refused, 4u);
  expect_no_keys_logged(daemon, {soon, later, expired});
}

TEST_F(ExpiryTest, TheWarningWindowIsConfigurable) {
  write_config(R"({"expiry_warning_days": 40})");
  Daemon daemon(socket(), {"--backend", "memory", "--config", config_path()}, no_proxy());
  const std::string key = unique_key();
  ASSERT_EQ(store("it-window", key, "https://app.kosli.com", {"--expires-at", rfc3339(now_s() + 30 * 86400 - 60)}).exit_code,
            0);
  const auto t = cred(socket(), {"token", "--profile", "it-window"});
  EXPECT_EQ(t.out, key + "\n");
  EXPECT_NE(t.err.find("expires in 29 days"), std::string::npos) << t.err;
}

}  // namespace
}  // namespace kosli::test
