// What is installed: each file in its place (DESTDIR), units that pass
// systemd-analyze verify, and the .deb with the units and its dependencies.
#include "tests/integration/run_fixture.hpp"

namespace kosli::test {
namespace {

class InstallTest : public RunTest {};

TEST_F(InstallTest, InstallIntoDestdirPutsEachFileInItsPlace) {
  const std::string stage = dir_.path() + "/stage";
  const auto installed = run({"cmake", "--install", build_dir(), "--prefix", "/usr"},
                             RunOptions{"", {{"DESTDIR", stage}}, std::chrono::seconds(60)});
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;

  EXPECT_EQ(tree(stage), (std::set<std::string>{
                             "usr/bin/kosli-credd",
                             "usr/bin/kosli-cred",
                             "usr/bin/git-credential-kosli",
                             "usr/libexec/kosli-cred/kosli-cred",
                             "usr/lib/systemd/user/kosli-credd.socket",
                             "usr/lib/systemd/user/kosli-credd.service",
                             "usr/share/man/man1/kosli-credd.1",
                             "usr/share/man/man1/kosli-cred.1",
                             "usr/share/bash-completion/completions/kosli-cred",
                         }))
      << installed.out;
  for (const char* program : {"/usr/bin/kosli-credd", "/usr/bin/kosli-cred"}) {
    EXPECT_EQ(::access((stage + program).c_str(), X_OK), 0) << program;
  }
  // The link is relative, so it works wherever the tree is unpacked.
  EXPECT_EQ(fs::read_symlink(stage + "/usr/bin/git-credential-kosli"), "kosli-cred");
  // So is the way to the full command line: the installed kosli-cred finds it.
  const auto version = run({stage + "/usr/bin/kosli-cred", "--version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(version.out, std::string(KOSLI_TEST_VERSION) + "\n");

  const std::string socket_unit = read_file(stage + "/usr/lib/systemd/user/kosli-credd.socket");
  for (const char* line : {"ListenStream=%t/kosli-cred/sock", "SocketMode=0600", "DirectoryMode=0700",
                           "WantedBy=sockets.target"}) {
    EXPECT_TRUE(contains_line(socket_unit, line)) << line << "\n" << socket_unit;
  }
  const std::string service = read_file(stage + "/usr/lib/systemd/user/kosli-credd.service");
  for (const char* line : {"Type=notify", "ExecStart=/usr/bin/kosli-credd", "NoNewPrivileges=yes",
                           "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "RestrictRealtime=yes",
                           "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "LimitCORE=0", "UMask=0077"}) {
    EXPECT_TRUE(contains_line(service, line)) << line << "\n" << service;
  }
  EXPECT_EQ(service.find(stage), std::string::npos) << "DESTDIR leaked into the unit";

  const auto completion = run({"bash", "-c", "source \"$0\" && complete -p kosli-cred",
                               stage + "/usr/share/bash-completion/completions/kosli-cred"});
  EXPECT_EQ(completion.exit_code, 0) << completion.err;
  EXPECT_NE(completion.out.find("_kosli_cred"), std::string::npos) << completion.out;
  if (have("groff")) {
    for (const char* page : {"kosli-credd.1", "kosli-cred.1"}) {
      const auto lint = run({"groff", "-man", "-Tutf8", "-ww", "-z", stage + "/usr/share/man/man1/" + page});
      EXPECT_EQ(lint.exit_code, 0) << page;
      EXPECT_EQ(lint.err, "") << page;
    }
  }
}

// systemd-analyze verify needs ExecStart= to exist and --user has no --root:
// install to a prefix this test owns, so ExecStart= names the installed binary,
// and point MANPATH at it, so Documentation=man:… resolves too.
TEST_F(InstallTest, InstalledUnitsPassSystemdAnalyzeVerify) {
  if (!have("systemd-analyze")) GTEST_SKIP() << "needs systemd-analyze (package systemd)";
  const std::string prefix = dir_.path() + "/prefix";
  const std::string runtime = dir_.path() + "/run";
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  const auto installed = run({"cmake", "--install", build_dir(), "--prefix", prefix},
                             RunOptions{"", {{"DESTDIR", ""}}, std::chrono::seconds(60)});
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;
  const std::string units = prefix + "/lib/systemd/user/";
  EXPECT_TRUE(contains_line(read_file(units + "kosli-credd.service"), "ExecStart=" + prefix + "/bin/kosli-credd"));

  const auto verified = run({"systemd-analyze", "verify", "--user", units + "kosli-credd.socket",
                             units + "kosli-credd.service"},
                            RunOptions{"", {{"XDG_RUNTIME_DIR", runtime}, {"MANPATH", prefix + "/share/man"}}});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_EQ(verified.err, "");
}

TEST_F(InstallTest, CpackBuildsADebWithTheUnitsAndItsDependencies) {
  if (!have("cpack") || !have("dpkg-deb")) GTEST_SKIP() << "needs cpack and dpkg-deb";
  const std::string out = dir_.path() + "/package";
  const auto packed = run({"cpack", "--config", build_dir() + "/CPackConfig.cmake", "-B", out},
                          RunOptions{"", {{"DESTDIR", ""}}, std::chrono::seconds(100)});
  ASSERT_EQ(packed.exit_code, 0) << packed.out << packed.err;
  std::string deb;
  for (const auto& entry : fs::directory_iterator(out)) {
    if (entry.path().extension() == ".deb") deb = entry.path().string();
  }
  ASSERT_FALSE(deb.empty()) << packed.out;

  const auto listing = run({"dpkg-deb", "-c", deb});
  ASSERT_EQ(listing.exit_code, 0) << listing.err;
  for (const char* path : {"./usr/lib/systemd/user/kosli-credd.socket", "./usr/lib/systemd/user/kosli-credd.service",
                           "./usr/bin/kosli-credd", "./usr/bin/kosli-cred",
                           "./usr/bin/git-credential-kosli -> kosli-cred",
                           "./usr/libexec/kosli-cred/kosli-cred",
                           "./usr/share/man/man1/kosli-credd.1",
                           "./usr/share/bash-completion/completions/kosli-cred"}) {
    EXPECT_NE(listing.out.find(path), std::string::npos) << path << "\n" << listing.out;
  }
  const std::string depends = run({"dpkg-deb", "-f", deb, "Depends"}).out;
  for (const char* package : {"libsecret-1-0", "libglib2.0-0", "libssl3"}) {
    EXPECT_NE(depends.find(package), std::string::npos) << package << " missing from: " << depends;
  }
  EXPECT_EQ(run({"dpkg-deb", "-f", deb, "Recommends"}).out, "gnome-keyring\n");
  const auto service = run({"sh", "-c", "dpkg-deb --fsys-tarfile \"$0\" | tar -xO ./usr/lib/systemd/user/kosli-credd.service", deb});
  EXPECT_TRUE(contains_line(service.out, "ExecStart=/usr/bin/kosli-credd")) << service.out << service.err;
}

}  // namespace
}  // namespace kosli::test
