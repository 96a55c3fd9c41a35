#include "tests/integration/standin.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace kosli::test {
namespace {

std::vector<std::string> merged_environment(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    if (std::none_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == name; })) {
      out.push_back(entry);
    }
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

pid_t spawn_background(std::vector<std::string> argv, const std::vector<std::pair<std::string, std::string>>& env,
                       const std::string& input, const std::string& log, int& stdout_fd) {
  const bool stdout_to_log = stdout_fd == -1;
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.empty() ? "/dev/null" : log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (stdout_to_log) {
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  } else {
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  }
  auto envs = merged_environment(env);
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, args[0], &actions, child_spawn_attributes(), args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  if (spawned != 0) {
    ::close(in[1]);
    ::close(out[0]);
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(spawned));
  }
  if (!input.empty() && ::write(in[1], input.data(), input.size()) < 0) {
    ::close(in[1]);
    ::close(out[0]);
    throw std::runtime_error("cannot write to " + argv[0]);
  }
  ::close(in[1]);
  if (stdout_to_log) {
    ::close(out[0]);
  } else {
    stdout_fd = out[0];
  }
  return pid;
}

std::string first_line(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd pfd{fd, POLLIN, 0};
  char c;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) != 1 || ::read(fd, &c, 1) != 1) break;
    line += c;
  }
  ::close(fd);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

void stop_process(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGCONT);  // a paused process cannot act on SIGTERM
  ::kill(pid, SIGTERM);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid = -1;
}

namespace {

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run(argv);
  if (r.exit_code != 0) throw std::runtime_error("openssl " + args.front() + " failed: " + r.err);
}

}  // namespace

TestPki make_test_pki(const std::string& dir, const std::string& names) {
  TestPki pki{dir + "/ca.pem", dir + "/server.pem", dir + "/server.key"};
  const std::string ca_key = dir + "/ca.key", csr = dir + "/server.csr", ext = dir + "/server.ext";
  openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", pki.ca_cert, "-days", "2",
           "-subj", "/CN=kosli-cred test CA"});
  openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", pki.server_key, "-out", csr, "-subj",
           "/CN=127.0.0.1"});
  std::ofstream(ext) << "subjectAltName=" << names << "\n";
  openssl({"x509", "-req", "-in", csr, "-CA", pki.ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-out",
           pki.server_cert, "-days", "2", "-extfile", ext});
  return pki;
}

KosliStandIn::KosliStandIn(const TestPki& pki, const std::string& state_json, bool plain) : plain_(plain) {
  const std::string state = dir_.path() + "/state.json";
  std::ofstream(state) << state_json;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::vector<std::string> args = {"python3", std::string(KOSLI_TEST_SOURCE_DIR) + "/tests/support/kosli_standin.py",
                                   "--cert", pki.server_cert, "--key", pki.server_key, "--state", state};
  if (plain) args.push_back("--plain");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int spawned = ::posix_spawnp(&pid_, "python3", &actions, child_spawn_attributes(), argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (spawned != 0) {
    ::close(out[0]);
    throw std::runtime_error("cannot start the Kosli stand-in: " + std::string(std::strerror(spawned)));
  }
  std::string line;
  pollfd pfd{out[0], POLLIN, 0};
  char c;
  while (line.find('\n') == std::string::npos && ::poll(&pfd, 1, 10000) == 1 && ::read(out[0], &c, 1) == 1) {
    line += c;
  }
  ::close(out[0]);
  if (line.rfind("ready ", 0) != 0) throw std::runtime_error("the Kosli stand-in did not start: " + line);
  port_ = std::stoi(line.substr(6));
}

KosliStandIn::~KosliStandIn() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

std::string KosliStandIn::state(const std::string& ca_cert) const {
  return run({"curl", "-sS", "--noproxy", "*", "--cacert", ca_cert, url() + "/_standin/state"}).out;
}

void KosliStandIn::control(const std::string& ca_cert, const std::string& route, const std::string& body) const {
  const auto r = run({"curl", "-sS", "--noproxy", "*", "--fail", "--cacert", ca_cert, "-X", "POST", "-H",
                      "Content-Type: application/json", "--data-binary", body, url() + "/_standin/" + route});
  if (r.exit_code != 0) throw std::runtime_error("the stand-in refused /_standin/" + route + ": " + r.err);
}

ConnectProxy::ConnectProxy(bool deny) : log_(dir_.path() + "/connects.log") {
  std::vector<std::string> argv = {"python3", std::string(KOSLI_TEST_SOURCE_DIR) + "/tests/support/connect_proxy.py",
                                   "--log", log_};
  if (deny) argv.push_back("--deny");
  int out = 0;
  pid_ = spawn_background(argv, {}, {}, {}, out);
  const std::string line = first_line(out, std::chrono::seconds(10));
  if (line.rfind("ready ", 0) != 0) {
    stop_process(pid_);
    throw std::runtime_error("the CONNECT proxy did not start: " + line);
  }
  port_ = std::stoi(line.substr(6));
}

ConnectProxy::~ConnectProxy() { stop_process(pid_); }

PrivateKeyring::PrivateKeyring() {
  const std::string home = dir_.path() + "/home", runtime = dir_.path() + "/run";
  ::mkdir(home.c_str(), 0700);
  ::mkdir(runtime.c_str(), 0700);
  int out = 0;
  bus_pid_ = spawn_background({"dbus-daemon", "--session", "--nofork", "--nopidfile",
                               "--address=unix:path=" + runtime + "/bus", "--print-address=1"},
                              {}, {}, {}, out);
  address_ = first_line(out, std::chrono::seconds(10));
  if (address_.empty()) {
    stop_process(bus_pid_);
    throw std::runtime_error("the private D-Bus session did not start");
  }
  const std::vector<std::pair<std::string, std::string>> env = {
      {"DBUS_SESSION_BUS_ADDRESS", address_}, {"HOME", home},
      {"XDG_RUNTIME_DIR", runtime},           {"XDG_DATA_HOME", home + "/.local/share"},
      {"XDG_CONFIG_HOME", home + "/.config"}, {"XDG_CACHE_HOME", home + "/.cache"}};
  // The password unlocks (and on first use creates) the login keyring.
  out = -1;  // its stdout joins its log
  keyring_pid_ = spawn_background({"gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"}, env,
                                  "kosli-private-keyring", dir_.path() + "/gnome-keyring.log", out);
  const auto waited = run({"gdbus", "wait", "--session", "--timeout", "15", "org.freedesktop.secrets"},
                          RunOptions{{}, {{"DBUS_SESSION_BUS_ADDRESS", address_}}});
  if (waited.exit_code != 0) {
    const std::string log = read_file(dir_.path() + "/gnome-keyring.log");
    stop_process(keyring_pid_);
    stop_process(bus_pid_);
    throw std::runtime_error("the private gnome-keyring did not start: " + waited.err + log);
  }
}

PrivateKeyring::~PrivateKeyring() {
  stop_process(keyring_pid_);
  stop_process(bus_pid_);
}

void PrivateKeyring::pause() { ::kill(keyring_pid_, SIGSTOP); }
void PrivateKeyring::resume() { ::kill(keyring_pid_, SIGCONT); }

}  // namespace kosli::test
