/* STORE and UID STORE (RFC 9051 6.4.6): FLAGS, +FLAGS, -FLAGS, .SILENT. */
#include "imapd/flags.h"
#include "imapd/selected.h"
#include "imapd/session.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_item_name(const char *text, enum store_flags_mode *mode_r, bool *silent_r)
{
	*mode_r = STORE_FLAGS_SET;
	if (text[0] == '+' || text[0] == '-') {
		*mode_r = text[0] == '+' ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE;
		text++;
	}
	if (strcasecmp(text, "FLAGS") == 0) {
		*silent_r = false;
		return 0;
	}
	if (strcasecmp(text, "FLAGS.SILENT") == 0) {
		*silent_r = true;
		return 0;
	}
	return -1;
}

void cmd_store(struct session *s, const struct imap_command *cmd)
{
	struct selected *sel = s->selected;
	const char *error = NULL;
	enum store_flags_mode mode;
	bool silent;
	if (cmd->arg_count < 3 || !imap_arg_is_atom(&cmd->args[1]) ||
	    parse_item_name(cmd->args[1].str, &mode, &silent) < 0) {
		session_tagged(s, cmd->tag, "BAD", "STORE takes a set, [+|-]FLAGS[.SILENT] and flags");
		return;
	}
	struct flag_list flags;
	const struct imap_arg *flag_args = &cmd->args[2];
	size_t flag_count = cmd->arg_count - 2;
	if (imap_arg_is_list(flag_args)) {
		if (cmd->arg_count != 3) {
			session_tagged(s, cmd->tag, "BAD", "Unexpected arguments after the flag list");
			return;
		}
		flag_count = flag_args->list_count;
		flag_args = flag_args->list;
	}
	if (flags_parse(flag_args, flag_count, &flags, &error) < 0) {
		session_tagged(s, cmd->tag, "BAD", "%s", error);
		return;
	}
	struct msg_set set;
	if (selected_resolve(sel, &cmd->args[0], s->cmd_uid, &set, &error) < 0) {
		flag_list_free(&flags);
		session_tagged(s, cmd->tag, "BAD", "%s", error);
		return;
	}
	if (sel->readonly) {
		flag_list_free(&flags);
		msg_set_free(&set);
		session_tagged(s, cmd->tag, "NO", "[READ-ONLY] The mailbox was opened with EXAMINE");
		return;
	}
	size_t range_count = 0;
	struct store_uid_range *ranges = selected_uid_ranges(sel, &set, &range_count);
	msg_set_free(&set);
	struct store_flags_result result = { 0 };
	int r = range_count == 0 ? 0
		: store_flags_update(s->store, sel->mailbox_id, ranges, range_count, mode, flags.flags,
				     flags.keywords, flags.keyword_count, 0, &result);
	free(ranges);
	flag_list_free(&flags);
	if (r < 0) {
		session_store_error(s, cmd->tag, "STORE");
		return;
	}
	session_apply_flag_changes(s, result.changed, result.changed_count, silent, s->cmd_uid);
	store_flags_result_free(&result);
	session_ok(s, cmd->tag, "STORE completed");
}
