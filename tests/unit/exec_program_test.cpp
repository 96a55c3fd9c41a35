#include "client/exec_program.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace kosli::client {
namespace {

namespace fs = std::filesystem;

// PATH set for one test, put back after it.
class ScopedPath {
 public:
  explicit ScopedPath(const std::optional<std::string>& value) {
    if (const char* old = std::getenv("PATH")) old_ = old;
    if (value) {
      ::setenv("PATH", value->c_str(), 1);
    } else {
      ::unsetenv("PATH");
    }
  }
  ~ScopedPath() {
    if (old_) {
      ::setenv("PATH", old_->c_str(), 1);
    } else {
      ::unsetenv("PATH");
    }
  }

 private:
  std::optional<std::string> old_;
};

class FindProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kosli-exec-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = fs::canonical(tmpl).string();
    for (const char* sub : {"a", "b", "c"}) fs::create_directory(dir_ + "/" + sub);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& path, mode_t mode) const {
    const std::string full = dir_ + "/" + path;
    std::ofstream(full) << "#!/bin/sh\n";
    ::chmod(full.c_str(), mode);
    return full;
  }

  std::string dir_;
};

TEST_F(FindProgramTest, SearchesPathInOrderForAnExecutableRegularFile) {
  file("a/tool", 0644);                    // no execute bit (not even root runs it): skipped
  fs::create_directory(dir_ + "/b/tool");  // a directory: skipped
  const std::string wanted = file("c/tool", 0755);
  const ScopedPath path(dir_ + "/a:" + dir_ + "/b:" + dir_ + "/c");
  EXPECT_EQ(find_program("tool"), wanted);
}

TEST_F(FindProgramTest, TheFirstMatchWinsAndItsRealPathIsGiven) {
  const std::string first = file("a/tool", 0755);
  file("c/tool", 0755);
  fs::create_symlink(first, dir_ + "/b/linked");
  const ScopedPath path(dir_ + "/b:" + dir_ + "/a:" + dir_ + "/c");
  EXPECT_EQ(find_program("tool"), first);
  EXPECT_EQ(find_program("linked"), first);  // the link's target: what /proc/<pid>/exe will show
}

TEST_F(FindProgramTest, ACommandWithASlashIsNotSearched) {
  const std::string here = file("a/tool", 0755);
  const ScopedPath path(dir_ + "/c");
  EXPECT_EQ(find_program(dir_ + "/b/../a/tool"), here);
  errno = 0;
  EXPECT_EQ(find_program(dir_ + "/c/tool"), std::nullopt);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(FindProgramTest, NothingFoundIsEnoentAndAnEmptyEntryIsTheCurrentDirectory) {
  const ScopedPath path(dir_ + "/a:" + dir_ + "/b");
  errno = 0;
  EXPECT_EQ(find_program("no-such-tool-kosli"), std::nullopt);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(find_program(""), std::nullopt);

  const std::string local = file("c/tool", 0755);
  const auto cwd = fs::current_path();
  fs::current_path(dir_ + "/c");
  const ScopedPath with_cwd(dir_ + "/a:");
  EXPECT_EQ(find_program("tool"), local);
  fs::current_path(cwd);
}

TEST_F(FindProgramTest, WithoutPathTheDefaultSearchPathIsUsed) {
  const ScopedPath path(std::nullopt);
  char sh[PATH_MAX];
  ASSERT_NE(::realpath("/bin/sh", sh), nullptr);
  EXPECT_EQ(find_program("sh"), std::string(sh));
}

}  // namespace
}  // namespace kosli::client
