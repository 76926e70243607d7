/* An LMTP session (RFC 2033) on one connection: an explicit state machine,
 * a table of commands with the states each is valid in, and the DATA
 * reader fed from the loop as bytes arrive.
 *
 *	GREETED --LHLO--> READY --MAIL--> MAIL --RCPT...--> MAIL --DATA--> DATA
 *	   ^                ^                                               | dot
 *	   |                +---- replies, in RCPT order ---- DELIVERING <--+
 *	 any state --QUIT/timeout/shutdown--> QUIT
 *
 * After the final dot the message and its recipients go to the worker's
 * delivery threads (lmtp/pool.h) as one job; the session sits in
 * DELIVERING, running no further command (pipelined ones wait in the input
 * buffer), until the job comes back through lmtp_jobs_done. Reading the
 * message never blocks the loop either: it is incremental, like any
 * input. */
#include "lmtp/lmtp.h"
#include "auth/passwd_file.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/netmask.h"
#include "core/xalloc.h"
#include "lmtp/address.h"
#include "lmtp/data.h"
#include "lmtp/deliver.h"
#include "lmtp/pool.h"
#include "imapd/search_indexer.h"
#include "metrics/metrics.h"
#include "net/conn.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum lmtp_state {
	LMTP_GREETED,	/* waiting for LHLO */
	LMTP_READY,	/* LHLO done, no transaction */
	LMTP_MAIL,	/* MAIL FROM accepted; RCPT and DATA may follow */
	LMTP_DATA,	/* reading the message */
	LMTP_DELIVERING,	/* the delivery threads have the message */
	LMTP_QUIT,	/* closing once the output is written */
};

static const char *const state_names[] = { "greeted", "ready", "mail", "data", "delivering", "quit" };

#define ST(x) (1u << (x))

struct lmtp_session {
	struct lmtp_context *ctx;
	struct lmtp_session *prev, *next;	/* in ctx->sessions */
	struct conn *conn;
	const struct config_listener *listener;
	enum lmtp_state state;
	char id[24];				/* for logs: "L" worker.counter */
	struct ev_timer timer;			/* idle timeout */
	uint64_t connected_ms;
	char *sender;				/* MAIL FROM path ("" for <>) */
	struct lmtp_rcpt *rcpts;
	size_t rcpt_count;
	struct buf message;			/* LMTP_HEADROOM bytes, then the message */
	struct lmtp_data data;
	struct lmtp_job *job;			/* DELIVERING: in the pool, shares nothing */
	bool skipping_line;			/* a line over the limit: drop to LF */
	bool quit_after_data;			/* shutdown arrived during DATA */
	unsigned delivered;			/* counts, for the disconnect log */
	char *close_reason;
};

static void session_free(struct lmtp_session *s);
static void process_input(struct lmtp_session *s);
static void arm_timer(struct lmtp_session *s);

static void set_state(struct lmtp_session *s, enum lmtp_state state)
{
	if (s->state == state)
		return;
	struct log_line l;
	log_begin(&l, LOG_DEBUG, "lmtp_state");
	log_str(&l, "session", s->id);
	log_str(&l, "from", state_names[s->state]);
	log_str(&l, "to", state_names[state]);
	log_end(&l);
	s->state = state;
}

static void reply(struct lmtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct lmtp_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	/* Text from the client (addresses) may end up here: no line breaks. */
	for (size_t i = 0; i < line.len; i++) {
		if (line.data[i] == '\r' || line.data[i] == '\n')
			line.data[i] = ' ';
	}
	buf_append_str(&line, "\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

static void quit(struct lmtp_session *s, const char *reason)
{
	if (s->close_reason == NULL)
		s->close_reason = xstrdup(reason);
	set_state(s, LMTP_QUIT);
	ev_timer_stop(s->ctx->loop, &s->timer);
	conn_pause_input(s->conn);
	conn_close_after_flush(s->conn);
}

static void reset_transaction(struct lmtp_session *s)
{
	lmtp_rcpts_free(&s->rcpts, s->rcpt_count);
	s->rcpt_count = 0;
	free(s->sender);
	s->sender = NULL;
	buf_free(&s->message);
}

/* --- Commands ---------------------------------------------------------- */

static void cmd_lhlo(struct lmtp_session *s, const char *args)
{
	if (args[0] == '\0') {
		reply(s, "501 5.5.4 LHLO needs the client's host name");
		return;
	}
	/* RFC 5321 4.1.4: like EHLO, LHLO ends any transaction. */
	reset_transaction(s);
	set_state(s, LMTP_READY);
	const struct config *cfg = s->ctx->cfg;
	/* RFC 2033 5: PIPELINING and ENHANCEDSTATUSCODES are required. */
	reply(s, "250-%s", cfg->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-8BITMIME");
	reply(s, "250 SIZE %llu", (unsigned long long)cfg->max_literal_size);
}

static void cmd_helo(struct lmtp_session *s, const char *args)
{
	/* RFC 2033 4.1: HELO and EHLO are SMTP, not LMTP. */
	reply(s, "500 5.5.1 This is an LMTP server: use LHLO");
}

/* "SIZE=123": 0 and the number, or -1 when it is not one. */
static int parse_size(const char *text, uint64_t *size_r)
{
	if (*text == '\0')
		return -1;
	uint64_t n = 0;
	for (const char *p = text; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		if (n > (UINT64_MAX - 9) / 10)
			n = UINT64_MAX - 9;	/* saturate: larger than any limit */
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*size_r = n;
	return 0;
}

static void cmd_mail(struct lmtp_session *s, const char *args)
{
	if (s->state == LMTP_MAIL) {
		reply(s, "503 5.5.1 MAIL already given: RSET first");
		return;
	}
	if (strncasecmp(args, "FROM:", 5) != 0) {
		reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	char *path = NULL;
	const char *params, *error;
	if (lmtp_parse_path(args + 5, &path, &params, &error) < 0) {
		reply(s, "501 5.1.7 Bad sender address: %s", error);
		return;
	}
	char key[32], value[64];
	while (lmtp_next_param(&params, key, sizeof(key), value, sizeof(value))) {
		uint64_t size;
		if (strcasecmp(key, "SIZE") == 0) {
			if (parse_size(value, &size) < 0) {
				reply(s, "501 5.5.4 SIZE needs a number");
				free(path);
				return;
			}
			/* RFC 1870 6.1: refuse at once what is too big. */
			if (size > s->ctx->cfg->max_literal_size) {
				reply(s, "552 5.3.4 Message too big (limit %llu bytes)",
				      (unsigned long long)s->ctx->cfg->max_literal_size);
				free(path);
				return;
			}
		} else if (strcasecmp(key, "BODY") == 0) {
			/* RFC 6152: 8BITMIME; the bytes are stored as they come. */
			if (strcasecmp(value, "7BIT") != 0 && strcasecmp(value, "8BITMIME") != 0) {
				reply(s, "501 5.5.4 BODY must be 7BIT or 8BITMIME");
				free(path);
				return;
			}
		} else {
			/* RFC 5321 4.1.1.11 */
			reply(s, "555 5.5.4 Unsupported MAIL parameter %s", key);
			free(path);
			return;
		}
	}
	s->sender = path;
	set_state(s, LMTP_MAIL);
	reply(s, "250 2.1.0 Sender OK");
}

/* The passwd name for an address: the part before '+' as written, then in
 * lower case, then the whole user@domain the same two ways (for password
 * files whose users are full addresses, as with Dovecot virtual users). */
static const struct passwd_entry *find_user(struct lmtp_session *s, const struct lmtp_address *a)
{
	struct buf errors = BUF_INIT;
	if (passwd_file_refresh(s->ctx->passwd, &errors) < 0)
		log_msg(LOG_ERROR, "passwd_file", "%s", errors.data ? errors.data : "");
	buf_free(&errors);
	char *candidates[4] = { xstrdup(a->user), xstrdup(a->user), NULL, NULL };
	if (a->domain != NULL) {
		candidates[2] = xasprintf("%s@%s", a->user, a->domain);
		candidates[3] = xstrdup(candidates[2]);
	}
	for (char *p = candidates[1]; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	for (char *p = candidates[3]; p != NULL && *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	const struct passwd_entry *entry = NULL;
	for (size_t i = 0; i < 4 && entry == NULL; i++) {
		if (candidates[i] != NULL)
			entry = passwd_file_find(s->ctx->passwd, candidates[i]);
	}
	for (size_t i = 0; i < 4; i++)
		free(candidates[i]);
	return entry;
}

static void cmd_rcpt(struct lmtp_session *s, const char *args)
{
	if (s->state != LMTP_MAIL) {
		reply(s, "503 5.5.1 MAIL first");
		return;
	}
	if (strncasecmp(args, "TO:", 3) != 0) {
		reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	char *path = NULL;
	const char *params, *error;
	if (lmtp_parse_path(args + 3, &path, &params, &error) < 0) {
		reply(s, "501 5.1.3 Bad recipient address: %s", error);
		return;
	}
	char key[32], value[64];
	if (lmtp_next_param(&params, key, sizeof(key), value, sizeof(value))) {
		/* No DSN offered, so no ORCPT or NOTIFY. */
		reply(s, "555 5.5.4 Unsupported RCPT parameter %s", key);
		free(path);
		return;
	}
	struct lmtp_address addr;
	if (path[0] == '\0' || lmtp_address_split(path, &addr) < 0) {
		reply(s, "501 5.1.3 Bad recipient address: no user");
		free(path);
		return;
	}
	if (s->rcpt_count >= LIMIT_LMTP_RECIPIENTS) {
		/* RFC 5321 4.5.3.1.10: 452 so the MTA sends the rest later. */
		reply(s, "452 4.5.3 Too many recipients");
	} else {
		const struct passwd_entry *entry = find_user(s, &addr);
		if (entry == NULL) {
			reply(s, "550 5.1.1 <%s> User unknown", path);
		} else {
			s->rcpts = xrealloc(s->rcpts, (s->rcpt_count + 1) * sizeof(*s->rcpts));
			s->rcpts[s->rcpt_count++] = (struct lmtp_rcpt){
				.address = path,
				.user = xstrdup(entry->user),
				.detail = addr.detail != NULL && addr.detail[0] != '\0' ? xstrdup(addr.detail) : NULL,
			};
			path = NULL;
			reply(s, "250 2.1.5 Recipient OK");
		}
	}
	lmtp_address_free(&addr);
	free(path);
}

static void cmd_data(struct lmtp_session *s, const char *args)
{
	if (s->state != LMTP_MAIL) {
		reply(s, "503 5.5.1 MAIL first");
		return;
	}
	/* RFC 2033 4.2: no successful RCPT, so DATA must fail with 503. */
	if (s->rcpt_count == 0) {
		reply(s, "503 5.5.1 No valid recipients");
		return;
	}
	if (args[0] != '\0') {
		reply(s, "501 5.5.4 DATA takes no arguments");
		return;
	}
	buf_free(&s->message);
	buf_reserve(&s->message, LMTP_HEADROOM + 4096);
	s->message.len = LMTP_HEADROOM;
	lmtp_data_init(&s->data, &s->message, s->ctx->cfg->max_literal_size);
	set_state(s, LMTP_DATA);
	reply(s, "354 2.0.0 Start mail input; end with <CRLF>.<CRLF>");
}

static void cmd_rset(struct lmtp_session *s, const char *args)
{
	if (args[0] != '\0') {
		reply(s, "501 5.5.4 RSET takes no arguments");
		return;
	}
	reset_transaction(s);
	if (s->state == LMTP_MAIL)
		set_state(s, LMTP_READY);
	reply(s, "250 2.0.0 OK");
}

static void cmd_noop(struct lmtp_session *s, const char *args)
{
	reply(s, "250 2.0.0 OK");
}

static void cmd_vrfy(struct lmtp_session *s, const char *args)
{
	if (args[0] == '\0') {
		reply(s, "501 5.5.4 VRFY needs an address");
		return;
	}
	/* RFC 5321 3.5.3: 252 instead of revealing who exists. */
	reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_quit(struct lmtp_session *s, const char *args)
{
	reply(s, "221 2.0.0 %s closing connection", s->ctx->cfg->hostname);
	quit(s, "quit");
}

struct lmtp_command {
	const char *name;
	unsigned states;	/* ST() of the states it may run in */
	void (*handler)(struct lmtp_session *s, const char *args);
	const char *wrong_state;	/* 503 text outside those states */
};

#define ST_SESSION (ST(LMTP_READY) | ST(LMTP_MAIL))
#define ST_ANY (ST(LMTP_GREETED) | ST_SESSION)

/* Sorted by name for bsearch. */
static const struct lmtp_command commands[] = {
	{ "DATA", ST_SESSION, cmd_data, "MAIL first" },
	{ "EHLO", ST_ANY, cmd_helo, NULL },
	{ "HELO", ST_ANY, cmd_helo, NULL },
	{ "LHLO", ST_ANY, cmd_lhlo, NULL },
	{ "MAIL", ST_SESSION, cmd_mail, "LHLO first" },
	{ "NOOP", ST_ANY, cmd_noop, NULL },
	{ "QUIT", ST_ANY, cmd_quit, NULL },
	{ "RCPT", ST_SESSION, cmd_rcpt, "MAIL first" },
	{ "RSET", ST_ANY, cmd_rset, NULL },
	{ "VRFY", ST_ANY, cmd_vrfy, NULL },
};

static int compare_command(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct lmtp_command *)elem)->name);
}

static void run_command(struct lmtp_session *s, char *line)
{
	char *args = strchr(line, ' ');
	if (args != NULL)
		*args++ = '\0';
	else
		args = line + strlen(line);
	const struct lmtp_command *cmd =
		bsearch(line, commands, sizeof(commands) / sizeof(commands[0]), sizeof(commands[0]),
			compare_command);
	if (cmd == NULL) {
		reply(s, "500 5.5.1 Unknown command");
		return;
	}
	if (!(cmd->states & ST(s->state))) {
		reply(s, "503 5.5.1 %s", cmd->wrong_state ? cmd->wrong_state : "Bad sequence of commands");
		return;
	}
	cmd->handler(s, args);
}

/* --- After the final dot ------------------------------------------------ */

static void log_delivery(const struct lmtp_job *job, const struct lmtp_rcpt *r,
			 const struct lmtp_rcpt_outcome *out)
{
	const struct lmtp_deliver_result *res = &out->result;
	struct log_line l;
	bool ok = res->status == LMTP_DELIVER_OK;
	log_begin(&l, ok ? LOG_INFO : LOG_ERROR, ok ? "delivered" : "delivery_failed");
	log_str(&l, "session", job->session_id);
	log_str(&l, "user", r->user);
	log_str(&l, "rcpt", r->address);
	log_str(&l, "from", job->sender);
	log_str(&l, "mailbox", res->mailbox);
	if (res->fell_back)
		log_str(&l, "wanted", r->detail);
	log_uint(&l, "size", out->size);
	if (ok)
		log_uint(&l, "uid", res->uid);
	else
		log_str(&l, "error", res->error);
	log_uint(&l, "ms", out->done_ms - job->submitted_ms);
	log_end(&l);
}

/* One delivery per recipient, by the reply it gets: 2xx ok, 5xx
 * rejected, 4xx tempfail. The time runs from the final dot to the commit
 * of this recipient (its wait for a thread, the recipients before it in
 * the same DATA, the append and its fsync): what the MTA waits for. */
static void count_delivery(struct lmtp_context *ctx, enum lmtp_deliver_status status, uint64_t ms)
{
	struct metrics_worker *m = ctx->metrics;
	switch (status) {
	case LMTP_DELIVER_OK:
		METRIC_INC(m->deliveries[METRICS_DELIVERY_OK]);
		break;
	case LMTP_DELIVER_QUOTA:
	case LMTP_DELIVER_REFUSED:
		METRIC_INC(m->deliveries[METRICS_DELIVERY_REJECTED]);
		break;
	case LMTP_DELIVER_TEMPFAIL:
		METRIC_INC(m->deliveries[METRICS_DELIVERY_TEMPFAIL]);
		break;
	}
	metrics_observe(&m->delivery_latency, ms * 1000);
}

static void reply_outcome(struct lmtp_session *s, const struct lmtp_rcpt *r,
			  const struct lmtp_rcpt_outcome *out)
{
	if (!out->attempted) {
		/* Only a cancelled job skips recipients, and then nobody
		 * is listening; answered anyway, to keep one reply each. */
		reply(s, "451 4.3.0 <%s> Temporary failure, try again later", r->address);
		return;
	}
	switch (out->result.status) {
	case LMTP_DELIVER_OK:
		s->delivered++;
		reply(s, "250 2.0.0 <%s> Saved as UID %u in %s", r->address, out->result.uid,
		      out->result.mailbox);
		break;
	case LMTP_DELIVER_QUOTA:
		reply(s, "552 5.2.2 <%s> Mailbox full", r->address);
		break;
	case LMTP_DELIVER_REFUSED:
		reply(s, "554 5.6.0 <%s> Message refused by the store", r->address);
		break;
	case LMTP_DELIVER_TEMPFAIL:
		/* The details are in the log, never in the reply. */
		reply(s, "451 4.3.0 <%s> Temporary failure, try again later", r->address);
		break;
	}
}

/* The transaction is over (delivered or refused): back to READY, and
 * the pipelined input that waited meanwhile gets its turn. */
static void end_transaction(struct lmtp_session *s)
{
	reset_transaction(s);
	set_state(s, LMTP_READY);
	if (s->quit_after_data) {
		reply(s, "421 4.3.2 %s Service shutting down", s->ctx->cfg->hostname);
		quit(s, "shutdown");
	}
}

static void finish_data(struct lmtp_session *s)
{
	if (!s->data.too_big) {
		/* RFC 2033 4.2: the replies come when the job is back
		 * (lmtp_jobs_done), one per recipient in RCPT order. The
		 * message and the recipients move into the job. */
		s->job = lmtp_job_new(s->ctx->cfg->data_dir, s->id, &s->sender, &s->rcpts,
				      s->rcpt_count, &s->message, s);
		s->rcpt_count = 0;
		set_state(s, LMTP_DELIVERING);
		/* Deliveries may wait for a user's write lock: no idle
		 * timeout while the server is the one being slow. */
		ev_timer_stop(s->ctx->loop, &s->timer);
		lmtp_pool_submit(s->ctx->pool, s->job);
		return;
	}
	for (size_t i = 0; i < s->rcpt_count; i++) {
		METRIC_INC(s->ctx->metrics->deliveries[METRICS_DELIVERY_REJECTED]);
		reply(s, "552 5.3.4 <%s> Message too big (limit %llu bytes)", s->rcpts[i].address,
		      (unsigned long long)s->data.limit);
	}
	struct log_line l;
	log_begin(&l, LOG_INFO, "delivery_too_big");
	log_str(&l, "session", s->id);
	log_str(&l, "from", s->sender);
	log_uint(&l, "size", s->data.size);
	log_uint(&l, "limit", s->data.limit);
	log_end(&l);
	end_transaction(s);
}

static void job_done(struct lmtp_context *ctx, struct lmtp_job *job)
{
	/* Logged and counted even when the session is gone: what was
	 * committed is in the store, answered or not. */
	for (size_t i = 0; i < job->rcpt_count; i++) {
		const struct lmtp_rcpt_outcome *out = &job->outcomes[i];
		if (!out->attempted)
			continue;
		count_delivery(ctx, out->result.status, out->done_ms - job->submitted_ms);
		log_delivery(job, &job->rcpts[i], out);
		if (out->result.status == LMTP_DELIVER_OK)
			search_indexer_push(ctx->indexer, job->rcpts[i].user);
	}
	struct lmtp_session *s = job->owner;
	if (s == NULL) {
		/* The MTA heard nothing and will send it all again: the
		 * copies written before the hang-up will be duplicates. */
		size_t written = 0;
		for (size_t i = 0; i < job->rcpt_count; i++)
			written += job->outcomes[i].attempted;
		struct log_line l;
		log_begin(&l, LOG_INFO, "delivery_abandoned");
		log_str(&l, "session", job->session_id);
		log_uint(&l, "attempted", written);
		log_uint(&l, "skipped", job->rcpt_count - written);
		log_end(&l);
		return;
	}
	assert(s->job == job && s->state == LMTP_DELIVERING);
	s->job = NULL;
	for (size_t i = 0; i < job->rcpt_count; i++)
		reply_outcome(s, &job->rcpts[i], &job->outcomes[i]);
	end_transaction(s);
	if (s->state == LMTP_QUIT)
		return;
	arm_timer(s);
	/* Commands that came in meanwhile (or were pipelined after the dot);
	 * a paused conn re-delivers its input itself once resumed. */
	if (s->conn->input_paused)
		conn_resume_input(s->conn);
	else
		process_input(s);
}

void lmtp_jobs_done(struct lmtp_context *ctx)
{
	struct lmtp_job *job;
	while ((job = lmtp_pool_next_done(ctx->pool)) != NULL) {
		job_done(ctx, job);
		lmtp_job_free(&job);
	}
}

/* --- Input ---------------------------------------------------------------- */

static void arm_timer(struct lmtp_session *s)
{
	ev_timer_start(s->ctx->loop, &s->timer, (uint64_t)LIMIT_LMTP_TIMEOUT_S * 1000);
}

/* Runs pipelined commands and reads message data until the input is used
 * up (RFC 2920: replies go out in order, flushed once per loop pass). */
static void process_input(struct lmtp_session *s)
{
	struct buf *in = &s->conn->in;
	while (s->state != LMTP_QUIT && s->state != LMTP_DELIVERING && in->len > 0) {
		if (s->state == LMTP_DATA) {
			size_t used = 0;
			int done = lmtp_data_feed(&s->data, in->data, in->len, &used);
			buf_consume(in, used);
			if (!done)
				return;
			finish_data(s);
			continue;
		}
		char *lf = memchr(in->data, '\n', in->len);
		if (lf == NULL) {
			/* Keep a partial line only up to the limit. */
			if (in->len > LIMIT_LMTP_LINE) {
				buf_clear(in);
				s->skipping_line = true;
			}
			return;
		}
		size_t len = (size_t)(lf - in->data);
		bool too_long = s->skipping_line || len > LIMIT_LMTP_LINE;
		s->skipping_line = false;
		if (len > 0 && in->data[len - 1] == '\r')
			len--;
		if (too_long || memchr(in->data, '\0', len) != NULL) {
			buf_consume(in, (size_t)(lf - in->data) + 1);
			reply(s, too_long ? "500 5.5.2 Line too long" : "500 5.5.2 NUL in command");
			continue;
		}
		char *line = xstrndup(in->data, len);
		buf_consume(in, (size_t)(lf - in->data) + 1);
		run_command(s, line);
		free(line);
	}
}

static void on_input(void *ctx)
{
	struct lmtp_session *s = ctx;
	if (s->state == LMTP_DELIVERING) {
		/* Still reading, so that a client that hangs up is noticed
		 * and its job cancelled; the commands wait for the replies
		 * (RFC 2033 4.2), and past a cap so does the reading. */
		if (s->conn->in.len > LIMIT_LMTP_PIPELINED)
			conn_pause_input(s->conn);
		return;
	}
	arm_timer(s);
	process_input(s);
}

static void on_close(void *ctx, const char *reason)
{
	struct lmtp_session *s = ctx;
	if (s->close_reason == NULL) {
		if (s->state == LMTP_DATA)
			reason = "eof_in_data";
		else if (s->state == LMTP_DELIVERING)
			reason = "eof_in_delivery";
		s->close_reason = xstrdup(reason);
	}
	session_free(s);
}

static const struct conn_handler lmtp_conn_handler = {
	.on_input = on_input,
	.on_close = on_close,
};

static void timeout_cb(void *ctx)
{
	struct lmtp_session *s = ctx;
	/* RFC 5321 4.5.3.2.7 */
	reply(s, "421 4.4.2 %s Timeout, closing connection", s->ctx->cfg->hostname);
	quit(s, "timeout");
}

/* LMTP asks nobody for a password, so who may connect is the only guard
 * (config.c check_lmtp_peers). A unix socket ("local") is guarded by its
 * file permissions. */
static bool peer_trusted(const struct config_listener *l, const char *ip)
{
	if (l->addr.ss_family == AF_UNIX)
		return true;
	if (l->trusted_networks.count == 0)
		return netmask_is_loopback(ip);
	return netmask_list_contains(&l->trusted_networks, ip);
}

void lmtp_accept(struct lmtp_context *ctx, int fd, const struct config_listener *l)
{
	struct lmtp_session *s = xcalloc(1, sizeof(*s));
	s->ctx = ctx;
	s->listener = l;
	s->state = LMTP_GREETED;
	s->connected_ms = ev_now(ctx->loop);
	snprintf(s->id, sizeof(s->id), "L%u.%llu", ctx->worker_index,
		 (unsigned long long)++ctx->next_session_id);
	/* LMTP listeners are plaintext (config.c refuses tls for them). */
	s->conn = conn_new(ctx->loop, fd, &lmtp_conn_handler, s, NULL);
	if (s->conn == NULL) {
		free(s);
		return;
	}
	ev_timer_init(&s->timer, timeout_cb, s);
	arm_timer(s);
	size_t index = (size_t)(l - ctx->listeners);
	if (index < METRICS_MAX_LISTENERS)
		METRIC_INC(ctx->metrics->connections_accepted[index]);
	s->next = ctx->sessions;
	if (ctx->sessions != NULL)
		ctx->sessions->prev = s;
	ctx->sessions = s;
	ctx->session_count++;

	struct log_line line;
	log_begin(&line, LOG_INFO, "connect");
	log_str(&line, "session", s->id);
	log_str(&line, "listener", l->name);
	log_str(&line, "ip", s->conn->peer_ip);
	log_end(&line);
	if (!peer_trusted(l, s->conn->peer_ip)) {
		log_begin(&line, LOG_WARN, "lmtp_refused");
		log_str(&line, "session", s->id);
		log_str(&line, "ip", s->conn->peer_ip);
		log_str(&line, "reason", l->trusted_networks.count == 0 ? "not loopback" : "not in trusted_networks");
		log_end(&line);
		reply(s, "554 5.7.1 %s %s is not allowed to deliver here", ctx->cfg->hostname, s->conn->peer_ip);
		quit(s, "untrusted peer");
		return;
	}
	if (ctx->draining) {
		reply(s, "421 4.3.2 %s Service shutting down", ctx->cfg->hostname);
		quit(s, "shutdown");
		return;
	}
	reply(s, "220 %s LMTP postern ready", ctx->cfg->hostname);
}

static void session_free(struct lmtp_session *s)
{
	struct lmtp_context *ctx = s->ctx;
	struct log_line l;
	log_begin(&l, LOG_INFO, "disconnect");
	log_str(&l, "session", s->id);
	log_str(&l, "ip", s->conn->peer_ip);
	log_str(&l, "reason", s->close_reason ? s->close_reason : "unknown");
	log_uint(&l, "delivered", s->delivered);
	log_uint(&l, "duration_ms", ev_clock_ms() - s->connected_ms);
	log_uint(&l, "bytes_in", s->conn->bytes_in);
	log_end(&l);
	size_t index = (size_t)(s->listener - ctx->listeners);
	if (index < METRICS_MAX_LISTENERS)
		METRIC_INC(ctx->metrics->connections_closed[index][metrics_close_from(s->close_reason)]);
	ev_timer_stop(ctx->loop, &s->timer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		ctx->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	ctx->session_count--;
	if (s->job != NULL) {
		/* The job keeps the message and frees it when it comes back
		 * (lmtp_jobs_done); recipients not started are skipped. */
		s->job->owner = NULL;
		atomic_store(&s->job->cancelled, true);
		s->job = NULL;
	}
	reset_transaction(s);
	conn_free(&s->conn);
	free(s->close_reason);
	free(s);
}

void lmtp_shutdown_all(struct lmtp_context *ctx)
{
	ctx->draining = true;
	for (struct lmtp_session *s = ctx->sessions; s != NULL; s = s->next) {
		if (s->state == LMTP_QUIT)
			continue;
		if (s->state == LMTP_DATA || s->state == LMTP_DELIVERING) {
			s->quit_after_data = true;
			continue;
		}
		reply(s, "421 4.3.2 %s Service shutting down", ctx->cfg->hostname);
		quit(s, "shutdown");
	}
}

void lmtp_close_all(struct lmtp_context *ctx)
{
	while (ctx->sessions != NULL) {
		if (ctx->sessions->close_reason == NULL)
			ctx->sessions->close_reason = xstrdup("shutdown");
		session_free(ctx->sessions);
	}
}
