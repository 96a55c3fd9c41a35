// daemon/keys/import_key: the single-key form of an import (--import-key FILE),
// the file a Kubernetes Secret volume or a Vault Agent template holds: only the
// key, one trailing newline trimmed; anything else refused without the key.
#include "daemon/keys/import_key.hpp"

#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/ops/config.hpp"
#include "daemon/ops/import_config.hpp"

#include <nlohmann/json.hpp>

namespace kosli::daemon {
namespace {

constexpr const char* kKey = "kosli_import_key_test_0123456789abcdef";

KeyFileProfile acme() {
  KeyFileProfile p;
  p.org = "acme";
  return p;
}

ImportResult parse(std::string text, const KeyFileProfile& profile = acme()) {
  return parse_key_file(text, profile, "--import-key /run/secret/api-token");
}

std::string refusal(std::string text) {
  auto result = parse(std::move(text));
  const auto* why = std::get_if<std::string>(&result);
  return why ? *why : "(taken)";
}

TEST(ImportKeyFile, TheKeyAloneWithOneTrailingNewlineTrimmed) {
  for (const std::string text : {std::string(kKey), std::string(kKey) + "\n", std::string(kKey) + "\r\n"}) {
    auto result = parse(text);
    ASSERT_TRUE(std::holds_alternative<std::vector<ImportedProfile>>(result)) << std::get<std::string>(result);
    const auto& profiles = std::get<std::vector<ImportedProfile>>(result);
    ASSERT_EQ(profiles.size(), 1u);
    EXPECT_EQ(profiles[0].name, "default");
    EXPECT_EQ(profiles[0].request.api_key.reveal(), kKey);
    EXPECT_EQ(profiles[0].request.org, "acme");
    EXPECT_EQ(profiles[0].request.host, "https://app.kosli.com");
    EXPECT_EQ(profiles[0].request.kind, KeyKind::service_account);
  }
}

TEST(ImportKeyFile, TheProfileComesFromTheFlags) {
  KeyFileProfile p = acme();
  p.name = "ci-us";
  p.host = "https://app.us.kosli.com/";
  p.service_account = "ci-bot";
  p.key_id = "8c1f0b2e";
  auto result = parse(std::string(kKey) + "\n", p);
  ASSERT_TRUE(std::holds_alternative<std::vector<ImportedProfile>>(result)) << std::get<std::string>(result);
  const auto& got = std::get<std::vector<ImportedProfile>>(result)[0];
  EXPECT_EQ(got.name, "ci-us");
  EXPECT_EQ(got.request.host, "https://app.us.kosli.com");
  EXPECT_EQ(got.request.service_account, "ci-bot");
  EXPECT_EQ(got.request.key_id, "8c1f0b2e");
}

TEST(ImportKeyFile, AnythingButOneKeyIsRefusedWithoutShowingIt) {
  EXPECT_NE(refusal("").find("empty"), std::string::npos) << refusal("");
  EXPECT_NE(refusal("\n").find("empty"), std::string::npos) << refusal("\n");
  for (const std::string text : {std::string(kKey) + "\n\n", std::string(kKey) + " \n", " " + std::string(kKey),
                                 std::string(kKey) + "\n" + kKey, "{\"api_key\":\"" + std::string(kKey) + "\"}x y"}) {
    const std::string why = refusal(text);
    EXPECT_NE(why, "(taken)") << text;
    EXPECT_EQ(why.rfind("--import-key /run/secret/api-token: ", 0), 0u) << why;
    EXPECT_EQ(why.find(kKey), std::string::npos) << "the refusal shows the key: " << why;
  }
}

TEST(ImportKeyFile, ABadHostOrNameIsRefused) {
  KeyFileProfile p = acme();
  p.host = "http://app.kosli.com";
  EXPECT_TRUE(std::holds_alternative<std::string>(parse(kKey, p)));
}

TEST(ImportConfigTest, ImportAndImportKeyObjects) {
  ImportConfig config;
  EXPECT_EQ(read_import_config(nlohmann::json{{"file", "/run/k"}, {"watch", true}}, "import", config), std::nullopt);
  EXPECT_TRUE(config.watch);
  EXPECT_FALSE(config.single_key);
  ImportConfig key;
  EXPECT_EQ(read_import_config(nlohmann::json{{"file", "/run/k"}, {"org", "acme"}, {"kind", "personal"}},
                               "import_key", key),
            std::nullopt);
  EXPECT_TRUE(key.single_key);
  EXPECT_EQ(key.org, "acme");
  ImportConfig bad;
  EXPECT_NE(read_import_config(nlohmann::json{{"file", "/run/k"}}, "import_key", bad)->find("'import_key.org'"),
            std::string::npos);
  EXPECT_NE(read_import_config(nlohmann::json{{"file", "/run/k"}, {"org", "x"}}, "import", bad)->find("'import.org'"),
            std::string::npos);
  EXPECT_NE(read_import_config(nlohmann::json{{"file", "/run/k"}, {"watch", "yes"}}, "import", bad)->find("true or false"),
            std::string::npos);
}

TEST(ImportConfigTest, TheConfigurationTakesOneOfThem) {
  auto parsed = parse_config(R"({"import_key":{"file":"/run/k","org":"acme","watch":true}})", "c.json");
  ASSERT_TRUE(std::holds_alternative<Config>(parsed)) << std::get<ConfigError>(parsed).message;
  ASSERT_TRUE(std::get<Config>(parsed).import);
  EXPECT_TRUE(std::get<Config>(parsed).import->single_key);
  EXPECT_TRUE(std::get<Config>(parsed).import->watch);
  auto both = parse_config(R"({"import":{"file":"/a"},"import_key":{"file":"/b","org":"acme"}})", "c.json");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(both));
  EXPECT_NE(std::get<ConfigError>(both).message.find("one file"), std::string::npos);
  auto unknown = parse_config(R"({"imports":{}})", "c.json");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(unknown));
  EXPECT_NE(std::get<ConfigError>(unknown).message.find("import, import_key"), std::string::npos);
}

}  // namespace
}  // namespace kosli::daemon
