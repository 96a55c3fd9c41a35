// daemon/keys/waiting_keys.cpp: a key Kosli issued that the keyring would not
// take is held, served as the profile's key, retried, and stored once the
// keyring works again: never lost.
//
// In process: KeyLifecycle over a store whose puts can be made to fail, and a
// scheduled rotation against a small fake Kosli on 127.0.0.1 (plain HTTP, which
// the daemon's client allows for loopback only).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proto/answers.hpp"
#include "daemon/keys/key_lifecycle.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/token_cache.hpp"
#include "daemon/kosli/kosli_api.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/config.hpp"
#include "daemon/store/memory_store.hpp"
#include "proto/secret.hpp"

namespace kosli::daemon {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr std::int64_t kDay = 86400;

Store::Deadline soon() { return Clock::now() + std::chrono::seconds(5); }

// A MemoryStore whose puts fail while `refuse_puts` is set, as a keyring does
// when it is locked or gone.
class FlakyStore final : public Store {
 public:
  std::atomic<bool> refuse_puts{false};
  std::atomic<int> refused{0};
  MemoryStore inner;

  std::string_view backend_name() const override { return "flaky"; }
  bool persistent() const override { return true; }
  bool may_block() const override { return false; }
  StoreResult<std::vector<ProfileMeta>> list(Deadline d) override { return inner.list(d); }
  StoreResult<std::optional<ProfileMeta>> find(std::string_view name, Deadline d) override {
    return inner.find(name, d);
  }
  StoreResult<std::optional<StoredKey>> load(std::string_view name, Deadline d) override { return inner.load(name, d); }
  StoreResult<bool> put(const ProfileMeta& meta, const Secret& key, Deadline d) override {
    if (refuse_puts) {
      ++refused;
      return StoreError{StoreError::Kind::locked, "the keyring is locked (test)"};
    }
    return inner.put(meta, key, d);
  }
  StoreResult<bool> erase(std::string_view name, Deadline d) override { return inner.erase(name, d); }
  StoreResult<bool> record_verification(std::string_view name, std::string_view fingerprint, std::int64_t at,
                                        std::string_view result, Deadline d) override {
    return inner.record_verification(name, fingerprint, at, result, d);
  }
};

// Kosli, as far as a rotation needs it: POST …/rotate answers a new key (a new
// one each time), any GET answers 200. One request per connection.
class FakeKosli {
 public:
  FakeKosli() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeKosli() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes the accept
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> issued() {
    std::lock_guard lock(mutex_);
    return issued_;
  }

 private:
  void serve() {
    while (true) {
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      std::string request;
      char buf[4096];
      std::size_t body_at = std::string::npos, length = 0;
      while (true) {
        const auto n = ::read(client, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
        if (body_at == std::string::npos && (body_at = request.find("\r\n\r\n")) != std::string::npos) {
          body_at += 4;
          const auto cl = request.find("ontent-Length: ");
          if (cl != std::string::npos && cl < body_at) length = std::stoul(request.substr(cl + 15));
        }
        if (body_at != std::string::npos && request.size() >= body_at + length) break;
      }
      std::string body = "{}";
      if (request.rfind("POST ", 0) == 0 && request.find("/rotate ") != std::string::npos) {
        std::lock_guard lock(mutex_);
        const std::string key = "kosli_fake_rotated_key_" + std::to_string(issued_.size() + 1) + "_0123456789";
        issued_.push_back(key);
        body = json{{"key", key}, {"id", "k" + std::to_string(issued_.size() + 1)}}.dump();
      }
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      [[maybe_unused]] const auto sent = ::write(client, answer.data(), answer.size());
      ::close(client);
    }
  }

  int fd_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> issued_;
  std::thread thread_;
};

// Waits (bounded: there is no readiness signal for a retry) until `condition`.
bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

TEST(WaitingKeys, AKeyTheKeyringCannotTakeIsHeldServedRetriedAndNeverLost) {
  FakeKosli kosli_standin;
  FlakyStore store;
  ProfileMeta m;
  m.name = "ci";
  m.org = "acme";
  m.host = kosli_standin.url();
  m.kind = KeyKind::service_account;
  m.service_account = "ci";
  m.key_id = "k1";
  m.created_at = static_cast<std::int64_t>(std::time(nullptr)) - 40 * kDay;  // due: every 30 days
  m.fingerprint = "sha256:000000000000";
  ASSERT_FALSE(std::holds_alternative<StoreError>(store.put(m, Secret("kosli_old_key_0123456789"), soon())));
  store.refuse_puts = true;

  Config config;
  config.profiles["ci"].rotate_every_days = 30;
  StoreWorker worker(store);
  TokenCache cache(std::chrono::seconds(60));
  AuditLog audit("-");
  auto opened = KosliApi::open(KosliApiOptions{});
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<KosliApi>>(opened)) << std::get<std::string>(opened);
  auto kosli = std::move(std::get<std::unique_ptr<KosliApi>>(opened));
  KeyLifecycle lifecycle(worker, cache, audit, *kosli, config);
  lifecycle.start();

  // Kosli issued a key the keyring refused: held, and served as the profile's key.
  ASSERT_TRUE(eventually([&] { return store.refused > 0 && lifecycle.holds_waiting_keys(); }, std::chrono::seconds(10)));
  const auto waiting = lifecycle.waiting_key("ci");
  ASSERT_TRUE(waiting.has_value());
  const auto issued = kosli_standin.issued();
  ASSERT_FALSE(issued.empty());
  EXPECT_EQ(waiting->key.reveal(), issued.back());
  HealthAnswer answer;
  lifecycle.describe(answer);
  const json health = to_json(answer);  // as it goes on the wire
  ASSERT_EQ(health["waiting_keys"].size(), 1u) << health.dump();
  EXPECT_EQ(health["waiting_keys"][0]["profile"], "ci");
  EXPECT_GE(health["waiting_keys"][0]["attempts"].get<int>(), 1);
  EXPECT_NE(health["waiting_keys"][0]["last_error"].get<std::string>().find("locked"), std::string::npos)
      << health.dump();
  EXPECT_EQ(health.dump().find(issued.back()), std::string::npos) << "the health answer shows the key";

  // Still refused on the first retry: still held.
  const int refused_before = store.refused;
  ASSERT_TRUE(eventually([&] { return store.refused > refused_before; }, std::chrono::seconds(10)));
  EXPECT_TRUE(lifecycle.holds_waiting_keys());

  // The keyring works again: the key issued last is stored, and no longer held.
  store.refuse_puts = false;
  ASSERT_TRUE(eventually([&] { return !lifecycle.holds_waiting_keys(); }, std::chrono::seconds(15)));
  auto loaded = store.load("ci", soon());
  auto* stored = std::get_if<std::optional<StoredKey>>(&loaded);
  ASSERT_TRUE(stored != nullptr && stored->has_value());
  EXPECT_EQ((*stored)->key.reveal(), kosli_standin.issued().back());
  EXPECT_NE((*stored)->meta.key_id, "k1");
  EXPECT_FALSE(lifecycle.waiting_key("ci").has_value());
  EXPECT_EQ(kosli_standin.issued().size(), 1u) << "one due key, one rotation";

  lifecycle.stop_timers();
  kosli->stop();
  lifecycle.stop();
  worker.stop();
}

}  // namespace
}  // namespace kosli::daemon
