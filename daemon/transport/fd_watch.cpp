#include "daemon/transport/fd_watch.hpp"

#include <memory>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <spdlog/spdlog.h>

namespace kosli::daemon::transport {
namespace {

using Descriptor = boost::asio::posix::stream_descriptor;

void wait(std::shared_ptr<Descriptor> descriptor, std::shared_ptr<std::function<void()>> on_readable) {
  descriptor->async_wait(Descriptor::wait_read, [descriptor, on_readable](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted || !descriptor->is_open()) return;
    if (ec) {
      spdlog::error("watching descriptor {}: {}", descriptor->native_handle(), ec.message());
      return;
    }
    (*on_readable)();
    wait(descriptor, on_readable);
  });
}

}  // namespace

std::shared_ptr<Descriptor> watch_readable_fd(boost::asio::io_context& ioc, int fd, std::function<void()> on_readable) {
  auto descriptor = std::make_shared<Descriptor>(ioc, fd);
  wait(descriptor, std::make_shared<std::function<void()>>(std::move(on_readable)));
  return descriptor;
}

}  // namespace kosli::daemon::transport
