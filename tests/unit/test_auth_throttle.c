#include "auth/throttle.h"
#include "harness.h"

#include <stdio.h>

#define MINUTE (60 * 1000ULL)

static const struct throttle_settings defaults = {
	.initial_delay_ms = 2000,
	.max_delay_ms = 15000,
	.spray_users = 5,
	.distributed_sources = 10,
	.forget_after_ms = 15 * MINUTE,
	.max_entries = 65536,
};

static uint32_t delay(struct throttle *t, const char *ip, const char *user, uint64_t now)
{
	struct throttle_verdict v;
	throttle_check(t, ip, user, now, &v);
	return v.delay_ms;
}

static void test_fresh_source_no_delay(void)
{
	struct throttle *t = throttle_new(&defaults);
	struct throttle_verdict v = { 1, true, true };
	throttle_check(t, "192.0.2.1", "alice", 1000, &v);
	CHECK_INT(v.delay_ms, 0);
	CHECK(!v.spraying && !v.distributed);
	throttle_check(t, "192.0.2.1", NULL, 1000, &v);
	CHECK_INT(v.delay_ms, 0);
	CHECK_INT(throttle_penalized_sources(t, 1000), 0);
	throttle_free(&t);
	CHECK(t == NULL);
	throttle_free(&t);
}

static void test_doubling_and_cap(void)
{
	struct throttle *t = throttle_new(&defaults);
	static const uint32_t expected[] = { 2000, 4000, 8000, 15000, 15000, 15000 };
	uint64_t now = 1000;
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		throttle_failure(t, "192.0.2.1", "alice", now);
		CHECK_INT(delay(t, "192.0.2.1", "alice", now), expected[i]);
		now += 1000;
	}
	/* Another source is untouched; a user unknown to the check too. */
	CHECK_INT(delay(t, "192.0.2.2", "alice", now), 0);
	CHECK_INT(delay(t, "192.0.2.1", NULL, now), 15000);
	CHECK_INT(throttle_penalized_sources(t, now), 1);

	/* Many failures do not overflow the doubling. */
	for (int i = 0; i < 100; i++)
		throttle_failure(t, "192.0.2.1", NULL, now);
	CHECK_INT(delay(t, "192.0.2.1", NULL, now), 15000);
	throttle_free(&t);
}

static void test_success_clears(void)
{
	struct throttle *t = throttle_new(&defaults);
	throttle_failure(t, "192.0.2.1", "alice", 1000);
	throttle_failure(t, "192.0.2.1", "alice", 2000);
	CHECK_INT(delay(t, "192.0.2.1", "alice", 3000), 4000);
	/* The owner gets in (after the delay, by the caller): penalty gone. */
	throttle_success(t, "192.0.2.1", "alice", 7000);
	CHECK_INT(delay(t, "192.0.2.1", "alice", 7000), 0);
	CHECK_INT(throttle_penalized_sources(t, 7000), 0);
	/* And it starts over from the initial delay. */
	throttle_failure(t, "192.0.2.1", "alice", 8000);
	CHECK_INT(delay(t, "192.0.2.1", "alice", 8000), 2000);
	/* A success elsewhere changes nothing here. */
	throttle_success(t, "192.0.2.9", "alice", 9000);
	CHECK_INT(delay(t, "192.0.2.1", "alice", 9000), 2000);
	throttle_free(&t);
}

static void test_spraying(void)
{
	struct throttle *t = throttle_new(&defaults);
	const char *ip = "198.51.100.7";
	char user[32];
	struct throttle_verdict v;
	uint64_t now = 1000;

	for (int i = 0; i < 4; i++) {
		snprintf(user, sizeof(user), "user%d", i);
		throttle_failure(t, ip, user, now++);
		throttle_failure(t, ip, user, now++);	/* the same name twice counts once */
	}
	throttle_check(t, ip, "user9", now, &v);
	CHECK(!v.spraying);
	CHECK_INT(v.delay_ms, 15000);

	throttle_failure(t, ip, "user4", now++);
	throttle_check(t, ip, "user9", now, &v);
	CHECK(v.spraying);
	CHECK(!v.distributed);
	CHECK_INT(v.delay_ms, 30000);

	/* Guessing one password right does not clear a sprayer. */
	throttle_success(t, ip, "user2", now);
	throttle_check(t, ip, NULL, now, &v);
	CHECK(v.spraying);
	CHECK_INT(v.delay_ms, 30000);
	CHECK_INT(throttle_penalized_sources(t, now), 1);

	/* Until it has been quiet long enough. */
	throttle_check(t, ip, NULL, now + 15 * MINUTE, &v);
	CHECK(!v.spraying);
	CHECK_INT(v.delay_ms, 0);
	throttle_free(&t);
}

static void test_spray_not_hidden_by_own_login(void)
{
	struct throttle *t = throttle_new(&defaults);
	const char *ip = "198.51.100.8";
	char user[32];
	struct throttle_verdict v;
	for (int i = 0; i < 5; i++) {
		snprintf(user, sizeof(user), "victim%d", i);
		throttle_failure(t, ip, user, 1000 + (uint64_t)i);
		/* The attacker logs into its own account between guesses. */
		if (i < 4)
			throttle_success(t, ip, "mallory", 1000 + (uint64_t)i);
	}
	throttle_check(t, ip, NULL, 2000, &v);
	CHECK(v.spraying);
	CHECK_INT(v.delay_ms, 30000);
	throttle_free(&t);
}

static void test_distributed(void)
{
	struct throttle *t = throttle_new(&defaults);
	char ip[32];
	struct throttle_verdict v;
	uint64_t now = 1000;

	for (int i = 0; i < 9; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		throttle_failure(t, ip, "alice", now++);
	}
	throttle_check(t, "192.0.2.100", "alice", now, &v);
	CHECK(!v.distributed);
	CHECK_INT(v.delay_ms, 0);

	throttle_failure(t, "203.0.113.9", "alice", now++);
	/* Every attempt on alice, from anywhere, now waits the maximum. */
	throttle_check(t, "192.0.2.100", "alice", now, &v);
	CHECK(v.distributed);
	CHECK(!v.spraying);
	CHECK_INT(v.delay_ms, 15000);
	throttle_check(t, "192.0.2.100", "bob", now, &v);
	CHECK(!v.distributed);
	CHECK_INT(v.delay_ms, 0);
	throttle_check(t, "192.0.2.100", NULL, now, &v);
	CHECK_INT(v.delay_ms, 0);

	/* The owner logging in from one of them removes that source. */
	throttle_success(t, "203.0.113.3", "alice", now);
	throttle_check(t, "192.0.2.100", "alice", now, &v);
	CHECK(!v.distributed);

	/* The window: sources whose failures are old no longer count. */
	throttle_failure(t, "203.0.113.3", "alice", now);
	CHECK(delay(t, "192.0.2.100", "alice", now) == 15000);
	now += 15 * MINUTE;
	throttle_check(t, "192.0.2.100", "alice", now, &v);
	CHECK(!v.distributed);
	CHECK_INT(v.delay_ms, 0);
	throttle_free(&t);
}

static void test_distributed_window_partial(void)
{
	struct throttle *t = throttle_new(&defaults);
	char ip[32];
	/* Five early sources, then five more ten minutes later: at minute 16
	 * only the later five are within the window. */
	for (int i = 0; i < 5; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		throttle_failure(t, ip, "alice", 0);
	}
	for (int i = 5; i < 10; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		throttle_failure(t, ip, "alice", 10 * MINUTE);
	}
	struct throttle_verdict v;
	throttle_check(t, "192.0.2.1", "alice", 10 * MINUTE, &v);
	CHECK(v.distributed);
	throttle_check(t, "192.0.2.1", "alice", 16 * MINUTE, &v);
	CHECK(!v.distributed);
	throttle_free(&t);
}

static void test_expiry(void)
{
	struct throttle *t = throttle_new(&defaults);
	throttle_failure(t, "192.0.2.1", "alice", 0);
	throttle_failure(t, "192.0.2.1", "alice", 1000);
	CHECK_INT(delay(t, "192.0.2.1", "alice", 15 * MINUTE), 4000);	/* 1 s short */
	CHECK_INT(throttle_penalized_sources(t, 15 * MINUTE), 1);
	CHECK_INT(throttle_penalized_sources(t, 15 * MINUTE + 1000), 0);
	CHECK_INT(delay(t, "192.0.2.1", "alice", 15 * MINUTE + 1000), 0);
	/* Forgotten means the next failure starts over. */
	throttle_failure(t, "192.0.2.1", "alice", 16 * MINUTE);
	CHECK_INT(delay(t, "192.0.2.1", "alice", 16 * MINUTE), 2000);
	throttle_free(&t);
}

static void test_bound(void)
{
	struct throttle_settings s = defaults;
	s.max_entries = 3;
	struct throttle *t = throttle_new(&s);
	char ip[32], user[32];
	for (int i = 0; i < 10; i++) {
		snprintf(ip, sizeof(ip), "10.0.0.%d", i);
		snprintf(user, sizeof(user), "user%d", i);
		throttle_failure(t, ip, user, (uint64_t)i);
	}
	CHECK_INT(throttle_penalized_sources(t, 10), 3);
	/* The oldest went first; the newest three remain. */
	CHECK_INT(delay(t, "10.0.0.0", NULL, 10), 0);
	CHECK_INT(delay(t, "10.0.0.6", NULL, 10), 0);
	CHECK_INT(delay(t, "10.0.0.7", NULL, 10), 2000);
	CHECK_INT(delay(t, "10.0.0.9", NULL, 10), 2000);

	/* A failure refreshes an entry: it is no longer the oldest. */
	throttle_failure(t, "10.0.0.7", NULL, 11);
	throttle_failure(t, "10.0.0.10", NULL, 12);
	CHECK_INT(delay(t, "10.0.0.7", NULL, 12), 4000);
	CHECK_INT(delay(t, "10.0.0.8", NULL, 12), 0);
	CHECK_INT(throttle_penalized_sources(t, 12), 3);
	throttle_free(&t);

	/* Many entries: the tables grow and stay consistent. */
	s.max_entries = 5000;
	t = throttle_new(&s);
	for (int i = 0; i < 20000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		throttle_failure(t, ip, "root", (uint64_t)i);
	}
	CHECK_INT(throttle_penalized_sources(t, 20000), 5000);
	CHECK_INT(delay(t, "10.0.78.31", NULL, 20000), 2000);	/* 19999 */
	CHECK_INT(delay(t, "10.0.58.153", NULL, 20000), 2000);	/* 15001 */
	CHECK_INT(delay(t, "10.0.58.152", NULL, 20000), 2000);	/* 15000 */
	CHECK_INT(delay(t, "10.0.58.151", NULL, 20000), 0);	/* 14999, evicted */
	throttle_free(&t);
}

static void test_settings_change(void)
{
	struct throttle *t = throttle_new(&defaults);
	throttle_failure(t, "192.0.2.1", NULL, 0);
	throttle_failure(t, "192.0.2.1", NULL, 0);
	struct throttle_settings s = defaults;
	s.initial_delay_ms = 1000;
	s.max_delay_ms = 1500;
	throttle_set_settings(t, &s);
	CHECK_INT(delay(t, "192.0.2.1", NULL, 0), 1500);	/* state kept, new numbers */
	s.spray_users = 3;
	throttle_set_settings(t, &s);
	CHECK_INT(delay(t, "192.0.2.1", NULL, 0), 0);		/* tables reset */

	/* Zero thresholds turn those detections off. */
	s.spray_users = 0;
	s.distributed_sources = 0;
	throttle_set_settings(t, &s);
	char name[32];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		throttle_failure(t, "192.0.2.1", name, 0);
		snprintf(name, sizeof(name), "10.0.0.%d", i);
		throttle_failure(t, name, "alice", 0);
	}
	struct throttle_verdict v;
	throttle_check(t, "192.0.2.1", "alice", 0, &v);
	CHECK(!v.spraying && !v.distributed);
	CHECK_INT(v.delay_ms, 1500);
	throttle_free(&t);
}

int main(void)
{
	RUN(test_fresh_source_no_delay);
	RUN(test_doubling_and_cap);
	RUN(test_success_clears);
	RUN(test_spraying);
	RUN(test_spray_not_hidden_by_own_login);
	RUN(test_distributed);
	RUN(test_distributed_window_partial);
	RUN(test_expiry);
	RUN(test_bound);
	RUN(test_settings_change);
	return harness_finish();
}
