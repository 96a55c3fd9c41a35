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

}  // namespace
}  // namespace kosli
