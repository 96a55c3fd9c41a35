// A file the daemon takes its keys from (--import FILE, --import-key FILE, or
// "import"/"import_key" in the configuration): read at start and, with
// --watch, again whenever something is published in its directory, however
// the secret engine publishes it: the kubelet's swap of the "..data" symlink
// (IN_MOVED_TO "..data"), a rename over the file (IN_MOVED_TO), a rewrite in
// place (IN_CLOSE_WRITE) or a new symbolic link (IN_CREATE).
//
// The file is the source of truth: a valid publish replaces the keys that
// changed, all in one store job, adds new profiles and removes the ones this
// file gave that it no longer lists (unless the store no longer holds the key
// the file gave: someone stored their own since); an unchanged key stays (its cached copy
// too). A publish that cannot be read or parsed changes nothing: it is
// logged, audited, counted, and the next change is read again. A publish the
// store fails part way (some keys stored, the rest not) is said to be partly
// taken, and the file is read again every few seconds until one is whole.
//
// Threads: on_readable runs on the event loop; the swap runs as a store job;
// describe and exposition run anywhere. The state below is under mutex_.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "daemon/keys/import.hpp"
#include "daemon/keys/import_key.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/token_cache.hpp"
#include "daemon/ops/import_config.hpp"
#include "proto/answers.hpp"

namespace kosli::daemon {

class AuditLog;
class KeyLifecycle;

struct ImportSource {
  std::string path;
  std::optional<KeyFileProfile> key;  // the single-key form; else a JSON list of profiles
  bool watch = false;
};

// The source "import" or "import_key" (or their flags) describe; or why it
// cannot be watched.
std::variant<ImportSource, std::string> import_source(const ImportConfig& config);

class ImportWatch {
 public:
  ImportWatch(ImportSource source, AuditLog& audit);
  ~ImportWatch();

  ImportWatch(const ImportWatch&) = delete;
  ImportWatch& operator=(const ImportWatch&) = delete;

  const ImportSource& source() const { return source_; }

  // Before serving: reads the file and stores its profiles; an error stops the daemon.
  std::optional<std::string> import_at_start(Store& store);

  // From now on publishes go through `worker`; a changed key leaves `cache`,
  // and `lifecycle` (may be null) hears of every profile changed.
  void attach(StoreWorker& worker, TokenCache& cache, KeyLifecycle* lifecycle);

  // A non-blocking descriptor for the event loop to own (an epoll set of
  // inotify on the file's directory and a retry timer); or why there is none.
  std::variant<int, std::string> open_watch();

  // The descriptor is readable: drains it and reads the file again when
  // something was published.
  void on_readable();

  // The health answer's "import".
  void describe(HealthAnswer& health);
  // Its lines of GET /v1/metrics.
  std::string exposition();

 private:
  using Digest = std::array<unsigned char, 32>;

  // Reads and parses the file; nullopt when it is not there (a publish in
  // progress), else the profiles or why they were refused. `digest` gets the
  // file's SHA-256.
  std::optional<ImportResult> read(Digest& digest);
  void reread();
  void refuse(const std::string& why);
  // The store job of a valid publish.
  void swap(Store& store, Store::Deadline deadline, const std::vector<ImportedProfile>& profiles);
  // name -> the fingerprint this file gave it
  using Taken = std::map<std::string, std::string, std::less<>>;
  void taken(Taken names);
  // The store failed after some of a publish's keys were stored: says so, and
  // `names` (what this file gave before, and what it stored now) is its own.
  void partly_taken(const std::string& why, const std::vector<std::string>& stored, Taken names);
  // Reads the file again in a few seconds, even if unchanged.
  void retry_later();

  const ImportSource source_;
  const std::string what_;  // "--import FILE" or "--import-key FILE", in messages
  AuditLog& audit_;
  StoreWorker* worker_ = nullptr;
  TokenCache* cache_ = nullptr;
  KeyLifecycle* lifecycle_ = nullptr;
  int fd_ = -1;        // inotify, in the epoll set the event loop owns
  int timer_fd_ = -1;  // the retry timer, in that set too
  bool warned_ = false;  // read() only: at start, then on the event loop

  std::mutex mutex_;
  std::optional<Digest> last_read_;             // what the last publish read held, taken or not
  Taken names_;  // the profiles this file gave, each with the key it gave (a fingerprint)
  std::uint64_t imports_ = 0;                   // publishes taken
  std::uint64_t refused_ = 0;                   // publishes refused
  std::int64_t last_import_at_ = 0;
  std::string last_error_;                      // while the latest publish is refused
  std::int64_t last_error_at_ = 0;
};

}  // namespace kosli::daemon
