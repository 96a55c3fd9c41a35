// kosli-credd: keeps Kosli API keys in the OS keyring and hands out bearer
// tokens over a private Unix socket.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/audit_log.hpp"
#include "daemon/config.hpp"
#include "daemon/hardening.hpp"
#include "daemon/listen_socket.hpp"
#include "daemon/policy.hpp"
#include "daemon/router.hpp"
#include "daemon/server.hpp"
#include "daemon/store/memory_store.hpp"
#include "daemon/store/secret_service_store.hpp"
#include "daemon/store_worker.hpp"
#include "daemon/token_cache.hpp"
#include "proto/limits.hpp"
#include "proto/socket_path.hpp"

namespace {

using namespace kosli;
using namespace kosli::daemon;

// How long a key read from the keyring stays cached unless configured.
constexpr long kDefaultCacheTtl = 600;
// systemd passes the first activation socket as this descriptor (SD_LISTEN_FDS_START).
constexpr int kActivationFd = 3;

// How long start-up waits for the Secret Service to answer.
constexpr std::chrono::seconds kProbeDeadline{3};

struct Options {
  std::optional<std::string> socket;
  std::string backend = "auto";
  std::string log_level = "info";
  std::optional<long> cache_ttl_s;  // flag; else config; else kDefaultCacheTtl
  std::optional<std::string> config;
  bool check_config = false;
  std::optional<std::string> audit_log;
  std::vector<uid_t> allow_uids;
  int ready_fd = -1;
};

void setup_logging(const std::string& level) {
  // stderr only: systemd's journal (or the CI log) picks it up.
  auto logger = std::make_shared<spdlog::logger>(
      "kosli-credd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

// Picks the store; nullptr after logging why none can be used.
std::unique_ptr<Store> open_store(const std::string& backend) {
  if (backend == "memory") {
    spdlog::warn("backend 'memory': keys are kept in this process only and are lost when it stops");
    return std::make_unique<MemoryStore>();
  }
  auto secret_service = std::make_unique<SecretServiceStore>();
  const auto problem = secret_service->probe(std::chrono::steady_clock::now() + kProbeDeadline);
  if (!problem) return secret_service;
  if (backend == "secret-service") {
    spdlog::error("backend 'secret-service' is not usable: {}", problem->message);
    return nullptr;
  }
  spdlog::warn("no Secret Service answers ({}); falling back to backend 'memory': keys are NOT "
               "persistent and are lost when kosli-credd stops",
               problem->message);
  return std::make_unique<MemoryStore>();
}

void signal_ready(int fd) {
  if (fd < 0) return;
  static constexpr char kReady[] = "ok\n";
  ssize_t n;
  do {
    n = ::write(fd, kReady, sizeof kReady - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  harden_process();

  Options opt;
  CLI::App app{"kosli-credd: keeps Kosli API keys in the OS keyring and hands out bearer tokens "
               "over a private Unix socket.",
               "kosli-credd"};
  app.set_version_flag("--version", std::string(KOSLI_VERSION));
  app.add_option("--socket", opt.socket, "Socket path (default $XDG_RUNTIME_DIR/kosli-cred/sock)")
      ->envname(std::string(kSocketEnv));
  app.add_option("--backend", opt.backend, "Where keys are kept")
      ->check(CLI::IsMember({"auto", "secret-service", "memory"}))
      ->capture_default_str();
  app.add_option("--log-level", opt.log_level, "Log verbosity")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--cache-ttl", opt.cache_ttl_s,
                 "Seconds a key read from the keyring stays cached (0: never; default 600)")
      ->check(CLI::Range(0L, 86400L));
  app.add_option("--config", opt.config, "Configuration file (default $XDG_CONFIG_HOME/kosli-cred/config.json)");
  app.add_flag("--check-config", opt.check_config, "Validate the configuration file and exit");
  app.add_option("--audit-log", opt.audit_log,
                 "Audit log: a file, 'journal' or '-' (stderr); default $XDG_STATE_HOME/kosli-cred/audit.log");
  app.add_option("--allow-uid", opt.allow_uids, "Also serve this uid (repeatable)");
  app.add_option("--ready-fd", opt.ready_fd, "Write \"ok\\n\" to this descriptor once serving, then close it")
      ->check(CLI::Range(0, 1 << 20));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  // Nothing inherited stays open but what systemd or our parent meant for us.
  std::vector<int> keep_fds{opt.ready_fd};
  if (const char* pid = std::getenv("LISTEN_PID"); pid != nullptr && std::to_string(::getpid()) == pid) {
    keep_fds.push_back(kActivationFd);
  }
  close_inherited_fds(keep_fds);

  setup_logging(opt.log_level);

  auto loaded = load_config(opt.config);
  if (auto* error = std::get_if<ConfigError>(&loaded)) {
    spdlog::error("configuration: {}", error->message);
    return EXIT_FAILURE;
  }
  const Config& config = std::get<Config>(loaded);
  if (opt.check_config) {
    std::fprintf(stdout, "%s\n",
                 config.path.empty() ? ("no configuration file at " + default_config_path() + "; defaults apply").c_str()
                                     : (config.path + ": OK").c_str());
    return EXIT_SUCCESS;
  }
  opt.allow_uids.insert(opt.allow_uids.end(), config.allow_uids.begin(), config.allow_uids.end());

  const std::string socket_path = resolve_socket_path(opt.socket);
  auto store = open_store(opt.backend);
  if (!store) return EXIT_FAILURE;

  auto listening = ListenSocket::create(socket_path);
  if (auto* error = std::get_if<std::string>(&listening)) {
    spdlog::error("{}", *error);
    return EXIT_FAILURE;
  }
  auto& listen_socket = std::get<ListenSocket>(listening);

  AuditLog audit{opt.audit_log.value_or(config.audit_log.value_or(AuditLog::default_path()))};
  const Policy policy{config};
  TokenCache cache{std::chrono::seconds(opt.cache_ttl_s.value_or(config.cache_ttl_s.value_or(kDefaultCacheTtl)))};
  StoreWorker worker{*store};
  Router router{worker, cache, policy, audit};
  Server server{listen_socket.release_fd(), router, ServerOptions{opt.allow_uids}};

  server.run(
      [&] {
        spdlog::info("kosli-credd {} serving {} (backend {})", KOSLI_VERSION, socket_path,
                     store->backend_name());
        signal_ready(opt.ready_fd);
      },
      [&cache] { cache.sweep(); });

  worker.stop();
  listen_socket.remove_file();
  spdlog::info("kosli-credd stopped");
  return EXIT_SUCCESS;
}
