#include "daemon/keys/import_watch.hpp"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "daemon/api/messages.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "daemon/keys/stored_profile.hpp"
#include "daemon/ops/audit_log.hpp"
#include "proto/display.hpp"
#include "proto/limits.hpp"
#include "proto/time_format.hpp"

namespace kosli::daemon {
namespace {

// After a publish the store could not take (whole), how long before reading the
// file again.
constexpr int kRetrySeconds = 5;

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// What a profile is, key included (by fingerprint): equal means unchanged.
bool same_profile(const ProfileMeta& a, const ProfileMeta& b) {
  return a.fingerprint == b.fingerprint && a.org == b.org && a.host == b.host && a.kind == b.kind &&
         a.expires_at == b.expires_at && a.description == b.description &&
         a.service_account == b.service_account && a.key_id == b.key_id;
}

}  // namespace

std::variant<ImportSource, std::string> import_source(const ImportConfig& config) {
  const std::string flag = config.single_key ? "--import-key" : "--import";
  if (config.file == "-" && config.watch) return "--watch needs a file; " + flag + " - reads standard input once";
  if (config.file == "-") return flag + " - : the single-key form reads a file";
  ImportSource source{config.file, std::nullopt, config.watch};
  if (!config.single_key) return source;
  if (config.org.empty()) return "--import-key needs --org: the Kosli organisation of the key";
  KeyFileProfile profile;
  profile.org = config.org;
  if (!config.profile.empty()) {
    if (auto problem = profile_name_problem(config.profile)) return "--profile: " + *problem;
    profile.name = config.profile;
  }
  if (!config.host.empty()) profile.host = config.host;
  if (!config.kind.empty()) {
    const auto kind = kind_from_name(config.kind);
    if (!kind) return "--kind must be service-account or personal";
    profile.kind = *kind;
  }
  profile.service_account = config.service_account;
  profile.key_id = config.key_id;
  source.key = std::move(profile);
  return source;
}

ImportWatch::ImportWatch(ImportSource source, AuditLog& audit)
    : source_(std::move(source)),
      what_((source_.key ? "--import-key " : "--import ") + source_.path),
      audit_(audit) {}

ImportWatch::~ImportWatch() {
  if (fd_ >= 0) ::close(fd_);
  if (timer_fd_ >= 0) ::close(timer_fd_);
}

std::optional<ImportResult> ImportWatch::read(Digest& digest) {
  struct stat st {};
  if (::stat(source_.path.c_str(), &st) != 0 && errno == ENOENT) return std::nullopt;
  std::string text;
  const bool quiet = std::exchange(warned_, true);  // a file others may read is said once
  if (auto problem = read_import_text(source_.path, text, quiet)) return ImportResult{what_ + ": " + *problem};
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
  if (source_.key) return parse_key_file(text, *source_.key, what_);
  return parse_import_list(text, what_);
}

std::optional<std::string> ImportWatch::import_at_start(Store& store) {
  Digest digest{};
  auto read_now = read(digest);
  if (!read_now) return what_ + ": no such file";
  if (auto* problem = std::get_if<std::string>(&*read_now)) {
    audit_.record(AuditRecord{"import", {}, "refused", *problem}, this_process());
    return std::move(*problem);
  }
  const auto& profiles = std::get<std::vector<ImportedProfile>>(*read_now);
  if (auto problem = store_imported(store, profiles, audit_, source_.path)) return problem;
  Taken names;
  for (const auto& p : profiles) names[p.name] = meta_from_put(p.name, p.request, store.persistent()).fingerprint;
  std::lock_guard lock(mutex_);
  last_read_ = digest;
  names_ = std::move(names);
  ++imports_;
  last_import_at_ = now_s();
  return std::nullopt;
}

void ImportWatch::attach(StoreWorker& worker, TokenCache& cache, KeyLifecycle* lifecycle) {
  worker_ = &worker;
  cache_ = &cache;
  lifecycle_ = lifecycle;
}

std::variant<int, std::string> ImportWatch::open_watch() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return what_ + ": cannot watch it: inotify: " + std::strerror(errno);
  // The loop is given one descriptor: an epoll set of the inotify descriptor
  // and the timer that reads the file again after a swap the store cut short.
  const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  const int set = ::epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event in {}, tick {};
  in.events = tick.events = EPOLLIN;
  in.data.fd = fd;
  tick.data.fd = timer;
  if (timer < 0 || set < 0 || ::epoll_ctl(set, EPOLL_CTL_ADD, fd, &in) != 0 ||
      ::epoll_ctl(set, EPOLL_CTL_ADD, timer, &tick) != 0) {
    const int err = errno;
    for (const int d : {fd, timer, set}) {
      if (d >= 0) ::close(d);
    }
    return what_ + ": cannot watch it: " + std::strerror(err);
  }
  const std::string dir = directory_of(source_.path);
  // The directory, not the file: a rename or the kubelet's swap replaces the file.
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  if (::inotify_add_watch(fd, dir.c_str(), mask) < 0) {
    const int err = errno;
    for (const int d : {fd, timer, set}) ::close(d);
    return what_ + ": cannot watch its directory " + dir + ": " + std::strerror(err);
  }
  fd_ = fd;
  timer_fd_ = timer;
  spdlog::info("{}: watching {} for new publishes", display_safe(what_), display_safe(dir));
  return set;
}

void ImportWatch::on_readable() {
  alignas(struct inotify_event) char buffer[4096];
  bool publish = false;
  const std::string dir = directory_of(source_.path);
  for (;;) {
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (char* at = buffer; at < buffer + n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(at);
      at += sizeof(struct inotify_event) + event->len;
      if (event->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_Q_OVERFLOW)) publish = true;
      if ((event->mask & IN_CREATE) && event->len > 0) {
        // A new symbolic link (ln -s) is whole at once; a new file is not
        // until it is closed (IN_CLOSE_WRITE).
        struct stat st {};
        const std::string entry = dir + "/" + event->name;
        if (::lstat(entry.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) publish = true;
      }
      if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        spdlog::error("{}: its directory was removed or moved; no longer watching it (restart kosli-credd)",
                      display_safe(what_));
      }
    }
  }
  std::uint64_t expirations = 0;
  if (timer_fd_ >= 0 && ::read(timer_fd_, &expirations, sizeof expirations) == sizeof expirations) publish = true;
  if (publish) reread();
}

void ImportWatch::retry_later() {
  {
    std::lock_guard lock(mutex_);
    last_read_.reset();  // the next read is taken even if the file is unchanged
  }
  if (timer_fd_ < 0) return;
  struct itimerspec when {};
  when.it_value.tv_sec = kRetrySeconds;
  ::timerfd_settime(timer_fd_, 0, &when, nullptr);
}

void ImportWatch::reread() {
  Digest digest{};
  auto read_now = read(digest);
  if (!read_now) {
    spdlog::info("{}: the file is not there (a publish in progress?); keeping the keys it gave", display_safe(what_));
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (last_read_ == digest) return;  // the same content: nothing to do
    last_read_ = digest;
  }
  if (auto* problem = std::get_if<std::string>(&*read_now)) return refuse(*problem);
  auto profiles = std::make_shared<std::vector<ImportedProfile>>(
      std::move(std::get<std::vector<ImportedProfile>>(*read_now)));
  worker_->submit([this, profiles](Store& store, Store::Deadline deadline) { swap(store, deadline, *profiles); });
}

void ImportWatch::refuse(const std::string& why) {
  spdlog::warn("{}; keeping the keys it gave before", display_safe(why));
  audit_.record(AuditRecord{"import", {}, "refused", why}, this_process());
  std::lock_guard lock(mutex_);
  ++refused_;
  last_error_ = why;
  last_error_at_ = now_s();
}

void ImportWatch::swap(Store& store, Store::Deadline deadline, const std::vector<ImportedProfile>& profiles) {
  const Peer self = this_process();
  Taken names;
  std::vector<std::pair<const ImportedProfile*, ProfileMeta>> changed;
  for (const auto& p : profiles) {
    ProfileMeta meta = meta_from_put(p.name, p.request, store.persistent());
    names[p.name] = meta.fingerprint;
    auto found = store.find(p.name, deadline);
    if (auto* error = std::get_if<StoreError>(&found)) {
      refuse(what_ + ": cannot read the profile '" + p.name + "' from the store: " + error->message +
             "; reading the file again in " + std::to_string(kRetrySeconds) + " s");
      return retry_later();
    }
    const auto& existing = std::get<std::optional<ProfileMeta>>(found);
    if (existing && same_profile(*existing, meta)) continue;  // unchanged: stays, cached copy too
    changed.emplace_back(&p, std::move(meta));
  }
  std::vector<std::pair<std::string, std::string>> removed;  // name, the fingerprint this file gave it
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, fingerprint] : names_) {
      if (!names.contains(name)) removed.emplace_back(name, fingerprint);
    }
  }
  // Every changed key leaves the cache before any is stored, and again after
  // (a fill that raced with the store is dropped with it).
  for (const auto& [p, meta] : changed) cache_->drop(p->name);
  Taken so_far;  // what this file gave that the store holds: before this publish, then as it is stored
  {
    std::lock_guard lock(mutex_);
    so_far = names_;
  }
  std::vector<std::string> stored_names;
  for (const auto& [p, meta] : changed) {
    auto stored = store.put(meta, p->request.api_key, deadline);
    cache_->drop(p->name);
    if (auto* error = std::get_if<StoreError>(&stored)) {
      audit_.record(AuditRecord{"import", p->name, "error", error->message}, self);
      const std::string why = what_ + ": cannot store the profile '" + p->name + "': " + error->message;
      if (stored_names.empty()) {
        refuse(why + "; reading the file again in " + std::to_string(kRetrySeconds) + " s");
      } else {
        partly_taken(why, stored_names, std::move(so_far));
      }
      return retry_later();
    }
    so_far[p->name] = meta.fingerprint;
    stored_names.push_back(p->name);
    const bool replaced = std::get<bool>(stored);
    audit_.record(AuditRecord{"import", p->name, "ok",
                              std::string(replaced ? "replaced " : "created ") + meta.fingerprint + " from " +
                                  source_.path},
                  self);
    spdlog::info("import: profile '{}' {} (org {}, {}, {}) from {}", p->name, replaced ? "replaced" : "created",
                 meta.org, meta.host, meta.fingerprint, display_safe(source_.path));
    if (lifecycle_) lifecycle_->profile_changed(p->name);
  }
  bool erase_failed = false;
  for (const auto& [name, fingerprint] : removed) {
    // Only the key this file gave is removed: one stored since (kosli-cred
    // store, a rotation) is the user's, and the name is no longer the file's.
    auto found = store.find(name, deadline);
    if (auto* error = std::get_if<StoreError>(&found)) {
      audit_.record(AuditRecord{"import", name, "error", error->message}, self);
      names[name] = fingerprint;  // still ours: removed when the file is read again
      erase_failed = true;
      continue;
    }
    const auto& existing = std::get<std::optional<ProfileMeta>>(found);
    if (!existing) continue;  // already gone
    if (existing->fingerprint != fingerprint) {
      audit_.record(AuditRecord{"import", name, "ok",
                                "kept: no longer in " + source_.path + ", but its key was replaced since (" +
                                    existing->fingerprint + "); no longer the import's"},
                    self);
      spdlog::info("import: profile '{}' kept: no longer in {}, but its key was replaced since ({}); no longer the "
                   "import's",
                   name, display_safe(source_.path), existing->fingerprint);
      continue;
    }
    cache_->drop(name);
    auto erased = store.erase(name, deadline);
    cache_->drop(name);
    if (auto* error = std::get_if<StoreError>(&erased)) {
      audit_.record(AuditRecord{"import", name, "error", error->message}, self);
      names[name] = fingerprint;  // still ours: removed when the file is read again
      erase_failed = true;
      continue;
    }
    audit_.record(AuditRecord{"import", name, "ok", "removed: no longer in " + source_.path}, self);
    spdlog::info("import: profile '{}' removed: no longer in {}", name, display_safe(source_.path));
    if (lifecycle_) lifecycle_->profile_changed(name);
  }
  taken(std::move(names));
  if (erase_failed) retry_later();
}

void ImportWatch::partly_taken(const std::string& why, const std::vector<std::string>& stored, Taken names) {
  std::string list;
  for (const auto& name : stored) list += (list.empty() ? "'" : ", '") + name + "'";
  const std::string said = why + "; the publish was partly taken (" + list +
                           " stored from it, the rest and its removals not); reading the file again in " +
                           std::to_string(kRetrySeconds) + " s";
  spdlog::warn("{}", display_safe(said));
  audit_.record(AuditRecord{"import", {}, "error", said}, this_process());
  std::lock_guard lock(mutex_);
  names_ = std::move(names);  // what it created is removed on a later publish that drops it
  ++refused_;
  last_error_ = said;
  last_error_at_ = now_s();
}

void ImportWatch::taken(Taken names) {
  std::lock_guard lock(mutex_);
  names_ = std::move(names);
  ++imports_;
  last_import_at_ = now_s();
  last_error_.clear();
  last_error_at_ = 0;
}

void ImportWatch::describe(HealthAnswer& health) {
  std::lock_guard lock(mutex_);
  health.import = ImportHealth{source_.path, source_.watch, last_import_at_, static_cast<std::int64_t>(refused_),
                               last_error_, last_error_at_};
}

std::string ImportWatch::exposition() {
  std::lock_guard lock(mutex_);
  std::string out;
  const auto metric = [&out](std::string_view name, std::string_view type, std::string_view help, auto value) {
    out += "# HELP kosli_credd_" + std::string(name) + " " + std::string(help) + "\n";
    out += "# TYPE kosli_credd_" + std::string(name) + " " + std::string(type) + "\n";
    out += "kosli_credd_" + std::string(name) + " " + std::to_string(value) + "\n";
  };
  metric("imports_total", "counter", "Publishes of the imported file taken, the one read at start included.", imports_);
  metric("import_refused_total", "counter",
         "Publishes of the imported file refused (unreadable, empty, partial or malformed: the keys before them were kept) or partly taken (the store failed part way).",
         refused_);
  metric("import_last_success_timestamp_seconds", "gauge", "When a publish of the imported file was last taken.",
         last_import_at_);
  metric("import_ok", "gauge", "1 while the latest publish of the imported file was taken, 0 while it was refused.",
         last_error_.empty() ? 1 : 0);
  return out;
}

}  // namespace kosli::daemon
