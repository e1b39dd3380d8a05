// `pgmtls check --config FILE`: exit 0 for a good config; otherwise non-zero and FILE:LINE: for
// each problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

class CheckCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pki_ = std::make_unique<TestPki>(0);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { pki_.reset(); }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  ProxyConfig config() const { return base_proxy_config(*pki_, 5432); }

  // Writes the config as NAME.yaml and runs `pgmtls check` on it.
  CommandResult check(const std::string& yaml) {
    yaml_ = yaml;
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    file_name_ = name + ".yaml";
    const std::string path = pki_->dir() + "/" + file_name_;
    write_text_file(path, yaml);
    return run_pgmtls_check(path);
  }

  // "NAME.yaml:LINE:" for the line of the last checked config that starts with `prefix`.
  std::string location_of(const std::string& prefix) const {
    const int line = line_of(yaml_, prefix);
    EXPECT_GT(line, 0) << prefix << " is not in the config";
    return file_name_ + ":" + std::to_string(line) + ":";
  }

  static inline std::unique_ptr<TestPki> pki_;
  static inline std::string setup_error_;
  std::string yaml_;
  std::string file_name_;
};

TEST_F(CheckCommandTest, GoodConfigPasses) {
  const CommandResult r = check(config().to_yaml());
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(CheckCommandTest, UnknownKeyIsReportedWithItsLine) {
  ProxyConfig c = config();
  c.extra_yaml = "no_such_setting: 1\n";
  const CommandResult r = check(c.to_yaml());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(location_of("no_such_setting:")));
}

TEST_F(CheckCommandTest, MissingCertificateFileIsReportedWithItsLine) {
  ProxyConfig c = config();
  c.cert_file = pki_->dir() + "/does-not-exist.crt";
  const CommandResult r = check(c.to_yaml());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(location_of("  cert_file:")));
}

TEST_F(CheckCommandTest, KeyNotMatchingCertificateIsReportedWithItsLine) {
  ProxyConfig c = config();
  c.key_file = pki_->client("alice").key_file;
  const CommandResult r = check(c.to_yaml());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output,
              AnyOf(HasSubstr(location_of("  key_file:")), HasSubstr(location_of("  cert_file:"))));
}

TEST_F(CheckCommandTest, InvalidListenAddressIsReportedWithItsLine) {
  for (const char* listen : {"127.0.0.1:99999", "not-an-address:5432", "127.0.0.1"}) {
    SCOPED_TRACE(listen);
    ProxyConfig c = config();
    c.listen = listen;
    const CommandResult r = check(c.to_yaml());
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(location_of("listen:")));
  }
}

TEST_F(CheckCommandTest, UnreadableKeyFileIsReportedWithItsLine) {
  {
    SCOPED_TRACE("key_file is a directory");
    ProxyConfig c = config();
    c.key_file = pki_->dir();
    const CommandResult r = check(c.to_yaml());
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(location_of("  key_file:")));
  }
  if (::geteuid() != 0) {  // root reads files whatever their mode
    SCOPED_TRACE("key_file has mode 000");
    const std::string key = pki_->dir() + "/unreadable.key";
    write_text_file(key, "-----BEGIN PRIVATE KEY-----\n", 0000);
    ProxyConfig c = config();
    c.key_file = key;
    const CommandResult r = check(c.to_yaml());
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(location_of("  key_file:")));
  }
}

}  // namespace
}  // namespace pgmtls::integration
