// Private to daemon/transport/: a descriptor watched on the server's event
// loop (Server::watch_readable).
#pragma once

#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

namespace kosli::daemon::transport {

// Takes ownership of `fd` and runs `on_readable` on the loop each time it can
// be read (`on_readable` reads it until EAGAIN), until the descriptor returned
// is closed: the server closes it when it stops, or the wait would keep the
// loop running.
std::shared_ptr<boost::asio::posix::stream_descriptor> watch_readable_fd(boost::asio::io_context& ioc, int fd, std::function<void()> on_readable);

}  // namespace kosli::daemon::transport
