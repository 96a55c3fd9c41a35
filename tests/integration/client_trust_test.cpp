// The client checks whom it talks to before it sends anything: a socket, or its
// directory, that belongs to another user, or a daemon that runs as another uid,
// gets no byte (exit 5), unless the user named that uid for a sidecar. Nothing
// echoes an argument that may be a key, and `show` escapes what it prints.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

extern char** environ;

namespace kosli::test {
namespace {

namespace fs = std::filesystem;

// Uids without accounts, used by no other test.
constexpr uid_t kUser = 4201;      // runs kosli-cred
constexpr uid_t kSomeone = 4202;   // an impostor, or the user's sidecar

// The system's python3: one under root's home (pyenv) is no use to another uid.
constexpr const char* kPython = "/usr/bin/python3";

bool can_switch_uid() {
  return ::geteuid() == 0 && ::access("/usr/bin/setpriv", X_OK) == 0 && ::access(kPython, X_OK) == 0;
}

std::vector<std::string> as_uid(uid_t uid, std::vector<std::string> argv) {
  const std::string id = std::to_string(uid);
  argv.insert(argv.begin(), {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups"});
  return argv;
}

// A program started in the background, as another uid. It reports ready with
// a line on `ready_fd` (its stdout for the impostor, --ready-fd for kosli-credd);
// stop() returns what it wrote there afterwards. stderr goes to `log`.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::vector<std::pair<std::string, std::string>>& env,
             int ready_fd, const std::string& log) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (ready_fd != STDOUT_FILENO) posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], ready_fd);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
    std::vector<std::string> args = argv;
    std::vector<char*> c_argv, c_env;
    for (auto& a : args) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    for (auto& e : env_strings) c_env.push_back(e.data());
    c_env.push_back(nullptr);
    const int spawned =
        ::posix_spawnp(&pid_, c_argv[0], &actions, child_spawn_attributes(), c_argv.data(), c_env.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    out_ = pipe_fds[0];
    if (spawned != 0) throw std::runtime_error("cannot start " + argv.front());
    const std::string line = read_line();
    if (line != "ready" && line != "ok") {
      stop();
      throw std::runtime_error(argv.back() + " did not become ready; its log:\n" + read_file(log));
    }
  }
  ~Background() { stop(); }

  // SIGTERM, then everything it wrote since it was ready.
  std::string stop() {
    std::string rest;
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
      char buf[256];
      ssize_t n;
      while ((n = ::read(out_, buf, sizeof buf)) > 0) rest.append(buf, static_cast<std::size_t>(n));
    }
    if (out_ >= 0) ::close(out_);
    out_ = -1;
    return rest;
  }

 private:
  std::string read_line() {
    std::string line;
    char c;
    pollfd pfd{out_, POLLIN, 0};
    while (::poll(&pfd, 1, 15000) == 1 && ::read(out_, &c, 1) == 1 && c != '\n') line.push_back(c);
    return line;
  }

  pid_t pid_ = -1;
  int out_ = -1;
};

// Listens on a Unix socket and counts what it is sent; on SIGTERM it takes every
// connection still waiting, reads what is buffered, and prints
// "accepted N bytes M". It answers nothing: a client that sends a request gets
// its connection closed.
constexpr const char* kImpostor = R"(
import os, select, signal, socket, sys
path, dir_mode, sock_mode = sys.argv[1], int(sys.argv[2], 8), int(sys.argv[3], 8)
directory = os.path.dirname(path)
os.mkdir(directory, dir_mode)
os.chmod(directory, dir_mode)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
os.chmod(path, sock_mode)
listener.listen(64)
listener.setblocking(False)
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
accepted, received, open_ = 0, 0, []
print("ready", flush=True)
while True:
    last = bool(stopping)
    try:
        select.select([listener] + open_, [], [], 0.05)
    except InterruptedError:
        pass
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            break
        conn.setblocking(False)
        accepted += 1
        open_.append(conn)
    for conn in list(open_):
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            continue
        received += len(data)
        open_.remove(conn)
        conn.close()
    if last:
        break
print("accepted %d bytes %d" % (accepted, received), flush=True)
)";

class ClientTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!can_switch_uid()) GTEST_SKIP() << "needs root, setpriv and " << kPython;
    // ctest runs each test as a process of its own, two at a time: the tests
    // that make kUser's /tmp/kosli-cred-<uid> take turns.
    lock_ = ::open(("/tmp/kosli-cred-trust-test-" + std::to_string(kUser) + ".lock").c_str(),
                   O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(lock_, 0) << std::strerror(errno);
    ASSERT_EQ(::flock(lock_, LOCK_EX), 0) << std::strerror(errno);
    for (const auto& dir : created_) fs::remove_all(dir);
  }
  void TearDown() override {
    for (const auto& dir : created_) fs::remove_all(dir);
    if (lock_ >= 0) ::close(lock_);  // and with it the lock
  }

  // An impostor as kSomeone on `socket`, making its directory with `dir_mode`
  // and the socket with `sock_mode`.
  std::unique_ptr<Background> impostor(const std::string& socket, const char* dir_mode, const char* sock_mode) {
    return std::make_unique<Background>(as_uid(kSomeone, {kPython, "-c", kImpostor, socket, dir_mode, sock_mode}),
                                        std::vector<std::pair<std::string, std::string>>{}, STDOUT_FILENO,
                                        logs_.path() + "/impostor.log");
  }

  // kosli-cred as kUser, with the default socket path and no daemon started.
  RunResult client(std::vector<std::string> args, const std::string& input = "",
                   std::vector<std::pair<std::string, std::string>> env = {}) {
    args.insert(args.begin(), bin("kosli-cred"));
    env.insert(env.begin(), {{"XDG_RUNTIME_DIR", ""}, {"KOSLI_CRED_SOCKET", ""}, {"KOSLI_CRED_AUTOSTART", "0"}});
    return run(as_uid(kUser, args), RunOptions{input, env});
  }

  // What every command that connects sends, each with what it reads on stdin.
  struct Command {
    std::vector<std::string> args;
    std::string input;
  };
  std::vector<Command> commands(const std::string& key) const {
    return {{{"store", "--org", "acme"}, key + "\n"},
            {{"token"}, ""},
            {{"exec", "--", "sh", "-c", "echo ran"}, ""},
            {{"git-credential", "store"},
             "protocol=https\nhost=app.kosli.com\nusername=acme\npassword=" + key + "\n\n"},
            {{"git-credential", "get"}, "protocol=https\nhost=app.kosli.com\n\n"},
            {{"list"}, ""},
            {{"status"}, ""}};
  }

  const std::string user_dir_ = "/tmp/kosli-cred-" + std::to_string(kUser);
  const std::string peer_dir_ = "/tmp/kosli-cred-trust-test-" + std::to_string(::getpid());
  const std::vector<std::string> created_ = {user_dir_, peer_dir_};
  int lock_ = -1;
  TempDir logs_;
};

TEST_F(ClientTrustTest, ASocketDirectoryAnotherUserMadeFirstGetsNothing) {
  // No XDG_RUNTIME_DIR: kUser's socket is /tmp/kosli-cred-4201/sock, and
  // kSomeone made that directory first, with modes that let kUser in.
  auto listener = impostor(user_dir_ + "/sock", "0711", "0666");
  const std::string key = unique_key();
  for (const auto& command : commands(key)) {
    const auto r = client(command.args, command.input);
    std::string shown;
    for (const auto& arg : command.args) shown += " " + arg;
    EXPECT_EQ(r.exit_code, 5) << shown << "\n" << r.err;
    EXPECT_EQ(r.out, "") << shown;
    EXPECT_NE(r.err.find("refusing to talk to " + user_dir_ + "/sock: its directory " + user_dir_ +
                         " belongs to uid 4202, not to you (uid 4201)"),
              std::string::npos)
        << shown << "\n" << r.err;
    EXPECT_NE(r.err.find("KOSLI_CRED_DAEMON_UID=4202"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(key), std::string::npos) << shown;
  }
  EXPECT_EQ(listener->stop(), "accepted 0 bytes 0\n") << "the impostor was sent something";
}

// Pointing at another user's socket with the modes its daemon made (a private
// directory this user cannot even look into) is a refusal, not "not running".
TEST_F(ClientTrustTest, AnotherUsersPrivateSocketIsRefusedByPolicy) {
  TempDir dir;
  const std::string socket = dir.path() + "/kosli-cred/sock";
  Daemon daemon(socket, {"--backend", "memory"});
  const auto r = client({"--socket", socket, "token"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("refusing to talk to " + socket + ": cannot check who owns " + dir.path() +
                       "/kosli-cred: Permission denied"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(daemon.log().find("refused a connection"), std::string::npos) << "the client connected: " << daemon.log();
}

TEST_F(ClientTrustTest, NoDaemonIsStartedIntoADirectoryAnotherUserOwns) {
  ASSERT_EQ(::mkdir(user_dir_.c_str(), 0711), 0);
  ASSERT_EQ(::chown(user_dir_.c_str(), kSomeone, kSomeone), 0);
  const auto r = client({"token"}, "", {{"KOSLI_CRED_AUTOSTART", "1"}, {"KOSLI_CREDD", bin("kosli-credd")}});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("belongs to uid 4202"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(user_dir_)) << "a daemon was started into " << user_dir_;
}

TEST_F(ClientTrustTest, ADaemonRunningAsAnotherUidGetsNoByteEvenOnTheUsersOwnSocket) {
  // kSomeone listens; then the directory and socket are given to kUser with
  // private modes: every path check passes, only SO_PEERCRED tells.
  const std::string socket = peer_dir_ + "/sock";
  auto listener = impostor(socket, "0700", "0600");
  ASSERT_EQ(::chown(peer_dir_.c_str(), kUser, kUser), 0);
  ASSERT_EQ(::lchown(socket.c_str(), kUser, kUser), 0);
  const std::string key = unique_key();
  std::size_t connections = 0;
  for (const auto& command : commands(key)) {
    auto args = command.args;
    args.insert(args.begin(), {"--socket", socket});
    const auto r = client(args, command.input);
    std::string shown;
    for (const auto& arg : command.args) shown += " " + arg;
    EXPECT_EQ(r.exit_code, 5) << shown << "\n" << r.err;
    EXPECT_EQ(r.out, "") << shown;
    EXPECT_NE(r.err.find("refusing to talk to " + socket + ": the daemon answering there runs as uid 4202, not as you "
                         "(uid 4201)"),
              std::string::npos)
        << shown << "\n" << r.err;
    EXPECT_EQ(r.err.find(key), std::string::npos) << shown;
    ++connections;
  }
  // Each connected (the check is on the connection), and sent nothing.
  EXPECT_EQ(listener->stop(), "accepted " + std::to_string(connections) + " bytes 0\n");
}

TEST_F(ClientTrustTest, SymlinkedOrLooseSocketsAreRefused) {
  // The user's own directory, but others may write to it: anyone could have put the socket there.
  ASSERT_EQ(::mkdir(peer_dir_.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(peer_dir_.c_str(), 0777), 0);
  ASSERT_EQ(::chown(peer_dir_.c_str(), kUser, kUser), 0);
  auto loose = client({"--socket", peer_dir_ + "/sock", "token"});
  EXPECT_EQ(loose.exit_code, 5) << loose.err;
  EXPECT_NE(loose.err.find("has mode 0777"), std::string::npos) << loose.err;

  // A symbolic link, even one of the user's own, to a socket of someone else's.
  ASSERT_EQ(::chmod(peer_dir_.c_str(), 0700), 0);
  ASSERT_EQ(::symlink((user_dir_ + "/sock").c_str(), (peer_dir_ + "/sock").c_str()), 0);
  ASSERT_EQ(::lchown((peer_dir_ + "/sock").c_str(), kUser, kUser), 0);
  const auto linked = client({"--socket", peer_dir_ + "/sock", "token"});
  EXPECT_EQ(linked.exit_code, 5) << linked.err;
  EXPECT_NE(linked.err.find("is a symbolic link"), std::string::npos) << linked.err;
}

TEST_F(ClientTrustTest, TheUidNamedForASidecarIsTrustedAndNoOtherIs) {
  // The user's sidecar runs as kSomeone and serves kUser: a 0666 socket in a
  // 0711 directory, both kSomeone's.
  ASSERT_EQ(::mkdir(peer_dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chown(peer_dir_.c_str(), kSomeone, kSomeone), 0);
  const std::string socket = peer_dir_ + "/kosli-cred/sock";
  const std::string key = unique_key();
  Background sidecar(as_uid(kSomeone, {bin("kosli-credd"), "--backend", "memory", "--import-env", "--allow-uid",
                                       std::to_string(kUser), "--socket", socket, "--ready-fd", "3", "--audit-log",
                                       "-"}),
                     {{"KOSLI_API_TOKEN", key}, {"KOSLI_ORG", "acme"}, {"HOME", peer_dir_},
                      {"XDG_CONFIG_HOME", peer_dir_}, {"XDG_STATE_HOME", peer_dir_}},
                     3, logs_.path() + "/sidecar.log");

  const auto unnamed = client({"--socket", socket, "token"});
  EXPECT_EQ(unnamed.exit_code, 5) << unnamed.err;
  EXPECT_NE(unnamed.err.find("belongs to uid 4202, not to you (uid 4201)"), std::string::npos) << unnamed.err;
  EXPECT_EQ(unnamed.out, "");

  const auto flag = client({"--socket", socket, "--daemon-uid", "4202", "token"});
  EXPECT_EQ(flag.exit_code, 0) << flag.err;
  EXPECT_EQ(flag.out, key + "\n");
  const auto flag_after = client({"--socket", socket, "header", "--daemon-uid=4202"});
  EXPECT_EQ(flag_after.exit_code, 0) << flag_after.err;
  EXPECT_EQ(flag_after.out, "Authorization: Bearer " + key + "\n");
  const auto env = client({"--socket", socket, "token"}, "", {{"KOSLI_CRED_DAEMON_UID", "4202"}});
  EXPECT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(env.out, key + "\n");
  // The full command line too.
  const auto show = client({"--socket", socket, "show", "--json"}, "", {{"KOSLI_CRED_DAEMON_UID", "4202"}});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(nlohmann::json::parse(show.out).value("org", ""), "acme") << show.out;

  // Naming another uid trusts that one, not this sidecar.
  const auto other = client({"--socket", socket, "--daemon-uid", "4203", "token"});
  EXPECT_EQ(other.exit_code, 5) << other.err;
  EXPECT_NE(other.err.find("belongs to uid 4202, neither to you (uid 4201) nor to the daemon's uid you named "
                           "(uid 4203)"),
            std::string::npos)
      << other.err;
  const auto bad = client({"--socket", socket, "token"}, "", {{"KOSLI_CRED_DAEMON_UID", "somebody"}});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--daemon-uid"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("somebody"), std::string::npos) << bad.err;
}

// As the same user as the daemon: no other uid needed.
class ClientTextTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_.path() + "/kosli-cred/sock"; }
  TempDir dir_;
  Daemon daemon_{socket(), {"--backend", "memory"}};
};

TEST_F(ClientTextTest, AKeyGivenAsAnArgumentIsNeverEchoed) {
  const std::string key = unique_key();
  const std::vector<std::vector<std::string>> mistakes = {
      {"store", "--org", "acme", key},
      {"store", "--org", "acme", key, "--profile", "p"},
      {key},
      {"store", "--org", "acme", "--region", key},
      {"store", "--org", "acme", "--kind=" + key},
      {"rotate", "--via-api", "--grace-hours", key},
      {"token", "--json=" + key},
      {"token", key},
      {"token", "--profile", key},
      {"exec", "--profile=" + key, "--", "true"},
      {"--daemon-uid", key, "token"},
      {"git-credential", "get", key},
  };
  for (const auto& args : mistakes) {
    const auto r = cred(socket(), args, RunOptions{"", {}});
    std::string shown;
    for (const auto& arg : args) shown += " " + arg;
    EXPECT_EQ(r.exit_code, 2) << shown << "\n" << r.err;
    EXPECT_EQ(r.err.find(key), std::string::npos) << shown << "\n" << r.err;
    EXPECT_EQ(r.out.find(key), std::string::npos) << shown;
  }
  const auto extra = cred(socket(), {"store", "--org", "acme", key});
  EXPECT_EQ(extra.err,
            "unexpected argument (not shown, in case it is a key: a key is never given as an argument; pipe it in "
            "on stdin)\nRun with --help for more information.\n");
  const auto region = cred(socket(), {"store", "--org", "acme", "--region", key});
  EXPECT_NE(region.err.find("--region: the value given is not valid (not shown, in case it is a key); must be one "
                            "of: eu,us"),
            std::string::npos)
      << region.err;
}

TEST_F(ClientTextTest, ShowEscapesControlAndBidiCharacters) {
  // U+202E (right-to-left override) and U+009B (the C1 control sequence introducer).
  const std::string description = "note \xE2\x80\xAE" "evil \xC2\x9B" "31m end";
  const auto stored = cred(socket(), {"store", "--profile", "tricky", "--org", "acme", "--description", description},
                           RunOptions{unique_key() + "\n", {}});
  ASSERT_EQ(stored.exit_code, 0) << stored.err;

  const auto show = cred(socket(), {"show", "--profile", "tricky"});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("description:      note \\u{202e}evil \\u{009b}31m end\n"), std::string::npos)
      << show.out;
  EXPECT_EQ(show.out.find("\xE2\x80\xAE"), std::string::npos);
  EXPECT_EQ(show.out.find("\xC2\x9B"), std::string::npos);

  // JSON stays JSON: the description comes back as it was stored.
  const auto json = cred(socket(), {"show", "--profile", "tricky", "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out).value("description", ""), description);

}

}  // namespace
}  // namespace kosli::test
