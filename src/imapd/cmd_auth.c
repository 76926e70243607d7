/* Commands of the not-authenticated state: STARTTLS (RFC 9051 6.2.1,
 * RFC 2595), LOGIN (6.2.3) and AUTHENTICATE PLAIN (6.2.2, RFC 4616, with
 * SASL-IR, RFC 4959).
 *
 * A login runs in three steps so the loop never blocks: the password check
 * goes to the hashing pool; when it comes back, the throttle's delay (if
 * any is left) runs on a timer; then the answer is sent. The session takes
 * no further command meanwhile (RFC 9051 5.5: LOGIN changes state, so a
 * pipelined command must wait for its outcome).
 *
 * The verified-login cache (auth/cache.h) can stand in for the first step
 * only: it is asked after the throttle has set the delay, only for a known
 * user, and a hit goes on to the same delay and answer as a check that
 * matched. A miss, a wrong password and an unknown user take the pool. */
#include "imapd/session.h"
#include "auth/cache.h"
#include "auth/passwd_file.h"
#include "auth/pool.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "metrics/metrics.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Checked when the user does not exist, so that an unknown name costs the
 * same time as a wrong password and names can't be probed by timing. */
static const char dummy_hash[] =
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$YgED06bEUqxHYTApzRXsLA$"
	"vwdz6LwWaFtJHCWD6M4apCaApUSbJ40sKoXZ6eTzd54";

void cmd_starttls(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count != 0) {
		session_tagged(s, cmd->tag, "BAD", "STARTTLS takes no arguments");
		return;
	}
	if (conn_is_tls(s->conn)) {
		session_tagged(s, cmd->tag, "BAD", "TLS is already active");
		return;
	}
	if (s->listener->tls != LISTENER_TLS_STARTTLS || s->ctx->tls == NULL) {
		session_tagged(s, cmd->tag, "BAD", "STARTTLS is not offered on this port");
		return;
	}
	session_tagged(s, cmd->tag, "OK", "Begin TLS negotiation now");
	/* Drops whatever the client pipelined after this line (CVE-2011-0411). */
	conn_start_tls(s->conn, s->ctx->tls);
	imap_parser_reset(s->parser);
}

static void count_login(const struct session *s, const struct pending_login *p, const char *result)
{
	struct metrics_worker *m = s->ctx->metrics;
	enum metrics_mechanism mech = strcmp(p->mechanism, "PLAIN") == 0 ? METRICS_MECH_PLAIN : METRICS_MECH_LOGIN;
	if (strcmp(result, "ok") == 0)
		METRIC_INC(m->logins[mech][METRICS_LOGIN_OK]);
	else if (strcmp(result, "fail") == 0)
		METRIC_INC(m->logins[mech][METRICS_LOGIN_FAILED]);
	else if (strcmp(result, "store_unavailable") == 0)
		METRIC_INC(m->logins[mech][METRICS_LOGIN_UNAVAILABLE]);
	else if (strcmp(result, "limit") == 0)
		METRIC_INC(m->logins[mech][METRICS_LOGIN_LIMIT]);
	if (p->delay_ms > 0 && strcmp(result, "throttled") != 0)
		METRIC_INC(m->throttled_logins);
	__atomic_store_n(&m->throttled_sources,
			 (int64_t)throttle_penalized_sources(s->ctx->throttle, ev_now(s->ctx->loop)), __ATOMIC_RELAXED);
}

static void log_login(const struct session *s, const struct pending_login *p, const char *result,
		      const struct throttle_verdict *verdict, const char *limit)
{
	count_login(s, p, result);
	struct log_line l;
	log_begin(&l, strcmp(result, "ok") == 0 ? LOG_INFO : LOG_WARN, "login");
	log_str(&l, "session", s->id);
	log_str(&l, "user", p->user);
	log_str(&l, "ip", s->conn->peer_ip);
	log_str(&l, "mech", p->mechanism);
	log_str(&l, "result", result);
	log_uint(&l, "delay_ms", p->delay_ms);
	if (verdict != NULL && verdict->spraying)
		log_str(&l, "attack", "password_spraying");
	else if (verdict != NULL && verdict->distributed)
		log_str(&l, "attack", "distributed");
	if (limit != NULL)
		log_str(&l, "limit", limit);
	log_str(&l, "tls", conn_tls_version(s->conn));
	if (p->cached)
		log_str(&l, "cache", "hit");
	log_end(&l);
}

static void pending_login_free(struct pending_login **pp)
{
	struct pending_login *p = *pp;
	if (p == NULL)
		return;
	free(p->tag);
	free(p->user);
	auth_cache_ticket_clear(&p->ticket);
	free(p);
	*pp = NULL;
}

void session_login_cancel(struct session *s)
{
	if (s->login == NULL)
		return;
	if (s->login->job != NULL) {
		/* The pool still holds it; it comes back and is freed there. */
		s->login->job->owner = NULL;
		atomic_store(&s->login->job->cancelled, true);
	}
	pending_login_free(&s->login);
}

static void finish_login(struct session *s)
{
	struct pending_login *p = s->login;
	struct imapd_context *ctx = s->ctx;
	uint64_t now = ev_now(ctx->loop);
	const char *limit = NULL;
	if (p->matched && session_user_limit_check(s, p->user, &limit) < 0) {
		/* The password was right: no throttle penalty, but no session
		 * either while the user holds too many. */
		METRIC_INC(ctx->metrics->limits[strcmp(limit, "max_sessions_per_user") == 0
						? METRICS_LIMIT_SESSIONS_PER_USER
						: METRICS_LIMIT_SESSIONS_PER_USER_IP]);
		log_login(s, p, "limit", NULL, limit);
		session_tagged(s, p->tag, "NO", "[LIMIT] Too many sessions for this user");
	} else if (p->matched && session_open_store(s, p->user) < 0) {
		log_login(s, p, "store_unavailable", NULL, NULL);
		session_tagged(s, p->tag, "NO", "[UNAVAILABLE] Your mailbox can't be opened now; try again later");
	} else if (p->matched) {
		throttle_success(ctx->throttle, s->conn->peer_ip, p->user, now);
		log_login(s, p, "ok", NULL, NULL);
		s->user = xstrdup(p->user);
		session_user_count(s, p->user);
		session_set_state(s, SESSION_AUTHENTICATED);
		struct buf caps = BUF_INIT;
		session_capabilities(s, &caps);
		/* RFC 9051 6.2.3: capabilities change after login; say so. */
		session_tagged(s, p->tag, "OK", "[CAPABILITY %s] Logged in", caps.data);
		buf_free(&caps);
	} else {
		log_login(s, p, "fail", NULL, NULL);
		session_tagged(s, p->tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
	}
	pending_login_free(&s->login);
	session_command_done(s);
}

static void delay_done_cb(void *ctx)
{
	finish_login(ctx);
}

/* The password check is back: apply what is left of the delay. */
static void login_checked(struct session *s, bool matched)
{
	struct pending_login *p = s->login;
	struct imapd_context *ctx = s->ctx;
	uint64_t now = ev_now(ctx->loop);
	p->matched = matched && p->user_known;
	/* Only a hash that really ran and matched is remembered: a hit must
	 * not extend itself past the ttl, and failures are never cached. */
	if (p->matched && !p->cached && ctx->auth_cache != NULL)
		auth_cache_remember(ctx->auth_cache, p->user, &p->ticket, now);
	if (!p->matched) {
		/* A failure is answered after at least the first penalty, and
		 * later ones after the grown penalty (Dovecot doubles 2 s..15 s). */
		throttle_failure(ctx->throttle, s->conn->peer_ip, p->user, now);
		struct throttle_verdict verdict;
		throttle_check(ctx->throttle, s->conn->peer_ip, p->user, now, &verdict);
		if (verdict.delay_ms > p->delay_ms)
			p->delay_ms = verdict.delay_ms;
		if (verdict.spraying || verdict.distributed)
			log_login(s, p, "throttled", &verdict, NULL);
	}
	uint64_t elapsed = now - p->started_ms;
	if (elapsed >= p->delay_ms) {
		finish_login(s);
		return;
	}
	s->delay_timer.cb = delay_done_cb;
	ev_timer_start(ctx->loop, &s->delay_timer, p->delay_ms - elapsed);
}

void imapd_auth_jobs_done(struct imapd_context *ctx)
{
	struct auth_job *job;
	while ((job = auth_pool_next_done(ctx->auth_pool)) != NULL) {
		struct session *s = job->owner;
		if (s != NULL && !atomic_load(&job->cancelled) && s->login != NULL && s->login->job == job) {
			s->login->job = NULL;
			if (job->result == PASSWORD_ERROR)
				log_msg(LOG_ERROR, "password_check", "user %s: %s", s->login->user,
					job->error ? job->error : "unknown error");
			login_checked(s, job->result == PASSWORD_MATCH);
		}
		auth_job_free(&job);
	}
}

/* True when the verified-login cache vouches for this password against
 * stored. Fills p->ticket either way (when the cache is on), for
 * login_checked to remember a match the pool finds. */
static bool cache_vouches(struct imapd_context *ctx, struct pending_login *p, const char *stored,
			  const char *password, size_t password_len)
{
	if (ctx->auth_cache == NULL || !auth_cache_enabled(ctx->auth_cache))
		return false;
	if (auth_cache_ticket(ctx->auth_cache, p->user, stored, password, password_len, &p->ticket) < 0) {
		/* Not fatal: this login just takes the slow path. */
		log_msg(LOG_ERROR, "auth_cache", "user %s: cannot compute the keyed hash (OpenSSL)", p->user);
		return false;
	}
	if (!auth_cache_lookup(ctx->auth_cache, p->user, &p->ticket, p->started_ms))
		return false;
	METRIC_INC(ctx->metrics->login_cache_hits);
	return true;
}

/* Starts checking a password; the answer goes to tag later. */
static void begin_login(struct session *s, const char *tag, const char *mechanism, const char *user,
			const char *password, size_t password_len)
{
	struct imapd_context *ctx = s->ctx;
	struct buf errors = BUF_INIT;
	if (passwd_file_refresh(ctx->passwd, &errors) < 0)
		log_msg(LOG_ERROR, "passwd_file", "%s", errors.data ? errors.data : "");
	buf_free(&errors);

	struct pending_login *p = xcalloc(1, sizeof(*p));
	p->tag = xstrdup(tag);
	p->user = xstrdup(user);
	p->mechanism = mechanism;
	p->started_ms = ev_now(ctx->loop);
	struct throttle_verdict verdict;
	throttle_check(ctx->throttle, s->conn->peer_ip, user, p->started_ms, &verdict);
	p->delay_ms = verdict.delay_ms;
	const struct passwd_entry *entry = passwd_file_find(ctx->passwd, user);
	p->user_known = entry != NULL;
	s->login = p;
	s->busy = true;
	/* Unknown users never reach the cache: they keep paying for the dummy
	 * hash, so a name's existence can't be told by timing. */
	if (entry != NULL && cache_vouches(ctx, p, entry->password, password, password_len)) {
		p->cached = true;
		login_checked(s, true);
		return;
	}
	const char *stored = entry != NULL ? entry->password : dummy_hash;
	p->job = auth_job_new_verify(stored, password, password_len, s);
	auth_pool_submit(ctx->auth_pool, p->job);
}

static bool refuse_plaintext(struct session *s, const char *tag)
{
	if (session_plaintext_auth_allowed(s))
		return false;
	/* RFC 9051 6.2.3 and 7.1: PRIVACYREQUIRED when TLS is needed first. */
	session_tagged(s, tag, "NO", "[PRIVACYREQUIRED] Plaintext authentication is disabled: use STARTTLS first");
	return true;
}

static bool credential_ok(struct session *s, const char *tag, const struct imap_arg *arg, size_t max)
{
	if (!imap_arg_is_astring(arg) || imap_arg_has_nul(arg)) {
		session_tagged(s, tag, "BAD", "LOGIN takes a user name and a password (atoms or strings)");
		return false;
	}
	if (arg->len == 0 || arg->len > max) {
		session_tagged(s, tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		return false;
	}
	return true;
}

void cmd_login(struct session *s, const struct imap_command *cmd)
{
	if (refuse_plaintext(s, cmd->tag))
		return;
	if (cmd->arg_count != 2) {
		session_tagged(s, cmd->tag, "BAD", "LOGIN takes a user name and a password");
		return;
	}
	if (!credential_ok(s, cmd->tag, &cmd->args[0], LIMIT_USER_LEN) ||
	    !credential_ok(s, cmd->tag, &cmd->args[1], LIMIT_PASSWORD_LEN))
		return;
	begin_login(s, cmd->tag, "LOGIN", cmd->args[0].str, cmd->args[1].str, cmd->args[1].len);
}

/* A PLAIN response (base64), from SASL-IR or from the continuation line. */
static void plain_response(struct session *s, const char *tag, const char *text, size_t len)
{
	struct sasl_plain plain = { 0 };
	const char *error = NULL;
	if (len == 1 && text[0] == '*') {
		/* RFC 9051 6.2.2: the client cancelled. */
		session_tagged(s, tag, "BAD", "Authentication cancelled");
		session_command_done(s);
		return;
	}
	if (sasl_plain_decode(text, len, &plain, &error) < 0) {
		session_tagged(s, tag, "BAD", "Invalid PLAIN response: %s", error);
		session_command_done(s);
		return;
	}
	if (strlen(plain.authcid) > LIMIT_USER_LEN || plain.password_len > LIMIT_PASSWORD_LEN) {
		session_tagged(s, tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		sasl_plain_clear(&plain);
		session_command_done(s);
		return;
	}
	begin_login(s, tag, "PLAIN", plain.authcid, plain.password, plain.password_len);
	sasl_plain_clear(&plain);
}

void session_auth_continue(struct session *s, const char *line, size_t len)
{
	char *tag = s->auth_tag;
	s->auth_tag = NULL;
	if (tag == NULL)
		return;
	plain_response(s, tag, line, len);
	free(tag);
}

void cmd_authenticate(struct session *s, const struct imap_command *cmd)
{
	if (refuse_plaintext(s, cmd->tag))
		return;
	if (cmd->arg_count < 1 || cmd->arg_count > 2 || !imap_arg_is_atom(&cmd->args[0])) {
		session_tagged(s, cmd->tag, "BAD", "AUTHENTICATE takes a mechanism name and an optional initial response");
		return;
	}
	if (strcasecmp(cmd->args[0].str, "PLAIN") != 0) {
		session_tagged(s, cmd->tag, "NO", "Unsupported authentication mechanism %s", cmd->args[0].str);
		return;
	}
	if (cmd->arg_count == 2) {
		const struct imap_arg *ir = &cmd->args[1];
		if (!imap_arg_is_atom(ir) && !imap_arg_is_string(ir)) {
			session_tagged(s, cmd->tag, "BAD", "The initial response must be base64");
			return;
		}
		s->busy = true;
		/* RFC 4959 3: "=" is an empty initial response. */
		if (ir->len == 1 && ir->str[0] == '=')
			plain_response(s, cmd->tag, "", 0);
		else
			plain_response(s, cmd->tag, ir->str, ir->len);
		return;
	}
	s->busy = true;
	s->auth_tag = xstrdup(cmd->tag);
	imap_parser_expect_line(s->parser);
	conn_write_str(s->conn, "+ \r\n");
	/* The continuation line is not a command: let the parser read it. */
	s->busy = false;
}
