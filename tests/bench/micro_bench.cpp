// Micro-benchmarks of what one request costs inside kosli-credd, without the
// socket: parsing, routing, the JSON codec and the token cache. The figures
// scripts/bench reports come from here (BM_CacheMissSecretService is the
// "cache miss" target) and from kosli-loadgen.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <benchmark/benchmark.h>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/ops/audit_log.hpp"
#include "daemon/transport/http_request.hpp"
#include "daemon/ops/policy.hpp"
#include "daemon/handlers/router.hpp"
#include "daemon/store/memory_store.hpp"
#include "daemon/store/secret_service_store.hpp"
#include "daemon/keys/store_worker.hpp"
#include "daemon/keys/token_cache.hpp"
#include "proto/profile.hpp"

namespace kosli::daemon {
namespace {

namespace http = boost::beast::http;

// What `kosli-cred token` sends.
constexpr std::string_view kTokenRequest =
    "GET /v1/profiles/default/token HTTP/1.1\r\nHost: localhost\r\nUser-Agent: kosli-cred/0.1.0\r\n\r\n";
constexpr std::string_view kBenchKey = "kosli_bench_0123456789abcdef0123456789abcdef";

[[maybe_unused]] const bool kQuietLogs = (spdlog::set_level(spdlog::level::warn), true);

std::string put_body() {
  return nlohmann::json{{"org", "bench"},
                        {"host", "https://app.kosli.com"},
                        {"kind", "service-account"},
                        {"api_key", kBenchKey},
                        {"description", "benchmark key"}}
      .dump();
}

// A daemon without its socket: the memory store (which answers inline), the
// token cache, an open policy and an audit log that writes to /dev/null (the
// write is part of every request's cost, so it is measured too).
struct Daemon {
  explicit Daemon(std::chrono::seconds cache_ttl) : cache(cache_ttl) {
    std::optional<Response> stored;
    router.handle(Request{"PUT", "/v1/profiles/default", "application/json", put_body()}, peer,
                  [&](Response r) { stored = std::move(r); });
    if (!stored || stored->status / 100 != 2) throw std::runtime_error("the benchmark key was not stored");
  }

  MemoryStore store;
  TokenCache cache;
  Policy policy;
  AuditLog audit{"/dev/null"};
  StoreWorker worker{store};
  Metrics metrics;
  Router router{worker, cache, policy, audit, metrics};
  // The daemon's own user (another uid may read only; the benchmark stores its key).
  Peer peer{1234, ::geteuid(), ::getegid(), "/usr/bin/kosli", "/usr/bin/kosli", 1234};
};

Response route(Daemon& d, Request request) {
  Response out;
  d.router.handle(std::move(request), d.peer, [&](Response r) { out = std::move(r); });
  return out;
}

// The bytes of `res` as the server writes them.
std::size_t serialize(HttpResponse& res, std::string& wire) {
  wire.clear();
  http::response_serializer<http::string_body> sr{res};
  boost::beast::error_code ec;
  while (!sr.is_done()) {
    sr.next(ec, [&](boost::beast::error_code&, const auto& buffers) {
      for (auto b : boost::beast::buffers_range_ref(buffers)) wire.append(static_cast<const char*>(b.data()), b.size());
      sr.consume(boost::asio::buffer_size(buffers));
    });
    if (ec) throw std::runtime_error(ec.message());
  }
  return wire.size();
}

void BM_ParseRequest(benchmark::State& state) {
  for (auto _ : state) {
    RequestParser parser;
    apply_request_limits(parser);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(kTokenRequest), ec);
    auto outcome = take_request(parser, ec);
    benchmark::DoNotOptimize(outcome);
  }
}
BENCHMARK(BM_ParseRequest);

// A token request routed in process. With a cache, every request after the
// first is a hit (route, cache lookup, audit record, the token's JSON); without
// one (TTL 0), each is a miss: the memory store's load and the cache fill.
void BM_Route(benchmark::State& state, std::chrono::seconds cache_ttl) {
  Daemon d{cache_ttl};
  for (auto _ : state) {
    auto r = route(d, Request{"GET", "/v1/profiles/default/token", {}, {}});
    if (r.status != 200) state.SkipWithError("token request failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK_CAPTURE(BM_Route, CachedToken, std::chrono::seconds(3600));
BENCHMARK_CAPTURE(BM_Route, CacheMissMemory, std::chrono::seconds(0));

// Bytes in, bytes out: everything the server does for a cached token but the socket.
void BM_RequestPathCachedToken(benchmark::State& state) {
  Daemon d{std::chrono::seconds(3600)};
  std::string wire;
  for (auto _ : state) {
    RequestParser parser;
    apply_request_limits(parser);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(kTokenRequest), ec);
    auto parsed = std::get<ParsedRequest>(take_request(parser, ec));
    auto res = to_http_response(route(d, std::move(parsed.request)), parsed.keep_alive);
    benchmark::DoNotOptimize(serialize(res, wire));
  }
}
BENCHMARK(BM_RequestPathCachedToken);

// One audit record formatted and written to a file: at once (/1), or in one
// write with 15 others (/16), as the daemon writes the records of one turn of
// its event loop under load.
void BM_AuditRecord(benchmark::State& state) {
  char dir[] = "/tmp/kosli-bench.XXXXXX";
  if (::mkdtemp(dir) == nullptr) return state.SkipWithError("mkdtemp failed");
  const std::string path = std::string(dir) + "/audit.log";
  const auto per_write = state.range(0);
  {
    AuditLog audit{path};
    audit.defer_writes([] {});
    const Peer peer{1234, 1000, 1000, "/usr/bin/kosli", "/usr/bin/kosli", 1234};
    std::int64_t waiting = 0;
    for (auto _ : state) {
      audit.record(AuditRecord{"token", "default", "issued", "cached"}, peer);
      if (++waiting == per_write) {
        audit.flush();
        waiting = 0;
      }
    }
  }
  std::remove(path.c_str());
  ::rmdir(dir);
}
BENCHMARK(BM_AuditRecord)->Arg(1)->Arg(16);

void BM_TokenCacheHit(benchmark::State& state) {
  TokenCache cache{std::chrono::seconds(3600)};
  cache.put("default", Secret(kBenchKey), TokenInfo{"bench", "https://app.kosli.com", 0, 14}, cache.generation());
  for (auto _ : state) {
    auto body = cache.token_body("default");
    benchmark::DoNotOptimize(body);
    if (body) wipe(*body);
  }
}
BENCHMARK(BM_TokenCacheHit);

void BM_ParsePutProfile(benchmark::State& state) {
  const std::string body = put_body();
  for (auto _ : state) {
    std::string copy = body;
    auto parsed = parse_put_profile(copy);
    benchmark::DoNotOptimize(parsed);
  }
}
BENCHMARK(BM_ParsePutProfile);

void BM_SerializeToken(benchmark::State& state) {
  const Secret key(kBenchKey);
  const TokenInfo info{"bench", "https://app.kosli.com", 0, 14};
  for (auto _ : state) {
    auto body = serialize_token(key, info);
    benchmark::DoNotOptimize(body);
    wipe(body);
  }
}
BENCHMARK(BM_SerializeToken);

// The cache-miss target: one key read from the Secret Service over D-Bus, as
// the store worker does it. It stores an item, so it runs only inside
// scripts/with-keyring's throw-away keyring, never against the user's own.
void BM_CacheMissSecretService(benchmark::State& state) {
  const char* sandbox = std::getenv("KOSLI_TEST_SANDBOX");
  if (sandbox == nullptr || std::string_view(sandbox) != "1" || !session_bus_configured()) {
    return state.SkipWithError("needs a throw-away keyring: run it under scripts/with-keyring");
  }
  SecretServiceStore store;
  auto deadline = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(5); };
  if (auto problem = store.probe(deadline())) return state.SkipWithError(problem->message.c_str());
  ProfileMeta meta;
  meta.name = "kosli-bench-miss";
  meta.org = "bench";
  meta.host = "https://app.kosli.com";
    auto stored = store.put(meta, Secret(kBenchKey), deadline());
  if (auto* e = std::get_if<StoreError>(&stored)) return state.SkipWithError(e->message.c_str());
  for (auto _ : state) {
    auto loaded = store.load(meta.name, deadline());
    auto* found = std::get_if<std::optional<StoredKey>>(&loaded);
    if (found == nullptr || !*found) {
      state.SkipWithError("the benchmark key could not be read back");
      break;
    }
    benchmark::DoNotOptimize(loaded);
  }
  store.erase(meta.name, deadline());
}
// Three repetitions, of which scripts/bench takes the median, as it does for
// every other figure: the keyring's answers come through the D-Bus broker and
// gnome-keyring, so one slow stretch of either moved a single run's mean by 1 ms.
BENCHMARK(BM_CacheMissSecretService)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Repetitions(3)
    ->ReportAggregatesOnly(true);

}  // namespace
}  // namespace kosli::daemon

BENCHMARK_MAIN();
