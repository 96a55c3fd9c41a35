// The README's examples are taken by the real programs as written: every JSON
// configuration passes --check-config, every on_rotate command of "Rotation
// hooks" is a valid hook, the Kubernetes sidecars' kosli-credd commands (CI and
// "Many runners") start and answer their startup probe, and the Vault Agent
// template of "Many runners" renders a file --import reads.
#include <regex>
#include <string>

#include "tests/integration/kosli_fixture.hpp"

namespace kosli::test {
namespace {

std::string readme() { return read_file(std::string(KOSLI_TEST_SOURCE_DIR) + "/README.md"); }

// The README's text from the heading `heading` (e.g. "### Rotation hooks") to the next of its level or above.
std::string section(const std::string& heading) {
  const std::string text = readme();
  const auto start = text.find("\n" + heading + "\n");
  if (start == std::string::npos) return {};
  const std::string level = heading.substr(0, heading.find(' '));
  auto end = start + 1;
  while ((end = text.find("\n#", end + 1)) != std::string::npos) {
    const auto hashes = text.find_first_not_of('#', end + 1) - (end + 1);
    if (hashes <= level.size()) break;
  }
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// The bodies of the fenced blocks of language `lang` in `text`.
std::vector<std::string> fenced(const std::string& text, const std::string& lang) {
  std::vector<std::string> out;
  const std::regex block("```" + lang + "\\n([\\s\\S]*?)\\n *```");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), block); it != std::sregex_iterator(); ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

// The items of each YAML flow list `key: [a, b, "c"]` in `yaml` (one may span lines).
std::vector<std::vector<std::string>> flow_lists(const std::string& yaml, const std::string& key) {
  std::vector<std::vector<std::string>> out;
  const std::regex list(key + ": \\[([^\\]]*)\\]");
  for (auto it = std::sregex_iterator(yaml.begin(), yaml.end(), list); it != std::sregex_iterator(); ++it) {
    std::vector<std::string> items;
    const std::string body = (*it)[1];
    const std::regex item("\\s*(\"[^\"]*\"|[^,\\s]+)\\s*(,|$)");
    for (auto i = std::sregex_iterator(body.begin(), body.end(), item); i != std::sregex_iterator(); ++i) {
      std::string value = (*i)[1];
      if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
      items.push_back(value);
    }
    out.push_back(items);
  }
  return out;
}

class ReadmeExamplesTest : public KosliTest {
 protected:
  RunResult check_config(const std::string& text) {
    write_config(text);
    return run({bin("kosli-credd"), "--check-config", "--config", config_path()});
  }
};

TEST_F(ReadmeExamplesTest, EveryJsonConfigurationPassesCheckConfig) {
  std::size_t checked = 0;
  for (const auto& block : fenced(readme(), "json")) {
    if (block.find_first_not_of(" \n") == std::string::npos || block[block.find_first_not_of(" \n")] != '{') continue;
    const auto r = check_config(block);
    EXPECT_EQ(r.exit_code, 0) << block << "\n-> " << r.err;
    ++checked;
  }
  EXPECT_GE(checked, 3u) << "the schedule, the hook and allowed_clients examples";
}

TEST_F(ReadmeExamplesTest, EveryOnRotateCommandOfRotationHooksIsAValidHook) {
  const std::string hooks = section("### Rotation hooks");
  ASSERT_FALSE(hooks.empty());
  const std::regex command(R"(\["/[^\]]*\])");
  std::size_t checked = 0;
  for (auto it = std::sregex_iterator(hooks.begin(), hooks.end(), command); it != std::sregex_iterator(); ++it) {
    const json argv = json::parse(it->str(), nullptr, false);
    ASSERT_TRUE(argv.is_array()) << it->str();
    const auto r = check_config(json{{"profiles", {{"ci", {{"on_rotate", argv}}}}}}.dump());
    EXPECT_EQ(r.exit_code, 0) << it->str() << " -> " << r.err;
    ++checked;
  }
  EXPECT_GE(checked, 5u) << "vault, the Kubernetes script, gh and glab";
}

TEST_F(ReadmeExamplesTest, TheKubernetesSidecarsStartAsWrittenAndAnswerTheirProbe) {
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> sidecars;  // command, probe
  for (const auto& heading : {"## CI", "## Many runners"}) {
    for (const auto& yaml : fenced(section(heading), "yaml")) {
      const auto commands = flow_lists(yaml, "command");
      const auto probes = flow_lists(yaml, "exec: \\{ command");
      for (const auto& c : commands) {
        if (!c.empty() && c[0] == "kosli-credd") sidecars.emplace_back(c, probes.empty() ? c : probes[0]);
      }
    }
  }
  ASSERT_EQ(sidecars.size(), 2u) << "the CI section's sidecar and the Many runners one";

  const std::string key = unique_key(), key_file = dir_.path() + "/api-key";
  std::ofstream(key_file) << key << "\n";  // as a Secret volume holds it
  for (const auto& [command, probe] : sidecars) {
    SCOPED_TRACE(json(command).dump());
    ASSERT_EQ(probe.front(), "kosli-cred");
    // The test's own socket and key file instead of the pod's paths.
    std::vector<std::string> args;
    std::string pod_socket;
    for (std::size_t i = 1; i < command.size(); ++i) {
      if (command[i] == "--socket" && i + 1 < command.size()) {
        pod_socket = command[++i];
      } else {
        args.push_back(command[i] == "/etc/kosli/api-key" ? key_file : command[i]);
      }
    }
    ASSERT_FALSE(pod_socket.empty());
    Daemon daemon(socket(), args, {{"KOSLI_API_TOKEN", key}, {"KOSLI_ORG", "acme"}});
    std::vector<std::string> probe_args(probe.begin() + 1, probe.end());
    for (auto& a : probe_args) {
      if (a == pod_socket) a = socket();
    }
    const auto probed = run([&] {
      std::vector<std::string> argv = {bin("kosli-cred")};
      argv.insert(argv.end(), probe_args.begin(), probe_args.end());
      return argv;
    }());
    EXPECT_EQ(probed.exit_code, 0) << probed.err;
    EXPECT_EQ(token("default"), key) << daemon.log();
  }
}

TEST_F(ReadmeExamplesTest, TheVaultAgentTemplateRendersAFileImportReads) {
  const auto templates = fenced(section("## Many runners"), "hcl");
  ASSERT_EQ(templates.size(), 1u);
  const std::string& stanza = templates[0];
  const auto from = stanza.find("<<-EOT\n"), to = stanza.rfind("EOT");
  ASSERT_TRUE(from != std::string::npos && to > from) << stanza;
  // Render it as Vault Agent would for a secret whose api_key is `key`.
  const std::string key = unique_key();
  std::string rendered = stanza.substr(from + 7, to - from - 7);
  rendered = std::regex_replace(rendered, std::regex(R"(\{\{ with secret [^}]*\}\})"), "");
  rendered = std::regex_replace(rendered, std::regex(R"(\{\{- end \}\})"), "");
  rendered = std::regex_replace(rendered, std::regex(R"(\{\{ \.Data\.data\.api_key \| toJSON \}\})"),
                                json(key).dump());
  ASSERT_EQ(rendered.find("{{"), std::string::npos) << "a template action this test does not render: " << rendered;
  ASSERT_NE(stanza.find("destination = \"/run/kosli/keys.json\""), std::string::npos);
  const std::string file = dir_.path() + "/keys.json";
  std::ofstream(file) << rendered;
  Daemon daemon(socket(), {"--backend", "memory", "--import", file, "--watch"});
  EXPECT_EQ(token("default"), key) << rendered << daemon.log();
  EXPECT_EQ(show("default")["host"], "https://app.kosli.com");
}

}  // namespace
}  // namespace kosli::test
