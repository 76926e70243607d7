/* imapload: an IMAP (and LMTP) load generator for postern and Dovecot.
 *
 *	imapload -w WORKLOAD [-h HOST] [-p PORT] [--tls|--starttls|--plain]
 *		 [-u USER] [-P PASS] [-c N] [-d SECONDS] [-m COUNT] [--seed S] ...
 *
 * One process, one epoll loop (il_conn.c), tens of thousands of
 * connections. Every response is checked: a NO, BAD, BYE, timeout or
 * protocol violation stops the run with exit status 1 and a message naming
 * the client, the command and the server's line, so a broken server never
 * produces a number. Lines starting with "RESULT " are for scripts
 * (bench/compare.sh); the rest is for people.
 *
 * Workloads (see usage() and bench/RESULTS.md for what each measures):
 *   mixed      LOGIN, SELECT, FETCH flags, FETCH bodies, STORE, APPEND,
 *              EXPUNGE, LOGOUT, in imaptest's default proportions
 *   idle       N TLS sessions in IDLE; server memory per session
 *   push       N sessions in IDLE, M APPENDs; time until each sees EXISTS
 *   bigbox     a mailbox of M messages: SELECT, FETCH 1:*, a CONDSTORE resync
 *              after 1% of the flags changed, SEARCH, STATUS
 *   deliver    LMTP deliveries per second with N senders
 *   handshake  TLS handshakes per second, full or resumed (--resume) */
#include "il.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static uint64_t g_end_ns;      /* the timed phase ends here */

static void usage(void)
{
	fputs("usage: imapload -w mixed|idle|push|bigbox|deliver|handshake [options]\n"
	      "  -h HOST          server IPv4 address (127.0.0.1)\n"
	      "  -p PORT          port (993 with --tls, 143 otherwise, 24 for deliver)\n"
	      "  --tls | --starttls | --plain   connection security (default --tls)\n"
	      "  -u USER -P PASS  credentials; USER may hold %d (1-based user number)\n"
	      "  --users K        client i logs in as user number i % K + 1 (default: clients)\n"
	      "  -c N             clients / sessions / senders (10)\n"
	      "  -d SECONDS       length of the timed phase (10)\n"
	      "  -m COUNT         mixed: messages per mailbox before timing (20);\n"
	      "                   push: APPENDs (20); bigbox: mailbox size (10000)\n"
	      "  --seed S         message generator seed (1)\n"
	      "  --src N          source addresses 127.0.0.1..N (auto: one per 20000 clients)\n"
	      "  --timeout S      longest wait for any one answer (30)\n"
	      "  --ramp N         connections being set up at once (100)\n"
	      "  --pids P,P       idle: server processes whose memory is summed\n"
	      "  --pid-tree PID   idle: the server's master; it and all descendants are summed\n"
	      "  --resume         handshake: resume sessions with tickets\n"
	      "  --batch N        bigbox: messages per MULTIAPPEND (200)\n"
	      "  --no-search      bigbox: leave out the two SEARCH commands\n"
	      "  -q               no progress messages\n",
	      stderr);
	exit(2);
}

/* ------------------------------------------------------------------ */
/* Common steps */

static void send_login(struct il_conn *c, il_reply_fn *cb, struct il_stat *st)
{
	const char *user = il_user_name(c->id);
	/* Quoted strings: the benchmark's names and passwords never hold
	 * a quote or backslash (checked in main). */
	il_cmd(c, st, cb, "LOGIN \"%s\" \"%s\"", user, il_opt.pass);
}

/* Opens connections 0..n-1 at most il_opt.ramp at a time. */
struct opener {
	int next, n, pending;
	enum il_proto proto;
	il_conn_fn *ready;
	void *(*ud)(int id);
};
static struct opener g_open;

static void opener_more(void)
{
	while (g_open.next < g_open.n && g_open.pending < il_opt.ramp) {
		int id = g_open.next++;
		g_open.pending++;
		il_conn_open(id, g_open.proto, g_open.ud ? g_open.ud(id) : NULL, g_open.ready);
	}
}

/* A workload calls this once a connection's setup is done. */
static void opener_done(void)
{
	g_open.pending--;
	opener_more();
}

static void *message_copy(const struct il_buf *b, size_t *len_r)
{
	*len_r = b->len - b->start;
	void *p = il_xmalloc(*len_r);
	memcpy(p, b->data + b->start, *len_r);
	return p;
}

/* ------------------------------------------------------------------ */
/* mixed: imaptest's default state machine, one round per connection. */

enum { M_CONNECT, M_LOGIN, M_SELECT, M_FETCH, M_FETCH2, M_STORE, M_DELETE, M_EXPUNGE, M_APPEND,
       M_LOGOUT, M_N };
static struct il_stat m_stats[M_N] = {
	{ .name = "CONNECT" }, { .name = "LOGIN" },  { .name = "SELECT" },  { .name = "FETCH" },
	{ .name = "FETCH2" },  { .name = "STORE" },  { .name = "DELETE" },  { .name = "EXPUNGE" },
	{ .name = "APPEND" },  { .name = "LOGOUT" },
};

struct mclient {
	int id;
	struct il_rng rng;
	uint64_t opened_ns;
	uint64_t appended;      /* messages this client appended */
	uint32_t before_expunge;
	int fill_need;          /* fill phase: messages still to append */
	bool fill_expunged;     /* fill phase: EXPUNGE sent */
	struct il_buf msg;
	char *lit;
	size_t litlen;
	int rounds;
};
static struct mclient *g_mc;
static int g_fill_left;
static bool g_mixed_timed;

static void m_open(struct mclient *m);
static void m_select_ok(struct il_conn *c, const struct il_reply *r);
static void m_fetch_ok(struct il_conn *c, const struct il_reply *r);
static void m_fetch2(struct il_conn *c);
static void m_store(struct il_conn *c);
static void m_append(struct il_conn *c);

static bool roll(struct mclient *m, uint32_t percent)
{
	return il_rng_below(&m->rng, 100) < percent;
}

static uint32_t random_seq(struct il_conn *c, struct mclient *m)
{
	return 1 + il_rng_below(&m->rng, c->exists);
}

static void m_closed_reopen(struct mclient *m)
{
	if (!g_mixed_timed) {
		g_fill_left--;
		return;
	}
	if (il_now_ns() < g_end_ns)
		m_open(m);
}

static void m_logout_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	struct mclient *m = c->ud;
	il_conn_close(c);
	m->rounds++;
	m_closed_reopen(m);
}

static void m_logout(struct il_conn *c)
{
	il_cmd(c, &m_stats[M_LOGOUT], m_logout_ok, "LOGOUT");
}

static void m_append_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	struct mclient *m = c->ud;
	free(m->lit);
	m->lit = NULL;
	if (!g_mixed_timed) {
		if (--m->fill_need > 0)
			m_append(c);
		else
			m_logout(c);
		return;
	}
	if (roll(m, 5))
		m_append(c); /* imaptest: APPEND again 5% of the time */
	else
		m_logout(c);
}

static void m_append(struct il_conn *c)
{
	struct mclient *m = c->ud;
	m->msg.start = m->msg.len = 0;
	/* Each client appends its own stream: message numbers from
	 * 10^9 * (id + 1) up, so the fill and timed messages differ. */
	genmail_message(il_opt.seed, 1000000000ull * (uint64_t)(m->id + 1) + m->appended++, &m->msg, NULL);
	m->lit = message_copy(&m->msg, &m->litlen);
	static const char *const texts[] = { "APPEND INBOX (\\Seen)", "" };
	const char *data[1] = { m->lit };
	size_t lens[1] = { m->litlen };
	il_cmd_literals(c, &m_stats[M_APPEND], m_append_ok, 1, texts, data, lens);
}

static void m_expunge_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	struct mclient *m = c->ud;
	/* Our own mailbox (one user per client): the message we marked
	 * must be gone. More may go: a round cut off by the end of an
	 * earlier run can leave a \Deleted message behind. */
	if (il_opt.users >= il_opt.clients && c->exists >= m->before_expunge)
		il_fail("client %d: EXPUNGE left %u messages of %u, the one marked \\Deleted is still there", c->id,
			c->exists, m->before_expunge);
	m_append(c);
}

static void m_delete_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	struct mclient *m = c->ud;
	m->before_expunge = c->exists;
	il_cmd(c, &m_stats[M_EXPUNGE], m_expunge_ok, "EXPUNGE");
}

static void m_delete(struct il_conn *c)
{
	struct mclient *m = c->ud;
	if (c->exists == 0) {
		m_stats[M_DELETE].skipped++;
		m_append(c);
		return;
	}
	il_cmd(c, &m_stats[M_DELETE], m_delete_ok, "STORE %u +FLAGS.SILENT (\\Deleted)", random_seq(c, m));
}

static void m_store_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	m_delete(c);
}

static void m_store(struct il_conn *c)
{
	struct mclient *m = c->ud;
	static const char *const changes[] = { "+FLAGS (\\Flagged)", "-FLAGS (\\Flagged)", "+FLAGS (\\Answered)",
					       "-FLAGS (\\Seen)", "+FLAGS (\\Seen)" };
	if (c->exists == 0 || !roll(m, 50)) {
		if (c->exists == 0)
			m_stats[M_STORE].skipped++;
		m_delete(c);
		return;
	}
	il_cmd(c, &m_stats[M_STORE], m_store_ok, "STORE %u %s", random_seq(c, m),
	       changes[il_rng_below(&m->rng, 5)]);
}

static void m_fetch2_ok(struct il_conn *c, const struct il_reply *r)
{
	struct mclient *m = c->ud;
	if (c->fetches != 1 || c->literal_bytes == 0)
		il_fail("client %d: `%.*s` after BODY.PEEK[] brought %u FETCH responses and %llu literal bytes, "
			"expected one with the message",
			c->id, (int)r->len, r->line, c->fetches, (unsigned long long)c->literal_bytes);
	if (roll(m, 30))
		m_fetch2(c); /* imaptest: FETCH2 again 30% of the time */
	else
		m_store(c);
}

static void m_fetch2(struct il_conn *c)
{
	struct mclient *m = c->ud;
	if (c->exists == 0) {
		m_stats[M_FETCH2].skipped++;
		m_store(c);
		return;
	}
	il_cmd(c, &m_stats[M_FETCH2], m_fetch2_ok, "FETCH %u (UID BODY.PEEK[])", random_seq(c, m));
}

static void m_fetch_ok(struct il_conn *c, const struct il_reply *r)
{
	if (c->fetches != c->exists)
		il_fail("client %d: FETCH 1:* FLAGS brought %u FETCH responses for %u messages (`%.*s`)", c->id,
			c->fetches, c->exists, (int)r->len, r->line);
	m_fetch2(c);
}

static void m_select_ok(struct il_conn *c, const struct il_reply *r)
{
	if (c->exists == UINT32_MAX)
		il_fail("client %d: SELECT OK without an EXISTS response (`%.*s`)", c->id, (int)r->len, r->line);
	struct mclient *m = c->ud;
	if (!g_mixed_timed) {
		/* Fill phase: drop what an earlier run left marked \Deleted,
		 * bring the mailbox to -m messages, then leave. */
		if (!m->fill_expunged) {
			m->fill_expunged = true;
			il_cmd(c, NULL, m_select_ok, "EXPUNGE");
			return;
		}
		if (c->exists < (uint32_t)il_opt.fill) {
			m->fill_need = il_opt.fill - (int)c->exists;
			m_append(c);
			return;
		}
		m_logout(c);
		return;
	}
	if (c->exists == 0) {
		m_stats[M_FETCH].skipped++;
		m_fetch2(c);
		return;
	}
	(void)m;
	il_cmd(c, &m_stats[M_FETCH], m_fetch_ok, "FETCH 1:* (FLAGS)");
}

static void m_login_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	c->exists = UINT32_MAX;
	il_cmd(c, &m_stats[M_SELECT], m_select_ok, "SELECT INBOX");
}

static void m_ready(struct il_conn *c)
{
	struct mclient *m = c->ud;
	il_stat_add(&m_stats[M_CONNECT], il_now_ns() - m->opened_ns);
	if (!g_mixed_timed)
		opener_done();
	send_login(c, m_login_ok, &m_stats[M_LOGIN]);
}

static void m_open(struct mclient *m)
{
	m->opened_ns = il_now_ns();
	il_conn_open(m->id, IL_PROTO_IMAP, m, m_ready);
}

static void *m_ud(int id)
{
	return &g_mc[id];
}

static bool m_fill_done(void)
{
	return g_fill_left == 0;
}

static bool m_timed_done(void)
{
	return il_now_ns() >= g_end_ns;
}

static int run_mixed(void)
{
	int n = il_opt.clients;
	g_mc = calloc((size_t)n, sizeof(*g_mc));
	if (g_mc == NULL)
		il_fail("out of memory");
	for (int i = 0; i < n; i++) {
		g_mc[i].id = i;
		il_rng_seed(&g_mc[i].rng, il_mix(il_opt.seed, (uint64_t)i + 77));
	}
	/* Fill: one connection per distinct user. */
	int fillers = il_opt.users < n ? il_opt.users : n;
	il_log("mixed: filling %d mailbox(es) to %d messages", fillers, il_opt.fill);
	g_fill_left = fillers;
	g_open = (struct opener){ .n = fillers, .proto = IL_PROTO_IMAP, .ready = m_ready, .ud = m_ud };
	for (int i = 0; i < fillers; i++)
		g_mc[i].opened_ns = il_now_ns();
	opener_more();
	il_loop_run(m_fill_done);
	for (int i = 0; i < M_N; i++) {
		m_stats[i].n = 0;
		m_stats[i].skipped = 0;
	}

	il_log("mixed: %d clients for %.0f s", n, il_opt.duration);
	g_mixed_timed = true;
	uint64_t t0 = il_now_ns();
	g_end_ns = t0 + (uint64_t)(il_opt.duration * 1e9);
	il_stat_until_ns = g_end_ns;
	for (int i = 0; i < n; i++)
		m_open(&g_mc[i]);
	il_loop_run(m_timed_done);
	double secs = (double)(il_now_ns() - t0) / 1e9;
	if (secs > il_opt.duration)
		secs = il_opt.duration;

	uint64_t rounds = 0, total = 0;
	for (int i = 0; i < n; i++)
		rounds += (uint64_t)g_mc[i].rounds;
	printf("workload=mixed clients=%d users=%d seconds=%.1f server=%s:%d rounds=%llu\n", n, il_opt.users,
	       secs, il_opt.host, il_opt.port, (unsigned long long)rounds);
	il_stats_print(m_stats, M_N, secs);
	for (int i = 0; i < M_N; i++) {
		struct il_stat *s = &m_stats[i];
		if (i != M_CONNECT)
			total += s->n;
		printf("RESULT mixed cmd=%s count=%zu ops=%.2f p50=%.3f p99=%.3f p999=%.3f\n", s->name, s->n,
		       (double)s->n / secs, il_stat_quantile_ms(s, 0.5), il_stat_quantile_ms(s, 0.99),
		       il_stat_quantile_ms(s, 0.999));
	}
	/* All commands together, for one headline latency. */
	struct il_stat all = { .name = "ALL" };
	for (int i = 1; i < M_N; i++)
		for (size_t k = 0; k < m_stats[i].n; k++) {
			if (all.n == all.cap) {
				all.cap = all.cap ? all.cap * 2 : 4096;
				all.us = il_xrealloc(all.us, all.cap * sizeof(*all.us));
			}
			all.us[all.n++] = m_stats[i].us[k];
		}
	printf("RESULT mixed cmd=ALL count=%zu ops=%.2f p50=%.3f p99=%.3f p999=%.3f\n", all.n, (double)total / secs,
	       il_stat_quantile_ms(&all, 0.5), il_stat_quantile_ms(&all, 0.99), il_stat_quantile_ms(&all, 0.999));
	printf("total: %llu commands, %.1f commands/s, %.1f rounds/s\n", (unsigned long long)total,
	       (double)total / secs, (double)rounds / secs);
	free(all.us);
	return 0;
}

/* ------------------------------------------------------------------ */
/* idle and push: N sessions in IDLE */

struct isess {
	uint32_t base_exists;   /* EXISTS when IDLE began */
	int seen_round;         /* last push round whose EXISTS arrived */
};
static struct isess *g_is;
static struct il_conn **g_iconn;
static int g_idling;
static struct il_stat g_setup = { .name = "SETUP" };
static uint64_t *g_setup_start;
static double g_setup_rate;     /* sessions set up per second */

/* push state */
static int g_round = -1;        /* current push round, -1 before the first */
static uint64_t g_push_t0;
static int g_round_seen;
static bool g_append_ok;
static struct il_stat g_push = { .name = "PUSH" };
static struct il_stat g_push_append = { .name = "APPEND" };
static struct il_conn *g_appender;
static bool g_push_done;
static uint64_t g_round_gap_until;
static char *g_push_msg;
static size_t g_push_len;

static void i_untagged(struct il_conn *c, const char *line, size_t len)
{
	(void)line;
	(void)len;
	struct isess *s = &g_is[c->id];
	if (g_round < 0 || s->seen_round == g_round)
		return;
	if (c->exists >= s->base_exists + (uint32_t)g_round + 1) {
		s->seen_round = g_round;
		il_stat_add(&g_push, il_now_ns() - g_push_t0);
		g_round_seen++;
	}
}

static void i_idling(struct il_conn *c)
{
	g_is[c->id].base_exists = c->exists;
	g_is[c->id].seen_round = -1;
	il_stat_add(&g_setup, il_now_ns() - g_setup_start[c->id]);
	g_idling++;
	il_conn_trim(c);
	opener_done();
	if (g_idling % 1000 == 0)
		il_log("%d sessions in IDLE", g_idling);
}

static void i_select_ok(struct il_conn *c, const struct il_reply *r)
{
	if (c->exists == UINT32_MAX)
		il_fail("client %d: SELECT OK without an EXISTS response (`%.*s`)", c->id, (int)r->len, r->line);
	if (!(c->caps & IL_CAP_IDLE))
		il_fail("client %d: the server does not advertise IDLE", c->id);
	c->on_untagged = i_untagged;
	il_idle(c, i_idling);
}

static void i_login_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	c->exists = UINT32_MAX;
	il_cmd(c, NULL, i_select_ok, "SELECT INBOX");
}

static void i_ready(struct il_conn *c)
{
	g_iconn[c->id] = c;
	send_login(c, i_login_ok, NULL);
}

static void *i_ud(int id)
{
	g_setup_start[id] = il_now_ns();
	return NULL;
}

static bool i_all_idle(void)
{
	return g_idling == il_opt.clients;
}

static uint64_t g_wait_until;
static bool wait_done(void)
{
	return il_now_ns() >= g_wait_until;
}

static void idle_sessions_open(void)
{
	int n = il_opt.clients;
	g_is = calloc((size_t)n, sizeof(*g_is));
	g_iconn = calloc((size_t)n, sizeof(*g_iconn));
	g_setup_start = calloc((size_t)n, sizeof(*g_setup_start));
	if (g_is == NULL || g_iconn == NULL || g_setup_start == NULL)
		il_fail("out of memory");
	g_open = (struct opener){ .n = n, .proto = IL_PROTO_IMAP, .ready = i_ready, .ud = i_ud };
	uint64_t t0 = il_now_ns();
	opener_more();
	il_loop_run(i_all_idle);
	double secs = (double)(il_now_ns() - t0) / 1e9;
	il_log("%d sessions in IDLE after %.1f s", n, secs);
	g_setup_rate = n / secs;
	printf("setup: %d sessions (connect, %s, LOGIN, SELECT, IDLE) in %.1f s, %.0f/s, median %.1f ms, p99 %.1f ms\n",
	       n, il_opt.sec == IL_SEC_PLAIN ? "plain" : "TLS", secs, n / secs, il_stat_quantile_ms(&g_setup, 0.5),
	       il_stat_quantile_ms(&g_setup, 0.99));
}

static int run_idle(void)
{
	long rss0 = 0, pss0 = 0, rss1 = 0, pss1 = 0;
	int procs0 = il_server_memory(&rss0, &pss0);
	idle_sessions_open();
	/* Let the server settle: buffers released after the last command. */
	g_wait_until = il_now_ns() + 3000000000u;
	il_loop_run(wait_done);
	int procs1 = il_server_memory(&rss1, &pss1);
	int n = il_opt.clients;
	printf("workload=idle sessions=%d server=%s:%d\n", n, il_opt.host, il_opt.port);
	if (procs0 == 0) {
		printf("server memory: not measured (give --pids or --pid-tree)\n");
		return 0;
	}
	double per_rss = (double)(rss1 - rss0) / n, per_pss = (double)(pss1 - pss0) / n;
	printf("server processes: %d before, %d after\n", procs0, procs1);
	printf("server VmRSS: %ld KiB before, %ld KiB after: %.2f KiB per session\n", rss0, rss1, per_rss);
	printf("server Pss:   %ld KiB before, %ld KiB after: %.2f KiB per session\n", pss0, pss1, per_pss);
	printf("RESULT idle sessions=%d rss_kib_per_session=%.2f pss_kib_per_session=%.2f procs_before=%d "
	       "procs_after=%d rss_before_kib=%ld rss_after_kib=%ld setup_per_s=%.1f\n",
	       n, per_rss, per_pss, procs0, procs1, rss0, rss1,
	       g_setup_rate);
	return 0;
}

static void p_next_round(void);

static void p_append_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)c;
	(void)r;
	g_append_ok = true;
}

static void p_send_append(void)
{
	g_round++;
	g_round_seen = 0;
	g_append_ok = false;
	static const char *const texts[] = { "APPEND INBOX", "" };
	const char *data[1] = { g_push_msg };
	size_t lens[1] = { g_push_len };
	g_push_t0 = il_now_ns();
	il_cmd_literals(g_appender, &g_push_append, p_append_ok, 1, texts, data, lens);
}

static bool p_stop(void)
{
	uint64_t now = il_now_ns();
	if (g_push_done)
		return true;
	if (g_appender == NULL)
		return false;
	if (g_round >= 0 && !(g_append_ok && g_round_seen == il_opt.clients)) {
		if (now - g_push_t0 > (uint64_t)(il_opt.timeout * 1e9))
			il_fail("push round %d: after %.0f s only %d of %d idle sessions saw the new EXISTS%s",
				g_round + 1, il_opt.timeout, g_round_seen, il_opt.clients,
				g_append_ok ? "" : " (and the APPEND was not answered)");
		return false;
	}
	if (g_round + 1 >= il_opt.count) {
		g_push_done = true;
		return true;
	}
	if (g_round_gap_until == 0) {
		/* A short pause between rounds, so each measures one push. */
		g_round_gap_until = now + 50000000u;
		return false;
	}
	if (now < g_round_gap_until)
		return false;
	g_round_gap_until = 0;
	p_next_round();
	return false;
}

static void p_next_round(void)
{
	p_send_append();
}

static void p_login_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	g_appender = c;
	p_next_round();
}

static void p_ready(struct il_conn *c)
{
	send_login(c, p_login_ok, NULL);
}

static int run_push(void)
{
	if (strstr(il_opt.user, "%d") != NULL && il_opt.users != 1)
		il_fail("push: all sessions must be one user (no %%d in -u, or --users 1)");
	idle_sessions_open();
	struct il_buf b = { 0 };
	genmail_message(il_opt.seed, 42, &b, NULL);
	g_push_msg = message_copy(&b, &g_push_len);
	il_buf_free(&b);
	/* The appender is one more connection, with its own number. */
	il_conn_open(il_opt.clients, IL_PROTO_IMAP, NULL, p_ready);
	il_loop_run(p_stop);
	printf("workload=push idle_sessions=%d appends=%d server=%s:%d\n", il_opt.clients, il_opt.count,
	       il_opt.host, il_opt.port);
	printf("APPEND send -> EXISTS seen by each IDLE session: %zu samples, median %.3f ms, p99 %.3f ms, "
	       "max %.3f ms\n",
	       g_push.n, il_stat_quantile_ms(&g_push, 0.5), il_stat_quantile_ms(&g_push, 0.99),
	       il_stat_quantile_ms(&g_push, 1.0));
	printf("APPEND itself: median %.3f ms\n", il_stat_quantile_ms(&g_push_append, 0.5));
	printf("RESULT push sessions=%d appends=%d samples=%zu p50=%.3f p99=%.3f max=%.3f append_p50=%.3f\n",
	       il_opt.clients, il_opt.count, g_push.n, il_stat_quantile_ms(&g_push, 0.5),
	       il_stat_quantile_ms(&g_push, 0.99), il_stat_quantile_ms(&g_push, 1.0),
	       il_stat_quantile_ms(&g_push_append, 0.5));
	return 0;
}

/* ------------------------------------------------------------------ */
/* bigbox: one large mailbox */

enum { B_STATUS, B_SELECT, B_FETCH, B_RESYNC, B_SEARCH_HDR, B_SEARCH_TEXT, B_N };
static struct il_stat b_stats[B_N] = {
	{ .name = "STATUS" }, { .name = "SELECT" }, { .name = "FETCH_1:*" },
	{ .name = "CONDSTORE_RESYNC" }, { .name = "SEARCH_FROM" }, { .name = "SEARCH_TEXT" },
};
/* The resync changes 1% of the box: B_RANGES runs of messages spread over
 * it (clients change flags in runs: a thread read, a folder marked). */
#define B_RANGES 20
static struct {
	uint32_t have, target;  /* messages in INBOX, wanted */
	uint64_t pop_t0;
	uint32_t pop_added;
	double pop_secs;
	uint32_t search_hits;
	uint32_t expect_from, expect_text;
	uint32_t status_messages;
	uint64_t highest_modseq;
	uint32_t range_len;	/* messages per changed run */
	int first_answered;	/* the first changed message has \Answered: -1 unknown */
	bool done;
	char **lits;
	const char **texts;
	size_t *lens;
	int nlits;
} bb;

static void b_logout_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	il_conn_close(c);
	bb.done = true;
}

static void b_search_untagged(struct il_conn *c, const char *line, size_t len)
{
	(void)c;
	if (len >= 8 && strncasecmp(line, "* SEARCH", 8) == 0) {
		uint32_t n = 0;
		for (size_t i = 8; i < len; i++)
			if (line[i] == ' ' && i + 1 < len && line[i + 1] >= '0' && line[i + 1] <= '9')
				n++;
		bb.search_hits += n;
	}
}

static void b_text_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	if (bb.search_hits != bb.expect_text)
		il_fail("UID SEARCH TEXT \"%s\" found %u messages, the generator put the phrase in %u",
			GENMAIL_PHRASE, bb.search_hits, bb.expect_text);
	il_cmd(c, NULL, b_logout_ok, "LOGOUT");
}

static void b_from_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	if (bb.search_hits != bb.expect_from)
		il_fail("UID SEARCH FROM \"%s\" found %u messages, the generator wrote %u", GENMAIL_FROM_WORD,
			bb.search_hits, bb.expect_from);
	bb.search_hits = 0;
	il_cmd(c, &b_stats[B_SEARCH_TEXT], b_text_ok, "UID SEARCH TEXT \"%s\"", GENMAIL_PHRASE);
}

static void b_search(struct il_conn *c)
{
	if (il_opt.no_search) {
		il_cmd(c, NULL, b_logout_ok, "LOGOUT");
		return;
	}
	bb.search_hits = 0;
	c->on_untagged = b_search_untagged;
	il_cmd(c, &b_stats[B_SEARCH_HDR], b_from_ok, "UID SEARCH FROM \"%s\"", GENMAIL_FROM_WORD);
}

/* The first message of changed run i (sequence numbers from 1). */
static uint32_t b_range_start(uint32_t i, uint32_t messages)
{
	return i * (messages / B_RANGES) + 1;
}

/* "a:b,c:d,...": the B_RANGES runs. */
static void b_range_set(char *out, size_t size, uint32_t messages)
{
	size_t used = 0;
	for (uint32_t i = 0; i < B_RANGES && used < size; i++) {
		uint32_t start = b_range_start(i, messages);
		used += (size_t)snprintf(out + used, size - used, "%s%u:%u", i ? "," : "", start,
					 start + bb.range_len - 1);
	}
	if (used >= size)
		il_fail("resync message set too long");
}

static void b_resync_ok(struct il_conn *c, const struct il_reply *r)
{
	uint32_t changed = B_RANGES * bb.range_len;
	if (c->fetches != changed)
		il_fail("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %llu) brought %u FETCH responses, %u messages were "
			"changed (`%.*s`)", (unsigned long long)bb.highest_modseq, c->fetches, changed,
			(int)r->len, r->line);
	b_search(c);
}

static void b_store_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	il_cmd(c, &b_stats[B_RESYNC], b_resync_ok, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %llu)",
	       (unsigned long long)bb.highest_modseq);
}

static void b_modseq_untagged(struct il_conn *c, const char *line, size_t len)
{
	(void)c;
	const char *m = memmem(line, len, "HIGHESTMODSEQ ", 14);
	if (len > 9 && strncasecmp(line, "* STATUS", 8) == 0 && m != NULL)
		bb.highest_modseq = strtoull(m + 14, NULL, 10);
}

/* 1% of the messages change (\Answered toggled: every earlier run toggled
 * the same runs, so they agree), then the resync a client makes when it
 * comes back: everything changed since the HIGHESTMODSEQ it last saw. */
static void b_modseq_ok(struct il_conn *c, const struct il_reply *r)
{
	c->on_untagged = NULL;
	if (bb.highest_modseq == 0)
		il_fail("STATUS INBOX (HIGHESTMODSEQ) gave no HIGHESTMODSEQ (`%.*s`)", (int)r->len, r->line);
	if (bb.first_answered < 0)
		il_fail("FETCH 1:* (UID FLAGS) had no response for message 1");
	char set[IL_MAX_CMD_TEXT - 64];
	b_range_set(set, sizeof(set), c->exists);
	il_cmd(c, NULL, b_store_ok, "STORE %s %cFLAGS.SILENT (\\Answered)", set, bb.first_answered ? '-' : '+');
}

static void b_flags_untagged(struct il_conn *c, const char *line, size_t len)
{
	(void)c;
	if (len > 10 && strncmp(line, "* 1 FETCH ", 10) == 0)
		bb.first_answered = memmem(line, len, "\\Answered", 9) != NULL;
}

static void b_fetch_ok(struct il_conn *c, const struct il_reply *r)
{
	c->on_untagged = NULL;
	if (c->fetches != c->exists)
		il_fail("FETCH 1:* (UID FLAGS) brought %u FETCH responses for %u messages (`%.*s`)", c->fetches,
			c->exists, (int)r->len, r->line);
	bb.range_len = c->exists / (100 * B_RANGES);
	if (bb.range_len == 0) {
		b_search(c);	/* too few messages for 1% in B_RANGES runs */
		return;
	}
	bb.highest_modseq = 0;
	c->on_untagged = b_modseq_untagged;
	il_cmd(c, NULL, b_modseq_ok, "STATUS INBOX (HIGHESTMODSEQ)");
}

static void b_select_ok(struct il_conn *c, const struct il_reply *r)
{
	if (c->exists != bb.target)
		il_fail("SELECT INBOX: %u messages, expected %u (`%.*s`)", c->exists, bb.target, (int)r->len,
			r->line);
	bb.first_answered = -1;
	c->on_untagged = b_flags_untagged;
	il_cmd(c, &b_stats[B_FETCH], b_fetch_ok, "FETCH 1:* (UID FLAGS)");
}

static void b_measure(struct il_conn *c)
{
	c->exists = UINT32_MAX;
	il_cmd(c, &b_stats[B_SELECT], b_select_ok, "SELECT INBOX");
}

static void b_populate(struct il_conn *c);

static void b_append_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	for (int k = 0; k < bb.nlits; k++)
		free(bb.lits[k]);
	bb.have += (uint32_t)bb.nlits;
	bb.pop_added += (uint32_t)bb.nlits;
	if (bb.pop_added % 10000 < (uint32_t)bb.nlits)
		il_log("bigbox: %u of %u messages", bb.have, bb.target);
	b_populate(c);
}

static void b_status_untagged(struct il_conn *c, const char *line, size_t len)
{
	(void)c;
	const char *m = memmem(line, len, "MESSAGES ", 9);
	if (len > 9 && strncasecmp(line, "* STATUS", 8) == 0 && m != NULL)
		bb.status_messages = (uint32_t)strtoul(m + 9, NULL, 10);
}

static void b_status_ok(struct il_conn *c, const struct il_reply *r);

static void b_populate(struct il_conn *c)
{
	if (bb.have >= bb.target) {
		if (bb.pop_added > 0) {
			bb.pop_secs = (double)(il_now_ns() - bb.pop_t0) / 1e9;
			printf("populate: %u messages in %.1f s, %.0f messages/s (MULTIAPPEND of %d, %s)\n",
			       bb.pop_added, bb.pop_secs, bb.pop_added / bb.pop_secs, il_opt.batch,
			       (c->caps & IL_CAP_LITERALPLUS) ? "LITERAL+" : "synchronizing literals");
			printf("RESULT bigbox_populate messages=%u seconds=%.2f per_s=%.1f\n", bb.pop_added,
			       bb.pop_secs, bb.pop_added / bb.pop_secs);
			/* STATUS again so that it is timed on the full box. */
			c->on_untagged = b_status_untagged;
			il_cmd(c, &b_stats[B_STATUS], b_status_ok, "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)");
			return;
		}
		b_measure(c);
		return;
	}
	if (bb.pop_added == 0)
		bb.pop_t0 = il_now_ns();
	int n = (int)(bb.target - bb.have);
	if (n > il_opt.batch)
		n = il_opt.batch;
	bool multi = (c->caps & IL_CAP_MULTIAPPEND) != 0;
	if (!multi)
		n = 1;
	struct il_buf b = { 0 };
	for (int k = 0; k < n; k++) {
		b.start = b.len = 0;
		genmail_message(il_opt.seed, bb.have + (uint32_t)k, &b, NULL);
		bb.lits[k] = message_copy(&b, &bb.lens[k]);
		/* Every fourth message is already read, one in 20 flagged. */
		uint64_t h = il_mix(il_opt.seed, bb.have + (uint32_t)k);
		bb.texts[k] = k == 0 ? (h % 4 == 0 ? "APPEND INBOX (\\Seen)" : "APPEND INBOX ()")
				     : (h % 20 == 0 ? " (\\Flagged)" : h % 4 == 0 ? " (\\Seen)" : " ()");
	}
	il_buf_free(&b);
	bb.texts[n] = "";
	bb.nlits = n;
	il_cmd_literals(c, NULL, b_append_ok, n, bb.texts, (const char *const *)bb.lits, bb.lens);
}

static void b_status_ok(struct il_conn *c, const struct il_reply *r)
{
	if (bb.status_messages == UINT32_MAX)
		il_fail("STATUS OK without a STATUS response (`%.*s`)", (int)r->len, r->line);
	c->on_untagged = NULL;
	bb.have = bb.status_messages;
	if (bb.have > bb.target)
		il_fail("INBOX of %s holds %u messages, more than -m %u: use a fresh user", il_user_name(c->id),
			bb.have, bb.target);
	if (bb.pop_added > 0) {
		b_measure(c);
		return;
	}
	b_populate(c);
}

static void b_login_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	bb.status_messages = UINT32_MAX;
	c->on_untagged = b_status_untagged;
	il_cmd(c, &b_stats[B_STATUS], b_status_ok, "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)");
}

static void b_ready(struct il_conn *c)
{
	send_login(c, b_login_ok, NULL);
}

static bool b_stop(void)
{
	return bb.done;
}

static int run_bigbox(void)
{
	bb.target = (uint32_t)il_opt.count;
	bb.lits = il_xmalloc(sizeof(*bb.lits) * (size_t)il_opt.batch);
	bb.texts = il_xmalloc(sizeof(*bb.texts) * (size_t)(il_opt.batch + 1));
	bb.lens = il_xmalloc(sizeof(*bb.lens) * (size_t)il_opt.batch);
	for (uint32_t i = 0; i < bb.target; i++) {
		struct genmail_traits t;
		genmail_traits(il_opt.seed, i, &t);
		bb.expect_from += t.from_walrus;
		bb.expect_text += t.phrase;
	}
	il_conn_open(0, IL_PROTO_IMAP, NULL, b_ready);
	il_loop_run(b_stop);
	/* After a populate STATUS ran twice: keep the last (full box). */
	struct il_stat *st = &b_stats[B_STATUS];
	if (st->n > 1) {
		st->us[0] = st->us[st->n - 1];
		st->n = 1;
	}
	printf("workload=bigbox messages=%u from_matches=%u text_matches=%u server=%s:%d\n", bb.target,
	       bb.expect_from, bb.expect_text, il_opt.host, il_opt.port);
	for (int i = 0; i < B_N; i++) {
		if (b_stats[i].n == 0)
			continue;	/* left out (--no-search) */
		printf("%-12s %10.3f ms\n", b_stats[i].name, il_stat_quantile_ms(&b_stats[i], 0.5));
		printf("RESULT bigbox cmd=%s ms=%.3f\n", b_stats[i].name, il_stat_quantile_ms(&b_stats[i], 0.5));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* deliver: LMTP senders */

static struct il_stat d_stat = { .name = "DELIVERY" };
struct dsender {
	uint64_t t0;
	uint64_t sent;
	char *msg;
	size_t len;
};
static struct dsender *g_ds;
static int g_dready;

static void d_next(struct il_conn *c);

/* RFC 5321 4.5.2: a line starting with "." gets one more. */
static void dot_stuff(struct il_buf *out, const char *s, size_t n)
{
	bool bol = true;
	for (size_t i = 0; i < n; i++) {
		if (bol && s[i] == '.')
			il_buf_append(out, ".", 1);
		il_buf_append(out, &s[i], 1);
		bol = s[i] == '\n';
	}
	if (n < 2 || s[n - 2] != '\r' || s[n - 1] != '\n')
		il_buf_append(out, "\r\n", 2);
	il_buf_append(out, ".\r\n", 3);
}

static void d_data_ok(struct il_conn *c, const struct il_reply *r)
{
	(void)r;
	struct dsender *d = &g_ds[c->id];
	il_stat_add(&d_stat, il_now_ns() - d->t0);
	free(d->msg);
	d->msg = NULL;
	if (il_now_ns() < g_end_ns)
		d_next(c);
}

static void d_envelope_ok(struct il_conn *c, const struct il_reply *r)
{
	struct dsender *d = &g_ds[c->id];
	if (r->code != 354)
		il_fail("client %d: DATA answered `%.*s`, expected 354", c->id, (int)r->len, r->line);
	il_lmtp(c, NULL, d_data_ok, 1, d->msg, d->len);
}

static void d_next(struct il_conn *c)
{
	struct dsender *d = &g_ds[c->id];
	struct il_buf m = { 0 }, s = { 0 };
	genmail_message(il_opt.seed, 2000000000ull + (uint64_t)c->id * 1000000u + d->sent++, &m, NULL);
	dot_stuff(&s, m.data, m.len);
	il_buf_free(&m);
	d->msg = message_copy(&s, &d->len);
	il_buf_free(&s);
	char env[512];
	int n = snprintf(env, sizeof(env), "MAIL FROM:<sender%d@example.net>\r\nRCPT TO:<%s>\r\nDATA\r\n", c->id,
			 il_user_name(c->id));
	if (n < 0 || (size_t)n >= sizeof(env))
		il_fail("recipient name too long");
	d->t0 = il_now_ns();
	/* LMTP requires PIPELINING (RFC 2033 4.1): the three commands go
	 * in one write, three replies come back. */
	il_lmtp(c, NULL, d_envelope_ok, 3, env, (size_t)n);
}

static void d_ready(struct il_conn *c)
{
	g_dready++;
	d_next(c);
}

static int run_deliver(void)
{
	int n = il_opt.clients;
	g_ds = calloc((size_t)n, sizeof(*g_ds));
	if (g_ds == NULL)
		il_fail("out of memory");
	uint64_t t0 = il_now_ns();
	g_end_ns = t0 + (uint64_t)(il_opt.duration * 1e9);
	il_stat_until_ns = g_end_ns;
	for (int i = 0; i < n; i++)
		il_conn_open(i, IL_PROTO_LMTP, NULL, d_ready);
	il_loop_run(m_timed_done);
	double secs = il_opt.duration;
	printf("workload=deliver senders=%d seconds=%.1f server=%s:%d\n", n, secs, il_opt.host, il_opt.port);
	il_stats_print(&d_stat, 1, secs);
	printf("RESULT deliver senders=%d count=%zu per_s=%.2f p50=%.3f p99=%.3f p999=%.3f\n", n, d_stat.n,
	       (double)d_stat.n / secs, il_stat_quantile_ms(&d_stat, 0.5), il_stat_quantile_ms(&d_stat, 0.99),
	       il_stat_quantile_ms(&d_stat, 0.999));
	return 0;
}

/* ------------------------------------------------------------------ */
/* handshake: TLS handshakes per second */

static struct il_stat h_stat = { .name = "HANDSHAKE" };
struct hslot {
	uint64_t t0;
	SSL_SESSION *session;
};
static struct hslot *g_hs;

static void h_open(int slot);

static void h_ready(struct il_conn *c)
{
	struct hslot *h = &g_hs[c->id];
	il_stat_add(&h_stat, il_now_ns() - h->t0);
	if (il_opt.resume && c->session != NULL) {
		/* Keep the newest ticket: TLS 1.3 tickets may be single use. */
		if (h->session != NULL)
			SSL_SESSION_free(h->session);
		h->session = c->session;
		c->session = NULL;
	}
	il_conn_close(c);
	if (il_now_ns() < g_end_ns)
		h_open(c->id);
}

static void h_open(int slot)
{
	struct hslot *h = &g_hs[slot];
	h->t0 = il_now_ns();
	struct il_conn *c = il_conn_open(slot, IL_PROTO_IMAP, NULL, h_ready);
	if (il_opt.resume && h->session != NULL) {
		if (SSL_SESSION_up_ref(h->session) != 1)
			il_fail("SSL_SESSION_up_ref failed");
		c->session = h->session;
	}
}

static int run_handshake(void)
{
	if (il_opt.sec != IL_SEC_TLS)
		il_fail("handshake: needs --tls");
	int n = il_opt.clients;
	g_hs = calloc((size_t)n, sizeof(*g_hs));
	if (g_hs == NULL)
		il_fail("out of memory");
	uint64_t full0, res0;
	if (il_opt.resume) {
		/* One full handshake per slot first, to get a ticket. */
		g_end_ns = 0;
		for (int i = 0; i < n; i++)
			h_open(i);
		g_wait_until = il_now_ns() + 1000000000u;
		il_loop_run(wait_done);
		if (il_loop_open_count() != 0)
			il_fail("handshake: %d first handshakes did not finish in 1 s", il_loop_open_count());
	}
	il_tls_counts(&full0, &res0);
	h_stat.n = 0;
	uint64_t t0 = il_now_ns();
	g_end_ns = t0 + (uint64_t)(il_opt.duration * 1e9);
	il_stat_until_ns = g_end_ns;
	for (int i = 0; i < n; i++)
		h_open(i);
	il_loop_run(m_timed_done);
	uint64_t full1, res1;
	il_tls_counts(&full1, &res1);
	double secs = il_opt.duration;
	uint64_t full = full1 - full0, res = res1 - res0;
	printf("workload=handshake mode=%s concurrency=%d seconds=%.1f server=%s:%d\n",
	       il_opt.resume ? "resumed" : "full", n, secs, il_opt.host, il_opt.port);
	printf("handshakes (TLS + greeting): %zu, %.1f/s; full %llu, resumed %llu; median %.3f ms, p99 %.3f ms\n",
	       h_stat.n, (double)h_stat.n / secs, (unsigned long long)full, (unsigned long long)res,
	       il_stat_quantile_ms(&h_stat, 0.5), il_stat_quantile_ms(&h_stat, 0.99));
	if (il_opt.resume && res < full)
		printf("warning: the server resumed only %llu of %llu handshakes\n", (unsigned long long)res,
		       (unsigned long long)(full + res));
	printf("RESULT handshake mode=%s count=%zu per_s=%.2f full=%llu resumed=%llu p50=%.3f p99=%.3f\n",
	       il_opt.resume ? "resumed" : "full", h_stat.n, (double)h_stat.n / secs, (unsigned long long)full,
	       (unsigned long long)res, il_stat_quantile_ms(&h_stat, 0.5), il_stat_quantile_ms(&h_stat, 0.99));
	return 0;
}

/* ------------------------------------------------------------------ */

static void raise_nofile(int want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		il_fail("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= (rlim_t)want)
		return;
	if (rl.rlim_max < (rlim_t)want) {
		/* Only root may raise the hard limit; try, then say what is
		 * missing. */
		struct rlimit hard = { (rlim_t)want, (rlim_t)want };
		if (setrlimit(RLIMIT_NOFILE, &hard) == 0)
			return;
		il_fail("need %d open files, the hard limit is %llu: raise it (ulimit -Hn) or run as root", want,
			(unsigned long long)rl.rlim_max);
	}
	rl.rlim_cur = (rlim_t)want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		il_fail("setrlimit NOFILE %d: %s", want, strerror(errno));
}

static double parse_num(const char *opt, const char *s, double min, double max)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		il_fail("%s %s: expected a number from %g to %g", opt, s, min, max);
	return v;
}

int main(int argc, char **argv)
{
	enum { O_TLS = 256, O_STARTTLS, O_PLAIN, O_SEED, O_USERS, O_SRC, O_TIMEOUT, O_RAMP, O_PIDS, O_PIDTREE,
	       O_RESUME, O_BATCH, O_NO_SEARCH };
	static const struct option longs[] = {
		{ "tls", no_argument, NULL, O_TLS },
		{ "starttls", no_argument, NULL, O_STARTTLS },
		{ "plain", no_argument, NULL, O_PLAIN },
		{ "seed", required_argument, NULL, O_SEED },
		{ "users", required_argument, NULL, O_USERS },
		{ "src", required_argument, NULL, O_SRC },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "ramp", required_argument, NULL, O_RAMP },
		{ "pids", required_argument, NULL, O_PIDS },
		{ "pid-tree", required_argument, NULL, O_PIDTREE },
		{ "resume", no_argument, NULL, O_RESUME },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "no-search", no_argument, NULL, O_NO_SEARCH },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	il_opt = (struct il_opts){ .host = "127.0.0.1", .sec = IL_SEC_TLS, .user = "bench", .pass = "bench",
				   .clients = 10, .duration = 10, .count = -1, .seed = 1, .timeout = 30,
				   .ramp = 100, .batch = 200, .users = -1 };
	int port = 0, c;
	while ((c = getopt_long(argc, argv, "w:h:p:u:P:c:d:m:q", longs, NULL)) != -1) {
		switch (c) {
		case 'w': il_opt.workload = optarg; break;
		case 'h': il_opt.host = optarg; break;
		case 'p': port = (int)parse_num("-p", optarg, 1, 65535); break;
		case 'u': il_opt.user = optarg; break;
		case 'P': il_opt.pass = optarg; break;
		case 'c': il_opt.clients = (int)parse_num("-c", optarg, 1, 1000000); break;
		case 'd': il_opt.duration = parse_num("-d", optarg, 0.1, 86400); break;
		case 'm': il_opt.count = (int)parse_num("-m", optarg, 0, 100000000); break;
		case 'q': il_opt.quiet = 1; break;
		case O_TLS: il_opt.sec = IL_SEC_TLS; break;
		case O_STARTTLS: il_opt.sec = IL_SEC_STARTTLS; break;
		case O_PLAIN: il_opt.sec = IL_SEC_PLAIN; break;
		case O_SEED: il_opt.seed = (uint64_t)parse_num("--seed", optarg, 0, 1e15); break;
		case O_USERS: il_opt.users = (int)parse_num("--users", optarg, 1, 10000000); break;
		case O_SRC: il_opt.nsrc = (int)parse_num("--src", optarg, 1, 254); break;
		case O_TIMEOUT: il_opt.timeout = parse_num("--timeout", optarg, 0.1, 3600); break;
		case O_RAMP: il_opt.ramp = (int)parse_num("--ramp", optarg, 1, 100000); break;
		case O_PIDS: il_opt.pids = optarg; break;
		case O_PIDTREE: il_opt.pid_tree = (int)parse_num("--pid-tree", optarg, 1, 1e9); break;
		case O_RESUME: il_opt.resume = 1; break;
		case O_BATCH: il_opt.batch = (int)parse_num("--batch", optarg, 1, 100000); break;
		case O_NO_SEARCH: il_opt.no_search = 1; break;
		default: usage();
		}
	}
	if (optind != argc || il_opt.workload == NULL)
		usage();
	const char *w = il_opt.workload;
	bool deliver = strcmp(w, "deliver") == 0;
	if (deliver)
		il_opt.sec = IL_SEC_PLAIN;
	il_opt.port = port ? port : deliver ? 24 : il_opt.sec == IL_SEC_TLS ? 993 : 143;
	if (il_opt.users < 0)
		il_opt.users = il_opt.clients;
	const char *pct = strchr(il_opt.user, '%');
	if (pct != NULL && (pct[1] != 'd' || strchr(pct + 1, '%') != NULL))
		il_fail("-u %s: only one %%d may stand in the user name", il_opt.user);
	if (strpbrk(il_opt.user, "\"\\\r\n") || strpbrk(il_opt.pass, "\"\\\r\n"))
		il_fail("user names and passwords with quotes, backslashes or line breaks are not supported");
	if (strcmp(w, "mixed") == 0)
		il_opt.fill = il_opt.count < 0 ? 20 : il_opt.count;
	if (il_opt.count < 0)
		il_opt.count = strcmp(w, "bigbox") == 0 ? 10000 : 20;
	if (il_opt.nsrc == 0)
		il_opt.nsrc = strncmp(il_opt.host, "127.", 4) == 0 ? 1 + il_opt.clients / 20000 : 1;
	raise_nofile(il_opt.clients + 64);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		il_fail("signal: %s", strerror(errno));
	il_loop_init();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(w, "mixed") == 0)
		return run_mixed();
	if (strcmp(w, "idle") == 0)
		return run_idle();
	if (strcmp(w, "push") == 0)
		return run_push();
	if (strcmp(w, "bigbox") == 0)
		return run_bigbox();
	if (deliver)
		return run_deliver();
	if (strcmp(w, "handshake") == 0)
		return run_handshake();
	il_fail("unknown workload -w %s", w);
}
