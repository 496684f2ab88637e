#include "harness/raw_client.hpp"

#include <thread>

#include "harness/io_channel.hpp"

namespace gerbang::testing {

using namespace detail;

struct RawClient::Impl {
  Impl(std::uint16_t p, std::string h) : port(p), host(std::move(h)), channel(ioc) {}
  std::uint16_t port;
  std::string host;
  net::io_context ioc{1};
  PlainChannel channel;
  std::string last_error;
};

RawClient::RawClient(std::uint16_t port, std::string host) : impl_(std::make_unique<Impl>(port, std::move(host))) {}

RawClient::~RawClient() { impl_->channel.close(); }

::testing::AssertionResult RawClient::connect(std::chrono::milliseconds timeout) {
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->host, ec);
  if (ec) {
    impl_->last_error = "bad address " + impl_->host;
    return ::testing::AssertionFailure() << impl_->last_error;
  }
  ec = impl_->channel.connect(tcp::endpoint(address, impl_->port), deadline_after(timeout));
  if (ec) {
    impl_->last_error = ec.message();
    return ::testing::AssertionFailure() << "connect to " << impl_->host << ":" << impl_->port << ": " << ec.message();
  }
  return ::testing::AssertionSuccess();
}

bool RawClient::send(std::string_view bytes, std::chrono::milliseconds timeout) {
  auto ec = impl_->channel.write(bytes, deadline_after(timeout));
  if (ec) {
    impl_->last_error = ec.message();
    return false;
  }
  return true;
}

bool RawClient::send_slowly(std::string_view bytes, std::chrono::milliseconds per_byte) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0) {
      std::this_thread::sleep_for(per_byte);  // pacing, not waiting for an event
    }
    if (!send(bytes.substr(i, 1))) {
      return false;
    }
  }
  return true;
}

std::string RawClient::read_raw(std::chrono::milliseconds timeout) {
  return impl_->channel.read_raw(deadline_after(timeout));
}

std::string RawClient::read_until(std::string_view needle, std::chrono::milliseconds timeout) {
  bool found = false;
  return impl_->channel.read_until(needle, deadline_after(timeout), found);
}

HttpResponse RawClient::read_response(std::chrono::milliseconds timeout) {
  ReadOptions options;
  options.timeout = timeout;
  return read_response(options);
}

HttpResponse RawClient::read_response(const ReadOptions& options) {
  auto r = impl_->channel.read_response(options);
  if (!r.complete) {
    impl_->last_error = r.error;
  }
  return r;
}

::testing::AssertionResult RawClient::wait_for_close(std::chrono::milliseconds timeout) {
  if (impl_->channel.wait_for_close(deadline_after(timeout))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "peer did not close within " << timeout.count() << " ms";
}

bool RawClient::closed_by_peer() const { return impl_->channel.peer_closed(); }
void RawClient::shutdown_send() { impl_->channel.shutdown_send(); }
void RawClient::close() { impl_->channel.close(); }
void RawClient::reset() { impl_->channel.reset(); }

std::uint16_t RawClient::local_port() const {
  beast::error_code ec;
  auto ep = impl_->channel.socket().local_endpoint(ec);
  return ec ? 0 : ep.port();
}

const std::string& RawClient::last_error() const { return impl_->last_error; }

}  // namespace gerbang::testing
