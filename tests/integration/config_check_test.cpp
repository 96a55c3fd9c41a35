// kosli-credd --check-config names each bad configuration key for Kosli
// (expiry window, schedule, CA bundle); an unreadable CA bundle stops the daemon.
#include <string>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

class ConfigCheckTest : public KosliTest {};

TEST_F(ConfigCheckTest, ConfigurationKeysForKosliAreCheckedByName) {
  struct Case {
    const char* text;
    const char* names;
  };
  for (const auto& c : {Case{R"({"expiry_warning_days": "7"})", "'expiry_warning_days'"},
                        Case{R"({"expiry_warning_days": -1})", "'expiry_warning_days'"},
                        Case{R"({"profiles": {"ci": {"rotate_every_days": "90"}}})", "'profiles.ci.rotate_every_days'"},
                        Case{R"({"profiles": {"ci": {"rotate_before_expiry_days": true}}})",
                             "'profiles.ci.rotate_before_expiry_days'"},
                        Case{R"({"profiles": {"ci": {"rotate_grace_hours": 0}}})", "'profiles.ci.rotate_grace_hours'"},
                        Case{R"({"ca_file": 7})", "'ca_file'"}}) {
    write_config(c.text);
    const auto r = run({bin("kosli-credd"), "--check-config", "--config", config_path()});
    EXPECT_EQ(r.exit_code, 1) << c.text;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << c.text << " -> " << r.err;
  }
  write_config(R"({"expiry_warning_days": 14, "profiles": {"ci": {"rotate_every_days": 90,
      "rotate_before_expiry_days": 7.5, "rotate_grace_hours": 48}}})");
  const auto good = run({bin("kosli-credd"), "--check-config", "--config", config_path()});
  EXPECT_EQ(good.exit_code, 0) << good.err;

  // A CA bundle that cannot be read stops the daemon with its name.
  const auto bad_ca = run({bin("kosli-credd"), "--backend", "memory", "--socket", socket(), "--ca-file",
                           dir_.path() + "/missing.pem"});
  EXPECT_EQ(bad_ca.exit_code, 1);
  EXPECT_NE(bad_ca.err.find("missing.pem"), std::string::npos) << bad_ca.err;
}

}  // namespace
}  // namespace kosli::test
