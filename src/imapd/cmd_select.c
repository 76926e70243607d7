/* The selected state: SELECT, EXAMINE (RFC 9051 6.3.2, 6.3.3), CLOSE,
 * UNSELECT (RFC 3691), CHECK, EXPUNGE and UID EXPUNGE (RFC 4315). */
#include "imapd/selected.h"
#include "imapd/session.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "imap/seqset.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void session_unselect(struct session *s)
{
	selected_free(&s->selected);
	if (s->state == SESSION_SELECTED)
		session_set_state(s, SESSION_AUTHENTICATED);
}

static void write_flag_list(const struct selected *sel, struct buf *out, bool with_star)
{
	buf_append_str(out, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t i = 0; i < sel->keywords.count; i++)
		buf_printf(out, " %s", sel->keywords.names[i]);
	if (with_star)
		buf_append_str(out, " \\*");
	buf_append_char(out, ')');
}

static void send_select_responses(struct session *s)
{
	struct selected *sel = s->selected;
	struct buf line = BUF_INIT;
	buf_append_str(&line, "* FLAGS ");
	write_flag_list(sel, &line, false);
	buf_append_str(&line, "\r\n* OK [PERMANENTFLAGS ");
	if (sel->readonly)
		buf_append_str(&line, "()");
	else
		write_flag_list(sel, &line, true);
	buf_append_str(&line, "] Flags permitted\r\n");
	buf_printf(&line, "* %zu EXISTS\r\n", sel->count);
	if (!s->rev2) {
		size_t recent = 0;
		size_t first_unseen = 0;
		for (size_t i = 0; i < sel->count; i++) {
			recent += selected_is_recent(sel, &sel->msgs[i]);
			if (first_unseen == 0 && !(sel->msgs[i].flags & STORE_FLAG_SEEN))
				first_unseen = i + 1;
		}
		buf_printf(&line, "* %zu RECENT\r\n", recent);
		/* RFC 3501 6.3.1: UNSEEN names the first unseen message. */
		if (first_unseen > 0)
			buf_printf(&line, "* OK [UNSEEN %zu] First unseen\r\n", first_unseen);
	}
	buf_printf(&line, "* OK [UIDVALIDITY %u] UIDs valid\r\n", sel->uidvalidity);
	buf_printf(&line, "* OK [UIDNEXT %u] Predicted next UID\r\n", sel->uidnext);
	if (s->condstore)
		buf_printf(&line, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", (unsigned long long)sel->modseq);
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

/* RFC 3501 6.3.1: only one session sees a message as \Recent. Without a
 * shared record of which session saw what, postern counts as recent for a
 * session the messages that arrive while it has the mailbox selected; at
 * SELECT none are. docs/design.md lists this as a known difference. */
static int open_selected(struct session *s, const char *name, bool readonly)
{
	struct store_status status;
	if (store_mailbox_status(s->store, name, UINT32_MAX, &status) < 0)
		return -1;
	struct store_view view;
	if (store_view_load(s->store, status.mailbox_id, &view) < 0)
		return -1;
	struct selected *sel = xcalloc(1, sizeof(*sel));
	sel->mailbox_id = status.mailbox_id;
	sel->name = xstrdup(name);
	sel->readonly = readonly;
	sel->uidvalidity = view.uidvalidity;
	sel->uidnext = view.uidnext;
	sel->modseq = view.highestmodseq;
	sel->msgs = view.msgs;
	sel->count = view.count;
	sel->cap = view.count;
	sel->keywords = view.keywords;
	sel->keywords_announced = view.keywords.count;
	sel->recent_above = view.uidnext > 0 ? view.uidnext - 1 : 0;
	view.msgs = NULL;
	view.keywords = (struct store_keywords){ 0 };
	store_view_free(&view);
	s->selected = sel;
	s->change_counter = store_change_counter(s->store);
	return 0;
}

/* QRESYNC parameters of SELECT (RFC 7162 3.2.5). */
struct qresync_params {
	bool present;
	uint32_t uidvalidity;
	uint64_t modseq;
	const struct imap_arg *known_uids;	/* NULL when not given */
};

static bool parse_number(const struct imap_arg *arg, uint64_t max, uint64_t *value_r)
{
	if (!imap_arg_is_atom(arg) || arg->len == 0 || arg->len > 20)
		return false;
	char *end;
	unsigned long long v = strtoull(arg->str, &end, 10);
	if (*end != '\0' || arg->str[0] < '0' || arg->str[0] > '9' || v > max)
		return false;
	*value_r = v;
	return true;
}

static int parse_select_params(struct session *s, const struct imap_arg *list,
			       struct qresync_params *q, const char **error_r)
{
	for (size_t i = 0; i < list->list_count; i++) {
		const struct imap_arg *p = &list->list[i];
		if (imap_arg_is_atom(p) && strcasecmp(p->str, "CONDSTORE") == 0) {
			s->condstore = true;	/* RFC 7162 3.1.8: enables CONDSTORE */
			continue;
		}
		if (!imap_arg_is_atom(p) || strcasecmp(p->str, "QRESYNC") != 0 || i + 1 >= list->list_count) {
			*error_r = "Unknown SELECT parameter";
			return -1;
		}
		if (!s->qresync) {
			/* RFC 7162 3.2.5: QRESYNC must be enabled first. */
			*error_r = "QRESYNC must be enabled first";
			return -1;
		}
		const struct imap_arg *qa = &list->list[++i];
		uint64_t uidvalidity, modseq;
		if (!imap_arg_is_list(qa) || qa->list_count < 2 || qa->list_count > 4 ||
		    !parse_number(&qa->list[0], UINT32_MAX, &uidvalidity) || uidvalidity == 0 ||
		    !parse_number(&qa->list[1], INT64_MAX, &modseq) || modseq == 0 ||
		    (qa->list_count >= 3 && !imap_arg_is_atom(&qa->list[2]) && !imap_arg_is_list(&qa->list[2]))) {
			*error_r = "QRESYNC takes (uidvalidity modseq [known-uids [seq-match]])";
			return -1;
		}
		q->present = true;
		q->uidvalidity = (uint32_t)uidvalidity;
		q->modseq = modseq;
		if (qa->list_count >= 3 && imap_arg_is_atom(&qa->list[2]))
			q->known_uids = &qa->list[2];
	}
	return 0;
}

/* RFC 7162 3.2.5.2: what changed since the client's modseq, as VANISHED
 * (EARLIER) and FETCH responses. */
static void send_qresync_changes(struct session *s, const struct qresync_params *q)
{
	struct selected *sel = s->selected;
	if (q->uidvalidity != sel->uidvalidity)
		return;	/* the client's cache is void: it refetches everything */
	struct store_changes changes;
	if (store_changes_since(s->store, sel->mailbox_id, q->modseq, &changes) < 0)
		return;
	struct seqset known = { 0 };
	bool have_known = q->known_uids != NULL && seqset_parse(q->known_uids->str, &known) == 0;
	struct buf line = BUF_INIT;
	size_t vanished = 0;
	buf_append_str(&line, "* VANISHED (EARLIER) ");
	if (changes.expunged_complete) {
		for (size_t i = 0; i < changes.expunged.count; i++) {
			uint32_t uid = changes.expunged.uids[i];
			if (have_known && !seqset_contains(&known, uid))
				continue;
			buf_printf(&line, "%s%u", vanished++ ? "," : "", uid);
		}
	} else if (have_known) {
		/* The log no longer reaches back: every known UID not in the
		 * mailbox now has vanished. */
		seqset_resolve(&known, sel->uidnext > 0 ? sel->uidnext - 1 : 0);
		for (size_t r = 0; r < known.count; r++) {
			for (uint64_t uid = known.ranges[r].lo; uid <= known.ranges[r].hi && uid < sel->uidnext; uid++) {
				if (selected_find_uid(sel, (uint32_t)uid) == SIZE_MAX)
					buf_printf(&line, "%s%llu", vanished++ ? "," : "", (unsigned long long)uid);
			}
		}
	}
	if (vanished > 0) {
		buf_append_str(&line, "\r\n");
		conn_write(s->conn, line.data, line.len);
	}
	buf_free(&line);
	for (size_t i = 0; i < changes.changed_count; i++) {
		size_t index = selected_find_uid(sel, changes.changed[i].uid);
		if (index == SIZE_MAX)
			continue;
		struct buf fetch = BUF_INIT;
		buf_printf(&fetch, "* %zu FETCH (UID %u FLAGS (", index + 1, sel->msgs[index].uid);
		selected_write_flags(sel, &sel->msgs[index], false, &fetch);
		buf_printf(&fetch, ") MODSEQ (%llu))\r\n", (unsigned long long)sel->msgs[index].modseq);
		conn_write(s->conn, fetch.data, fetch.len);
		buf_free(&fetch);
	}
	seqset_free(&known);
	store_changes_free(&changes);
}

static void select_or_examine(struct session *s, const struct imap_command *cmd, bool readonly)
{
	const char *error = NULL;
	struct buf name = BUF_INIT;
	struct qresync_params q = { 0 };
	if (cmd->arg_count < 1 || cmd->arg_count > 2 || session_mailbox_from_wire(s, &cmd->args[0], &name, &error) < 0 ||
	    (cmd->arg_count == 2 && (!imap_arg_is_list(&cmd->args[1]) ||
				     parse_select_params(s, &cmd->args[1], &q, &error) < 0))) {
		session_tagged(s, cmd->tag, "BAD", "%s", error ? error : "SELECT takes a mailbox name and optional parameters");
		buf_free(&name);
		return;
	}
	if (s->selected != NULL) {
		/* RFC 9051 6.3.2: the previous mailbox is closed without expunge,
		 * and CLOSED marks where its updates end. */
		session_unselect(s);
		session_untagged(s, "OK [CLOSED] Previous mailbox closed");
	}
	if (open_selected(s, name.data, readonly) < 0) {
		session_store_error(s, cmd->tag, readonly ? "EXAMINE" : "SELECT");
		buf_free(&name);
		return;
	}
	buf_free(&name);
	session_set_state(s, SESSION_SELECTED);
	send_select_responses(s);
	if (q.present)
		send_qresync_changes(s, &q);
	session_ok(s, cmd->tag, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
		   readonly ? "EXAMINE" : "SELECT");
}

void cmd_select(struct session *s, const struct imap_command *cmd)
{
	select_or_examine(s, cmd, false);
}

void cmd_examine(struct session *s, const struct imap_command *cmd)
{
	select_or_examine(s, cmd, true);
}

void cmd_unselect(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count != 0) {
		session_tagged(s, cmd->tag, "BAD", "UNSELECT takes no arguments");
		return;
	}
	session_unselect(s);
	session_tagged(s, cmd->tag, "OK", "Mailbox closed");
}

void cmd_close(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count != 0) {
		session_tagged(s, cmd->tag, "BAD", "CLOSE takes no arguments");
		return;
	}
	struct selected *sel = s->selected;
	if (!sel->readonly) {
		/* RFC 9051 6.4.1: \Deleted messages go, with no EXPUNGE responses. */
		struct store_uid_list expunged = { 0 };
		if (store_expunge(s->store, sel->mailbox_id, NULL, 0, &expunged) < 0) {
			session_store_error(s, cmd->tag, "CLOSE");
			return;
		}
		store_uid_list_free(&expunged);
	}
	session_unselect(s);
	session_tagged(s, cmd->tag, "OK", "CLOSE completed");
}

void cmd_check(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count != 0) {
		session_tagged(s, cmd->tag, "BAD", "CHECK takes no arguments");
		return;
	}
	/* Every change is committed when it is answered: nothing to flush. */
	session_ok(s, cmd->tag, "CHECK completed");
}

void cmd_expunge(struct session *s, const struct imap_command *cmd)
{
	struct selected *sel = s->selected;
	struct msg_set set = { 0 };
	struct store_uid_range *ranges = NULL;
	size_t range_count = 0;
	if (s->cmd_uid) {
		const char *error = NULL;
		if (cmd->arg_count != 1 || selected_resolve(sel, &cmd->args[0], true, &set, &error) < 0) {
			session_tagged(s, cmd->tag, "BAD", "%s", error ? error : "UID EXPUNGE takes a UID set");
			return;
		}
		ranges = selected_uid_ranges(sel, &set, &range_count);
		msg_set_free(&set);
		if (range_count == 0) {
			free(ranges);
			session_ok(s, cmd->tag, "UID EXPUNGE completed (no messages)");
			return;
		}
	} else if (cmd->arg_count != 0) {
		session_tagged(s, cmd->tag, "BAD", "EXPUNGE takes no arguments");
		return;
	}
	if (sel->readonly) {
		free(ranges);
		session_tagged(s, cmd->tag, "NO", "[READ-ONLY] The mailbox was opened with EXAMINE");
		return;
	}
	struct store_uid_list expunged = { 0 };
	int r = store_expunge(s->store, sel->mailbox_id, ranges, range_count, &expunged);
	free(ranges);
	if (r < 0) {
		session_store_error(s, cmd->tag, "EXPUNGE");
		return;
	}
	session_apply_expunges(s, expunged.uids, expunged.count);
	store_uid_list_free(&expunged);
	session_ok(s, cmd->tag, "EXPUNGE completed");
}
