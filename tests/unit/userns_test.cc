#include <gtest/gtest.h>

#include "userns/userns.h"

namespace vu::userns {
namespace {

TEST(IdMap, OwnMapKeepsOrMapsToRoot) {
  EXPECT_EQ(own_map(Identity::kKeep, 1000).to_proc(), "1000 1000 1\n");
  EXPECT_EQ(own_map(Identity::kRoot, 1000).to_proc(), "0 1000 1\n");
}

TEST(IdMap, SubidRootMapsRangeAfterZero) {
  IdMap m = subid_map(Identity::kRoot, 1000, {100000, 65536});
  EXPECT_EQ(m.to_proc(), "0 1000 1\n1 100000 65536\n");
  EXPECT_EQ(m.to_args(), (std::vector<std::string>{"0", "1000", "1", "1", "100000", "65536"}));
}

TEST(IdMap, SubidKeepIdSplitsRangeAroundOwnId) {
  IdMap m = subid_map(Identity::kKeep, 1000, {100000, 65536});
  EXPECT_EQ(m.to_proc(), "0 100000 1000\n1000 1000 1\n1001 101000 64536\n");
}

TEST(IdMap, SubidKeepIdSmallRange) {
  IdMap m = subid_map(Identity::kKeep, 1000, {100000, 10});
  EXPECT_EQ(m.to_proc(), "0 100000 10\n1000 1000 1\n");
}

TEST(IdMap, AsAnotherId) {
  // An image's User 1000 for caller 4000: alone, or with the subordinate ids around it.
  EXPECT_EQ(own_map_as(1000, 4000).to_proc(), "1000 4000 1\n");
  EXPECT_EQ(subid_map_as(1000, 4000, {100000, 65536}).to_proc(), "0 100000 1000\n1000 4000 1\n1001 101000 64536\n");
  EXPECT_EQ(subid_map_as(0, 4000, {100000, 65536}).to_proc(), subid_map(Identity::kRoot, 4000, {100000, 65536}).to_proc());
}

TEST(FindSubid, ByNameOrUidSkippingJunk) {
  const char* text =
      "# comment\n"
      "alice:100000:65536\n"
      "broken line\n"
      "bob:x:5\n"
      "bob:200000:0\n"
      "1002:300000:1000\n"
      "bob:400000:10\n";
  auto a = find_subid(text, "alice", 1001);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->start, 100000u);
  EXPECT_EQ(a->count, 65536u);
  auto b = find_subid(text, "bob", 1005);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->start, 400000u);
  auto c = find_subid(text, "carol", 1002);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->start, 300000u);
  EXPECT_FALSE(find_subid(text, "dave", 1003));
}

}  // namespace
}  // namespace vu::userns
