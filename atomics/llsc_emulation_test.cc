// LL/SC emulation: the ABA interleaving that defeats a plain CAS is refused, including when
// the "other thread" is a signal handler on the reader's own thread; reservations run out
// only when all are held, and then a reader waits rather than proceeding unprotected.
#include "atomics/llsc_emulation.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace polymalloc::atomics {
namespace {

constexpr std::uintptr_t kX = 0x1000;  // an address aligned to LlscWord::kTags
constexpr std::uintptr_t kY = 0x2000;

TEST(LlscEmulationTest, StoreConditionalSucceedsWhenUnchanged) {
  LlscWord w;
  std::uintptr_t expected = 0;
  ASSERT_TRUE(w.cas_seq_cst(expected, w.tag_unreserved(kX)));
  const LlscWord::Link link = w.load_linked();
  EXPECT_EQ(LlscWord::address_of(link.value), kX);
  EXPECT_TRUE(w.store_conditional(link, kY));
  EXPECT_EQ(w.load_acquire(), kY);
}

TEST(LlscEmulationTest, AbaReinsertionGetsAnotherTagAndStaleStoreFails) {
  LlscWord w;
  std::uintptr_t expected = 0;
  const std::uintptr_t x_first = w.tag_unreserved(kX);
  ASSERT_TRUE(w.cas_seq_cst(expected, x_first));

  // Reader A links to x (and would then read x's successor, here: kY).
  const LlscWord::Link a = w.load_linked();
  ASSERT_EQ(a.value, x_first);

  // Meanwhile x is taken out and put back, as another thread or a handler would.
  const LlscWord::Link b = w.load_linked();
  ASSERT_TRUE(w.store_conditional(b, 0));
  const std::uintptr_t x_again = w.tag_unreserved(kX);
  EXPECT_NE(x_again, x_first) << "x must come back with a tag A has not reserved";
  EXPECT_EQ(LlscWord::address_of(x_again), kX);
  expected = 0;
  ASSERT_TRUE(w.cas_seq_cst(expected, x_again));

  // A's store-conditional, based on the stale successor, must fail: the word holds the same
  // address but not the instance A linked to.
  EXPECT_FALSE(w.store_conditional(a, kY));
  EXPECT_EQ(w.load_acquire(), x_again);

  // With A's reservation gone, the first tag is free again.
  EXPECT_EQ(w.tag_unreserved(kX), x_first);
}

TEST(LlscEmulationTest, ReaderWaitsWhileEveryReservationIsHeldAndResumesAfter) {
  LlscWord w;
  std::uintptr_t expected = 0;
  ASSERT_TRUE(w.cas_seq_cst(expected, w.tag_unreserved(kX)));
  LlscWord::Link held[LlscWord::kReservations];
  for (auto& link : held) link = w.load_linked();

  std::atomic<bool> linked{false};
  std::thread reader([&] {
    const LlscWord::Link link = w.load_linked();
    linked.store(true);
    w.cancel(link);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(linked.load()) << "a reader proceeded without a reservation";
  w.cancel(held[0]);
  reader.join();
  EXPECT_TRUE(linked.load());
  for (unsigned i = 1; i < LlscWord::kReservations; ++i) w.cancel(held[i]);
}

TEST(LlscEmulationTest, TagIsUnreservedEvenWithManyReservationsOfOneAddress) {
  LlscWord w;
  std::uintptr_t expected = 0;
  ASSERT_TRUE(w.cas_seq_cst(expected, w.tag_unreserved(kX)));
  // Hold reservations for several distinct instances of x, as nested handlers could.
  LlscWord::Link links[LlscWord::kReservations];
  for (auto& link : links) {
    link = w.load_linked();
    const std::uintptr_t current = link.value;
    std::uintptr_t seen = current;
    ASSERT_TRUE(w.cas_seq_cst(seen, w.tag_unreserved(kX)));  // swap in a fresh instance
  }
  const std::uintptr_t fresh = w.tag_unreserved(kX);
  for (const auto& link : links) EXPECT_NE(fresh, link.value);
  for (const auto& link : links) w.cancel(link);
}

}  // namespace
}  // namespace polymalloc::atomics
