// gerbang's t:lowercase against libmodsecurity's own (policies/waf/lowercase.hpp): both are called here as the
// engine calls them, on every byte value and on random strings, and must return the same bytes.
#include "policies/waf/lowercase.hpp"

#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace gerbang::policies::waf {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> inputs() {
  std::vector<std::string> v = {"", "A", "z", "UNION SELECT", "MiXeD CaSe 123 !@#", std::string(4096, 'Q')};
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  v.push_back(all);
  v.push_back(std::string("NUL\0INSIDE\0", 11));
  v.push_back("\xC3\x84\xC3\x96\xC3\x9C \xE2\x82\xAC");  // UTF-8 (ÄÖÜ €): bytes above 0x7F stay as they are
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 300);
  for (int i = 0; i < 500; ++i) {
    std::string s(static_cast<std::size_t>(len(rng)), '\0');
    for (auto& c : s) c = static_cast<char>(byte(rng));
    v.push_back(std::move(s));
  }
  return v;
}

#if GERBANG_WAF_FAST_LOWERCASE

TEST(WafLowercase, TheEngineResolvesToGerbangsFunction) {
  ASSERT_NE(engine_lowercase(), nullptr) << "libmodsecurity 3.0.9 defines LowerCase::evaluate";
  EXPECT_TRUE(lowercase_interposed()) << "this executable must export its LowerCase::evaluate";
  std::string why;
  EXPECT_EQ(select_lowercase("ModSecurity v3.0.9 (Linux)", why), LowercaseImpl::gerbang);
  EXPECT_THAT(why, HasSubstr("one locale lookup per value"));
}

TEST(WafLowercase, SameBytesAsTheEngineOnEveryInput) {
  const LowercaseFn engine = engine_lowercase();
  const LowercaseFn ours = resolved_lowercase();
  ASSERT_NE(engine, nullptr);
  ASSERT_NE(ours, nullptr);
  ASSERT_NE(engine, ours);
  std::string why;
  ASSERT_EQ(select_lowercase("ModSecurity v3.0.9 (Linux)", why), LowercaseImpl::gerbang);
  for (const auto& in : inputs()) {
    const std::string expected = engine(nullptr, in, nullptr);
    ASSERT_EQ(ours(nullptr, in, nullptr), expected) << "input of " << in.size() << " bytes";
  }
  // What "the same" means under the C++ locale this process runs with: ASCII A-Z only.
  EXPECT_EQ(ours(nullptr, "ABC xyz \xC3\x84", nullptr), "abc xyz \xC3\x84");
}

TEST(WafLowercase, AnotherEngineVersionGetsItsOwnFunction) {
  struct Restore {  // the choice is process-wide: later tests get the replacement back even if this one fails
    ~Restore() {
      std::string ignored;
      select_lowercase("ModSecurity v3.0.9 (Linux)", ignored);
    }
  } restore;
  std::string why;
  EXPECT_EQ(select_lowercase("ModSecurity v3.0.12 (Linux)", why), LowercaseImpl::engine);
  EXPECT_THAT(why, HasSubstr("the loaded engine is \"ModSecurity v3.0.12 (Linux)\""));
  // Every call is handed to the library's function: the bytes are still right.
  const LowercaseFn ours = resolved_lowercase();
  for (const auto& in : inputs()) {
    ASSERT_EQ(ours(nullptr, in, nullptr), engine_lowercase()(nullptr, in, nullptr));
  }
  EXPECT_EQ(select_lowercase("ModSecurity v3.0.9 (Linux)", why), LowercaseImpl::gerbang);
}

#else

TEST(WafLowercase, OtherEngineVersionsRunTheirOwn) {
  EXPECT_FALSE(lowercase_interposed());
  std::string why;
  EXPECT_EQ(select_lowercase("ModSecurity v3.0.9 (Linux)", why), LowercaseImpl::engine);
}

#endif

}  // namespace
}  // namespace gerbang::policies::waf
