// kosli-credd: keeps Kosli API keys in the OS keyring and hands out bearer
// tokens over a private Unix socket.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/handlers/router.hpp"
#include "daemon/keys/import.hpp"
#include "daemon/keys/import_watch.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/token_cache.hpp"
#include "daemon/kosli/kosli_api.hpp"
#include "daemon/ops/approvals.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/config.hpp"
#include "daemon/ops/hardening.hpp"
#include "daemon/ops/name_lookup.hpp"
#include "daemon/ops/notify.hpp"
#include "daemon/ops/policy.hpp"
#include "daemon/ops/session_watch.hpp"
#include "daemon/store/memory_store.hpp"
#include "daemon/store/metered_store.hpp"
#include "daemon/store/secret_service_store.hpp"
#include "daemon/transport/activation.hpp"
#include "daemon/transport/listen_socket.hpp"
#include "daemon/transport/peer_identity.hpp"
#include "daemon/transport/server.hpp"
#include "proto/cli_grammar.hpp"
#include "proto/limits.hpp"
#include "proto/socket_path.hpp"

namespace {

using namespace kosli;
using namespace kosli::daemon;

// How long a key read from the keyring stays cached unless configured.
constexpr long kDefaultCacheTtl = 600;
// systemd passes the first activation socket as this descriptor (SD_LISTEN_FDS_START).
constexpr int kActivationFd = 3;

// The longest --idle-exit: a week.
constexpr long kMaxIdleExit = 7L * 24 * 3600;

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
  std::optional<long> idle_exit_s;  // flag; else config; else 0 (never)
  bool import_env = false;
  std::optional<std::string> import_file;
  ImportConfig import_key;  // --import-key FILE and the profile's flags
  bool watch = false;
  pid_t parent_pid = 0;
  std::optional<std::string> ca_file;  // flag; else config
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

// Whether stopping would lose keys: a store that does not persist holds some.
bool holds_volatile_keys(Store& store) {
  if (store.persistent() || store.may_block()) return false;
  const auto listed = store.list(std::chrono::steady_clock::now() + limits::kStoreCallDeadline);
  const auto* profiles = std::get_if<std::vector<ProfileMeta>>(&listed);
  return profiles != nullptr && !profiles->empty();
}

void signal_ready(int fd) {
  if (fd < 0) return;
  ssize_t n;
  do {
    n = ::write(fd, limits::kReadyLine.data(), limits::kReadyLine.size());
  } while (n < 0 && errno == EINTR);
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  harden_process();
  pin_name_lookup();

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
  app.add_option("--idle-exit", opt.idle_exit_s,
                 "Exit after this many seconds with no connection and no cached key (0: never, the default)")
      ->check(CLI::Range(0L, kMaxIdleExit));
  app.add_flag("--import-env", opt.import_env,
               "Serve KOSLI_API_TOKEN, KOSLI_ORG, KOSLI_HOST as profile 'default', then remove them from the environment");
  app.add_option("--import", opt.import_file, "Serve the profiles of a JSON list [{\"name\",\"org\",\"api_key\",...}] (FILE or -)");
  auto* key_file = app.add_option("--import-key", opt.import_key.file,
                                  "Serve the key in FILE (the file holds only the key) as one profile: needs --org")
                       ->excludes("--import");
  app.add_option("--org", opt.import_key.org, "--import-key: the key's Kosli organisation")->needs(key_file);
  app.add_option("--host", opt.import_key.host, "--import-key: the Kosli host (default https://app.kosli.com)")
      ->needs(key_file);
  app.add_option("--profile", opt.import_key.profile, "--import-key: the profile's name (default 'default')")
      ->needs(key_file);
  app.add_option("--kind", opt.import_key.kind, "--import-key: the key's kind (default service-account)")
      ->check(CLI::IsMember({"service-account", "personal"}))
      ->needs(key_file);
  app.add_option("--service-account", opt.import_key.service_account, "--import-key: the key's service account")
      ->needs(key_file);
  app.add_option("--key-id", opt.import_key.key_id, "--import-key: the key's id in Kosli")->needs(key_file);
  app.add_flag("--watch", opt.watch,
               "Read the --import or --import-key file again whenever it changes, and serve what it holds then");
  app.add_option("--parent-pid", opt.parent_pid, "Exit when this process exits (a CI job's shell)")
      ->check(CLI::Range(1, std::numeric_limits<pid_t>::max()));
  app.add_option("--ca-file", opt.ca_file,
                 "PEM bundle of CA certificates trusted for Kosli besides the system's (config: ca_file)");
  if (argc == 2 && std::string_view(argv[1]) == kDumpGrammarFlag) {
    dump_grammar(app);
    return 0;
  }
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
  const auto systemd = SystemdNotifier::from_environment();

  locate_installed_client();  // by real path, before anything can replace the programs
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
  KosliApiOptions kosli_options;
  kosli_options.ca_file = opt.ca_file ? opt.ca_file : config.ca_file;
  auto kosli_opened = KosliApi::open(kosli_options);
  if (auto* error = std::get_if<std::string>(&kosli_opened)) {
    spdlog::error("{}", *error);
    return EXIT_FAILURE;
  }
  auto kosli = std::move(std::get<std::unique_ptr<KosliApi>>(kosli_opened));

  const std::string socket_path = resolve_socket_path(opt.socket);
  if (opt.parent_pid != 0 && ::kill(opt.parent_pid, 0) != 0 && errno == ESRCH) {
    spdlog::error("--parent-pid {}: no such process", opt.parent_pid);
    return EXIT_FAILURE;
  }
  auto store = open_store(opt.backend);
  if (!store) return EXIT_FAILURE;
  AuditLog audit{opt.audit_log.value_or(config.audit_log.value_or(AuditLog::default_path()))};
  // A file given on the command line replaces the configuration's.
  std::optional<ImportConfig> import_config = config.import;
  if (opt.import_file || !opt.import_key.file.empty()) import_config.reset();
  if (opt.import_file) import_config = ImportConfig{.file = *opt.import_file};
  if (!opt.import_key.file.empty()) import_config = opt.import_key, import_config->single_key = true;
  if (import_config && opt.watch) import_config->watch = true;
  if (opt.watch && !import_config) {
    spdlog::error("--watch watches the file of --import or --import-key; give one of them");
    return EXIT_FAILURE;
  }
  // Watched or single-key imports are kept track of; a plain list is read once.
  const bool tracked = import_config && (import_config->watch || import_config->single_key);
  const auto list_file = import_config && !tracked ? std::optional(import_config->file) : std::nullopt;
  if (auto problem = import_profiles(*store, opt.import_env, list_file, audit)) {
    spdlog::error("{}", *problem);
    return EXIT_FAILURE;
  }
  std::unique_ptr<ImportWatch> imports;
  int import_fd = -1;
  if (tracked) {
    auto source = import_source(*import_config);
    if (auto* problem = std::get_if<std::string>(&source)) {
      spdlog::error("{}", *problem);
      return EXIT_FAILURE;
    }
    imports = std::make_unique<ImportWatch>(std::move(std::get<ImportSource>(source)), audit);
    if (imports->source().watch) {  // watching first: a publish during the first read is not missed
      auto watching = imports->open_watch();
      if (auto* problem = std::get_if<std::string>(&watching)) {
        spdlog::error("{}", *problem);
        return EXIT_FAILURE;
      }
      import_fd = std::get<int>(watching);
    }
    if (auto problem = imports->import_at_start(*store)) {
      spdlog::error("{}", *problem);
      return EXIT_FAILURE;
    }
  }

  const auto access = opt.allow_uids.empty() ? SocketAccess::owner_only : SocketAccess::allowed_uids;
  auto listening = ServingSocket::open(socket_path, access);
  if (auto* error = std::get_if<std::string>(&listening)) {
    spdlog::error("{}", *error);
    return EXIT_FAILURE;
  }
  auto& listen_socket = std::get<ServingSocket>(listening);

  const Policy policy{config};
  TokenCache cache{std::chrono::seconds(opt.cache_ttl_s.value_or(config.cache_ttl_s.value_or(kDefaultCacheTtl)))};
  Metrics metrics;
  MeteredStore metered_store{*store, metrics};
  StoreWorker worker{metered_store};
  KeyLifecycle lifecycle{worker, cache, audit, *kosli, config};
  Approvals approvals{config, audit, metrics};
  lifecycle.count_hooks_in(metrics);
  Router router{worker, cache, policy, audit, metrics, &lifecycle, &approvals};
  if (imports) {
    imports->attach(worker, cache, &lifecycle);
    router.report_import(imports.get());
  }
  ServerOptions server_options{opt.allow_uids};
  server_options.idle_exit = std::chrono::seconds(opt.idle_exit_s.value_or(config.idle_exit_s.value_or(0)));
  server_options.busy = [&cache, &store, &lifecycle] {
    return cache.sweep() > 0 || holds_volatile_keys(*store) || lifecycle.holds_waiting_keys();
  };
  server_options.parent_pid = opt.parent_pid;
  server_options.on_hangup = [&audit] {
    spdlog::info("received SIGHUP: reopening the audit log (the configuration is not reread; restart "
                 "kosli-credd to apply changes to it)");
    audit.reopen();
  };
  server_options.on_refused = [&router](const Peer& peer, std::string_view why) {
    router.connection_refused(peer, why);
  };
  Server server{listen_socket.release_fd(), router, metrics, std::move(server_options)};
  approvals.answer_on([&server](std::function<void()> answer) { server.post(std::move(answer)); });
  if (import_fd >= 0) server.watch_readable(import_fd, [&imports] { imports->on_readable(); });

  // The screen locked, the machine goes to sleep, the keyring locked: every
  // cached key goes (a rotated key waiting for the keyring stays: it exists
  // nowhere else), one audit record says why. On the server's loop.
  const Peer self = this_process();
  const auto forget = [&cache, &approvals, &audit, &self](ForgetReason reason) {
    cache.clear();
    approvals.forget_all(std::string(reason_name(reason)));
    spdlog::info("{}: forgot every cached key", reason_name(reason));
    audit.record(AuditRecord{"forget", {}, "ok", reason_name(reason)}, self);
  };
  SessionWatch session{config.lock_on, config.notify,
                       [&server, forget](ForgetReason reason) { server.post([forget, reason] { forget(reason); }); }};
  lifecycle.notices().connect(
      [&session](std::string summary, std::string body) { session.notify(std::move(summary), std::move(body)); });
  router.add_to_health([&session](HealthAnswer& health) { health.session = session.health(); });

  // The audit lines of one turn of the event loop go out in one write, and the
  // tokens answered in that turn wait for it (a group commit). With one
  // connection open no other request can join the group: written at once.
  audit.defer_writes([&server, &audit] {
    if (server.open_connections() <= 1) return audit.flush();
    server.post([&audit] { audit.flush(); });
  });
  lifecycle.start();
  server.run(
      [&] {
        spdlog::info("kosli-credd {} serving {} (backend {}{})", KOSLI_VERSION, listen_socket.path(),
                     store->backend_name(), listen_socket.activated() ? ", socket from systemd" : "");
        systemd.notify("READY=1\nSTATUS=Serving " + listen_socket.path());
        signal_ready(opt.ready_fd);
      },
      [&cache] { cache.sweep(); });

  audit.write_through();  // what the shutdown below records is written at once
  systemd.notify("STOPPING=1");
  approvals.stop();         // questions still open are denied …
  lifecycle.stop_timers();  // no scheduled rotation or keyring retry starts now …
  kosli->stop();            // … calls to Kosli in flight finish (each has a deadline) …
  lifecycle.stop();         // … then keys Kosli issued get one last chance at the keyring …
  worker.stop();            // … as the store's queue drains.
  listen_socket.remove_file();
  spdlog::info("kosli-credd stopped");
  return EXIT_SUCCESS;
}
