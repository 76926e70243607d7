#include "metrics/metrics.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct metrics_shared {
	unsigned count;
	size_t map_size;
	struct metrics_worker *slots;	/* MAP_SHARED: survives fork */
};

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bucket_bounds_us[METRICS_LATENCY_BUCKETS - 1] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000,
};

static const char *const tls_versions[METRICS_TLS_VERSIONS] = { "TLSv1.2", "TLSv1.3", "other" };
static const char *const tls_ciphers[METRICS_TLS_CIPHERS] = {
	"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
	"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305", "DHE-RSA-AES256-GCM-SHA384",
	"other",
};
static const char *const close_names[METRICS_CLOSE_COUNT] = { "ok", "tls_failed", "timeout", "limit", "error" };
static const char *const tls_failure_names[METRICS_TLS_FAILURE_COUNT] = {
	"no_shared_cipher", "protocol_version", "alert", "timeout", "other",
};
static const char *const mechanism_names[METRICS_MECH_COUNT] = { "LOGIN", "PLAIN" };
static const char *const login_result_names[METRICS_LOGIN_RESULT_COUNT] = { "ok", "failed", "unavailable", "limit" };
static const char *const limit_names[METRICS_LIMIT_COUNT] = {
	"connections_per_ip", "sessions_per_user", "sessions_per_user_ip", "command_rate",
	"output_buffer", "output_stalled", "search_body_reads",
};
static const char *const result_names[METRICS_RESULT_COUNT] = { "ok", "no", "bad" };
static const char *const state_names[METRICS_STATE_COUNT] = { "not_authenticated", "authenticated", "selected" };
static const char *const delivery_names[METRICS_DELIVERY_COUNT] = { "ok", "rejected", "tempfail" };

struct metrics_shared *metrics_shared_new(unsigned worker_count)
{
	size_t size = (size_t)worker_count * sizeof(struct metrics_worker);
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		log_msg(LOG_ERROR, "metrics_unavailable", "mmap %zu bytes: %s", size, strerror(errno));
		return NULL;
	}
	struct metrics_shared *shared = xcalloc(1, sizeof(*shared));
	shared->count = worker_count;
	shared->map_size = size;
	shared->slots = map;
	return shared;
}

void metrics_shared_free(struct metrics_shared **sharedp)
{
	struct metrics_shared *shared = *sharedp;
	if (shared == NULL)
		return;
	if (munmap(shared->slots, shared->map_size) < 0)
		log_msg(LOG_WARN, "metrics_unmap", "%s", strerror(errno));
	free(shared);
	*sharedp = NULL;
}

struct metrics_worker *metrics_worker_slot_peek(struct metrics_shared *shared, unsigned index)
{
	return shared != NULL && index < shared->count ? &shared->slots[index] : NULL;
}

struct metrics_worker *metrics_worker_slot(struct metrics_shared *shared, unsigned index)
{
	if (shared == NULL || index >= shared->count)
		return NULL;
	struct metrics_worker *m = &shared->slots[index];
	for (unsigned i = 0; i < METRICS_STATE_COUNT; i++)
		__atomic_store_n(&m->sessions[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&m->idle_sessions, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&m->search_index_queue, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&m->throttled_sources, 0, __ATOMIC_RELAXED);
	return m;
}

void metrics_observe(struct metrics_histogram *h, uint64_t us)
{
	unsigned i = 0;
	while (i < METRICS_LATENCY_BUCKETS - 1 && us > bucket_bounds_us[i])
		i++;
	METRIC_INC(h->buckets[i]);
	METRIC_INC(h->count);
	METRIC_ADD(h->sum_us, us);
}

unsigned metrics_tls_version_index(const char *version)
{
	for (unsigned i = 0; i + 1 < METRICS_TLS_VERSIONS; i++) {
		if (version != NULL && strcmp(version, tls_versions[i]) == 0)
			return i;
	}
	return METRICS_TLS_VERSIONS - 1;
}

unsigned metrics_tls_cipher_index(const char *cipher)
{
	for (unsigned i = 0; i + 1 < METRICS_TLS_CIPHERS; i++) {
		if (cipher != NULL && strcmp(cipher, tls_ciphers[i]) == 0)
			return i;
	}
	return METRICS_TLS_CIPHERS - 1;
}

enum metrics_tls_failure metrics_tls_failure_from(const char *reason)
{
	if (reason == NULL)
		return METRICS_TLS_OTHER;
	if (strstr(reason, "no shared cipher") != NULL)
		return METRICS_TLS_NO_SHARED_CIPHER;
	if (strstr(reason, "protocol") != NULL || strstr(reason, "version") != NULL)
		return METRICS_TLS_PROTOCOL_VERSION;
	if (strstr(reason, "alert") != NULL)
		return METRICS_TLS_ALERT;
	if (strstr(reason, "timeout") != NULL)
		return METRICS_TLS_TIMEOUT;
	return METRICS_TLS_OTHER;
}

enum metrics_close metrics_close_from(const char *reason)
{
	if (reason == NULL)
		return METRICS_CLOSE_ERROR;
	if (strncmp(reason, "tls_failed", 10) == 0)
		return METRICS_CLOSE_TLS_FAILED;
	if (strcmp(reason, "timeout") == 0)
		return METRICS_CLOSE_TIMEOUT;
	if (strncmp(reason, "limit", 5) == 0)
		return METRICS_CLOSE_LIMIT;
	/* "quit": LMTP's QUIT. */
	if (strcmp(reason, "logout") == 0 || strcmp(reason, "eof") == 0 || strcmp(reason, "shutdown") == 0 ||
	    strcmp(reason, "quit") == 0)
		return METRICS_CLOSE_OK;
	return METRICS_CLOSE_ERROR;
}

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int64_t load_signed(const int64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Sums one field over every slot: offset is the field's byte offset. */
static uint64_t sum_at(const struct metrics_shared *s, size_t offset)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < s->count; i++)
		total += load((const uint64_t *)((const char *)&s->slots[i] + offset));
	return total;
}

static int64_t sum_signed_at(const struct metrics_shared *s, size_t offset)
{
	int64_t total = 0;
	for (unsigned i = 0; i < s->count; i++)
		total += load_signed((const int64_t *)((const char *)&s->slots[i] + offset));
	return total;
}

#define OFFSET(field) offsetof(struct metrics_worker, field)

static void header(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_histogram(const struct metrics_shared *s, struct buf *out, const char *name,
			     const char *label, size_t offset)
{
	uint64_t cumulative = 0;
	for (unsigned b = 0; b < METRICS_LATENCY_BUCKETS; b++) {
		cumulative += sum_at(s, offset + offsetof(struct metrics_histogram, buckets) + b * sizeof(uint64_t));
		if (b + 1 < METRICS_LATENCY_BUCKETS)
			buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, label[0] ? "," : "",
				   (double)bucket_bounds_us[b] / 1e6, (unsigned long long)cumulative);
		else
			buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, label[0] ? "," : "",
				   (unsigned long long)cumulative);
	}
	uint64_t sum = sum_at(s, offset + offsetof(struct metrics_histogram, sum_us));
	uint64_t count = sum_at(s, offset + offsetof(struct metrics_histogram, count));
	if (label[0])
		buf_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, label, (double)sum / 1e6, name, label,
			   (unsigned long long)count);
	else
		buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum / 1e6, name, (unsigned long long)count);
}

static void render_connections(const struct metrics_shared *s, const struct metrics_labels *l, struct buf *out)
{
	header(out, "postern_connections_accepted_total", "counter", "Connections accepted, per listener.");
	for (size_t i = 0; i < l->listener_count && i < METRICS_MAX_LISTENERS; i++)
		buf_printf(out, "postern_connections_accepted_total{listener=\"%s\"} %llu\n", l->listener_names[i],
			   (unsigned long long)sum_at(s, OFFSET(connections_accepted[i])));
	header(out, "postern_connections_closed_total", "counter",
	       "Connections closed, per listener and outcome (ok, tls_failed, timeout, limit, error).");
	for (size_t i = 0; i < l->listener_count && i < METRICS_MAX_LISTENERS; i++) {
		for (unsigned o = 0; o < METRICS_CLOSE_COUNT; o++)
			buf_printf(out, "postern_connections_closed_total{listener=\"%s\",outcome=\"%s\"} %llu\n",
				   l->listener_names[i], close_names[o],
				   (unsigned long long)sum_at(s, OFFSET(connections_closed[i][o])));
	}
	header(out, "postern_connections_refused_total", "counter", "Connections refused at accept by a limit.");
	for (size_t i = 0; i < l->listener_count && i < METRICS_MAX_LISTENERS; i++)
		buf_printf(out, "postern_connections_refused_total{listener=\"%s\"} %llu\n", l->listener_names[i],
			   (unsigned long long)sum_at(s, OFFSET(connections_refused[i])));
}

static void render_tls(const struct metrics_shared *s, const struct metrics_labels *l, struct buf *out)
{
	header(out, "postern_tls_handshakes_total", "counter", "Completed TLS handshakes by protocol version and cipher.");
	for (unsigned v = 0; v < METRICS_TLS_VERSIONS; v++) {
		for (unsigned c = 0; c < METRICS_TLS_CIPHERS; c++) {
			uint64_t n = sum_at(s, OFFSET(tls_handshakes[v][c]));
			if (n > 0)
				buf_printf(out, "postern_tls_handshakes_total{version=\"%s\",cipher=\"%s\"} %llu\n",
					   tls_versions[v], tls_ciphers[c], (unsigned long long)n);
		}
	}
	header(out, "postern_tls_handshake_failures_total", "counter", "Failed TLS handshakes by reason.");
	for (unsigned r = 0; r < METRICS_TLS_FAILURE_COUNT; r++)
		buf_printf(out, "postern_tls_handshake_failures_total{reason=\"%s\"} %llu\n", tls_failure_names[r],
			   (unsigned long long)sum_at(s, OFFSET(tls_failures[r])));
	header(out, "postern_starttls_upgrades_total", "counter", "Connections upgraded with STARTTLS.");
	buf_printf(out, "postern_starttls_upgrades_total %llu\n", (unsigned long long)sum_at(s, OFFSET(starttls_upgrades)));
	header(out, "postern_tls_certificate_expiry_timestamp_seconds", "gauge",
	       "Not-after time of each loaded certificate, as a Unix timestamp.");
	for (size_t i = 0; i < l->cert_count; i++)
		buf_printf(out, "postern_tls_certificate_expiry_timestamp_seconds{name=\"%s\"} %lld\n", l->certs[i].name,
			   (long long)l->certs[i].not_after);
}

static void render_sessions(const struct metrics_shared *s, const struct metrics_labels *l, struct buf *out)
{
	header(out, "postern_logins_total", "counter", "Login attempts by mechanism and result.");
	for (unsigned m = 0; m < METRICS_MECH_COUNT; m++) {
		for (unsigned r = 0; r < METRICS_LOGIN_RESULT_COUNT; r++)
			buf_printf(out, "postern_logins_total{mechanism=\"%s\",result=\"%s\"} %llu\n", mechanism_names[m],
				   login_result_names[r], (unsigned long long)sum_at(s, OFFSET(logins[m][r])));
	}
	header(out, "postern_login_throttled_total", "counter", "Login answers delayed by the throttle.");
	buf_printf(out, "postern_login_throttled_total %llu\n", (unsigned long long)sum_at(s, OFFSET(throttled_logins)));
	header(out, "postern_login_cache_hits_total", "counter",
	       "Logins whose password the verified-login cache accepted without hashing it again.");
	buf_printf(out, "postern_login_cache_hits_total %llu\n", (unsigned long long)sum_at(s, OFFSET(login_cache_hits)));
	header(out, "postern_search_indexed_messages_total", "counter",
	       "Message bodies the background indexers put into the full-text index.");
	buf_printf(out, "postern_search_indexed_messages_total %llu\n",
		   (unsigned long long)sum_at(s, OFFSET(search_indexed)));
	header(out, "postern_search_index_queue", "gauge", "Users waiting for a background indexer.");
	buf_printf(out, "postern_search_index_queue %lld\n", (long long)sum_signed_at(s, OFFSET(search_index_queue)));
	header(out, "postern_throttled_sources", "gauge", "Source addresses currently under a login penalty.");
	buf_printf(out, "postern_throttled_sources %lld\n", (long long)sum_signed_at(s, OFFSET(throttled_sources)));
	header(out, "postern_sessions", "gauge", "Open IMAP sessions by state.");
	for (unsigned st = 0; st < METRICS_STATE_COUNT; st++)
		buf_printf(out, "postern_sessions{state=\"%s\"} %lld\n", state_names[st],
			   (long long)sum_signed_at(s, OFFSET(sessions[st])));
	header(out, "postern_idle_sessions", "gauge", "Sessions in IDLE.");
	buf_printf(out, "postern_idle_sessions %lld\n", (long long)sum_signed_at(s, OFFSET(idle_sessions)));
	header(out, "postern_commands_total", "counter", "IMAP commands by name and result.");
	for (size_t c = 0; c < l->command_count && c < METRICS_MAX_COMMANDS; c++) {
		for (unsigned r = 0; r < METRICS_RESULT_COUNT; r++) {
			uint64_t n = sum_at(s, OFFSET(commands[c][r]));
			if (n > 0)
				buf_printf(out, "postern_commands_total{command=\"%s\",result=\"%s\"} %llu\n",
					   l->command_names[c], result_names[r], (unsigned long long)n);
		}
	}
	header(out, "postern_command_duration_seconds", "histogram", "Time from a command's last byte to its tagged reply.");
	for (size_t c = 0; c < l->command_count && c < METRICS_MAX_COMMANDS; c++) {
		if (sum_at(s, OFFSET(command_latency[c].count)) == 0)
			continue;
		char label[96];
		snprintf(label, sizeof(label), "command=\"%s\"", l->command_names[c]);
		render_histogram(s, out, "postern_command_duration_seconds", label, OFFSET(command_latency[c]));
	}
	header(out, "postern_slow_commands_total", "counter", "Commands slower than slow_command_threshold.");
	buf_printf(out, "postern_slow_commands_total %llu\n", (unsigned long long)sum_at(s, OFFSET(slow_commands)));
	header(out, "postern_limit_exceeded_total", "counter",
	       "Times an abuse limit took effect (refused, delayed or disconnected), by limit.");
	for (unsigned i = 0; i < METRICS_LIMIT_COUNT; i++)
		buf_printf(out, "postern_limit_exceeded_total{limit=\"%s\"} %llu\n", limit_names[i],
			   (unsigned long long)sum_at(s, OFFSET(limits[i])));
}

void metrics_render(const struct metrics_shared *s, const struct metrics_labels *l, struct buf *out)
{
	render_connections(s, l, out);
	render_tls(s, l, out);
	render_sessions(s, l, out);
	header(out, "postern_received_bytes_total", "counter", "Bytes read from clients.");
	buf_printf(out, "postern_received_bytes_total %llu\n", (unsigned long long)sum_at(s, OFFSET(bytes_in)));
	header(out, "postern_sent_bytes_total", "counter", "Bytes written to clients.");
	buf_printf(out, "postern_sent_bytes_total %llu\n", (unsigned long long)sum_at(s, OFFSET(bytes_out)));
	header(out, "postern_deliveries_total", "counter", "Deliveries by result.");
	for (unsigned r = 0; r < METRICS_DELIVERY_COUNT; r++)
		buf_printf(out, "postern_deliveries_total{result=\"%s\"} %llu\n", delivery_names[r],
			   (unsigned long long)sum_at(s, OFFSET(deliveries[r])));
	header(out, "postern_delivery_duration_seconds", "histogram", "Time to deliver a message.");
	render_histogram(s, out, "postern_delivery_duration_seconds", "", OFFSET(delivery_latency));
	header(out, "postern_store_errors_total", "counter", "Failures of the mail store (disk, database).");
	buf_printf(out, "postern_store_errors_total %llu\n", (unsigned long long)sum_at(s, OFFSET(store_errors)));
	header(out, "postern_worker_restarts_total", "counter", "Workers restarted after they died.");
	buf_printf(out, "postern_worker_restarts_total %llu\n", (unsigned long long)sum_at(s, OFFSET(restarts)));
	header(out, "postern_workers", "gauge", "Worker processes running.");
	buf_printf(out, "postern_workers %u\n", l->workers_running);
}
