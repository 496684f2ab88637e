#include "policies/stage.hpp"

#include "policies/request_context.hpp"

namespace gerbang::policies {

boost::asio::awaitable<Verdict> Stage::on_request_head_async(RequestContext& ctx) const {
  co_return on_request_head(ctx);
}

}  // namespace gerbang::policies
