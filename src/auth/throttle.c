#include "auth/throttle.h"
#include "core/age_list.h"
#include "core/xalloc.h"

#include <openssl/rand.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Two tables, sources (by IP) and users (by login name), each a chained
 * hash table plus a list in order of last failure. Failures only ever move
 * an entry to the newest end, so the oldest end is both what expires first
 * and what is evicted when a table is full: both are O(1) per entry.
 *
 * Keys are attacker-chosen (user names, IPv6 addresses), so buckets are
 * picked with SipHash-2-4 under a random key: nobody can aim many names at
 * one chain. The same 64-bit hashes stand for the users a source failed
 * against and the sources that failed against a user; a collision merely
 * counts two names as one. */

struct tnode {
	struct tnode *hnext;		/* next in the bucket */
	struct tnode *newer, *older;	/* order of last failure */
	uint64_t hash;
	uint64_t last_ms;		/* last failure */
	char *key;
};

struct ttable {
	struct tnode **buckets;
	size_t nbuckets;		/* a power of two */
	size_t count;
	struct tnode *newest, *oldest;
};

struct source {
	struct tnode node;		/* first: a tnode * is a struct source * */
	unsigned failures;		/* consecutive, reset by a success */
	unsigned nusers;		/* distinct users failed, up to spray_users */
	uint64_t users[];		/* their hashes */
};

struct user_slot {
	uint64_t ip;			/* hash of the source */
	uint64_t last_ms;		/* its last failure for this user */
};

struct user_rec {
	struct tnode node;
	unsigned nslots;		/* up to distributed_sources */
	struct user_slot slots[];
};

struct throttle {
	struct throttle_settings set;
	uint64_t key[2];		/* SipHash key */
	struct ttable sources, users;
};

#define TABLE_INITIAL_BUCKETS 64

/* --- SipHash-2-4 (Aumasson and Bernstein, 2012) --- */

static uint64_t rotl64(uint64_t x, unsigned b)
{
	return x << b | x >> (64 - b);
}

#define SIPROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32); \
	v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32); \
} while (0)

static uint64_t siphash(const uint64_t key[2], const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data;
	uint64_t v0 = key[0] ^ 0x736f6d6570736575ULL;
	uint64_t v1 = key[1] ^ 0x646f72616e646f6dULL;
	uint64_t v2 = key[0] ^ 0x6c7967656e657261ULL;
	uint64_t v3 = key[1] ^ 0x7465646279746573ULL;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t m = 0;
		for (unsigned j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	uint64_t m = (uint64_t)(len & 0xff) << 56;
	for (unsigned j = 0; i + j < len; j++)
		m |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= m;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	for (unsigned r = 0; r < 4; r++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* --- Tables --- */

static bool is_fresh(const struct throttle *t, uint64_t last_ms, uint64_t now_ms)
{
	if (t->set.forget_after_ms == 0)
		return true;
	return now_ms < last_ms || now_ms - last_ms < t->set.forget_after_ms;
}

static void table_init(struct ttable *tab)
{
	memset(tab, 0, sizeof(*tab));
	tab->nbuckets = TABLE_INITIAL_BUCKETS;
	tab->buckets = xcalloc(tab->nbuckets, sizeof(*tab->buckets));
}

static struct tnode *table_find(const struct ttable *tab, const char *key, uint64_t hash)
{
	for (struct tnode *n = tab->buckets[hash & (tab->nbuckets - 1)]; n != NULL; n = n->hnext) {
		if (n->hash == hash && strcmp(n->key, key) == 0)
			return n;
	}
	return NULL;
}

static void table_remove(struct ttable *tab, struct tnode *n)
{
	struct tnode **pp = &tab->buckets[n->hash & (tab->nbuckets - 1)];
	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	AGE_LIST_UNLINK(tab, n);
	tab->count--;
	free(n->key);
	free(n);
}

static void table_clear(struct ttable *tab)
{
	while (tab->oldest != NULL)
		table_remove(tab, tab->oldest);
}

static void table_deinit(struct ttable *tab)
{
	table_clear(tab);
	free(tab->buckets);
	tab->buckets = NULL;
}

static void table_grow(struct ttable *tab)
{
	size_t nbuckets = tab->nbuckets * 2;
	struct tnode **buckets = xcalloc(nbuckets, sizeof(*buckets));
	for (size_t i = 0; i < tab->nbuckets; i++) {
		struct tnode *n = tab->buckets[i];
		while (n != NULL) {
			struct tnode *next = n->hnext;
			n->hnext = buckets[n->hash & (nbuckets - 1)];
			buckets[n->hash & (nbuckets - 1)] = n;
			n = next;
		}
	}
	free(tab->buckets);
	tab->buckets = buckets;
	tab->nbuckets = nbuckets;
}

/* Adds a node of node_size bytes (zeroed) for key, evicting the oldest
 * entry when the table is full. */
static struct tnode *table_add(struct throttle *t, struct ttable *tab, const char *key,
			       uint64_t hash, size_t node_size, uint64_t now_ms)
{
	unsigned max = t->set.max_entries > 0 ? t->set.max_entries : 1;
	while (tab->count >= max)
		table_remove(tab, tab->oldest);
	if (tab->count >= tab->nbuckets)
		table_grow(tab);
	struct tnode *n = xcalloc(1, node_size);
	n->key = xstrdup(key);
	n->hash = hash;
	n->last_ms = now_ms;
	size_t b = hash & (tab->nbuckets - 1);
	n->hnext = tab->buckets[b];
	tab->buckets[b] = n;
	tab->count++;
	AGE_LIST_PUSH_NEWEST(tab, n);
	return n;
}

static void table_touch(struct ttable *tab, struct tnode *n, uint64_t now_ms)
{
	n->last_ms = now_ms;
	AGE_LIST_UNLINK(tab, n);
	AGE_LIST_PUSH_NEWEST(tab, n);
}

static void table_expire(const struct throttle *t, struct ttable *tab, uint64_t now_ms)
{
	while (tab->oldest != NULL && !is_fresh(t, tab->oldest->last_ms, now_ms))
		table_remove(tab, tab->oldest);
}

/* --- Throttle --- */

struct throttle *throttle_new(const struct throttle_settings *settings)
{
	struct throttle *t = xcalloc(1, sizeof(*t));
	t->set = *settings;
	/* Without entropy the tables still work, only predictably. */
	if (RAND_bytes((unsigned char *)t->key, sizeof(t->key)) != 1) {
		t->key[0] = (uint64_t)time(NULL);
		t->key[1] = (uint64_t)(uintptr_t)t;
	}
	table_init(&t->sources);
	table_init(&t->users);
	return t;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;
	if (t == NULL)
		return;
	table_deinit(&t->sources);
	table_deinit(&t->users);
	free(t);
	*tp = NULL;
}

void throttle_set_settings(struct throttle *t, const struct throttle_settings *settings)
{
	/* The per-entry arrays are sized by these: a change starts afresh
	 * rather than resizing every entry. */
	bool reset = settings->spray_users != t->set.spray_users ||
		     settings->distributed_sources != t->set.distributed_sources ||
		     settings->max_entries != t->set.max_entries;
	t->set = *settings;
	if (reset) {
		table_clear(&t->sources);
		table_clear(&t->users);
	}
}

static struct source *source_find(const struct throttle *t, const char *ip)
{
	return (struct source *)table_find(&t->sources, ip, siphash(t->key, ip, strlen(ip)));
}

static struct user_rec *user_find(const struct throttle *t, const char *user)
{
	return (struct user_rec *)table_find(&t->users, user, siphash(t->key, user, strlen(user)));
}

static bool source_spraying(const struct throttle *t, const struct source *s)
{
	return t->set.spray_users > 0 && s->nusers >= t->set.spray_users;
}

static uint32_t saturating_double(uint32_t v)
{
	return v > UINT32_MAX / 2 ? UINT32_MAX : v * 2;
}

/* The penalty after n consecutive failures: initial, doubling, capped. */
static uint32_t source_delay(const struct throttle *t, unsigned failures)
{
	uint32_t max = t->set.max_delay_ms;
	uint32_t d = t->set.initial_delay_ms;
	if (failures == 0)
		return 0;
	for (unsigned i = 1; i < failures && d < max; i++)
		d = saturating_double(d);
	return d < max ? d : max;
}

static unsigned user_fresh_sources(const struct throttle *t, const struct user_rec *u,
				   uint64_t now_ms)
{
	unsigned n = 0;
	for (unsigned i = 0; i < u->nslots; i++) {
		if (is_fresh(t, u->slots[i].last_ms, now_ms))
			n++;
	}
	return n;
}

void throttle_check(struct throttle *t, const char *ip, const char *user, uint64_t now_ms,
		    struct throttle_verdict *verdict_r)
{
	memset(verdict_r, 0, sizeof(*verdict_r));
	table_expire(t, &t->sources, now_ms);
	table_expire(t, &t->users, now_ms);

	const struct source *s = source_find(t, ip);
	if (s != NULL) {
		verdict_r->delay_ms = source_delay(t, s->failures);
		if (source_spraying(t, s)) {
			verdict_r->spraying = true;
			verdict_r->delay_ms = saturating_double(t->set.max_delay_ms);
		}
	}
	const struct user_rec *u = user != NULL ? user_find(t, user) : NULL;
	if (u != NULL && t->set.distributed_sources > 0 &&
	    user_fresh_sources(t, u, now_ms) >= t->set.distributed_sources) {
		verdict_r->distributed = true;
		if (verdict_r->delay_ms < t->set.max_delay_ms)
			verdict_r->delay_ms = t->set.max_delay_ms;
	}
}

static void source_add_user(const struct throttle *t, struct source *s, uint64_t user_hash)
{
	for (unsigned i = 0; i < s->nusers; i++) {
		if (s->users[i] == user_hash)
			return;
	}
	if (s->nusers < t->set.spray_users)
		s->users[s->nusers++] = user_hash;
}

/* Records ip against u: refreshes its slot, or takes an expired one, a free
 * one, or else the stalest. */
static void user_add_source(const struct throttle *t, struct user_rec *u, uint64_t ip_hash,
			    uint64_t now_ms)
{
	unsigned cap = t->set.distributed_sources;
	unsigned pick = cap;
	for (unsigned i = 0; i < u->nslots; i++) {
		if (u->slots[i].ip == ip_hash) {
			pick = i;
			break;
		}
		if (pick == cap && !is_fresh(t, u->slots[i].last_ms, now_ms))
			pick = i;
	}
	if (pick == cap) {
		if (u->nslots < cap) {
			pick = u->nslots++;
		} else {
			pick = 0;
			for (unsigned i = 1; i < u->nslots; i++) {
				if (u->slots[i].last_ms < u->slots[pick].last_ms)
					pick = i;
			}
		}
	}
	u->slots[pick].ip = ip_hash;
	u->slots[pick].last_ms = now_ms;
}

void throttle_failure(struct throttle *t, const char *ip, const char *user, uint64_t now_ms)
{
	table_expire(t, &t->sources, now_ms);
	table_expire(t, &t->users, now_ms);

	uint64_t ip_hash = siphash(t->key, ip, strlen(ip));
	struct source *s = (struct source *)table_find(&t->sources, ip, ip_hash);
	if (s == NULL)
		s = (struct source *)table_add(t, &t->sources, ip, ip_hash,
					       sizeof(*s) + t->set.spray_users * sizeof(s->users[0]),
					       now_ms);
	else
		table_touch(&t->sources, &s->node, now_ms);
	if (s->failures < UINT_MAX)
		s->failures++;
	if (user == NULL)
		return;

	uint64_t user_hash = siphash(t->key, user, strlen(user));
	source_add_user(t, s, user_hash);
	if (t->set.distributed_sources == 0)
		return;
	struct user_rec *u = (struct user_rec *)table_find(&t->users, user, user_hash);
	if (u == NULL)
		u = (struct user_rec *)table_add(t, &t->users, user, user_hash,
						 sizeof(*u) + t->set.distributed_sources * sizeof(u->slots[0]),
						 now_ms);
	else
		table_touch(&t->users, &u->node, now_ms);
	user_add_source(t, u, ip_hash, now_ms);
}

void throttle_success(struct throttle *t, const char *ip, const char *user, uint64_t now_ms)
{
	table_expire(t, &t->sources, now_ms);
	table_expire(t, &t->users, now_ms);

	uint64_t ip_hash = siphash(t->key, ip, strlen(ip));
	struct source *s = (struct source *)table_find(&t->sources, ip, ip_hash);
	/* A spraying source that guessed one password stays slow. Otherwise
	 * the penalty goes, but the users it failed against are remembered:
	 * logging into its own account between guesses must not hide a
	 * spray. */
	if (s != NULL && !source_spraying(t, s)) {
		s->failures = 0;
		if (s->nusers == 0)
			table_remove(&t->sources, &s->node);
	}
	struct user_rec *u = user != NULL ? user_find(t, user) : NULL;
	if (u != NULL) {
		for (unsigned i = 0; i < u->nslots; i++) {
			if (u->slots[i].ip == ip_hash) {
				u->slots[i] = u->slots[--u->nslots];
				break;
			}
		}
		if (u->nslots == 0)
			table_remove(&t->users, &u->node);
	}
}

unsigned throttle_penalized_sources(const struct throttle *t, uint64_t now_ms)
{
	unsigned n = 0;
	for (const struct tnode *node = t->sources.newest;
	     node != NULL && is_fresh(t, node->last_ms, now_ms); node = node->older) {
		const struct source *s = (const struct source *)node;
		if (s->failures > 0 || source_spraying(t, s))
			n++;
	}
	return n;
}
