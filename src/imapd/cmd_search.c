/* SEARCH and UID SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4), with the result
 * options of ESEARCH (RFC 4731) and SEARCHRES (RFC 5182: RETURN (SAVE),
 * kept in the selected mailbox for "$").
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
#include "imapd/search_indexer.h"
#include "imapd/search_match.h"
#include "imapd/selected.h"
#include "imapd/session.h"
#include "metrics/metrics.h"

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
	uint64_t max_modseq;		/* highest modseq among the results */
	struct ev_timer timer;		/* the next slice */
	bool async;			/* has yielded at least once */
	unsigned slices;		/* loop turns used, for the log */
	uint64_t started_ms;
};

static void run_free(struct search_run *run)
{
	ev_timer_stop(run->s->ctx->loop, &run->timer);
	search_plan_deinit(&run->plan);
	search_query_free(&run->query);
	free(run->results);
	free(run->tag);
	free(run);
}

/* The modseq of a result (sequence number or UID) in the view, which
 * cannot change while the search runs. */
static uint64_t result_modseq(const struct session *s, const struct search_run *run, uint32_t n)
{
	const struct selected *sel = s->selected;
	size_t index = run->uid ? selected_find_uid(sel, n) : (size_t)n - 1;
	return index < sel->count ? sel->msgs[index].modseq : 0;
}

/* RFC 7162 3.1.5 and 3.1.11: the highest modseq of the messages the
 * response returns; with only MIN and/or MAX, of those. */
static uint64_t esearch_modseq(const struct session *s, const struct search_run *run, unsigned options)
{
	if (options & (SEARCH_RETURN_ALL | SEARCH_RETURN_COUNT))
		return run->max_modseq;
	uint64_t m = 0;
	if (options & SEARCH_RETURN_MIN)
		m = result_modseq(s, run, run->results[0]);
	if (options & SEARCH_RETURN_MAX) {
		uint64_t x = result_modseq(s, run, run->results[run->count - 1]);
		m = x > m ? x : m;
	}
	return m;
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
	/* RFC 7162 3.1.5: MODSEQ only when the search used it and something
	 * matched. */
	if (run->query.has_modseq && run->count > 0)
		buf_printf(&line, " MODSEQ %llu", (unsigned long long)esearch_modseq(s, run, options));
	buf_append_str(&line, "\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

static void write_results(struct session *s, struct search_run *run)
{
	if (run->query.esearch) {
		/* RFC 5182 2.1: RETURN (SAVE) alone gets no ESEARCH. */
		unsigned options = run->query.return_options & ~SEARCH_RETURN_SAVE;
		if (options != 0)
			write_esearch(s, run, options);
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
	/* RFC 7162 3.1.5: "* SEARCH 2 5 6 (MODSEQ 917162500)", not when
	 * nothing matched. */
	if (run->query.has_modseq && run->count > 0)
		buf_printf(&line, " (MODSEQ %llu)", (unsigned long long)run->max_modseq);
	buf_append_str(&line, "\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

static uint32_t result_uid(const struct session *s, const struct search_run *run, uint32_t n)
{
	return run->uid ? n : s->selected->msgs[n - 1].uid;
}

/* RFC 5182 2.1 (and RFC 9051 6.4.4.1's table): with only MIN and/or MAX
 * beside SAVE, those are saved; otherwise every match. Kept as UIDs, so
 * "$" survives expunges and works for sequence and UID commands alike. */
static void save_result(struct session *s, const struct search_run *run)
{
	unsigned options = run->query.return_options & ~SEARCH_RETURN_SAVE;
	bool only_min_max = options != 0 && (options & ~(SEARCH_RETURN_MIN | SEARCH_RETURN_MAX)) == 0;
	if (!only_min_max || run->count == 0) {
		uint32_t *uids = xmalloc((run->count ? run->count : 1) * sizeof(uint32_t));
		for (size_t i = 0; i < run->count; i++)
			uids[i] = result_uid(s, run, run->results[i]);
		selected_save_result(s->selected, uids, run->count);
		free(uids);
		return;
	}
	uint32_t picked[2];
	size_t n = 0;
	if (options & SEARCH_RETURN_MIN)
		picked[n++] = result_uid(s, run, run->results[0]);
	if ((options & SEARCH_RETURN_MAX) && (n == 0 || run->count > 1))
		picked[n++] = result_uid(s, run, run->results[run->count - 1]);
	selected_save_result(s->selected, picked, n);
}

/* Ends the command: the response, the tagged reply, and the session takes
 * its next command if the search went asynchronous. */
/* failure: SEARCH_MATCH_ERROR, SEARCH_MATCH_NO (done), or
 * SEARCH_STOPPED_AT_LIMIT (max_search_body_reads reached). */
#define SEARCH_STOPPED_AT_LIMIT ((enum search_match_result)3)

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
	log_str(&l, "result", failure == SEARCH_MATCH_ERROR ? "error" : failure == SEARCH_STOPPED_AT_LIMIT ? "limit" : "ok");
	log_end(&l);
	bool save = (run->query.return_options & SEARCH_RETURN_SAVE) != 0;
	/* RFC 5182 2.1: a failed SEARCH with SAVE (NO included) leaves "$"
	 * empty. */
	if (save && failure != SEARCH_MATCH_NO)
		selected_save_result(s->selected, NULL, 0);
	else if (save)
		save_result(s, run);
	if (failure == SEARCH_STOPPED_AT_LIMIT) {
		/* RFC 5530 LIMIT: the command hit an administrative limit. */
		METRIC_INC(s->ctx->metrics->limits[METRICS_LIMIT_SEARCH_BODY_READS]);
		session_tagged(s, run->tag, "NO",
			       "[LIMIT] SEARCH would read more than %d messages; narrow it (for example with SINCE)",
			       s->ctx->cfg->max_search_body_reads);
	} else if (failure == SEARCH_MATCH_ERROR && run->plan.errno_failure != 0) {
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
		if (r == SEARCH_MATCH_YES) {
			add_result(run, run->uid ? sel->msgs[index].uid : (uint32_t)(index + 1));
			if (sel->msgs[index].modseq > run->max_modseq)
				run->max_modseq = sel->msgs[index].modseq;
		}
		int cap = run->s->ctx->cfg->max_search_body_reads;
		if (cap > 0 && run->plan.bodies_opened > (unsigned)cap) {
			finish(run, SEARCH_STOPPED_AT_LIMIT);
			return;
		}
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

/* Whether the arguments start with RETURN (... SAVE ...), even when the
 * rest is wrong. */
static bool asks_save(const struct imap_command *cmd)
{
	if (cmd->arg_count < 2 || !imap_arg_is_atom(&cmd->args[0]) || strcasecmp(cmd->args[0].str, "RETURN") != 0 ||
	    !imap_arg_is_list(&cmd->args[1]))
		return false;
	for (size_t i = 0; i < cmd->args[1].list_count; i++) {
		const struct imap_arg *opt = &cmd->args[1].list[i];
		if (imap_arg_is_atom(opt) && strcasecmp(opt->str, "SAVE") == 0)
			return true;
	}
	return false;
}

void cmd_search(struct session *s, const struct imap_command *cmd)
{
	struct search_query query;
	const char *error = NULL;
	if (search_parse(cmd->args, cmd->arg_count, &query, &error) < 0) {
		/* RFC 5182 2.1: a SEARCH with SAVE that fails, BAD included,
		 * leaves the saved result empty. */
		if (asks_save(cmd))
			selected_save_result(s->selected, NULL, 0);
		session_tagged(s, cmd->tag, "BAD", "%s", error);
		return;
	}
	if (!charset_supported(query.charset)) {
		if (query.return_options & SEARCH_RETURN_SAVE)
			selected_save_result(s->selected, NULL, 0);
		/* RFC 9051 7.1: BADCHARSET lists what we can do. */
		session_tagged(s, cmd->tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Charset %s is not supported",
			       query.charset);
		search_query_free(&query);
		return;
	}
	/* RFC 7162 3.1: the MODSEQ key enables CONDSTORE. */
	if (query.has_modseq)
		session_enable_condstore(s);
	struct search_run *run = xcalloc(1, sizeof(*run));
	run->s = s;
	run->tag = xstrdup(cmd->tag);
	run->uid = s->cmd_uid;
	run->query = query;
	run->started_ms = ev_clock_ms();
	ev_timer_init(&run->timer, resume, run);
	search_plan_init(&run->plan, &run->query, s->store, s->selected, (int64_t)time(NULL));
	run->plan.no_recent = s->rev2;
	if (search_plan_text_incomplete(&run->plan))
		search_indexer_push(s->ctx->indexer, s->user);
	step(run);
}
