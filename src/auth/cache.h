/* The verified-login cache: a worker remembers, for a while, that a user's
 * password was verified against the user's stored hash, so a client that
 * logs in again and again with the same password (phones, desktop clients
 * reconnecting) skips the deliberately slow hash after the first time.
 *
 * Only successes are remembered; a failure never is, so guessing gets no
 * faster. An entry holds the user name and two keyed hashes (HMAC-SHA256
 * under a random key made by auth_cache_new): one of the password, bound
 * to the user name, and one of the stored hash it was verified against, so
 * that a password change (or a passwd file reload that changes the hash)
 * makes the entry useless. No password is kept. The key and the entries live
 * in one mapping of their own, marked MADV_DONTDUMP: a core dump holds
 * neither (with both, an offline guesser would run at HMAC speed instead of
 * the slow hash's).
 *
 * An entry expires ttl_ms after the verification that made it (a hit does
 * not extend it: at least one real verification per ttl). The number of
 * entries is bounded; when full, the oldest is evicted.
 *
 * Loop thread only: no locks. Time is passed in, in milliseconds, so tests
 * control it; it is expected not to go backwards. See docs/design.md for
 * the security reasoning. */
#ifndef POSTERN_AUTH_CACHE_H
#define POSTERN_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_CACHE_MAC_LEN 32		/* HMAC-SHA256 */

struct auth_cache_settings {
	uint64_t ttl_ms;		/* how long a verification is trusted; 0: cache off */
	unsigned max_entries;		/* per worker, at least 1 */
};

/* What one login offers, reduced to keyed hashes. Made before the password
 * goes to the hashing pool (which wipes it) and kept until the outcome is
 * known; auth_cache_ticket_clear() wipes it. */
struct auth_cache_ticket {
	unsigned char password_mac[AUTH_CACHE_MAC_LEN];	/* HMAC(key, user, password) */
	unsigned char stored_mac[AUTH_CACHE_MAC_LEN];	/* HMAC(key, stored hash) */
	bool valid;					/* computed successfully */
};

struct auth_cache;

/* Makes the key (RAND_bytes) and maps room for max_entries. NULL with a
 * static message in *error_r when there is no entropy or no memory; the
 * caller then runs without a cache (every login takes the slow path). */
struct auth_cache *auth_cache_new(const struct auth_cache_settings *settings, const char **error_r);
/* Wipes and unmaps everything; sets *cache to NULL; accepts NULL. */
void auth_cache_free(struct auth_cache **cache);
/* A new ttl applies to the entries kept (they expire ttl after their
 * verification). A ttl of 0 or a new max_entries empties the cache. Keeps
 * the old settings and entries when a new mapping cannot be made. */
void auth_cache_set_settings(struct auth_cache *cache, const struct auth_cache_settings *settings);
/* False when ttl_ms is 0: lookups always miss and nothing is remembered,
 * so callers need not make tickets. */
bool auth_cache_enabled(const struct auth_cache *cache);

/* Fills *ticket_r for user offering password against stored (the hash the
 * password is about to be verified against). Returns 0, or -1 when OpenSSL
 * fails (the ticket is then not valid and lookups with it miss). */
int auth_cache_ticket(const struct auth_cache *cache, const char *user, const char *stored,
		      const char *password, size_t password_len, struct auth_cache_ticket *ticket_r);
void auth_cache_ticket_clear(struct auth_cache_ticket *ticket);

/* True when user has an unexpired entry made against the same stored hash
 * with the same password (compared in constant time). An expired entry, or
 * one made against another stored hash, is dropped. */
bool auth_cache_lookup(struct auth_cache *cache, const char *user, const struct auth_cache_ticket *ticket,
		       uint64_t now_ms);
/* Call only after the slow check said the password matches: remembers
 * the ticket for user from now_ms, replacing the user's entry if any. Does
 * nothing when the cache is off or the ticket not valid. */
void auth_cache_remember(struct auth_cache *cache, const char *user, const struct auth_cache_ticket *ticket,
			 uint64_t now_ms);
/* Entries held, expired ones not yet dropped included (for tests). */
unsigned auth_cache_count(const struct auth_cache *cache);

#endif
