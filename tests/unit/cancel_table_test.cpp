#include "proxy/cancel.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace pgmtls::proxy {
namespace {

CancelTarget target(std::uint64_t session) {
  CancelTarget t;
  t.session_id = session;
  t.backend_pid = 4242;
  t.backend_secret = 0xdeadbeef;
  return t;
}

TEST(CancelTable, KeysCarryTheInstanceIdAndArePositiveAndUnique) {
  for (unsigned instance : {0u, 1u, 77u, 255u}) {
    CancelTable table(instance);
    std::set<std::uint32_t> pids;
    for (int i = 0; i < 2000; ++i) {
      const CancelKey key = table.add(target(i));
      EXPECT_EQ(instance_of(key.pid), instance);
      EXPECT_EQ(key.pid >> 31, 0u) << "clients keep the pid in a signed integer";
      EXPECT_NE(key.pid, 0u);
      EXPECT_TRUE(pids.insert(key.pid).second);
    }
    EXPECT_EQ(table.size(), 2000u);
  }
}

TEST(CancelTable, OnlyTheExactKeyFindsItsTarget) {
  CancelTable table(3);
  const CancelKey key = table.add(target(7));
  auto found = table.find(key);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->session_id, 7u);
  EXPECT_EQ(found->backend_pid, 4242u);
  EXPECT_EQ(found->backend_secret, 0xdeadbeefu);
  for (std::uint32_t bit = 0; bit < 32; ++bit) {
    EXPECT_FALSE(table.find({key.pid, key.secret ^ (1u << bit)})) << "secret bit " << bit;
    EXPECT_FALSE(table.find({key.pid ^ (1u << bit), key.secret})) << "pid bit " << bit;
  }
  // Removing needs the secret too; then the key is gone.
  table.remove({key.pid, key.secret ^ 1});
  EXPECT_TRUE(table.find(key));
  table.remove(key);
  EXPECT_FALSE(table.find(key));
  EXPECT_EQ(table.size(), 0u);
}

TEST(CancelTable, SecretsDiffer) {
  CancelTable table;
  std::set<std::uint32_t> secrets;
  for (int i = 0; i < 1000; ++i)
    secrets.insert(table.add(target(i)).secret);
  EXPECT_GT(secrets.size(), 990u);  // 32 random bits: a collision among 1000 is very unlikely
}

TEST(CancelTable, ThreadsAddFindAndRemoveConcurrently) {
  CancelTable table(9);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const CancelKey key = table.add(target(static_cast<std::uint64_t>(t) * 10000 + i));
        auto found = table.find(key);
        if (!found || found->session_id != static_cast<std::uint64_t>(t) * 10000 + i) ++mismatches;
        table.remove(key);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(table.size(), 0u);
}

}  // namespace
}  // namespace pgmtls::proxy
