/* IDLE (RFC 2177, RFC 9051 6.3.13): updates pushed as they happen. The
 * session waits for "DONE" in line mode; changes to the user's store wake
 * it through the worker's inotify watch (notify.c), or a short poll when
 * inotify is missing; a keepalive "* OK Still here" every
 * idle_keepalive_interval seconds keeps NAT and mobile carriers from
 * dropping the quiet connection. */
#include "imapd/notify.h"
#include "imapd/selected.h"
#include "imapd/session.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "imapd/store_cache.h"
#include "metrics/metrics.h"

#include <stdlib.h>
#include <strings.h>

#define IDLE_POLL_MS 5000

static void keepalive_cb(void *ctx)
{
	struct session *s = ctx;
	if (!s->idling)
		return;
	session_untagged(s, "OK Still here");
	ev_timer_start(s->ctx->loop, &s->keepalive_timer, (uint64_t)s->ctx->cfg->idle_keepalive_interval * 1000);
}

static void poll_cb(void *ctx)
{
	struct session *s = ctx;
	if (!s->idling)
		return;
	session_idle_wake(s);
	ev_timer_start(s->ctx->loop, &s->poll_timer, IDLE_POLL_MS);
}

/* While idling a session holds no store handle (store_cache.h): it takes
 * one back for as long as it needs it. */
static bool take_store(struct session *s)
{
	if (s->store != NULL || s->user == NULL)
		return s->store != NULL;
	enum store_error error;
	char *text = NULL;
	s->store = store_cache_acquire(s->ctx, s->user, &error, &text);
	if (s->store == NULL) {
		log_msg(LOG_ERROR, "store_open_failed", "session %s user %s: %s", s->id, s->user,
			text ? text : store_error_name(error));
		free(text);
		return false;
	}
	return true;
}

void session_idle_wake(struct session *s)
{
	if (!take_store(s))
		return;
	/* RFC 2177: any untagged response may be sent while idling,
	 * EXPUNGE included, since IDLE is a command in progress. */
	session_sync(s, true);
	if (s->idling)
		store_cache_release(s->ctx, s->user, &s->store);
}

void cmd_idle(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count != 0) {
		session_tagged(s, cmd->tag, "BAD", "IDLE takes no arguments");
		return;
	}
	s->allow_expunge = true;
	session_sync(s, true);
	if (s->selected != NULL)
		selected_pack(s->selected);
	s->idling = true;
	METRIC_INC(s->ctx->metrics->idle_sessions);
	s->idle_tag = xstrdup(cmd->tag);
	notify_add_session(s);
	conn_write_str(s->conn, "+ idling\r\n");
	imap_parser_expect_line(s->parser);
	ev_timer_start(s->ctx->loop, &s->keepalive_timer, (uint64_t)s->ctx->cfg->idle_keepalive_interval * 1000);
	if (!notify_available(s->ctx) || s->watch_wd < 0)
		ev_timer_start(s->ctx->loop, &s->poll_timer, IDLE_POLL_MS);
	store_cache_release(s->ctx, s->user, &s->store);
}

void session_idle_end(struct session *s, const char *line, size_t len)
{
	char *tag = s->idle_tag;
	s->idle_tag = NULL;
	s->idling = false;
	METRIC_DEC(s->ctx->metrics->idle_sessions);
	ev_timer_stop(s->ctx->loop, &s->keepalive_timer);
	ev_timer_stop(s->ctx->loop, &s->poll_timer);
	if ((!take_store(s) && s->user != NULL) || selected_unpack(s) < 0) {
		session_untagged(s, "BYE Your mailbox can't be opened now; try again later");
		session_logout(s, "store_unavailable");
		free(tag);
		return;
	}
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		session_ok(s, tag, "IDLE terminated");
	else
		session_tagged(s, tag, "BAD", "Expected DONE to end IDLE");
	free(tag);
}

void session_idle_init(struct session *s)
{
	s->watch_wd = -1;
	ev_timer_init(&s->keepalive_timer, keepalive_cb, s);
	ev_timer_init(&s->poll_timer, poll_cb, s);
}

void session_idle_deinit(struct session *s)
{
	if (s->idling) {
		s->idling = false;
		METRIC_DEC(s->ctx->metrics->idle_sessions);
	}
	ev_timer_stop(s->ctx->loop, &s->keepalive_timer);
	ev_timer_stop(s->ctx->loop, &s->poll_timer);
	notify_remove_session(s);
	free(s->idle_tag);
	s->idle_tag = NULL;
}
