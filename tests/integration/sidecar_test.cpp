// kosli-credd as a CI sidecar: the environment's key (--import-env) served to
// an allowed uid until the job ends, and a list of profiles (--import) read,
// a bad one refused without showing keys.
#include "tests/integration/run_fixture.hpp"

namespace kosli::test {
namespace {

class SidecarTest : public RunTest {};

TEST_F(SidecarTest, SidecarServesTheEnvironmentsKeyToAnAllowedUidUntilTheJobEnds) {
  Child job({"sleep", "300"}, /*pipe_stderr=*/false);  // stands in for the CI job's shell
  ASSERT_GT(job.pid(), 0);
  // Job steps running as another uid must reach the socket through the test's directory.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  const std::string key = unique_key();
  Daemon sidecar(socket(),
                 {"--backend", "memory", "--import-env", "--allow-uid", std::to_string(kAllowedUid), "--parent-pid",
                  std::to_string(job.pid())},
                 {{"KOSLI_API_TOKEN", key + "\n"}, {"KOSLI_ORG", "acme"}, {"KOSLI_HOST", "https://app.us.kosli.com/"}});

  const auto token = cred(socket(), {"token", "--json"});
  ASSERT_EQ(token.exit_code, 0) << token.err << sidecar.log();
  const auto j = json::parse(token.out);
  EXPECT_EQ(j["token"], key);
  EXPECT_EQ(j["org"], "acme");
  EXPECT_EQ(j["host"], "https://app.us.kosli.com");
  EXPECT_EQ(sidecar.log().find(key), std::string::npos) << "the daemon logged the key";

  // Its environment no longer holds the key, nor the variables that carried it.
  const std::string environ_path = "/proc/" + std::to_string(sidecar.pid()) + "/environ";
  if (::access(environ_path.c_str(), R_OK) == 0) {
    const std::string env = read_file(environ_path);
    EXPECT_FALSE(env.empty());
    EXPECT_EQ(env.find(key), std::string::npos) << "the key is still in " << environ_path;
    for (const char* name : {"KOSLI_API_TOKEN=", "KOSLI_ORG=", "KOSLI_HOST="}) {
      EXPECT_EQ(env.find(name), std::string::npos) << name;
    }
  } else {
    ADD_FAILURE() << "cannot read " << environ_path << " (the daemon is not dumpable; run as root)";
  }

  // Others may reach the socket; SO_PEERCRED decides who is served.
  struct stat dir {}, sock {};
  ASSERT_EQ(::stat((dir_.path() + "/kosli-cred").c_str(), &dir), 0);
  ASSERT_EQ(::stat(socket().c_str(), &sock), 0);
  EXPECT_EQ(dir.st_mode & 07777, 0711u);
  EXPECT_EQ(sock.st_mode & 0777, 0666u);
  if (::geteuid() == 0 && have("setpriv")) {
    const auto as = [&](uid_t uid) {
      return run({"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(uid), "--clear-groups",
                  bin("kosli-cred"), "--socket", socket(), "token"},
                 RunOptions{"", {{"KOSLI_CRED_AUTOSTART", "0"}, {"KOSLI_CRED_DAEMON_UID", "0"}}});  // root's sidecar
    };
    const auto allowed = as(kAllowedUid);
    EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
    EXPECT_EQ(allowed.out, key + "\n");
    const auto other = as(kOtherUid);
    EXPECT_EQ(other.exit_code, 5) << other.err;
    EXPECT_EQ(other.out.find(key), std::string::npos);
  } else {
    std::cerr << "[ skipped  ] another uid: needs root and setpriv\n";
  }

  // The job ends: so does the sidecar, with its socket.
  ::kill(job.pid(), SIGKILL);
  job.wait();
  EXPECT_EQ(sidecar.wait_exit(kStepDeadline), 0) << sidecar.log();
  EXPECT_FALSE(fs::exists(socket()));
  EXPECT_NE(sidecar.log().find("--parent-pid"), std::string::npos) << sidecar.log();
}

TEST_F(SidecarTest, ImportReadsAListOfProfilesAndRefusesABadOneWithoutShowingKeys) {
  const std::string eu_key = unique_key(), us_key = unique_key();
  const std::string file = dir_.path() + "/profiles.json";
  {
    std::ofstream out(file);
    out << json::array({{{"name", "ci-eu"}, {"org", "acme"}, {"api_key", eu_key}},
                        {{"name", "ci-us"}, {"org", "acme-us"}, {"api_key", us_key},
                         {"host", "https://app.us.kosli.com"}, {"kind", "personal"},
                         {"expires_at", "2031-01-02T03:04:05Z"}}})
               .dump();
  }
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  {
    Daemon daemon(socket(), {"--backend", "memory", "--import", file});
    EXPECT_EQ(cred(socket(), {"token", "--profile", "ci-eu"}).out, eu_key + "\n");
    EXPECT_EQ(cred(socket(), {"token", "--profile", "ci-us"}).out, us_key + "\n");
    const auto shown = json::parse(cred(socket(), {"show", "--profile", "ci-us", "--json"}).out);
    EXPECT_EQ(shown["host"], "https://app.us.kosli.com");
    EXPECT_EQ(shown["kind"], "personal");
    EXPECT_EQ(shown["expires_at"], "2031-01-02T03:04:05Z");
    EXPECT_EQ(json::parse(cred(socket(), {"show", "--profile", "ci-eu", "--json"}).out)["host"],
              "https://app.kosli.com");
    // The audit log says who put each key in, and from where, in the daemon's own name.
    const std::string log = daemon.audit_log();
    const auto records = audit_records(log);
    EXPECT_EQ(count_records(records, "import", "ok"), 2u) << log;
    for (const auto& r : records) {
      if (r["event"] != "import") continue;
      EXPECT_EQ(r["pid"], daemon.pid());
      EXPECT_NE(r["detail"].get<std::string>().find("from " + file), std::string::npos) << r;
    }
    for (const auto& key : {eu_key, us_key}) EXPECT_EQ(log.find(key), std::string::npos) << "the audit log holds a key";
  }

  // From stdin; the second profile is wrong: nothing is served, the message
  // names it, and no key appears.
  const std::string bad = json::array({{{"name", "ok"}, {"org", "acme"}, {"api_key", eu_key}},
                                       {{"name", "bad"}, {"org", "acme"}, {"api_key", us_key}, {"colour", "red"}}})
                              .dump();
  const auto refused = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--audit-log",
                            dir_.path() + "/audit.log", "--import", "-"},
                           RunOptions{bad});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("profile 2 ('bad')"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("colour"), std::string::npos) << refused.err;
  for (const auto& key : {eu_key, us_key}) EXPECT_EQ(refused.err.find(key), std::string::npos);
  const std::string refusals = read_file(dir_.path() + "/audit.log");
  EXPECT_EQ(count_records(audit_records(refusals), "import", "refused"), 1u) << refusals;
  for (const auto& key : {eu_key, us_key}) EXPECT_EQ(refusals.find(key), std::string::npos);

  const auto no_token = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--audit-log",
                             dir_.path() + "/audit.log", "--import-env"},
                            RunOptions{"", {{"KOSLI_API_TOKEN", ""}, {"KOSLI_ORG", "acme"}}});
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_NE(no_token.err.find("KOSLI_API_TOKEN is not set"), std::string::npos) << no_token.err;
}

}  // namespace
}  // namespace kosli::test
