/* Login throttling. Failed logins slow their source down: the delay before a
 * source's next answer doubles from auth_failure_delay to
 * auth_failure_delay_max (Dovecot's auth penalty). Failures are also counted
 * per login name, so that
 *   - one source failing against many different users (password spraying:
 *     spray_users or more distinct names) gets the maximum delay doubled,
 *   - one user failing from many sources (a distributed attack) has every
 *     attempt on that name delayed,
 * and both are reported so the caller logs them. A correct password is
 * answered after the delay like any other: the throttle slows attackers, it
 * never locks out the owner. Entries expire after quiet periods, and the
 * tables are bounded (oldest entries evicted first).
 *
 * A spray_users or distributed_sources of 0 turns that detection off; a
 * forget_after_ms of 0 never forgets (the bound still holds). Times are
 * expected not to go backwards.
 *
 * Time is passed in, in milliseconds, so tests control it. The state lives
 * in one worker; see docs/design.md for why it is not shared. */
#ifndef POSTERN_AUTH_THROTTLE_H
#define POSTERN_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct throttle_settings {
	uint32_t initial_delay_ms;	/* first penalty, e.g. 2000 */
	uint32_t max_delay_ms;		/* cap for one source, e.g. 15000 */
	unsigned spray_users;		/* distinct users from one source = spraying, e.g. 5 */
	unsigned distributed_sources;	/* distinct sources against one user, e.g. 10 */
	uint32_t forget_after_ms;	/* an entry quiet this long is forgotten, e.g. 15 min */
	unsigned max_entries;		/* per table, e.g. 65536 */
};

struct throttle_verdict {
	uint32_t delay_ms;		/* wait this long before answering */
	bool spraying;			/* the source has failed against many users */
	bool distributed;		/* the user has failed from many sources */
};

struct throttle;

struct throttle *throttle_new(const struct throttle_settings *settings);
void throttle_free(struct throttle **t);
/* Changing spray_users, distributed_sources or max_entries forgets all
 * state; the other settings apply to the state kept. */
void throttle_set_settings(struct throttle *t, const struct throttle_settings *settings);

/* The delay to apply before answering a login attempt from ip for user
 * (user may be NULL when not known yet). */
void throttle_check(struct throttle *t, const char *ip, const char *user, uint64_t now_ms,
		    struct throttle_verdict *verdict_r);
void throttle_failure(struct throttle *t, const char *ip, const char *user, uint64_t now_ms);
/* A success clears the source's penalty unless it is spraying, and clears the
 * user's record of failures from that source. */
void throttle_success(struct throttle *t, const char *ip, const char *user, uint64_t now_ms);
/* Number of sources currently under a penalty (for metrics). */
unsigned throttle_penalized_sources(const struct throttle *t, uint64_t now_ms);

#endif
