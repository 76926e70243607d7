#include "imapd/session.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/shcount.h"
#include "core/xalloc.h"
#include "imap/quote.h"
#include "imap/utf7.h"
#include "imapd/notify.h"
#include "imapd/selected.h"
#include "imapd/store_cache.h"
#include "metrics/metrics.h"
#include "store/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A session that said goodbye gets this long for the goodbye to be
 * written; a client that does not read is then simply closed. */
#define LOGOUT_FLUSH_MS 10000

static const char *const state_names[] = {
	"not_authenticated", "authenticated", "selected", "logout",
};

static const char *state_text(enum session_state state)
{
	switch (state) {
	case SESSION_NOT_AUTHENTICATED: return "not authenticated";
	case SESSION_AUTHENTICATED: return "authenticated";
	case SESSION_SELECTED: return "selected";
	case SESSION_LOGOUT: return "logout";
	}
	return "unknown";
}

static void session_free(struct session *s);
static void session_process_input(struct session *s);

bool session_plaintext_auth_allowed(const struct session *s)
{
	return conn_is_tls(s->conn) || s->ctx->cfg->allow_plaintext_auth;
}

bool session_starttls_available(const struct session *s)
{
	return s->listener->tls == LISTENER_TLS_STARTTLS && !conn_is_tls(s->conn) &&
	       s->state == SESSION_NOT_AUTHENTICATED;
}

void session_capabilities(const struct session *s, struct buf *out)
{
	/* RFC 9051 6.1.1, 6.3.1: both revisions; a client opts into
	 * IMAP4rev2 with ENABLE. IMAP4rev2 includes LITERAL- (non-synchronizing
	 * literals up to 4096 bytes); LITERAL+ below allows them at any size
	 * (RFC 7888 4), so LITERAL- itself is not announced: a server offers
	 * one of the two, and a client reading LITERAL- would limit itself
	 * for nothing. */
	buf_append_str(out, "IMAP4rev1 IMAP4rev2");
	if (s->state == SESSION_NOT_AUTHENTICATED) {
		if (session_starttls_available(s))
			buf_append_str(out, " STARTTLS");
		/* RFC 3501 6.2.3, RFC 2595 3.2: no AUTH= while LOGINDISABLED. */
		if (session_plaintext_auth_allowed(s))
			buf_append_str(out, " AUTH=PLAIN SASL-IR");
		else
			buf_append_str(out, " LOGINDISABLED");
	}
	buf_append_str(out, " ID ENABLE LITERAL+");
	if (s->state == SESSION_NOT_AUTHENTICATED)
		return;
	/* Every extension the authenticated states offer, in one place. A
	 * name goes here once the extension works in full and has protocol
	 * tests (docs/design.md: "advertised only when they work"). */
	static const char *const after_login[] = {
		"IDLE", "UTF8=ACCEPT", "UIDPLUS", "MOVE", "UNSELECT", "NAMESPACE", "CHILDREN",
		"SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "MULTIAPPEND",
		"STATUS=SIZE",
		"CONDSTORE",	/* RFC 7162 3.1 */
		"QRESYNC",	/* RFC 7162 3.2 */
		"ESEARCH",	/* RFC 4731 */
		"WITHIN",	/* RFC 5032 */
		"SAVEDATE",	/* RFC 8514 */
		"OBJECTID",	/* RFC 8474 */
		"BINARY",	/* RFC 3516 */
		"SEARCHRES",	/* RFC 5182 */
	};
	for (size_t i = 0; i < sizeof(after_login) / sizeof(after_login[0]); i++)
		buf_printf(out, " %s", after_login[i]);
	/* RFC 7889 2: the largest message APPEND takes, the literal limit; a
	 * larger one gets [TOOBIG] before any of it is sent. */
	buf_printf(out, " APPENDLIMIT=%llu", (unsigned long long)s->ctx->cfg->max_literal_size);
}

size_t imapd_command_name_count(void)
{
	return session_command_count + 2;
}

const char *imapd_command_name(size_t index)
{
	if (index < session_command_count)
		return session_commands[index].name;
	return index == session_command_count ? "UNKNOWN" : "INVALID";
}

size_t session_listener_index(const struct session *s)
{
	return (size_t)(s->listener - s->ctx->listeners);
}

static uint64_t clock_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A tagged reply ends the command: count it and time it. */
static void record_command(struct session *s, const char *status)
{
	if (s->cmd_index < 0)
		return;
	struct metrics_worker *m = s->ctx->metrics;
	size_t index = (size_t)s->cmd_index;
	s->cmd_index = -1;
	if (index >= METRICS_MAX_COMMANDS)
		return;
	enum metrics_result result = strcmp(status, "OK") == 0 ? METRICS_OK
				     : strcmp(status, "NO") == 0 ? METRICS_NO : METRICS_BAD;
	METRIC_INC(m->commands[index][result]);
	uint64_t elapsed = clock_us() - s->cmd_started_us;
	metrics_observe(&m->command_latency[index], elapsed);
	uint64_t threshold_us = (uint64_t)s->ctx->cfg->slow_command_ms * 1000;
	if (threshold_us > 0 && elapsed >= threshold_us) {
		METRIC_INC(m->slow_commands);
		struct log_line l;
		log_begin(&l, LOG_WARN, "slow_command");
		log_str(&l, "session", s->id);
		log_str(&l, "user", s->user);
		log_str(&l, "command", imapd_command_name(index));
		log_str(&l, "result", status);
		log_uint(&l, "ms", elapsed / 1000);
		log_end(&l);
	}
}

static void write_line(struct session *s, struct buf *line)
{
	buf_append_str(line, "\r\n");
	conn_write(s->conn, line->data, line->len);
	buf_free(line);
}

static void append_text(struct buf *line, const char *fmt, va_list ap)
{
	struct buf text = BUF_INIT;
	buf_vprintf(&text, fmt, ap);
	imap_write_text(line, text.data ? text.data : "", text.len);
	buf_free(&text);
}

void session_tagged(struct session *s, const char *tag, const char *status, const char *fmt, ...)
{
	/* Changes made elsewhere reach the client before the command ends. */
	session_sync(s, s->allow_expunge);
	record_command(s, status);
	struct buf line = BUF_INIT;
	buf_printf(&line, "%s %s ", tag, status);
	va_list ap;
	va_start(ap, fmt);
	append_text(&line, fmt, ap);
	va_end(ap);
	write_line(s, &line);
}

void session_ok(struct session *s, const char *tag, const char *fmt, ...)
{
	session_sync(s, s->allow_expunge);
	record_command(s, "OK");
	struct buf line = BUF_INIT;
	buf_printf(&line, "%s OK ", tag);
	va_list ap;
	va_start(ap, fmt);
	append_text(&line, fmt, ap);
	va_end(ap);
	write_line(s, &line);
}

void session_store_error(struct session *s, const char *tag, const char *what)
{
	const char *detail = NULL;
	enum store_error error = store_last_error(s->store, &detail);
	struct log_line l;
	bool server_fault = error == STORE_ERR_IO || error == STORE_ERR_VERSION || error == STORE_ERR_BUSY;
	if (server_fault)
		METRIC_INC(s->ctx->metrics->store_errors);
	log_begin(&l, server_fault ? LOG_ERROR : LOG_DEBUG, "store_error");
	log_str(&l, "session", s->id);
	log_str(&l, "user", s->user);
	log_str(&l, "op", what);
	log_str(&l, "error", store_error_name(error));
	log_str(&l, "detail", detail);
	log_end(&l);
	switch (error) {
	case STORE_ERR_NOT_FOUND:
		session_tagged(s, tag, "NO", "[NONEXISTENT] %s: no such mailbox or message", what);
		break;
	case STORE_ERR_EXISTS:
		session_tagged(s, tag, "NO", "[ALREADYEXISTS] %s: the name is taken", what);
		break;
	case STORE_ERR_INVALID_NAME:
		session_tagged(s, tag, "NO", "[CANNOT] %s: invalid mailbox name", what);
		break;
	case STORE_ERR_NOT_ALLOWED:
		session_tagged(s, tag, "NO", "[CANNOT] %s: not allowed", what);
		break;
	case STORE_ERR_INVALID:
		session_tagged(s, tag, "NO", "[CANNOT] %s: invalid argument", what);
		break;
	case STORE_ERR_LIMIT:
		session_tagged(s, tag, "NO", "[LIMIT] %s: too many keywords in this mailbox", what);
		break;
	case STORE_ERR_QUOTA:
		session_tagged(s, tag, "NO", "[OVERQUOTA] %s: quota exceeded", what);
		break;
	case STORE_ERR_BUSY:
		session_tagged(s, tag, "NO", "[INUSE] %s: the mailbox is busy, try again", what);
		break;
	case STORE_ERR_NONE:
	case STORE_ERR_IO:
	case STORE_ERR_VERSION:
		session_tagged(s, tag, "NO", "[SERVERBUG] %s failed; the server log has details", what);
		break;
	}
}

static int name_from_wire(const struct session *s, const struct imap_arg *arg,
			  struct buf *utf8_r, const char **error_r);

int session_mailbox_from_wire(const struct session *s, const struct imap_arg *arg,
			      struct buf *utf8_r, const char **error_r)
{
	if (!imap_arg_is_astring(arg) || imap_arg_has_nul(arg)) {
		*error_r = "Mailbox name must be an atom or a string";
		return -1;
	}
	return name_from_wire(s, arg, utf8_r, error_r);
}

int session_pattern_from_wire(const struct session *s, const struct imap_arg *arg,
			      struct buf *utf8_r, const char **error_r)
{
	if (!imap_arg_is_list_mailbox(arg) || imap_arg_has_nul(arg)) {
		*error_r = "Mailbox pattern must be an atom, with % and * allowed, or a string";
		return -1;
	}
	return name_from_wire(s, arg, utf8_r, error_r);
}

static int name_from_wire(const struct session *s, const struct imap_arg *arg,
			  struct buf *utf8_r, const char **error_r)
{
	buf_clear(utf8_r);
	if (s->utf8) {
		if (!imap_utf8_is_valid(arg->str, arg->len)) {
			*error_r = "Mailbox name is not valid UTF-8";
			return -1;
		}
		buf_append(utf8_r, arg->str, arg->len);
		return 0;
	}
	/* RFC 3501 5.1.3: 8-bit names are not valid before UTF8=ACCEPT. */
	for (size_t i = 0; i < arg->len; i++) {
		if ((unsigned char)arg->str[i] >= 0x80) {
			*error_r = "Mailbox name must be modified UTF-7 (8-bit characters need ENABLE UTF8=ACCEPT)";
			return -1;
		}
	}
	if (imap_utf7_to_utf8(arg->str, arg->len, utf8_r) < 0) {
		*error_r = "Mailbox name is not valid modified UTF-7";
		return -1;
	}
	return 0;
}

void session_write_mailbox(const struct session *s, struct buf *out, const char *utf8_name)
{
	if (s->utf8) {
		imap_write_string(out, utf8_name, strlen(utf8_name), true);
		return;
	}
	struct buf wire = BUF_INIT;
	if (imap_utf8_to_utf7(utf8_name, strlen(utf8_name), &wire) < 0) {
		buf_clear(&wire);
		buf_append_str(&wire, utf8_name);
	}
	imap_write_astring(out, wire.data ? wire.data : "", wire.len);
	buf_free(&wire);
}

void session_untagged(struct session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	buf_append_str(&line, "* ");
	va_list ap;
	va_start(ap, fmt);
	append_text(&line, fmt, ap);
	va_end(ap);
	write_line(s, &line);
}

static void apply_limits(struct session *s)
{
	const struct config *cfg = s->ctx->cfg;
	struct imap_parser_limits limits = {
		.max_line = cfg->max_line_length,
		.max_literal = cfg->max_literal_size,
		.max_depth = LIMIT_LIST_DEPTH,
	};
	/* Before login nothing needs a big literal: a user name and a password.
	 * After it, big APPEND literals are streamed to disk (handle_literal). */
	if (s->state == SESSION_NOT_AUTHENTICATED)
		limits.max_literal = LIMIT_PASSWORD_LEN * 2;
	else
		limits.stream_threshold = LIMIT_STREAM_THRESHOLD;
	imap_parser_set_limits(s->parser, &limits);
}

static void arm_idle_timer(struct session *s)
{
	const struct config *cfg = s->ctx->cfg;
	int seconds = s->state == SESSION_NOT_AUTHENTICATED ? cfg->login_timeout : cfg->idle_timeout;
	s->stall_bytes_out = s->conn->bytes_out;
	ev_timer_start(s->ctx->loop, &s->idle_timer, (uint64_t)seconds * 1000);
}

static enum metrics_session_state metrics_state(enum session_state state)
{
	switch (state) {
	case SESSION_NOT_AUTHENTICATED: return METRICS_STATE_NOT_AUTH;
	case SESSION_AUTHENTICATED: return METRICS_STATE_AUTH;
	case SESSION_SELECTED: return METRICS_STATE_SELECTED;
	case SESSION_LOGOUT: return METRICS_STATE_COUNT;
	}
	return METRICS_STATE_COUNT;
}

void session_set_state(struct session *s, enum session_state state)
{
	if (s->state == state)
		return;
	struct log_line l;
	log_begin(&l, LOG_DEBUG, "session_state");
	log_str(&l, "session", s->id);
	log_str(&l, "from", state_names[s->state]);
	log_str(&l, "to", state_names[state]);
	log_end(&l);
	enum metrics_session_state before = metrics_state(s->state), after = metrics_state(state);
	if (before != METRICS_STATE_COUNT)
		METRIC_DEC(s->ctx->metrics->sessions[before]);
	if (after != METRICS_STATE_COUNT)
		METRIC_INC(s->ctx->metrics->sessions[after]);
	s->state = state;
	apply_limits(s);
	arm_idle_timer(s);
}

void session_logout(struct session *s, const char *reason)
{
	if (s->close_reason == NULL)
		s->close_reason = xstrdup(reason);
	enum metrics_session_state before = metrics_state(s->state);
	if (before != METRICS_STATE_COUNT)
		METRIC_DEC(s->ctx->metrics->sessions[before]);
	s->state = SESSION_LOGOUT;
	ev_timer_start(s->ctx->loop, &s->idle_timer, LOGOUT_FLUSH_MS);
	ev_timer_stop(s->ctx->loop, &s->rate_timer);
	conn_pause_input(s->conn);
	conn_close_after_flush(s->conn);
}

static void idle_timeout_cb(void *ctx)
{
	struct session *s = ctx;
	if (s->state == SESSION_LOGOUT) {
		/* The goodbye was never read: stop waiting for the client. */
		session_free(s);
		return;
	}
	if (conn_output_pending(s->conn) > 0) {
		/* Output waits for the client. Reading slowly (a big FETCH over
		 * a bad link) is fine: wait another period. Not reading at all
		 * for a whole period: nothing more can be said, so close now
		 * (a BYE would land in the middle of what is queued). */
		if (s->conn->bytes_out != s->stall_bytes_out) {
			arm_idle_timer(s);
			return;
		}
		METRIC_INC(s->ctx->metrics->limits[METRICS_LIMIT_OUTPUT_STALLED]);
		if (s->close_reason == NULL)
			s->close_reason = xstrdup("limit: output stalled");
		session_free(s);
		return;
	}
	if (s->conn->tls_state == CONN_TLS_HANDSHAKE) {
		/* Nothing can be said before TLS is up: just hang up. */
		if (s->close_reason == NULL)
			s->close_reason = xstrdup("tls_failed: handshake timeout");
		session_free(s);
		return;
	}
	session_untagged(s, "BYE Autologout; idle for too long");
	session_logout(s, "timeout");
}

static int compare_command(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct command_def *)elem)->name);
}

static const struct command_def *find_command(const char *name)
{
	return bsearch(name, session_commands, session_command_count,
		       sizeof(session_commands[0]), compare_command);
}

static unsigned state_bit(enum session_state state)
{
	switch (state) {
	case SESSION_NOT_AUTHENTICATED: return CMD_NOT_AUTH;
	case SESSION_AUTHENTICATED: return CMD_AUTH;
	case SESSION_SELECTED: return CMD_SELECTED;
	case SESSION_LOGOUT: return 0;
	}
	return 0;
}

static void run_command(struct session *s, const struct imap_command *cmd)
{
	struct imap_command uid_cmd;
	s->cmd_uid = false;
	s->cmd_started_us = clock_us();
	s->cmd_index = (int)session_command_count;	/* UNKNOWN until found */
	if (strcmp(cmd->name, "UID") == 0) {
		const struct command_def *inner = NULL;
		if (cmd->arg_count > 0 && imap_arg_is_atom(&cmd->args[0]))
			inner = find_command(cmd->args[0].str);
		if (inner == NULL || !(inner->flags & CMD_UID)) {
			session_tagged(s, cmd->tag, "BAD", "UID must be followed by COPY, FETCH, MOVE, SEARCH, STORE or EXPUNGE");
			return;
		}
		uid_cmd = (struct imap_command){
			.tag = cmd->tag, .name = inner->name, .args = cmd->args + 1, .arg_count = cmd->arg_count - 1,
		};
		cmd = &uid_cmd;
		s->cmd_uid = true;
	}
	const struct command_def *def = find_command(cmd->name);
	if (def != NULL)
		s->cmd_index = (int)(def - session_commands);
	if (def == NULL) {
		session_tagged(s, cmd->tag, "BAD", "Unknown command %s", cmd->name);
		return;
	}
	if ((def->flags & state_bit(s->state)) == 0) {
		s->allow_expunge = false;
		/* RFC 9051 6: a command in the wrong state is a protocol error. */
		session_tagged(s, cmd->tag, "BAD", "%s is not valid in the %s state",
			       def->name, state_text(s->state));
		return;
	}
	/* RFC 9051 7.4.1: FETCH, STORE and SEARCH (not their UID forms)
	 * must not see EXPUNGE responses. */
	s->allow_expunge = !(def->flags & CMD_NO_EXPUNGE) || s->cmd_uid;
	def->handler(s, cmd);
}

/* Drops the blobs of the command being read (it ended, failed, or the
 * session goes): their temp files are removed. */
static void stream_clear(struct session *s)
{
	for (size_t i = 0; i < s->stream_blob_count; i++)
		store_blob_free(&s->stream_blobs[i]);
	s->stream_blob_count = 0;
	s->stream_failed = false;
}

static void stream_write_failed(struct session *s)
{
	const char *detail = NULL;
	store_last_error(s->store, &detail);
	struct log_line l;
	log_begin(&l, LOG_DEBUG, "append_stream_failed");
	log_str(&l, "session", s->id);
	log_str(&l, "detail", detail);
	log_end(&l);
	s->stream_failed = true;
}

/* The parser's sink for a streamed APPEND literal: bytes go to the newest
 * blob as they arrive. After a failure the rest of the literal is read and
 * dropped; the APPEND then fails as a whole. */
static void stream_sink(void *ctx, const char *data, size_t len)
{
	struct session *s = ctx;
	if (s->stream_failed)
		return;
	struct store_blob *blob = s->stream_blobs[s->stream_blob_count - 1];
	if (store_blob_write(s->store, blob, data, len) < 0)
		stream_write_failed(s);
}

/* Only APPEND streams: it is the one command whose big literal is a
 * message to store, and cmd_append knows streamed arguments. Other
 * commands keep their (rare) big literals in memory, up to the limit. */
static bool stream_wanted(const struct session *s, uint64_t size)
{
	return s->store != NULL && size > LIMIT_STREAM_THRESHOLD &&
	       strcmp(imap_parser_partial_name(s->parser), "APPEND") == 0;
}

/* Starts a blob for the announced literal and streams it there. Returns
 * false when no blob could be begun: the caller rejects the literal. */
static bool stream_begin(struct session *s)
{
	struct store_blob *blob = NULL;
	if (!s->stream_failed) {
		if (store_blob_begin(s->store, &blob) < 0)
			return false;
		if (s->stream_blob_count == s->stream_blob_cap) {
			s->stream_blob_cap = s->stream_blob_cap ? s->stream_blob_cap * 2 : 4;
			s->stream_blobs = xrealloc(s->stream_blobs,
						   s->stream_blob_cap * sizeof(*s->stream_blobs));
		}
		s->stream_blobs[s->stream_blob_count++] = blob;
	}
	/* After an earlier write failure the sink drops this one too. */
	imap_parser_literal_stream(s->parser, stream_sink, s);
	return true;
}

/* IMAP_PARSE_LITERAL: a synchronizing literal, or a big non-synchronizing
 * one whose data is already on its way. */
static void handle_literal(struct session *s)
{
	uint64_t size = imap_parser_literal_size(s->parser);
	const char *tag = imap_parser_partial_tag(s->parser);
	bool sync = imap_parser_literal_is_sync(s->parser);
	uint64_t limit = s->state == SESSION_NOT_AUTHENTICATED ? LIMIT_PASSWORD_LEN * 2
							      : s->ctx->cfg->max_literal_size;
	/* Only a synchronizing literal gets here too large: the parser
	 * reports an oversized {n+} as an error itself. */
	if (imap_parser_literal_too_large(s->parser)) {
		imap_parser_literal_reject(s->parser);
		stream_clear(s);
		/* RFC 7888 4 / RFC 7889: TOOBIG, and the client sends no literal. */
		session_tagged(s, tag[0] ? tag : "*", "BAD", "[TOOBIG] Literal of %llu bytes is too large (limit %llu)",
			       (unsigned long long)size, (unsigned long long)limit);
		return;
	}
	if (!stream_wanted(s, size)) {
		imap_parser_literal_accept(s->parser);
	} else if (!stream_begin(s)) {
		/* No temp file (disk full, permissions): refuse now rather
		 * than read the message for nothing. A {n+} is skipped with
		 * the rest of the command; a {n} is never sent. */
		char *saved_tag = xstrdup(tag[0] ? tag : "*");
		imap_parser_literal_reject(s->parser);
		session_store_error(s, saved_tag, "APPEND");
		stream_clear(s);
		free(saved_tag);
		return;
	}
	if (sync)
		conn_write_str(s->conn, "+ Ready for literal data\r\n");
}

static void rate_timer_cb(void *ctx)
{
	struct session *s = ctx;
	if (!s->busy && s->state != SESSION_LOGOUT)
		conn_resume_input(s->conn);
}

/* max_commands_per_second: true when the next command may run now.
 * Otherwise input is paused until the bucket holds a command again, so
 * excess commands wait in the socket and none is dropped. */
static bool rate_allows(struct session *s)
{
	uint64_t rate = (uint64_t)s->ctx->cfg->max_commands_per_second;
	if (rate == 0)
		return true;
	uint64_t now = ev_clock_ms();
	uint64_t cap = rate * 1000;
	s->rate_tokens += (now - s->rate_refilled_ms) * rate;
	if (s->rate_tokens > cap)
		s->rate_tokens = cap;
	s->rate_refilled_ms = now;
	if (s->rate_tokens >= 1000)
		return true;
	uint64_t wait_ms = (1000 - s->rate_tokens + rate - 1) / rate;
	if (!ev_timer_active(&s->rate_timer)) {
		METRIC_INC(s->ctx->metrics->limits[METRICS_LIMIT_COMMAND_RATE]);
		struct log_line l;
		log_begin(&l, LOG_DEBUG, "command_rate_limited");
		log_str(&l, "session", s->id);
		log_uint(&l, "wait_ms", wait_ms);
		log_end(&l);
	}
	conn_pause_input(s->conn);
	ev_timer_start(s->ctx->loop, &s->rate_timer, wait_ms);
	return false;
}

/* A command (or a line that failed to parse) was read: it costs one. */
static void rate_charge(struct session *s)
{
	if (s->rate_tokens >= 1000)
		s->rate_tokens -= 1000;
}

/* Parses and runs pipelined commands until the input is used up or a
 * command goes asynchronous. */
static void session_process_input(struct session *s)
{
	struct conn *c = s->conn;
	while (!s->busy && s->state != SESSION_LOGOUT && c->in.len > 0) {
		if (!rate_allows(s))
			return;
		size_t consumed = 0;
		enum imap_parse_result r = imap_parser_feed(s->parser, c->in.data, c->in.len, &consumed);
		buf_consume(&c->in, consumed);
		switch (r) {
		case IMAP_PARSE_MORE:
			return;
		case IMAP_PARSE_COMMAND:
			rate_charge(s);
			arm_idle_timer(s);
			run_command(s, imap_parser_command(s->parser));
			stream_clear(s);
			break;
		case IMAP_PARSE_LITERAL:
			handle_literal(s);
			break;
		case IMAP_PARSE_LINE: {
			size_t len;
			const char *line = imap_parser_line(s->parser, &len);
			arm_idle_timer(s);
			if (s->idling)
				session_idle_end(s, line, len);
			else
				session_auth_continue(s, line, len);
			break;
		}
		case IMAP_PARSE_ERROR:
			rate_charge(s);
			s->cmd_index = (int)session_command_count + 1;
			s->cmd_started_us = clock_us();
			stream_clear(s);
			session_tagged(s, imap_parser_error_tag(s->parser), "BAD", "%s",
				       imap_parser_error(s->parser));
			break;
		case IMAP_PARSE_FATAL:
			stream_clear(s);
			session_untagged(s, "BYE %s", imap_parser_error(s->parser));
			session_logout(s, "protocol_error");
			return;
		}
	}
}

void session_command_done(struct session *s)
{
	s->busy = false;
	if (s->state == SESSION_LOGOUT)
		return;
	conn_resume_input(s->conn);
}

static void on_input(void *ctx)
{
	struct session *s = ctx;
	session_process_input(s);
	if (s->busy || ev_timer_active(&s->rate_timer)) {
		conn_pause_input(s->conn);
		return;
	}
	/* The client closed its side: once everything it sent before has
	 * run, end the session after its replies are written. */
	if (s->conn->read_eof && s->state != SESSION_LOGOUT) {
		if (s->close_reason == NULL)
			s->close_reason = xstrdup("eof");
		session_logout(s, "eof");
	}
}

static void send_greeting(struct session *s)
{
	struct buf caps = BUF_INIT;
	session_capabilities(s, &caps);
	if (s->ctx->draining) {
		session_untagged(s, "BYE Server shutting down");
		session_logout(s, "shutdown");
	} else {
		session_untagged(s, "OK [CAPABILITY %s] %s IMAP server ready", caps.data,
				 s->ctx->cfg->hostname);
	}
	buf_free(&caps);
	s->greeted = true;
}

static void on_tls_ready(void *ctx)
{
	struct session *s = ctx;
	struct log_line l;
	log_begin(&l, LOG_DEBUG, "tls_established");
	log_str(&l, "session", s->id);
	log_str(&l, "version", conn_tls_version(s->conn));
	log_str(&l, "cipher", conn_tls_cipher(s->conn));
	log_end(&l);
	struct metrics_worker *m = s->ctx->metrics;
	METRIC_INC(m->tls_handshakes[metrics_tls_version_index(conn_tls_version(s->conn))]
				    [metrics_tls_cipher_index(conn_tls_cipher(s->conn))]);
	if (s->greeted)
		METRIC_INC(m->starttls_upgrades);
	if (!s->greeted)
		send_greeting(s);	/* implicit TLS: the greeting comes after the handshake */
}

static void on_close(void *ctx, const char *reason)
{
	struct session *s = ctx;
	if (s->close_reason == NULL)
		s->close_reason = xstrdup(reason);
	session_free(s);
}

static void on_drained(void *ctx)
{
	struct session *s = ctx;
	if (s->on_drained != NULL)
		s->on_drained(s);
}

static const struct conn_handler session_conn_handler = {
	.on_input = on_input,
	.on_tls_ready = on_tls_ready,
	.on_close = on_close,
	.on_drained = on_drained,
};

/* max_connections_per_ip, before any TLS work: a connection over the
 * limit gets a BYE in clear (on implicit TLS nothing: a handshake is
 * exactly the work a flood wants from us) and is closed. Every worker
 * sees the same counts. */
static bool refuse_over_ip_limit(struct imapd_context *ctx, int fd, const struct config_listener *l,
				 const char *ip, uint64_t *key_r)
{
	int limit = ctx->cfg->max_connections_per_ip;
	*key_r = 0;
	if (ctx->counts == NULL || limit == 0 || strcmp(ip, "unknown") == 0 || strcmp(ip, "local") == 0)
		return false;
	*key_r = shcount_key(ctx->counts, 'i', ip, NULL);
	unsigned held = shcount_total(ctx->counts, *key_r);
	if (held < (unsigned)limit)
		return false;
	struct metrics_worker *m = ctx->metrics;
	size_t index = (size_t)(l - ctx->listeners);
	if (index < METRICS_MAX_LISTENERS) {
		METRIC_INC(m->connections_accepted[index]);
		METRIC_INC(m->connections_refused[index]);
		METRIC_INC(m->connections_closed[index][METRICS_CLOSE_LIMIT]);
	}
	METRIC_INC(m->limits[METRICS_LIMIT_CONNECTIONS_PER_IP]);
	struct log_line line;
	log_begin(&line, LOG_WARN, "connection_refused");
	log_str(&line, "listener", l->name);
	log_str(&line, "ip", ip);
	log_str(&line, "reason", "limit: max_connections_per_ip");
	log_uint(&line, "connections", held);
	log_end(&line);
	if (l->tls != LISTENER_TLS_IMPLICIT) {
		static const char bye[] = "* BYE Too many connections from your address\r\n";
		/* The socket is new and empty: the line fits its buffer. */
		if (send(fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
			log_msg(LOG_DEBUG, "refuse_send", "%s", strerror(errno));
	}
	close(fd);
	return true;
}

void imapd_accept(struct imapd_context *ctx, int fd, const struct config_listener *l)
{
	char ip[64];
	uint64_t ip_key;
	conn_peer_address(fd, ip, sizeof(ip), NULL);
	if (refuse_over_ip_limit(ctx, fd, l, ip, &ip_key))
		return;
	struct session *s = xcalloc(1, sizeof(*s));
	s->ctx = ctx;
	s->listener = l;
	s->state = SESSION_NOT_AUTHENTICATED;
	s->connected_ms = ev_now(ctx->loop);
	snprintf(s->id, sizeof(s->id), "%u.%llu", ctx->worker_index,
		 (unsigned long long)++ctx->next_session_id);
	struct tls_server *tls = l->tls == LISTENER_TLS_IMPLICIT ? ctx->tls : NULL;
	s->conn = conn_new(ctx->loop, fd, &session_conn_handler, s, tls);
	if (s->conn == NULL) {
		log_msg(LOG_ERROR, "accept_failed", "cannot create a TLS session for listener %s", l->name);
		free(s);
		return;
	}
	s->parser = imap_parser_new(&(struct imap_parser_limits){ 0 });
	s->cmd_index = -1;
	if (ip_key != 0) {
		s->ip_key = ip_key;
		s->ip_counted = shcount_add(ctx->counts, ctx->worker_index, ip_key);
	}
	conn_set_output_limit(s->conn, ctx->cfg->max_output_buffer, "* BYE Too much output waiting: read it\r\n");
	s->rate_tokens = (uint64_t)ctx->cfg->max_commands_per_second * 1000;
	s->rate_refilled_ms = ev_clock_ms();
	s->conn->session_handles_eof = true;
	s->conn->metric_in = &ctx->metrics->bytes_in;
	s->conn->metric_out = &ctx->metrics->bytes_out;
	if (session_listener_index(s) < METRICS_MAX_LISTENERS)
		METRIC_INC(ctx->metrics->connections_accepted[session_listener_index(s)]);
	METRIC_INC(ctx->metrics->sessions[METRICS_STATE_NOT_AUTH]);
	ev_timer_init(&s->idle_timer, idle_timeout_cb, s);
	ev_timer_init(&s->delay_timer, NULL, s);
	ev_timer_init(&s->rate_timer, rate_timer_cb, s);
	session_idle_init(s);
	apply_limits(s);
	arm_idle_timer(s);
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
	log_int(&line, "port", s->conn->peer_port);
	log_end(&line);
	if (tls == NULL)
		send_greeting(s);
}

static void log_disconnect(struct session *s)
{
	struct log_line l;
	log_begin(&l, LOG_INFO, "disconnect");
	log_str(&l, "session", s->id);
	log_str(&l, "ip", s->conn->peer_ip);
	log_str(&l, "user", s->user);
	log_str(&l, "reason", s->close_reason ? s->close_reason : "unknown");
	log_uint(&l, "duration_ms", ev_clock_ms() - s->connected_ms);
	log_uint(&l, "bytes_in", s->conn->bytes_in);
	log_uint(&l, "bytes_out", s->conn->bytes_out);
	log_str(&l, "tls", conn_tls_version(s->conn));
	log_end(&l);
}

static void count_close(struct session *s)
{
	struct metrics_worker *m = s->ctx->metrics;
	const char *reason = s->close_reason;
	enum metrics_session_state state = metrics_state(s->state);
	if (state != METRICS_STATE_COUNT)
		METRIC_DEC(m->sessions[state]);
	size_t index = session_listener_index(s);
	if (index < METRICS_MAX_LISTENERS)
		METRIC_INC(m->connections_closed[index][metrics_close_from(reason)]);
	if (reason != NULL && strncmp(reason, "tls_failed", 10) == 0)
		METRIC_INC(m->tls_failures[metrics_tls_failure_from(reason)]);
	/* The conn closed it (conn_set_output_limit); the other limits are
	 * counted where they are decided. */
	if (reason != NULL && strcmp(reason, "limit: output buffer") == 0)
		METRIC_INC(m->limits[METRICS_LIMIT_OUTPUT_BUFFER]);
}

static void session_free(struct session *s)
{
	struct imapd_context *ctx = s->ctx;
	log_disconnect(s);
	count_close(s);
	session_login_cancel(s);
	ev_timer_stop(ctx->loop, &s->idle_timer);
	ev_timer_stop(ctx->loop, &s->delay_timer);
	ev_timer_stop(ctx->loop, &s->rate_timer);
	if (s->ip_counted)
		shcount_remove(ctx->counts, ctx->worker_index, s->ip_key);
	if (s->user_counted)
		shcount_remove(ctx->counts, ctx->worker_index, s->user_key);
	if (s->user_ip_counted)
		shcount_remove(ctx->counts, ctx->worker_index, s->user_ip_key);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		ctx->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	ctx->session_count--;
	session_idle_deinit(s);
	if (s->on_close != NULL)
		s->on_close(s);
	selected_free(&s->selected);
	/* A connection lost in the middle of a streamed APPEND: its temp
	 * files go now, before the store handle. */
	stream_clear(s);
	free(s->stream_blobs);
	store_cache_release(s->ctx, s->user, &s->store);
	conn_free(&s->conn);
	imap_parser_free(&s->parser);
	free(s->user);
	free(s->auth_tag);
	free(s->close_reason);
	free(s);
}

void imapd_shutdown_all(struct imapd_context *ctx, const char *reason)
{
	ctx->draining = true;
	struct session *next;
	for (struct session *s = ctx->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == SESSION_LOGOUT)
			continue;
		if (s->conn->tls_state == CONN_TLS_HANDSHAKE) {
			if (s->close_reason == NULL)
				s->close_reason = xstrdup("shutdown");
			session_free(s);
			continue;
		}
		session_untagged(s, "BYE %s", reason);
		session_logout(s, "shutdown");
	}
}

void imapd_close_all(struct imapd_context *ctx)
{
	while (ctx->sessions != NULL) {
		if (ctx->sessions->close_reason == NULL)
			ctx->sessions->close_reason = xstrdup("shutdown");
		session_free(ctx->sessions);
	}
}

/* RFC 6154: the five special-use mailboxes clients look for, made at a
 * user's first login (when the store holds nothing but INBOX). */
static void create_special_use_mailboxes(struct session *s)
{
	static const struct {
		const char *name;
		enum store_special_use use;
	} defaults[] = {
		{ "Drafts", STORE_SPECIAL_DRAFTS }, { "Sent", STORE_SPECIAL_SENT },
		{ "Trash", STORE_SPECIAL_TRASH }, { "Junk", STORE_SPECIAL_JUNK },
		{ "Archive", STORE_SPECIAL_ARCHIVE },
	};
	struct store_mailbox_entry *entries = NULL;
	size_t count = 0;
	if (store_mailbox_list(s->store, &entries, &count) < 0)
		return;
	/* A store holding only INBOX: a first login (or a user who deleted
	 * every other mailbox, who gets the defaults back as with Dovecot's
	 * auto = create). */
	bool fresh = count == 1 && strcmp(entries[0].name, "INBOX") == 0;
	store_mailbox_list_free(&entries, count);
	if (!fresh)
		return;
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		if (store_mailbox_create(s->store, defaults[i].name, defaults[i].use) < 0 ||
		    store_subscribe(s->store, defaults[i].name) < 0) {
			const char *text = NULL;
			store_last_error(s->store, &text);
			log_msg(LOG_ERROR, "special_use_create", "user %s mailbox %s: %s", s->user,
				defaults[i].name, text ? text : "");
		}
	}
}

int session_user_limit_check(const struct session *s, const char *user, const char **which_r)
{
	const struct imapd_context *ctx = s->ctx;
	const struct config *cfg = ctx->cfg;
	if (ctx->counts == NULL)
		return 0;
	if (cfg->max_sessions_per_user > 0 &&
	    shcount_total(ctx->counts, shcount_key(ctx->counts, 'u', user, NULL)) >= (unsigned)cfg->max_sessions_per_user) {
		*which_r = "max_sessions_per_user";
		return -1;
	}
	if (cfg->max_sessions_per_user_ip > 0 &&
	    shcount_total(ctx->counts, shcount_key(ctx->counts, 'p', user, s->conn->peer_ip)) >=
		    (unsigned)cfg->max_sessions_per_user_ip) {
		*which_r = "max_sessions_per_user_ip";
		return -1;
	}
	return 0;
}

void session_user_count(struct session *s, const char *user)
{
	struct imapd_context *ctx = s->ctx;
	if (ctx->counts == NULL)
		return;
	s->user_key = shcount_key(ctx->counts, 'u', user, NULL);
	s->user_counted = shcount_add(ctx->counts, ctx->worker_index, s->user_key);
	s->user_ip_key = shcount_key(ctx->counts, 'p', user, s->conn->peer_ip);
	s->user_ip_counted = shcount_add(ctx->counts, ctx->worker_index, s->user_ip_key);
}

int session_open_store(struct session *s, const char *user)
{
	enum store_error error;
	char *text = NULL;
	s->store = store_cache_acquire(s->ctx, user, &error, &text);
	if (s->store == NULL) {
		struct log_line l;
		log_begin(&l, LOG_ERROR, "store_open_failed");
		log_str(&l, "session", s->id);
		log_str(&l, "user", user);
		log_str(&l, "error", store_error_name(error));
		log_str(&l, "detail", text);
		log_end(&l);
		free(text);
		return -1;
	}
	s->change_counter = store_change_counter(s->store);
	create_special_use_mailboxes(s);
	return 0;
}
