/* STORE and UID STORE (RFC 9051 6.4.6): FLAGS, +FLAGS, -FLAGS, .SILENT. */
#include "imapd/flags.h"
#include "imapd/selected.h"
#include "imapd/session.h"
#include "core/xalloc.h"

#include <stdint.h>

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

static int parse_unchangedsince(const struct imap_arg *list, uint64_t *value_r)
{
	if (list->list_count != 2 || !imap_arg_is_atom(&list->list[0]) ||
	    strcasecmp(list->list[0].str, "UNCHANGEDSINCE") != 0 || !imap_arg_is_atom(&list->list[1]))
		return -1;
	char *end;
	const char *text = list->list[1].str;
	unsigned long long v = strtoull(text, &end, 10);
	if (*end != '\0' || text[0] < '0' || text[0] > '9' || v > INT64_MAX)
		return -1;
	*value_r = v;
	return 0;
}

void cmd_store(struct session *s, const struct imap_command *cmd)
{
	struct selected *sel = s->selected;
	const char *error = NULL;
	enum store_flags_mode mode;
	bool silent;
	uint64_t unchangedsince = 0;
	bool conditional = false;
	/* RFC 7162 3.1.3: STORE set (UNCHANGEDSINCE modseq) item flags. */
	size_t item = 1;
	if (cmd->arg_count > 1 && imap_arg_is_list(&cmd->args[1])) {
		if (parse_unchangedsince(&cmd->args[1], &unchangedsince) < 0) {
			session_tagged(s, cmd->tag, "BAD", "STORE modifiers: (UNCHANGEDSINCE modseq)");
			return;
		}
		s->condstore = true;
		conditional = true;
		item = 2;
	}
	if (cmd->arg_count < item + 2 || !imap_arg_is_atom(&cmd->args[item]) ||
	    parse_item_name(cmd->args[item].str, &mode, &silent) < 0) {
		session_tagged(s, cmd->tag, "BAD", "STORE takes a set, [+|-]FLAGS[.SILENT] and flags");
		return;
	}
	struct flag_list flags;
	const struct imap_arg *flag_args = &cmd->args[item + 1];
	size_t flag_count = cmd->arg_count - item - 1;
	if (imap_arg_is_list(flag_args)) {
		if (cmd->arg_count != item + 2) {
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
	if (conditional && unchangedsince == 0) {
		/* RFC 7162 3.1.3: every message has a modseq above 0, so
		 * UNCHANGEDSINCE 0 changes nothing and reports every message. */
		for (size_t i = 0; i < range_count; i++) {
			for (uint64_t uid = ranges[i].lo; uid <= ranges[i].hi; uid++) {
				if (selected_find_uid(sel, (uint32_t)uid) == SIZE_MAX)
					continue;
				result.failed.uids = xrealloc(result.failed.uids, (result.failed.count + 1) * sizeof(uint32_t));
				result.failed.uids[result.failed.count++] = (uint32_t)uid;
			}
		}
		range_count = 0;
	}
	int r = range_count == 0 ? 0
		: store_flags_update(s->store, sel->mailbox_id, ranges, range_count, mode, flags.flags,
				     flags.keywords, flags.keyword_count, unchangedsince, &result);
	free(ranges);
	flag_list_free(&flags);
	if (r < 0) {
		session_store_error(s, cmd->tag, "STORE");
		return;
	}
	session_apply_flag_changes(s, result.changed, result.changed_count, silent, s->cmd_uid);
	if (result.failed.count > 0) {
		/* RFC 7162 3.1.3: MODIFIED lists what was left alone, as UIDs
		 * for UID STORE and sequence numbers for STORE. */
		struct buf modified = BUF_INIT;
		if (s->cmd_uid) {
			uid_set_write(&modified, result.failed.uids, result.failed.count);
		} else {
			uint32_t *seqs = xmalloc(result.failed.count * sizeof(uint32_t));
			size_t n = 0;
			for (size_t i = 0; i < result.failed.count; i++) {
				size_t index = selected_find_uid(sel, result.failed.uids[i]);
				if (index != SIZE_MAX)
					seqs[n++] = (uint32_t)index + 1;
			}
			uid_set_write(&modified, seqs, n);
			free(seqs);
		}
		store_flags_result_free(&result);
		session_ok(s, cmd->tag, "[MODIFIED %s] Conditional STORE failed for some messages", modified.data);
		buf_free(&modified);
		return;
	}
	store_flags_result_free(&result);
	session_ok(s, cmd->tag, "STORE completed");
}
