#include "auth/cache.h"
#include "core/limits.h"
#include "harness.h"

#include <stdio.h>
#include <string.h>

#define MINUTE (60 * 1000ULL)

static const char stored_a[] = "{SHA512-CRYPT}$6$saltA$hashA";
static const char stored_b[] = "{SHA512-CRYPT}$6$saltB$hashB";

static const struct auth_cache_settings defaults = {
	.ttl_ms = 10 * MINUTE,
	.max_entries = 100,
};

static struct auth_cache *cache_new(const struct auth_cache_settings *settings)
{
	const char *error = NULL;
	struct auth_cache *c = auth_cache_new(settings, &error);
	if (c == NULL)
		fprintf(stderr, "auth_cache_new: %s\n", error);
	return c;
}

static struct auth_cache_ticket ticket(const struct auth_cache *c, const char *user, const char *stored,
				       const char *password)
{
	struct auth_cache_ticket t;
	int ret = auth_cache_ticket(c, user, stored, password, strlen(password), &t);
	CHECK_INT(ret, 0);
	CHECK(t.valid);
	return t;
}

/* Remembers user/password as verified against stored at now. */
static void verified(struct auth_cache *c, const char *user, const char *stored, const char *password,
		     uint64_t now)
{
	struct auth_cache_ticket t = ticket(c, user, stored, password);
	auth_cache_remember(c, user, &t, now);
}

static bool hit(struct auth_cache *c, const char *user, const char *stored, const char *password, uint64_t now)
{
	struct auth_cache_ticket t = ticket(c, user, stored, password);
	return auth_cache_lookup(c, user, &t, now);
}

static void test_hit_after_success(void)
{
	struct auth_cache *c = cache_new(&defaults);
	CHECK(c != NULL);
	CHECK(!hit(c, "alice", stored_a, "secret", 1000));
	verified(c, "alice", stored_a, "secret", 1000);
	CHECK(hit(c, "alice", stored_a, "secret", 1000));
	CHECK(hit(c, "alice", stored_a, "secret", 1000 + 9 * MINUTE));
	CHECK_INT(auth_cache_count(c), 1);
	auth_cache_free(&c);
	CHECK(c == NULL);
	auth_cache_free(&c);
}

static void test_miss_on_wrong_password_keeps_entry(void)
{
	struct auth_cache *c = cache_new(&defaults);
	verified(c, "alice", stored_a, "secret", 0);
	CHECK(!hit(c, "alice", stored_a, "Secret", 1));
	CHECK(!hit(c, "alice", stored_a, "secret\n", 1));
	CHECK(!hit(c, "alice", stored_a, "", 1));
	/* A guess does not make the owner's next login slow. */
	CHECK(hit(c, "alice", stored_a, "secret", 2));
	/* A NUL in the password counts (PLAIN could carry one). */
	struct auth_cache_ticket t;
	CHECK_INT(auth_cache_ticket(c, "alice", stored_a, "secret\0x", 8, &t), 0);
	CHECK(!auth_cache_lookup(c, "alice", &t, 3));
	auth_cache_free(&c);
}

static void test_miss_for_other_user_same_password(void)
{
	struct auth_cache *c = cache_new(&defaults);
	verified(c, "alice", stored_a, "secret", 0);
	CHECK(!hit(c, "bob", stored_a, "secret", 1));
	CHECK(!hit(c, "alic", stored_a, "secret", 1));
	CHECK(!hit(c, "alicea", stored_a, "secret", 1));
	/* The user name is bound into the password's MAC, and where it ends:
	 * "alicex" + "secret" is not "alice" + "xsecret". */
	struct auth_cache_ticket t1 = ticket(c, "alicex", stored_a, "secret");
	struct auth_cache_ticket t2 = ticket(c, "alice", stored_a, "xsecret");
	CHECK(memcmp(t1.password_mac, t2.password_mac, AUTH_CACHE_MAC_LEN) != 0);
	auth_cache_free(&c);
}

static void test_miss_after_stored_hash_changes(void)
{
	struct auth_cache *c = cache_new(&defaults);
	verified(c, "alice", stored_a, "secret", 0);
	/* The passwd file now holds another hash (password changed, even to
	 * the same password with a new salt): verify again. */
	CHECK(!hit(c, "alice", stored_b, "secret", 1));
	CHECK_INT(auth_cache_count(c), 0);
	/* The stale entry is gone even if the old hash came back. */
	CHECK(!hit(c, "alice", stored_a, "secret", 2));
	verified(c, "alice", stored_b, "secret", 3);
	CHECK(hit(c, "alice", stored_b, "secret", 4));
	CHECK(!hit(c, "alice", stored_a, "secret", 5));
	auth_cache_free(&c);
}

static void test_expiry(void)
{
	struct auth_cache *c = cache_new(&defaults);
	verified(c, "alice", stored_a, "secret", 1000);
	CHECK(hit(c, "alice", stored_a, "secret", 1000 + 10 * MINUTE - 1));
	CHECK(!hit(c, "alice", stored_a, "secret", 1000 + 10 * MINUTE));
	CHECK_INT(auth_cache_count(c), 0);
	/* A hit does not extend the entry: it expires ttl after verifying. */
	verified(c, "bob", stored_a, "pw", 0);
	CHECK(hit(c, "bob", stored_a, "pw", 9 * MINUTE));
	CHECK(!hit(c, "bob", stored_a, "pw", 10 * MINUTE + 1));
	/* A new verification does. */
	verified(c, "carol", stored_a, "pw", 0);
	verified(c, "carol", stored_a, "pw", 5 * MINUTE);
	CHECK(hit(c, "carol", stored_a, "pw", 14 * MINUTE));
	auth_cache_free(&c);
}

static void test_size_bound_evicts_oldest(void)
{
	struct auth_cache_settings s = { .ttl_ms = 10 * MINUTE, .max_entries = 3 };
	struct auth_cache *c = cache_new(&s);
	verified(c, "u1", stored_a, "p1", 1);
	verified(c, "u2", stored_a, "p2", 2);
	verified(c, "u3", stored_a, "p3", 3);
	verified(c, "u1", stored_a, "p1", 4);	/* u1 is the newest again */
	verified(c, "u4", stored_a, "p4", 5);	/* evicts u2 */
	CHECK_INT(auth_cache_count(c), 3);
	CHECK(!hit(c, "u2", stored_a, "p2", 6));
	CHECK(hit(c, "u1", stored_a, "p1", 6));
	CHECK(hit(c, "u3", stored_a, "p3", 6));
	CHECK(hit(c, "u4", stored_a, "p4", 6));
	/* Many more than the bound: the count stays, the newest are kept,
	 * and the entries freed are reused (ASan would see an overrun). */
	char user[16], pw[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(user, sizeof(user), "x%d", i);
		snprintf(pw, sizeof(pw), "p%d", i);
		verified(c, user, stored_a, pw, 10 + (uint64_t)i);
	}
	CHECK_INT(auth_cache_count(c), 3);
	CHECK(hit(c, "x999", stored_a, "p999", 2000));
	CHECK(hit(c, "x997", stored_a, "p997", 2000));
	CHECK(!hit(c, "x996", stored_a, "p996", 2000));
	auth_cache_free(&c);
}

static void test_ttl_zero_disables(void)
{
	struct auth_cache_settings s = { .ttl_ms = 0, .max_entries = 100 };
	struct auth_cache *c = cache_new(&s);
	CHECK(!auth_cache_enabled(c));
	verified(c, "alice", stored_a, "secret", 0);
	CHECK_INT(auth_cache_count(c), 0);
	CHECK(!hit(c, "alice", stored_a, "secret", 0));
	/* Turned on by a reload, then off again: what it held is forgotten. */
	auth_cache_set_settings(c, &defaults);
	CHECK(auth_cache_enabled(c));
	verified(c, "alice", stored_a, "secret", 0);
	CHECK(hit(c, "alice", stored_a, "secret", 1));
	auth_cache_set_settings(c, &s);
	CHECK_INT(auth_cache_count(c), 0);
	auth_cache_set_settings(c, &defaults);
	CHECK(!hit(c, "alice", stored_a, "secret", 2));
	auth_cache_free(&c);
}

static void test_settings_change(void)
{
	struct auth_cache *c = cache_new(&defaults);
	verified(c, "alice", stored_a, "secret", 0);
	/* A shorter ttl applies to the entries kept. */
	struct auth_cache_settings shorter = { .ttl_ms = MINUTE, .max_entries = 100 };
	auth_cache_set_settings(c, &shorter);
	CHECK(hit(c, "alice", stored_a, "secret", MINUTE - 1));
	CHECK(!hit(c, "alice", stored_a, "secret", MINUTE));
	/* A new bound starts empty, with the same key. */
	verified(c, "alice", stored_a, "secret", MINUTE);
	struct auth_cache_ticket before = ticket(c, "alice", stored_a, "secret");
	struct auth_cache_settings smaller = { .ttl_ms = MINUTE, .max_entries = 2 };
	auth_cache_set_settings(c, &smaller);
	CHECK_INT(auth_cache_count(c), 0);
	struct auth_cache_ticket after = ticket(c, "alice", stored_a, "secret");
	CHECK(memcmp(before.password_mac, after.password_mac, AUTH_CACHE_MAC_LEN) == 0);
	verified(c, "a", stored_a, "1", MINUTE);
	verified(c, "b", stored_a, "2", MINUTE);
	verified(c, "c", stored_a, "3", MINUTE);
	CHECK_INT(auth_cache_count(c), 2);
	auth_cache_free(&c);
}

static void test_keys_differ_between_caches(void)
{
	/* Each worker makes its own key: the same login gives other MACs. */
	struct auth_cache *c1 = cache_new(&defaults), *c2 = cache_new(&defaults);
	struct auth_cache_ticket t1 = ticket(c1, "alice", stored_a, "secret");
	struct auth_cache_ticket t2 = ticket(c2, "alice", stored_a, "secret");
	CHECK(memcmp(t1.password_mac, t2.password_mac, AUTH_CACHE_MAC_LEN) != 0);
	CHECK(memcmp(t1.password_mac, t1.stored_mac, AUTH_CACHE_MAC_LEN) != 0);
	auth_cache_remember(c1, "alice", &t1, 0);
	CHECK(auth_cache_lookup(c1, "alice", &t1, 0));
	struct auth_cache_ticket copy = t1;
	auth_cache_ticket_clear(&copy);
	CHECK(!copy.valid);
	CHECK(!auth_cache_lookup(c1, "alice", &copy, 0));
	/* Another key's ticket looks like another stored hash. */
	CHECK(!auth_cache_lookup(c1, "alice", &t2, 0));
	auth_cache_free(&c1);
	auth_cache_free(&c2);
}

static void test_long_user_names(void)
{
	struct auth_cache *c = cache_new(&defaults);
	char longest[LIMIT_USER_LEN + 1], too_long[LIMIT_USER_LEN + 2];
	memset(longest, 'a', LIMIT_USER_LEN);
	longest[LIMIT_USER_LEN] = '\0';
	memset(too_long, 'a', LIMIT_USER_LEN + 1);
	too_long[LIMIT_USER_LEN + 1] = '\0';
	verified(c, longest, stored_a, "pw", 0);
	CHECK(hit(c, longest, stored_a, "pw", 1));
	verified(c, too_long, stored_a, "pw", 0);
	CHECK(!hit(c, too_long, stored_a, "pw", 1));
	CHECK_INT(auth_cache_count(c), 1);
	auth_cache_free(&c);
}

int main(void)
{
	RUN(test_hit_after_success);
	RUN(test_miss_on_wrong_password_keeps_entry);
	RUN(test_miss_for_other_user_same_password);
	RUN(test_miss_after_stored_hash_changes);
	RUN(test_expiry);
	RUN(test_size_bound_evicts_oldest);
	RUN(test_ttl_zero_disables);
	RUN(test_settings_change);
	RUN(test_keys_differ_between_caches);
	RUN(test_long_user_names);
	return harness_finish();
}
