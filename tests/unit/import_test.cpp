// daemon/keys/import: the profiles a CI sidecar starts with, from the
// environment (--import-env) or a JSON list (--import FILE). What each refusal
// says (the profile and the problem, never the key), and the environment
// variables gone after --import-env, also when it fails.
#include "daemon/keys/import.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

namespace kosli::daemon {
namespace {

constexpr const char* kKey = "kosli_import_test_key_0123456789abcdef";
constexpr const char* kOtherKey = "kosli_import_test_key_fedcba9876543210";

// One private file per test, removed after it.
class ImportFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/kosli-import-test.XXXXXX";
    const int fd = ::mkstemp(templ);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path_ = templ;
  }
  void TearDown() override { std::remove(path_.c_str()); }

  ImportResult import(const std::string& text) const {
    std::ofstream(path_, std::ios::trunc) << text;
    return import_file(path_);
  }
  // The refusal, or a failure of the test when the list was taken.
  std::string refusal(const std::string& text) const {
    auto result = import(text);
    const auto* problem = std::get_if<std::string>(&result);
    EXPECT_NE(problem, nullptr) << "taken: " << text;
    if (problem == nullptr) return {};
    EXPECT_EQ(problem->find(kKey), std::string::npos) << "the refusal shows the key: " << *problem;
    EXPECT_EQ(problem->rfind("--import " + path_ + ": ", 0), 0u) << *problem;
    return *problem;
  }

  std::string path_;
};

TEST_F(ImportFileTest, AValidListGivesEachProfileWithItsDefaults) {
  auto result = import(std::string(R"([{"name":"ci","org":"acme","api_key":")") + kKey +
                       R"("},{"name":"us","org":"beta","api_key":")" + kOtherKey +
                       R"(","host":"https://app.us.kosli.com","description":"the US org","expires_at":4102444800}])");
  auto* profiles = std::get_if<std::vector<ImportedProfile>>(&result);
  ASSERT_NE(profiles, nullptr) << std::get<std::string>(result);
  ASSERT_EQ(profiles->size(), 2u);
  const auto& ci = (*profiles)[0];
  EXPECT_EQ(ci.name, "ci");
  EXPECT_EQ(ci.request.org, "acme");
  EXPECT_EQ(ci.request.host, "https://app.kosli.com") << "the default host";
  EXPECT_EQ(ci.request.kind, KeyKind::service_account) << "the default kind";
  EXPECT_EQ(ci.request.api_key.reveal(), kKey);
  const auto& us = (*profiles)[1];
  EXPECT_EQ(us.name, "us");
  EXPECT_EQ(us.request.host, "https://app.us.kosli.com");
  EXPECT_EQ(us.request.description, "the US org");
  EXPECT_EQ(us.request.expires_at, 4102444800);
  EXPECT_EQ(us.request.api_key.reveal(), kOtherKey);
}

TEST_F(ImportFileTest, ABadListNamesTheProfileAndTheProblem) {
  const std::string k = kKey;
  const auto no_org = refusal(R"([{"name":"ci","org":"acme","api_key":")" + k + R"("},{"name":"second","api_key":")" + k +
                              R"("}])");
  EXPECT_NE(no_org.find("profile 2 ('second')"), std::string::npos) << no_org;
  EXPECT_NE(no_org.find("org"), std::string::npos) << no_org;

  const auto bad_key = refusal(R"([{"name":"ci","org":"acme","api_key":")" + k + R"( "}])");
  EXPECT_NE(bad_key.find("profile 1 ('ci')"), std::string::npos) << bad_key;
  EXPECT_NE(bad_key.find("the API key contains a space"), std::string::npos) << bad_key;

  const auto no_key = refusal(R"([{"name":"ci","org":"acme"}])");
  EXPECT_NE(no_key.find("profile 1 ('ci'): the field 'api_key' is required"), std::string::npos) << no_key;

  const auto no_name = refusal(R"([{"org":"acme","api_key":")" + k + R"("}])");
  EXPECT_NE(no_name.find("profile 1 has no \"name\""), std::string::npos) << no_name;

  const auto not_object = refusal(R"(["ci"])");
  EXPECT_NE(not_object.find("profile 1 is not a JSON object"), std::string::npos) << not_object;

  const auto not_list = refusal(R"({"name":"ci","org":"acme","api_key":")" + k + R"("})");
  EXPECT_NE(not_list.find("expected a JSON list of profiles"), std::string::npos) << not_list;

  const auto empty = refusal("[]");
  EXPECT_NE(empty.find("the list holds no profile"), std::string::npos) << empty;

  const auto not_json = refusal(R"([{"name":"ci","api_key":")" + k + R"(")");
  EXPECT_FALSE(not_json.empty());
}

TEST_F(ImportFileTest, ANameGivenTwiceIsRefused) {
  const std::string k = kKey;
  const auto twice = refusal(R"([{"name":"ci","org":"acme","api_key":")" + k + R"("},{"name":"ci","org":"beta","api_key":")" +
                             kOtherKey + R"("}])");
  EXPECT_NE(twice.find("profile 2 ('ci') appears twice"), std::string::npos) << twice;
}

TEST_F(ImportFileTest, AFieldGivenTwiceIsRefused) {
  const std::string k = kKey;
  const auto twice = refusal(R"([{"name":"ci","org":"acme","org":"beta","api_key":")" + k + R"("}])");
  EXPECT_NE(twice.find("the field 'org' is given twice"), std::string::npos) << twice;
}

TEST_F(ImportFileTest, AFileThatCannotBeReadIsNamed) {
  const std::string missing = path_ + ".missing";
  auto result = import_file(missing);
  const auto* problem = std::get_if<std::string>(&result);
  ASSERT_NE(problem, nullptr);
  EXPECT_NE(problem->find("cannot open " + missing), std::string::npos) << *problem;
}

TEST_F(ImportFileTest, AFileLargerThanAnyListIsRefused) {
  const auto big = refusal(std::string(kMaxImportBytes + 1, ' '));
  EXPECT_NE(big.find("larger than"), std::string::npos) << big;
}

// The three variables of the Kosli CLI, set for one test and never left behind.
class ImportEnvironmentTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* name : {"KOSLI_API_TOKEN", "KOSLI_ORG", "KOSLI_HOST"}) ::unsetenv(name);
  }
  static void expect_variables_gone() {
    for (const char* name : {"KOSLI_API_TOKEN", "KOSLI_ORG", "KOSLI_HOST"}) {
      EXPECT_EQ(std::getenv(name), nullptr) << name << " is still in the environment";
    }
  }
};

TEST_F(ImportEnvironmentTest, TheVariablesMakeTheDefaultProfileAndAreRemoved) {
  ::setenv("KOSLI_API_TOKEN", (std::string(kKey) + "\n").c_str(), 1);  // as a CI secret often ends
  ::setenv("KOSLI_ORG", "acme", 1);
  auto result = import_environment();
  expect_variables_gone();
  auto* profiles = std::get_if<std::vector<ImportedProfile>>(&result);
  ASSERT_NE(profiles, nullptr) << std::get<std::string>(result);
  ASSERT_EQ(profiles->size(), 1u);
  EXPECT_EQ((*profiles)[0].name, "default");
  EXPECT_EQ((*profiles)[0].request.org, "acme");
  EXPECT_EQ((*profiles)[0].request.host, "https://app.kosli.com");
  EXPECT_EQ((*profiles)[0].request.kind, KeyKind::service_account);
  EXPECT_EQ((*profiles)[0].request.api_key.reveal(), kKey);
}

TEST_F(ImportEnvironmentTest, KosliHostIsTaken) {
  ::setenv("KOSLI_API_TOKEN", kKey, 1);
  ::setenv("KOSLI_ORG", "acme", 1);
  ::setenv("KOSLI_HOST", "https://app.us.kosli.com", 1);
  auto result = import_environment();
  expect_variables_gone();
  auto* profiles = std::get_if<std::vector<ImportedProfile>>(&result);
  ASSERT_NE(profiles, nullptr) << std::get<std::string>(result);
  EXPECT_EQ((*profiles)[0].request.host, "https://app.us.kosli.com");
}

TEST_F(ImportEnvironmentTest, ARefusalSaysWhichVariableAndStillRemovesThem) {
  ::setenv("KOSLI_API_TOKEN", kKey, 1);
  auto no_org = import_environment();
  expect_variables_gone();
  ASSERT_TRUE(std::holds_alternative<std::string>(no_org));
  EXPECT_NE(std::get<std::string>(no_org).find("--import-env: KOSLI_ORG is not set"), std::string::npos)
      << std::get<std::string>(no_org);

  ::setenv("KOSLI_ORG", "acme", 1);
  auto no_token = import_environment();
  expect_variables_gone();
  ASSERT_TRUE(std::holds_alternative<std::string>(no_token));
  EXPECT_NE(std::get<std::string>(no_token).find("KOSLI_API_TOKEN is not set or empty"), std::string::npos)
      << std::get<std::string>(no_token);

  ::setenv("KOSLI_API_TOKEN", kKey, 1);
  ::setenv("KOSLI_ORG", "acme", 1);
  ::setenv("KOSLI_HOST", "https://app.kosli.com,https://app.us.kosli.com", 1);
  auto several = import_environment();
  expect_variables_gone();
  ASSERT_TRUE(std::holds_alternative<std::string>(several));
  EXPECT_NE(std::get<std::string>(several).find("lists several hosts"), std::string::npos)
      << std::get<std::string>(several);
  EXPECT_EQ(std::get<std::string>(several).find(kKey), std::string::npos);
}

}  // namespace
}  // namespace kosli::daemon
