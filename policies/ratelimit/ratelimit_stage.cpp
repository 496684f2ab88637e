// Rate-limit stage (skeleton: allows everything; the real implementation follows).
#include "policies/ratelimit/ratelimit_stage.hpp"

namespace gerbang::policies::ratelimit {

class WorkerBuckets {
 public:
  WorkerBuckets(const RateLimitBackendConfig& cfg, std::unique_ptr<CounterBackend> shared)
      : cfg_(cfg), shared_(std::move(shared)) {}

 private:
  RateLimitBackendConfig cfg_;
  std::unique_ptr<CounterBackend> shared_;
};

void destroy(WorkerBuckets* p) noexcept { delete p; }

WorkerBucketsPtr make_worker_buckets(const RateLimitBackendConfig& backend, std::unique_ptr<CounterBackend> shared) {
  return WorkerBucketsPtr(new WorkerBuckets(backend, std::move(shared)));
}

namespace {
class RateLimitStage final : public Stage {
 public:
  std::string_view name() const noexcept override { return "ratelimit"; }
  Verdict on_request_head(RequestContext&) const override { return Verdict::next(); }
};
}  // namespace

std::unique_ptr<Stage> make_ratelimit_stage(const std::string&, std::size_t, const std::vector<RateLimitRule>& rules,
                                            const RateLimitBackendConfig&) {
  if (rules.empty()) return nullptr;
  return std::make_unique<RateLimitStage>();
}

}  // namespace gerbang::policies::ratelimit
