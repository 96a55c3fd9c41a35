#include "proto/socket_path.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "tests/unit/test_helpers.hpp"

namespace kosli {
namespace {

using test::Mentions;

// Sets (or, with nullopt, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  std::string name_;
  std::optional<std::string> old_;
};

const std::string kEnv(kSocketEnv);

TEST(DefaultSocketPath, UsesXdgRuntimeDir) {
  ScopedEnv runtime("XDG_RUNTIME_DIR", "/run/user/1234");
  EXPECT_EQ(default_socket_path(), "/run/user/1234/kosli-cred/sock");
}

TEST(DefaultSocketPath, FallsBackToAPerUserTmpDirectory) {
  const std::string fallback = "/tmp/kosli-cred-" + std::to_string(::geteuid()) + "/sock";
  {
    ScopedEnv runtime("XDG_RUNTIME_DIR", std::nullopt);
    EXPECT_EQ(default_socket_path(), fallback);
  }
  {
    ScopedEnv runtime("XDG_RUNTIME_DIR", "");
    EXPECT_EQ(default_socket_path(), fallback);
  }
  {
    ScopedEnv runtime("XDG_RUNTIME_DIR", "relative/dir");  // not trustworthy
    EXPECT_EQ(default_socket_path(), fallback);
  }
}

TEST(ResolveSocketPath, FlagBeatsEnvironmentBeatsDefault) {
  ScopedEnv runtime("XDG_RUNTIME_DIR", "/run/user/1234");
  {
    ScopedEnv env(kEnv, "/env/sock");
    EXPECT_EQ(resolve_socket_path(std::string("/flag/sock")), "/flag/sock");
    EXPECT_EQ(resolve_socket_path(std::nullopt), "/env/sock");
    EXPECT_EQ(resolve_socket_path(std::string()), "/env/sock");  // an empty flag is no flag
  }
  {
    ScopedEnv env(kEnv, "");
    EXPECT_EQ(resolve_socket_path(std::nullopt), "/run/user/1234/kosli-cred/sock");
  }
  {
    ScopedEnv env(kEnv, std::nullopt);
    EXPECT_EQ(resolve_socket_path(std::nullopt), "/run/user/1234/kosli-cred/sock");
    EXPECT_EQ(resolve_socket_path(std::string("/flag/sock")), "/flag/sock");
  }
}

TEST(SocketDirectory, IsTheParentOfTheSocket) {
  EXPECT_EQ(socket_directory("/run/user/1/kosli-cred/sock"), "/run/user/1/kosli-cred");
  EXPECT_EQ(socket_directory("/sock"), "/");
  EXPECT_EQ(socket_directory("sock"), ".");
}

// A fresh temporary directory, removed with its contents afterwards.
class PrivateDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "kosli-unit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  static mode_t mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  std::string path(const std::string& name) const { return (root_ / name).string(); }

  std::filesystem::path root_;
};

TEST_F(PrivateDirectoryTest, CreatesAMissingDirectoryWithMode0700) {
  const mode_t old_umask = ::umask(0);  // mkdir must not rely on a strict umask
  const auto problem = ensure_private_directory(path("sockdir"));
  ::umask(old_umask);
  EXPECT_EQ(problem, std::nullopt);
  EXPECT_EQ(mode_of(path("sockdir")), 0700u);
}

TEST_F(PrivateDirectoryTest, AcceptsAnExistingPrivateDirectory) {
  ASSERT_EQ(::mkdir(path("sockdir").c_str(), 0700), 0);
  EXPECT_EQ(ensure_private_directory(path("sockdir")), std::nullopt);
  EXPECT_EQ(mode_of(path("sockdir")), 0700u);
}

TEST_F(PrivateDirectoryTest, RefusesAnOpenDirectoryWithAdviceAndLeavesItAlone) {
  ASSERT_EQ(::mkdir(path("sockdir").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(path("sockdir").c_str(), 0755), 0);
  const auto problem = ensure_private_directory(path("sockdir"));
  ASSERT_TRUE(problem.has_value());
  EXPECT_TRUE(Mentions(*problem, "chmod 700 " + path("sockdir")));
  EXPECT_EQ(mode_of(path("sockdir")), 0755u);  // never chmod-ed behind the user's back
}

TEST_F(PrivateDirectoryTest, RefusesAnyGroupOrOtherBit) {
  ASSERT_EQ(::mkdir(path("sockdir").c_str(), 0700), 0);
  for (const mode_t mode : {0710, 0701, 0720, 0702}) {
    ASSERT_EQ(::chmod(path("sockdir").c_str(), mode), 0);
    EXPECT_TRUE(ensure_private_directory(path("sockdir")).has_value()) << std::oct << mode;
  }
}

TEST_F(PrivateDirectoryTest, RefusesASymlinkEvenToAPrivateDirectory) {
  ASSERT_EQ(::mkdir(path("real").c_str(), 0700), 0);
  ASSERT_EQ(::symlink(path("real").c_str(), path("link").c_str()), 0);
  const auto problem = ensure_private_directory(path("link"));
  ASSERT_TRUE(problem.has_value());
  EXPECT_TRUE(Mentions(*problem, "symbolic link"));
}

TEST_F(PrivateDirectoryTest, RefusesARegularFile) {
  std::ofstream(path("file")) << "x";
  const auto problem = ensure_private_directory(path("file"));
  ASSERT_TRUE(problem.has_value());
  EXPECT_TRUE(Mentions(*problem, "not a directory"));
}

TEST_F(PrivateDirectoryTest, ReportsAMissingParent) {
  const auto problem = ensure_private_directory(path("missing/sockdir"));
  ASSERT_TRUE(problem.has_value());
  EXPECT_TRUE(Mentions(*problem, "cannot create"));
}

TEST(ParseUidTest, TakesDecimalUidsOnly) {
  EXPECT_EQ(parse_uid("0"), 0u);
  EXPECT_EQ(parse_uid("1001"), 1001u);
  EXPECT_EQ(parse_uid("4294967294"), 4294967294u);
  for (const char* bad : {"", "-1", "+5", "1001 ", " 1001", "0x10", "abc", "4294967295", "99999999999"}) {
    EXPECT_FALSE(parse_uid(bad)) << "'" << bad << "'";
  }
}

// The trust check's own cases; what another uid sees is in
// tests/integration/client_trust_test.cpp.
TEST_F(PrivateDirectoryTest, TrustsThisUsersPrivateSocketAndNothingThere) {
  ASSERT_EQ(::mkdir(path("sockdir").c_str(), 0700), 0);
  EXPECT_EQ(socket_trust_problem(path("sockdir/sock"), std::nullopt), std::nullopt) << "nothing there yet";
  EXPECT_EQ(socket_trust_problem(path("missing/sock"), std::nullopt), std::nullopt) << "nothing there yet";
  std::ofstream(path("sockdir/sock")) << "";
  ASSERT_EQ(::chmod(path("sockdir/sock").c_str(), 0666), 0);
  EXPECT_EQ(socket_trust_problem(path("sockdir/sock"), std::nullopt), std::nullopt) << "this user's own sidecar";
  // Named another daemon uid: this user's 0666 socket is no longer the daemon's.
  const auto other = socket_trust_problem(path("sockdir/sock"), ::geteuid() + 1);
  ASSERT_TRUE(other.has_value());
  EXPECT_TRUE(Mentions(*other, "has mode 0666"));
}

TEST_F(PrivateDirectoryTest, DoesNotTrustAWritableOrSymlinkedDirectory) {
  ASSERT_EQ(::mkdir(path("sockdir").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(path("sockdir").c_str(), 0730), 0);
  const auto loose = socket_trust_problem(path("sockdir/sock"), std::nullopt);
  ASSERT_TRUE(loose.has_value());
  EXPECT_TRUE(Mentions(*loose, "has mode 0730"));
  ASSERT_EQ(::chmod(path("sockdir").c_str(), 0700), 0);
  ASSERT_EQ(::symlink(path("sockdir").c_str(), path("link").c_str()), 0);
  const auto linked = socket_trust_problem(path("link/sock"), std::nullopt);
  ASSERT_TRUE(linked.has_value());
  EXPECT_TRUE(Mentions(*linked, "symbolic link"));
}

TEST(DaemonPeerTest, TrustsThisUserAndTheNamedUidOnly) {
  const uid_t me = ::geteuid();
  EXPECT_EQ(daemon_peer_problem("/s", me, std::nullopt), std::nullopt);
  EXPECT_EQ(daemon_peer_problem("/s", me, me + 7), std::nullopt);
  EXPECT_EQ(daemon_peer_problem("/s", me + 7, me + 7), std::nullopt);
  const auto other = daemon_peer_problem("/s", me + 8, me + 7);
  ASSERT_TRUE(other.has_value());
  EXPECT_TRUE(Mentions(*other, "runs as uid " + std::to_string(me + 8)));
}

}  // namespace
}  // namespace kosli
