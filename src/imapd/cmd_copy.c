/* COPY and MOVE (RFC 9051 6.4.7, 6.4.8; RFC 6851), with COPYUID (RFC 4315). */
#include "imapd/selected.h"
#include "imapd/session.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void copy_or_move(struct session *s, const struct imap_command *cmd, bool move)
{
	struct selected *sel = s->selected;
	const char *what = move ? "MOVE" : "COPY";
	const char *error = NULL;
	struct buf name = BUF_INIT;
	struct msg_set set = { 0 };
	if (cmd->arg_count != 2 || selected_resolve(sel, &cmd->args[0], s->cmd_uid, &set, &error) < 0 ||
	    session_mailbox_from_wire(s, &cmd->args[1], &name, &error) < 0) {
		session_tagged(s, cmd->tag, "BAD", "%s", error ? error : "COPY takes a set and a mailbox name");
		msg_set_free(&set);
		buf_free(&name);
		return;
	}
	if (strncasecmp(name.data, "INBOX", 5) == 0 && (name.len == 5 || name.data[5] == '/'))
		memcpy(name.data, "INBOX", 5);
	if (move && sel->readonly) {
		session_tagged(s, cmd->tag, "NO", "[READ-ONLY] The mailbox was opened with EXAMINE");
		goto out;
	}
	struct store_status dest;
	if (store_mailbox_status(s->store, name.data, UINT32_MAX, &dest) < 0) {
		if (store_last_error(s->store, NULL) == STORE_ERR_NOT_FOUND)
			session_tagged(s, cmd->tag, "NO", "[TRYCREATE] No such mailbox");
		else
			session_store_error(s, cmd->tag, what);
		goto out;
	}
	if (set.count == 0) {
		/* RFC 9051 6.4.8: a UID set matching nothing is not an error. */
		session_ok(s, cmd->tag, "%s completed (no messages)", what);
		goto out;
	}
	size_t range_count = 0;
	struct store_uid_range *ranges = selected_uid_ranges(sel, &set, &range_count);
	struct store_copy_result result = { 0 };
	int r = store_copy(s->store, sel->mailbox_id, ranges, range_count, dest.mailbox_id, move, &result);
	free(ranges);
	if (r < 0) {
		session_store_error(s, cmd->tag, what);
		goto out;
	}
	struct buf code = BUF_INIT;
	if (result.src.count > 0) {
		buf_printf(&code, "[COPYUID %u ", result.dst_uidvalidity);
		uid_set_write(&code, result.src.uids, result.src.count);
		buf_append_char(&code, ' ');
		uid_set_write(&code, result.dst.uids, result.dst.count);
		buf_append_str(&code, "] ");
	}
	if (move) {
		/* RFC 6851 4.3: COPYUID comes untagged, before the EXPUNGEs. */
		if (code.len > 0)
			session_untagged(s, "OK %sMoved", code.data);
		session_apply_expunges(s, result.src.uids, result.src.count);
		session_ok(s, cmd->tag, "MOVE completed");
	} else {
		session_ok(s, cmd->tag, "%sCOPY completed", code.len ? code.data : "");
	}
	buf_free(&code);
	store_copy_result_free(&result);
out:
	msg_set_free(&set);
	buf_free(&name);
}

void cmd_copy(struct session *s, const struct imap_command *cmd)
{
	copy_or_move(s, cmd, false);
}

void cmd_move(struct session *s, const struct imap_command *cmd)
{
	copy_or_move(s, cmd, true);
}
