/* Metrics: counters and gauges each worker keeps in a shared memory slot
 * of its own, summed and served by the master in the Prometheus text format
 * (http.c). One writer per slot (the worker's loop), relaxed atomic
 * increments; the master reads with relaxed loads, so a scrape never takes
 * a lock or touches an IMAP loop. A restarted worker reuses its slot: the
 * counters go on (totals survive restarts) and its gauges start from zero,
 * since the old worker's sessions died with it. */
#ifndef POSTERN_METRICS_METRICS_H
#define POSTERN_METRICS_METRICS_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define METRICS_MAX_LISTENERS 16
#define METRICS_MAX_COMMANDS 64
#define METRICS_LATENCY_BUCKETS 14

enum metrics_close {
	METRICS_CLOSE_OK,		/* logout, or the client hung up between commands */
	METRICS_CLOSE_TLS_FAILED,
	METRICS_CLOSE_TIMEOUT,
	METRICS_CLOSE_LIMIT,
	METRICS_CLOSE_ERROR,
	METRICS_CLOSE_COUNT,
};

enum metrics_tls_failure {
	METRICS_TLS_NO_SHARED_CIPHER,
	METRICS_TLS_PROTOCOL_VERSION,
	METRICS_TLS_ALERT,
	METRICS_TLS_TIMEOUT,
	METRICS_TLS_OTHER,
	METRICS_TLS_FAILURE_COUNT,
};

enum metrics_mechanism { METRICS_MECH_LOGIN, METRICS_MECH_PLAIN, METRICS_MECH_COUNT };
enum metrics_login_result {
	METRICS_LOGIN_OK,
	METRICS_LOGIN_FAILED,
	METRICS_LOGIN_UNAVAILABLE,	/* right password, store could not be opened */
	METRICS_LOGIN_LIMIT,		/* right password, too many sessions of the user */
	METRICS_LOGIN_RESULT_COUNT,
};
enum metrics_result { METRICS_OK, METRICS_NO, METRICS_BAD, METRICS_RESULT_COUNT };
enum metrics_session_state {
	METRICS_STATE_NOT_AUTH,
	METRICS_STATE_AUTH,
	METRICS_STATE_SELECTED,
	METRICS_STATE_COUNT,
};
/* Abuse limits (core/limits.h), each counted when it bites. */
enum metrics_limit {
	METRICS_LIMIT_CONNECTIONS_PER_IP,	/* connection refused at accept */
	METRICS_LIMIT_SESSIONS_PER_USER,	/* login refused */
	METRICS_LIMIT_SESSIONS_PER_USER_IP,	/* login refused */
	METRICS_LIMIT_COMMAND_RATE,		/* a session's input paused */
	METRICS_LIMIT_OUTPUT_BUFFER,		/* a slow reader disconnected */
	METRICS_LIMIT_OUTPUT_STALLED,		/* a reader that stopped, disconnected */
	METRICS_LIMIT_SEARCH_BODY_READS,	/* a SEARCH stopped */
	METRICS_LIMIT_COUNT,
};
enum metrics_delivery { METRICS_DELIVERY_OK, METRICS_DELIVERY_REJECTED, METRICS_DELIVERY_TEMPFAIL, METRICS_DELIVERY_COUNT };

#define METRICS_TLS_VERSIONS 3		/* TLSv1.2, TLSv1.3, other */
#define METRICS_TLS_CIPHERS 11		/* the known list in metrics.c, then "other" */

struct metrics_histogram {
	uint64_t buckets[METRICS_LATENCY_BUCKETS];	/* not cumulative; the last is +Inf */
	uint64_t count;
	uint64_t sum_us;
};

/* One worker's slot. Everything is a counter unless it says gauge. */
struct metrics_worker {
	uint64_t restarts;
	uint64_t connections_accepted[METRICS_MAX_LISTENERS];
	uint64_t connections_closed[METRICS_MAX_LISTENERS][METRICS_CLOSE_COUNT];
	uint64_t connections_refused[METRICS_MAX_LISTENERS];	/* over a limit at accept */
	uint64_t tls_handshakes[METRICS_TLS_VERSIONS][METRICS_TLS_CIPHERS];
	uint64_t tls_failures[METRICS_TLS_FAILURE_COUNT];
	uint64_t starttls_upgrades;
	uint64_t logins[METRICS_MECH_COUNT][METRICS_LOGIN_RESULT_COUNT];
	int64_t sessions[METRICS_STATE_COUNT];			/* gauge */
	int64_t idle_sessions;					/* gauge */
	uint64_t commands[METRICS_MAX_COMMANDS][METRICS_RESULT_COUNT];
	struct metrics_histogram command_latency[METRICS_MAX_COMMANDS];
	uint64_t bytes_in, bytes_out;
	uint64_t deliveries[METRICS_DELIVERY_COUNT];
	struct metrics_histogram delivery_latency;
	uint64_t store_errors;
	uint64_t throttled_logins;
	uint64_t login_cache_hits;	/* passwords accepted by the verified-login cache */
	int64_t throttled_sources;				/* gauge */
	uint64_t slow_commands;
	uint64_t limits[METRICS_LIMIT_COUNT];
	/* Written by the worker's indexer thread (atomics, as the loop's). */
	uint64_t search_indexed;	/* bodies put into users' search.db */
	int64_t search_index_queue;	/* gauge: users waiting for the indexer */
};

struct metrics_shared;

/* Maps the shared region for worker_count slots (before forking). NULL
 * on failure (logged); everything then runs without metrics. */
struct metrics_shared *metrics_shared_new(unsigned worker_count);
void metrics_shared_free(struct metrics_shared **shared);
/* The slot of worker index without touching it (the master's view). */
struct metrics_worker *metrics_worker_slot_peek(struct metrics_shared *shared, unsigned index);
/* The slot of worker index; zeroes its gauges (a fresh start). */
struct metrics_worker *metrics_worker_slot(struct metrics_shared *shared, unsigned index);

#define METRIC_ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define METRIC_INC(field) METRIC_ADD(field, 1)
#define METRIC_DEC(field) __atomic_fetch_sub(&(field), 1, __ATOMIC_RELAXED)

void metrics_observe(struct metrics_histogram *h, uint64_t microseconds);
unsigned metrics_tls_version_index(const char *version);
unsigned metrics_tls_cipher_index(const char *cipher);
enum metrics_tls_failure metrics_tls_failure_from(const char *reason);
enum metrics_close metrics_close_from(const char *reason);

/* What the master adds that no worker knows. */
struct metrics_cert {
	const char *name;
	time_t not_after;
};

struct metrics_labels {
	const char *const *listener_names;	/* by listener index */
	size_t listener_count;
	const char *const *command_names;	/* by command index */
	size_t command_count;
	const struct metrics_cert *certs;
	size_t cert_count;
	unsigned workers_running;
};

/* Appends the Prometheus text exposition (format 0.0.4) of all slots. */
void metrics_render(const struct metrics_shared *shared, const struct metrics_labels *labels, struct buf *out);

#endif
