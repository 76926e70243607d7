/* SEARCH and UID SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4), with the result
 * options of ESEARCH (RFC 4731).
 *
 * A search that must read message bodies runs in slices of about
 * SEARCH_SLICE_MS: between slices the loop serves other connections, and
 * this session's input waits (s->busy), so the selected view cannot change
 * under the search: no other command of this session runs, and updates
 * from other sessions are only applied when a command ends. */
#include "core/log.h"
#include "core/xalloc.h"
#include "imap/quote.h"
#include "imap/search_parse.h"
#include "imapd/search_match.h"
#include "imapd/selected.h"
#include "imapd/session.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Loop time one slice may take before yielding to other connections. */
#define SEARCH_SLICE_MS 20
/* Messages evaluated between clock checks when no file is read. */
#define SEARCH_CLOCK_EVERY 1024

struct search_run {
	struct session *s;
	char *tag;
	bool uid;			/* UID SEARCH: answer with UIDs */
	struct search_query query;
	struct search_plan plan;
	size_t next;			/* next message index to evaluate */
	uint32_t *results;		/* ascending sequence numbers or UIDs */
	size_t count, cap;
	struct ev_timer timer;		/* the next slice */
	bool async;			/* has yielded at least once */
	unsigned slices;		/* loop turns used, for the log */
	uint64_t started_ms;
};

static void run_free(struct search_run *run)
{
	ev_timer_stop(run->s->ctx->loop, &run->timer);
	search_query_free(&run->query);
	free(run->results);
	free(run->tag);
	free(run);
}

static void write_esearch(struct session *s, struct search_run *run, unsigned options)
{
	struct buf line = BUF_INIT;
	/* RFC 4731 3.1: ESEARCH (TAG "x") [UID] items; MIN, MAX and ALL are
	 * left out when nothing matched, COUNT is always given. */
	buf_append_str(&line, "* ESEARCH (TAG ");
	imap_write_string(&line, run->tag, strlen(run->tag), false);
	buf_append_str(&line, ")");
	if (run->uid)
		buf_append_str(&line, " UID");
	if ((options & SEARCH_RETURN_MIN) && run->count > 0)
		buf_printf(&line, " MIN %u", run->results[0]);
	if ((options & SEARCH_RETURN_MAX) && run->count > 0)
		buf_printf(&line, " MAX %u", run->results[run->count - 1]);
	if (options & SEARCH_RETURN_COUNT)
		buf_printf(&line, " COUNT %zu", run->count);
	if ((options & SEARCH_RETURN_ALL) && run->count > 0) {
		buf_append_str(&line, " ALL ");
		uid_set_write(&line, run->results, run->count);
	}
	buf_append_str(&line, "\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

static void write_results(struct session *s, struct search_run *run)
{
	if (run->query.esearch) {
		write_esearch(s, run, run->query.return_options);
		return;
	}
	if (s->rev2) {
		/* RFC 9051 6.4.4: IMAP4rev2 has no SEARCH response; without
		 * RETURN the answer is ESEARCH with ALL. */
		write_esearch(s, run, SEARCH_RETURN_ALL);
		return;
	}
	/* RFC 3501 7.2.5: "* SEARCH" alone when nothing matched. */
	struct buf line = BUF_INIT;
	buf_reserve(&line, 16 + run->count * 8);
	buf_append_str(&line, "* SEARCH");
	for (size_t i = 0; i < run->count; i++)
		buf_printf(&line, " %u", run->results[i]);
	buf_append_str(&line, "\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

/* Ends the command: the response, the tagged reply, and the session takes
 * its next command if the search went asynchronous. */
static void finish(struct search_run *run, enum search_match_result failure)
{
	struct session *s = run->s;
	struct log_line l;
	log_begin(&l, LOG_DEBUG, "search");
	log_str(&l, "session", s->id);
	log_uint(&l, "messages", s->selected->count);
	log_uint(&l, "matches", run->count);
	log_uint(&l, "bodies_read", run->plan.bodies_opened);
	log_uint(&l, "slices", run->slices);
	log_uint(&l, "ms", ev_clock_ms() - run->started_ms);
	log_str(&l, "result", failure == SEARCH_MATCH_ERROR ? "error" : "ok");
	log_end(&l);
	if (failure == SEARCH_MATCH_ERROR && run->plan.errno_failure != 0) {
		log_msg(LOG_ERROR, "search_failed", "session %s: cannot map a message file: %s", s->id,
			strerror(run->plan.errno_failure));
		session_tagged(s, run->tag, "NO", "[SERVERBUG] SEARCH failed; the server log has details");
	} else if (failure == SEARCH_MATCH_ERROR) {
		session_store_error(s, run->tag, "SEARCH");
	} else {
		write_results(s, run);
		session_ok(s, run->tag, "%sSEARCH completed", run->uid ? "UID " : "");
	}
	bool async = run->async;
	if (async) {
		s->cmd_state = NULL;
		s->on_close = NULL;
	}
	run_free(run);
	if (async)
		session_command_done(s);
}

static void add_result(struct search_run *run, uint32_t n)
{
	if (run->count == run->cap) {
		run->cap = run->cap ? run->cap * 2 : 64;
		run->results = xrealloc(run->results, run->cap * sizeof(*run->results));
	}
	run->results[run->count++] = n;
}

static void step(struct search_run *run);

static void resume(void *ctx)
{
	struct search_run *run = ctx;
	/* Logging out (shutdown): the session's close frees the run. */
	if (run->s->state == SESSION_LOGOUT)
		return;
	step(run);
}

/* The session went away mid-search. */
static void search_on_close(struct session *s)
{
	struct search_run *run = s->cmd_state;
	s->cmd_state = NULL;
	s->on_close = NULL;
	run_free(run);
}

static void step(struct search_run *run)
{
	const struct selected *sel = run->s->selected;
	uint64_t start = ev_clock_ms();
	run->slices++;
	unsigned opened = run->plan.bodies_opened;
	size_t since_clock = 0;
	while (run->next < sel->count) {
		size_t index = run->next++;
		enum search_match_result r = search_match_message(&run->plan, index);
		if (r == SEARCH_MATCH_ERROR) {
			finish(run, r);
			return;
		}
		/* GONE: expunged by another session; it simply doesn't match. */
		if (r == SEARCH_MATCH_YES)
			add_result(run, run->uid ? sel->msgs[index].uid : (uint32_t)(index + 1));
		if (run->plan.bodies_opened == opened && ++since_clock < SEARCH_CLOCK_EVERY)
			continue;
		opened = run->plan.bodies_opened;
		since_clock = 0;
		if (run->next < sel->count && ev_clock_ms() - start >= SEARCH_SLICE_MS) {
			struct session *s = run->s;
			if (!run->async) {
				run->async = true;
				s->busy = true;
				s->cmd_state = run;
				s->on_close = search_on_close;
			}
			/* A timer, not a deferred call: deferred work queued from
			 * deferred work runs in the same pass and would starve I/O. */
			ev_timer_start(s->ctx->loop, &run->timer, 0);
			return;
		}
	}
	finish(run, SEARCH_MATCH_NO);
}

/* RFC 9051 6.4.4: UTF-8 must be supported; US-ASCII is its subset. */
static bool charset_supported(const char *charset)
{
	return charset == NULL || strcasecmp(charset, "UTF-8") == 0 || strcasecmp(charset, "US-ASCII") == 0;
}

void cmd_search(struct session *s, const struct imap_command *cmd)
{
	struct search_query query;
	const char *error = NULL;
	if (search_parse(cmd->args, cmd->arg_count, &query, &error) < 0) {
		session_tagged(s, cmd->tag, "BAD", "%s", error);
		return;
	}
	if (!charset_supported(query.charset)) {
		/* RFC 9051 7.1: BADCHARSET lists what we can do. */
		session_tagged(s, cmd->tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Charset %s is not supported",
			       query.charset);
		search_query_free(&query);
		return;
	}
	struct search_run *run = xcalloc(1, sizeof(*run));
	run->s = s;
	run->tag = xstrdup(cmd->tag);
	run->uid = s->cmd_uid;
	run->query = query;
	run->started_ms = ev_clock_ms();
	ev_timer_init(&run->timer, resume, run);
	search_plan_init(&run->plan, &run->query, s->store, s->selected, (int64_t)time(NULL));
	step(run);
}
