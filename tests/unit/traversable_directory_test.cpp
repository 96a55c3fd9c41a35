// ensure_traversable_directory: the socket directory of a daemon that also
// serves other uids (--allow-uid). Others may traverse and read it, never
// write to it: a writable directory would let them replace the socket.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "proto/socket_path.hpp"

namespace kosli {
namespace {

class TraversableDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kosli-traversable-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // A directory of this user's with `mode`.
  std::string dir_with_mode(mode_t mode) {
    const std::string dir = root_ + "/d" + std::to_string(mode);
    EXPECT_EQ(::mkdir(dir.c_str(), 0700), 0);
    EXPECT_EQ(::chmod(dir.c_str(), mode), 0);
    return dir;
  }

  static mode_t mode_of(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
  }

  std::string root_;
};

TEST_F(TraversableDirectoryTest, ADirectoryGroupOrOthersMayWriteIsRefused) {
  for (const mode_t mode : {mode_t{0777}, mode_t{0775}, mode_t{0757}, mode_t{0731}, mode_t{0713}, mode_t{0720},
                            mode_t{0702}, mode_t{01777}}) {
    SCOPED_TRACE(mode);
    const std::string dir = dir_with_mode(mode);
    const auto problem = ensure_traversable_directory(dir);
    ASSERT_TRUE(problem.has_value());
    EXPECT_NE(problem->find("the socket directory " + dir + " has mode"), std::string::npos) << *problem;
    EXPECT_NE(problem->find("open to other users"), std::string::npos) << *problem;
    EXPECT_NE(problem->find("chmod 711 " + dir), std::string::npos) << *problem;
    EXPECT_EQ(mode_of(dir), mode) << "the check changed the directory";
  }
}

TEST_F(TraversableDirectoryTest, ADirectoryOthersMayOnlyTraverseOrReadIsAccepted) {
  for (const mode_t mode : {mode_t{0700}, mode_t{0711}, mode_t{0755}, mode_t{0750}}) {
    SCOPED_TRACE(mode);
    const auto problem = ensure_traversable_directory(dir_with_mode(mode));
    EXPECT_FALSE(problem.has_value()) << *problem;
  }
}

TEST_F(TraversableDirectoryTest, ANewDirectoryIsMade0711WhateverTheUmask) {
  const mode_t old = ::umask(0);
  const std::string dir = root_ + "/new";
  const auto problem = ensure_traversable_directory(dir);
  ::umask(old);
  EXPECT_FALSE(problem.has_value()) << *problem;
  EXPECT_EQ(mode_of(dir), 0711u);
}

TEST_F(TraversableDirectoryTest, ThePrivateRuleStillRefusesWhatTheSharedOneAccepts) {
  // The two rules differ: a private directory may not even be traversed by others.
  EXPECT_TRUE(ensure_private_directory(dir_with_mode(0711)).has_value());
  EXPECT_TRUE(ensure_private_directory(dir_with_mode(0755)).has_value());
}

}  // namespace
}  // namespace kosli
