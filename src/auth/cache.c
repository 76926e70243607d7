#include "auth/cache.h"
#include "core/age_list.h"
#include "core/limits.h"
#include "core/xalloc.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* A chained hash table by user name plus a list in order of verification.
 * Every entry lives for the same ttl, so the oldest end of the list is both
 * what expires first and what is evicted when the cache is full: O(1) per
 * entry, as in throttle.c.
 *
 * The key and the entries share one anonymous mapping, MADV_DONTDUMP, with
 * room for max_entries; unused entries cost address space only. Entries are
 * never malloc'd, so no keyed hash is left behind in freed heap memory.
 *
 * Buckets are picked with FNV-1a, unkeyed: only names whose password was
 * verified get in, so nobody can fill a chain without the passwords.
 * Lookups for other names walk those short chains and miss. */

#define CACHE_KEY_LEN 32
#define MIN_BUCKETS 16

struct centry {
	struct centry *hnext;		/* next in the bucket, or in the free list */
	struct centry *newer, *older;	/* order of verification */
	uint64_t verified_ms;		/* when the slow check succeeded */
	uint32_t hash;			/* of user */
	unsigned char password_mac[AUTH_CACHE_MAC_LEN];
	unsigned char stored_mac[AUTH_CACHE_MAC_LEN];
	char user[LIMIT_USER_LEN + 1];
};

/* The mapping: what a core dump must not show. */
struct cache_map {
	unsigned char key[CACHE_KEY_LEN];
	struct centry entries[];
};

struct auth_cache {
	struct auth_cache_settings set;
	struct cache_map *map;
	size_t map_size;
	unsigned used;			/* entries ever handed out of the mapping */
	struct centry *free_list;	/* entries given back */
	struct centry **buckets;	/* heap: pointers only, nothing secret */
	size_t nbuckets;		/* a power of two */
	unsigned count;
	struct centry *newest, *oldest;
	EVP_MAC *hmac;
};

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* --- The mapping --- */

static struct cache_map *map_new(unsigned entries, size_t *size_r)
{
	size_t size = sizeof(struct cache_map) + (size_t)entries * sizeof(struct centry);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Fail rather than cache without it: a dump must not hold key and MACs. */
	if (madvise(p, size, MADV_DONTDUMP) < 0) {
		munmap(p, size);
		return NULL;
	}
	*size_r = size;
	return p;
}

static void map_free(struct cache_map *map, size_t size)
{
	if (map == NULL)
		return;
	/* Only the pages ever used hold anything; cleansing the rest would
	 * fault them in for nothing, so wipe the key and let munmap drop
	 * the entries (removed entries were wiped one by one already). */
	OPENSSL_cleanse(map->key, sizeof(map->key));
	munmap(map, size);
}

static size_t buckets_for(unsigned entries)
{
	size_t n = MIN_BUCKETS;
	while (n < entries / 2 + 1)
		n *= 2;
	return n;
}

/* --- Entries --- */

static struct centry *entry_find(const struct auth_cache *c, const char *user, uint32_t hash)
{
	for (struct centry *e = c->buckets[hash & (c->nbuckets - 1)]; e != NULL; e = e->hnext) {
		if (e->hash == hash && strcmp(e->user, user) == 0)
			return e;
	}
	return NULL;
}

static void entry_remove(struct auth_cache *c, struct centry *e)
{
	struct centry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	AGE_LIST_UNLINK(c, e);
	c->count--;
	OPENSSL_cleanse(e, sizeof(*e));
	e->hnext = c->free_list;
	c->free_list = e;
}

/* A fresh entry for user, evicting the oldest when full. */
static struct centry *entry_add(struct auth_cache *c, const char *user, uint32_t hash)
{
	while (c->count >= c->set.max_entries)
		entry_remove(c, c->oldest);
	struct centry *e = c->free_list;
	if (e != NULL)
		c->free_list = e->hnext;
	else
		e = &c->map->entries[c->used++];
	memset(e, 0, sizeof(*e));
	strcpy(e->user, user);	/* length checked by the caller */
	e->hash = hash;
	size_t b = hash & (c->nbuckets - 1);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	c->count++;
	AGE_LIST_PUSH_NEWEST(c, e);
	return e;
}

static bool is_expired(const struct auth_cache *c, const struct centry *e, uint64_t now_ms)
{
	return now_ms >= e->verified_ms && now_ms - e->verified_ms >= c->set.ttl_ms;
}

static void expire_oldest(struct auth_cache *c, uint64_t now_ms)
{
	while (c->oldest != NULL && is_expired(c, c->oldest, now_ms))
		entry_remove(c, c->oldest);
}

static void cache_clear(struct auth_cache *c)
{
	while (c->oldest != NULL)
		entry_remove(c, c->oldest);
}

/* --- Keyed hashes --- */

struct mac_part {
	const void *data;
	size_t len;
};

/* HMAC-SHA256 under the worker's key over the concatenated parts. */
static int mac_parts(const struct auth_cache *c, const struct mac_part *parts, size_t n,
		     unsigned char out[AUTH_CACHE_MAC_LEN])
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(c->hmac);
	bool ok = ctx != NULL && EVP_MAC_init(ctx, c->map->key, sizeof(c->map->key), params) == 1;
	for (size_t i = 0; ok && i < n; i++)
		ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len) == 1;
	size_t out_len = 0;
	ok = ok && EVP_MAC_final(ctx, out, &out_len, AUTH_CACHE_MAC_LEN) == 1 && out_len == AUTH_CACHE_MAC_LEN;
	/* Frees (and OpenSSL cleanses) the copy of the key the context made. */
	EVP_MAC_CTX_free(ctx);
	return ok ? 0 : -1;
}

int auth_cache_ticket(const struct auth_cache *c, const char *user, const char *stored,
		      const char *password, size_t password_len, struct auth_cache_ticket *ticket_r)
{
	/* User names hold no NUL (passwd_user_name_valid), so the NUL after
	 * the user ends it unambiguously; the labels keep the two MACs from
	 * ever being equal for related inputs. */
	const struct mac_part pw[] = {
		{ "password", sizeof("password") },
		{ user, strlen(user) + 1 },
		{ password, password_len },
	};
	const struct mac_part st[] = {
		{ "stored", sizeof("stored") },
		{ stored, strlen(stored) },
	};
	memset(ticket_r, 0, sizeof(*ticket_r));
	if (mac_parts(c, pw, sizeof(pw) / sizeof(pw[0]), ticket_r->password_mac) < 0 ||
	    mac_parts(c, st, sizeof(st) / sizeof(st[0]), ticket_r->stored_mac) < 0) {
		auth_cache_ticket_clear(ticket_r);
		return -1;
	}
	ticket_r->valid = true;
	return 0;
}

void auth_cache_ticket_clear(struct auth_cache_ticket *ticket)
{
	OPENSSL_cleanse(ticket, sizeof(*ticket));
}

/* --- The cache --- */

static unsigned bounded_entries(const struct auth_cache_settings *settings)
{
	return settings->max_entries > 0 ? settings->max_entries : 1;
}

struct auth_cache *auth_cache_new(const struct auth_cache_settings *settings, const char **error_r)
{
	struct auth_cache *c = xcalloc(1, sizeof(*c));
	c->set = *settings;
	c->set.max_entries = bounded_entries(settings);
	c->map = map_new(c->set.max_entries, &c->map_size);
	if (c->map == NULL) {
		*error_r = "cannot map memory excluded from core dumps";
		free(c);
		return NULL;
	}
	/* A predictable key would let a memory reader's guesses run at HMAC
	 * speed anyway, but unlike throttle.c's table key there is no
	 * fallback: without entropy, no cache. */
	if (RAND_bytes(c->map->key, sizeof(c->map->key)) != 1) {
		*error_r = "no entropy for the cache key";
		auth_cache_free(&c);
		return NULL;
	}
	c->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (c->hmac == NULL) {
		*error_r = "OpenSSL has no HMAC";
		auth_cache_free(&c);
		return NULL;
	}
	c->nbuckets = buckets_for(c->set.max_entries);
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	return c;
}

void auth_cache_free(struct auth_cache **cp)
{
	struct auth_cache *c = *cp;
	if (c == NULL)
		return;
	if (c->buckets != NULL)
		cache_clear(c);
	map_free(c->map, c->map_size);
	free(c->buckets);
	EVP_MAC_free(c->hmac);
	free(c);
	*cp = NULL;
}

/* A mapping for a new bound: entries are forgotten (they only cost one
 * slow check each to relearn), the key stays. */
static void resize(struct auth_cache *c, unsigned max_entries)
{
	size_t size;
	struct cache_map *map = map_new(max_entries, &size);
	if (map == NULL)
		return;
	cache_clear(c);
	memcpy(map->key, c->map->key, sizeof(map->key));
	map_free(c->map, c->map_size);
	c->map = map;
	c->map_size = size;
	c->used = 0;
	c->free_list = NULL;
	free(c->buckets);
	c->nbuckets = buckets_for(max_entries);
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	c->set.max_entries = max_entries;
}

void auth_cache_set_settings(struct auth_cache *c, const struct auth_cache_settings *settings)
{
	unsigned max_entries = bounded_entries(settings);
	if (max_entries != c->set.max_entries)
		resize(c, max_entries);
	c->set.ttl_ms = settings->ttl_ms;
	if (c->set.ttl_ms == 0)
		cache_clear(c);
}

bool auth_cache_enabled(const struct auth_cache *c)
{
	return c->set.ttl_ms > 0;
}

bool auth_cache_lookup(struct auth_cache *c, const char *user, const struct auth_cache_ticket *ticket,
		       uint64_t now_ms)
{
	if (!auth_cache_enabled(c) || !ticket->valid)
		return false;
	expire_oldest(c, now_ms);
	struct centry *e = entry_find(c, user, name_hash(user));
	if (e == NULL)
		return false;
	if (CRYPTO_memcmp(e->stored_mac, ticket->stored_mac, AUTH_CACHE_MAC_LEN) != 0) {
		/* The password changed (or the file was replaced): stale for
		 * every password, so drop it now. */
		entry_remove(c, e);
		return false;
	}
	/* A wrong password leaves the entry alone: a guesser must not be
	 * able to make the owner's next login slow. */
	return CRYPTO_memcmp(e->password_mac, ticket->password_mac, AUTH_CACHE_MAC_LEN) == 0;
}

void auth_cache_remember(struct auth_cache *c, const char *user, const struct auth_cache_ticket *ticket,
			 uint64_t now_ms)
{
	if (!auth_cache_enabled(c) || !ticket->valid || strlen(user) > LIMIT_USER_LEN)
		return;
	expire_oldest(c, now_ms);
	uint32_t hash = name_hash(user);
	struct centry *e = entry_find(c, user, hash);
	if (e != NULL) {
		AGE_LIST_UNLINK(c, e);
		AGE_LIST_PUSH_NEWEST(c, e);
	} else {
		e = entry_add(c, user, hash);
	}
	memcpy(e->password_mac, ticket->password_mac, AUTH_CACHE_MAC_LEN);
	memcpy(e->stored_mac, ticket->stored_mac, AUTH_CACHE_MAC_LEN);
	e->verified_ms = now_ms;
}

unsigned auth_cache_count(const struct auth_cache *c)
{
	return c->count;
}
