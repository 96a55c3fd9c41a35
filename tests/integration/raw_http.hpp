// A raw connection to the daemon's socket, for tests that send what no client
// would: broken framing, half requests, random bytes, hundreds of idle
// connections. Header-only; used by robustness_test.cpp and keyring_fault_test.cpp.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kosli::test {

// One HTTP response as read off the wire.
struct RawResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;

  // The value of a header (case-insensitive name), "" when absent.
  std::string header(std::string_view name) const {
    std::size_t at = head.find("\r\n");
    while (at != std::string::npos && at + 2 < head.size()) {
      const std::size_t end = head.find("\r\n", at + 2);
      const std::string_view line(head.data() + at + 2, (end == std::string::npos ? head.size() : end) - at - 2);
      const auto colon = line.find(':');
      if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        return std::string(value);
      }
      at = end;
    }
    return "";
  }

  // {"error":{"code"}} of the body, "" when the body is not an error.
  std::string error_code() const {
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object() || !j["error"].contains("code") ||
        !j["error"]["code"].is_string()) {
      return "";
    }
    return j["error"]["code"].get<std::string>();
  }

  std::string error_message() const {
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (error_code().empty() || !j["error"].contains("message") || !j["error"]["message"].is_string()) return "";
    return j["error"]["message"].get<std::string>();
  }
};

class RawConnection {
 public:
  explicit RawConnection(const std::string& socket_path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(RawConnection&& other) noexcept
      : fd_(other.fd_), pending_(std::move(other.pending_)), eof_(other.eof_) {
    other.fd_ = -1;
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }

  // Sends everything; false when the daemon closed the connection first.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Half-closes: the daemon reads end of file after what was sent.
  void finish_sending() { ::shutdown(fd_, SHUT_WR); }

  // Reads one response (its body by Content-Length); nullopt when the
  // connection closed, or nothing whole arrived, within `timeout`.
  std::optional<RawResponse> response(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t head_end;
    while ((head_end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!read_more(deadline)) return std::nullopt;
    }
    RawResponse r;
    r.head = pending_.substr(0, head_end);
    if (r.head.rfind("HTTP/1.", 0) != 0 || r.head.size() < 12) return std::nullopt;
    r.status = std::atoi(r.head.c_str() + 9);
    const std::string length = r.header("Content-Length");
    const std::size_t body_size = length.empty() ? 0 : std::stoul(length);
    while (pending_.size() < head_end + 4 + body_size) {
      if (!read_more(deadline)) return std::nullopt;
    }
    r.body = pending_.substr(head_end + 4, body_size);
    pending_.erase(0, head_end + 4 + body_size);
    return r;
  }

  // Whether the daemon closes the connection (end of file, after any bytes it
  // still sends) within `timeout`.
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (read_more(deadline)) {
    }
    return eof_;
  }

 private:
  // Appends what arrives before `deadline`; false at end of file or deadline.
  bool read_more(std::chrono::steady_clock::time_point deadline) {
    if (eof_ || fd_ < 0) return false;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd pfd{fd_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left > 0 ? left : 0));
    if (ready < 0 && errno == EINTR) return true;
    if (ready <= 0) return false;
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string pending_;
  bool eof_ = false;
};

// One request on a fresh connection, which then ends; the answer, or nullopt
// when the daemon closed without one.
inline std::optional<RawResponse> exchange(const std::string& socket_path, std::string_view request,
                                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  RawConnection c(socket_path);
  if (!c.connected()) return std::nullopt;
  c.send(request);  // the daemon may answer and close before reading it all
  c.finish_sending();  // an incomplete request ends here, not at the read deadline
  return c.response(timeout);
}

// "METHOD TARGET HTTP/1.1" with a JSON body (when given) and Connection: close.
inline std::string http_request(std::string_view method, std::string_view target, std::string_view body = {},
                                std::string_view content_type = "application/json") {
  std::string r = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n";
  if (!body.empty()) {
    r += "Content-Type: " + std::string(content_type) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "Connection: close\r\n\r\n" + std::string(body);
}

}  // namespace kosli::test
