#include "imapd/selected.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "imap/seqset.h"
#include "imapd/session.h"

#include <stdlib.h>
#include <string.h>

void msg_set_free(struct msg_set *set)
{
	free(set->index);
	set->index = NULL;
	set->count = 0;
}

size_t selected_find_uid(const struct selected *sel, uint32_t uid)
{
	size_t lo = 0, hi = sel->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sel->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < sel->count && sel->msgs[lo].uid == uid ? lo : SIZE_MAX;
}

/* First index whose UID is >= uid. */
static size_t lower_bound_uid(const struct selected *sel, uint32_t uid)
{
	size_t lo = 0, hi = sel->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sel->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void set_add_range(struct msg_set *set, size_t *cap, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		if (set->count == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			set->index = xrealloc(set->index, *cap * sizeof(*set->index));
		}
		set->index[set->count++] = i;
	}
}

int selected_resolve(const struct selected *sel, const struct imap_arg *arg, bool uid,
		     struct msg_set *set_r, const char **error_r)
{
	*set_r = (struct msg_set){ 0 };
	if (!imap_arg_is_atom(arg)) {
		*error_r = "Invalid sequence set";
		return -1;
	}
	struct seqset set;
	if (seqset_parse(arg->str, &set) < 0) {
		*error_r = "Invalid sequence set";
		return -1;
	}
	if (set.is_saved) {
		seqset_free(&set);
		*error_r = "$ is not supported: no search result has been saved";
		return -1;
	}
	uint32_t max = 0;
	if (sel->count > 0)
		max = uid ? sel->msgs[sel->count - 1].uid : (uint32_t)sel->count;
	if (!uid) {
		/* RFC 9051 6.4.4 / 9: a sequence number beyond the mailbox is a
		 * client error; so is '*' in an empty mailbox. */
		for (size_t i = 0; i < set.count; i++) {
			uint32_t a = set.ranges[i].lo, b = set.ranges[i].hi;
			bool star = a == SEQ_STAR || b == SEQ_STAR;
			if ((star && max == 0) || (a != SEQ_STAR && a > max) || (b != SEQ_STAR && b > max)) {
				seqset_free(&set);
				*error_r = "Invalid message sequence number";
				return -1;
			}
		}
	}
	seqset_resolve(&set, max);
	size_t cap = 0;
	for (size_t i = 0; i < set.count; i++) {
		uint32_t lo = set.ranges[i].lo, hi = set.ranges[i].hi;
		if (uid) {
			size_t from = lower_bound_uid(sel, lo);
			size_t to = hi == UINT32_MAX ? sel->count : lower_bound_uid(sel, hi + 1);
			set_add_range(set_r, &cap, from, to);
		} else if (lo >= 1 && lo <= max) {
			set_add_range(set_r, &cap, lo - 1, hi > max ? max : hi);
		}
	}
	seqset_free(&set);
	return 0;
}

struct store_uid_range *selected_uid_ranges(const struct selected *sel, const struct msg_set *set,
					    size_t *count_r)
{
	struct store_uid_range *ranges = xmalloc((set->count ? set->count : 1) * sizeof(*ranges));
	size_t n = 0;
	for (size_t i = 0; i < set->count; i++) {
		uint32_t uid = sel->msgs[set->index[i]].uid;
		if (n > 0 && ranges[n - 1].hi + 1 == uid) {
			ranges[n - 1].hi = uid;
			continue;
		}
		ranges[n].lo = ranges[n].hi = uid;
		n++;
	}
	*count_r = n;
	return ranges;
}

bool selected_is_recent(const struct selected *sel, const struct store_msg *msg)
{
	return msg->uid > sel->recent_above;
}

void selected_write_flags(const struct selected *sel, const struct store_msg *msg, bool recent,
			  struct buf *out)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} system_flags[] = {
		{ STORE_FLAG_SEEN, "\\Seen" },
		{ STORE_FLAG_ANSWERED, "\\Answered" },
		{ STORE_FLAG_FLAGGED, "\\Flagged" },
		{ STORE_FLAG_DELETED, "\\Deleted" },
		{ STORE_FLAG_DRAFT, "\\Draft" },
	};
	bool first = true;
	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
		if (msg->flags & system_flags[i].bit) {
			buf_printf(out, "%s%s", first ? "" : " ", system_flags[i].name);
			first = false;
		}
	}
	for (size_t i = 0; i < sel->keywords.count && i < 64; i++) {
		if (msg->keywords & (UINT64_C(1) << i)) {
			buf_printf(out, "%s%s", first ? "" : " ", sel->keywords.names[i]);
			first = false;
		}
	}
	if (recent)
		buf_printf(out, "%s\\Recent", first ? "" : " ");
}

static void send_flags_fetch(struct session *s, size_t index, bool with_uid)
{
	struct selected *sel = s->selected;
	const struct store_msg *msg = &sel->msgs[index];
	struct buf line = BUF_INIT;
	buf_printf(&line, "* %zu FETCH (", index + 1);
	/* RFC 7162 3.2.4: with QRESYNC every FETCH carries the UID. */
	if (with_uid || s->qresync)
		buf_printf(&line, "UID %u ", msg->uid);
	buf_append_str(&line, "FLAGS (");
	selected_write_flags(sel, msg, !s->rev2 && selected_is_recent(sel, msg), &line);
	buf_append_char(&line, ')');
	/* RFC 7162 3.1.4: once CONDSTORE is on, FETCH responses carry MODSEQ. */
	if (s->condstore)
		buf_printf(&line, " MODSEQ (%llu)", (unsigned long long)msg->modseq);
	buf_append_str(&line, ")\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
}

void session_apply_flag_changes(struct session *s, const struct store_msg *changed, size_t count,
				bool silent, bool uid_command)
{
	struct selected *sel = s->selected;
	for (size_t i = 0; i < count; i++) {
		size_t index = selected_find_uid(sel, changed[i].uid);
		if (index == SIZE_MAX)
			continue;
		sel->msgs[index].flags = changed[i].flags;
		sel->msgs[index].keywords = changed[i].keywords;
		sel->msgs[index].modseq = changed[i].modseq;
	}
	/* Others' changes and new keyword names (FLAGS) go first, so the
	 * FETCH responses below only name flags the client has been told of;
	 * our own changes are in the view already and are not sent twice. */
	session_sync(s, s->allow_expunge);
	if (silent)
		return;
	/* RFC 9051 6.4.6: .SILENT leaves out exactly what the client asked. */
	for (size_t i = 0; i < count; i++) {
		size_t index = selected_find_uid(sel, changed[i].uid);
		if (index != SIZE_MAX)
			send_flags_fetch(s, index, uid_command);
	}
}

void session_apply_expunges(struct session *s, const uint32_t *uids, size_t count)
{
	struct selected *sel = s->selected;
	if (s->qresync) {
		/* RFC 7162 3.2.10: one VANISHED instead of an EXPUNGE each. */
		uint32_t *gone = xmalloc((count ? count : 1) * sizeof(uint32_t));
		size_t n = 0;
		for (size_t k = 0; k < count; k++) {
			size_t index = selected_find_uid(sel, uids[k]);
			if (index == SIZE_MAX)
				continue;
			memmove(&sel->msgs[index], &sel->msgs[index + 1],
				(sel->count - index - 1) * sizeof(sel->msgs[0]));
			sel->count--;
			gone[n++] = uids[k];
		}
		if (n > 0) {
			struct buf line = BUF_INIT;
			buf_append_str(&line, "* VANISHED ");
			uid_set_write(&line, gone, n);
			buf_append_str(&line, "\r\n");
			conn_write(s->conn, line.data, line.len);
			buf_free(&line);
		}
		free(gone);
		return;
	}
	/* RFC 9051 7.5.1: each EXPUNGE renumbers the ones after it, so going
	 * from the highest UID down keeps every number we send valid. */
	for (size_t k = count; k-- > 0;) {
		size_t index = selected_find_uid(sel, uids[k]);
		if (index == SIZE_MAX)
			continue;
		memmove(&sel->msgs[index], &sel->msgs[index + 1],
			(sel->count - index - 1) * sizeof(sel->msgs[0]));
		sel->count--;
		conn_printf(s->conn, "* %zu EXPUNGE\r\n", index + 1);
	}
}

static void hold_expunges(struct selected *sel, const uint32_t *uids, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (selected_find_uid(sel, uids[i]) == SIZE_MAX)
			continue;
		sel->pending_expunges = xrealloc(sel->pending_expunges,
						 (sel->pending_count + 1) * sizeof(uint32_t));
		sel->pending_expunges[sel->pending_count++] = uids[i];
	}
}

static int compare_uid(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void flush_pending_expunges(struct session *s)
{
	struct selected *sel = s->selected;
	if (sel->pending_count == 0)
		return;
	qsort(sel->pending_expunges, sel->pending_count, sizeof(uint32_t), compare_uid);
	session_apply_expunges(s, sel->pending_expunges, sel->pending_count);
	free(sel->pending_expunges);
	sel->pending_expunges = NULL;
	sel->pending_count = 0;
}

static void append_new_message(struct selected *sel, const struct store_msg *msg)
{
	if (sel->count == sel->cap) {
		sel->cap = sel->cap ? sel->cap * 2 : 64;
		sel->msgs = xrealloc(sel->msgs, sel->cap * sizeof(sel->msgs[0]));
	}
	sel->msgs[sel->count++] = *msg;
}

/* New keywords appeared: the client learns them from FLAGS (RFC 9051 7.3.5). */
static void announce_keywords(struct session *s, struct store_keywords *fresh)
{
	struct selected *sel = s->selected;
	if (fresh->count <= sel->keywords.count)
		return;
	store_keywords_free(&sel->keywords);
	sel->keywords = *fresh;
	*fresh = (struct store_keywords){ 0 };
	struct buf line = BUF_INIT;
	buf_append_str(&line, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t i = 0; i < sel->keywords.count; i++)
		buf_printf(&line, " %s", sel->keywords.names[i]);
	buf_append_str(&line, ")\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
	sel->keywords_announced = sel->keywords.count;
}

void session_sync(struct session *s, bool allow_expunge)
{
	struct selected *sel = s->selected;
	if (sel == NULL || s->syncing)
		return;
	if (allow_expunge)
		flush_pending_expunges(s);
	uint64_t counter = store_change_counter(s->store);
	if (counter != 0 && counter == s->change_counter)
		return;
	s->syncing = true;
	struct store_changes changes;
	if (store_changes_since(s->store, sel->mailbox_id, sel->modseq, &changes) < 0) {
		const char *text = NULL;
		store_last_error(s->store, &text);
		log_msg(LOG_ERROR, "sync_failed", "session %s mailbox %s: %s", s->id, sel->name,
			text ? text : "");
		s->syncing = false;
		return;
	}
	s->change_counter = counter;
	announce_keywords(s, &changes.keywords);
	if (allow_expunge)
		session_apply_expunges(s, changes.expunged.uids, changes.expunged.count);
	else
		hold_expunges(sel, changes.expunged.uids, changes.expunged.count);
	size_t before = sel->count;
	uint32_t last_uid = sel->count ? sel->msgs[sel->count - 1].uid : 0;
	for (size_t i = 0; i < changes.changed_count; i++) {
		const struct store_msg *m = &changes.changed[i];
		if (m->uid > last_uid) {
			append_new_message(sel, m);
			last_uid = m->uid;
			continue;
		}
		size_t index = selected_find_uid(sel, m->uid);
		if (index == SIZE_MAX)
			continue;
		bool differs = sel->msgs[index].flags != m->flags || sel->msgs[index].keywords != m->keywords;
		sel->msgs[index] = *m;
		if (differs)
			send_flags_fetch(s, index, false);
	}
	if (sel->count != before) {
		conn_printf(s->conn, "* %zu EXISTS\r\n", sel->count);
		if (!s->rev2) {
			size_t recent = 0;
			for (size_t i = 0; i < sel->count; i++)
				recent += selected_is_recent(sel, &sel->msgs[i]);
			conn_printf(s->conn, "* %zu RECENT\r\n", recent);
		}
	}
	if (changes.highestmodseq > sel->modseq)
		sel->modseq = changes.highestmodseq;
	if (changes.uidnext > sel->uidnext)
		sel->uidnext = changes.uidnext;
	store_changes_free(&changes);
	s->syncing = false;
}

void selected_free(struct selected **selp)
{
	struct selected *sel = *selp;
	if (sel == NULL)
		return;
	free(sel->name);
	free(sel->msgs);
	free(sel->pending_expunges);
	store_keywords_free(&sel->keywords);
	free(sel);
	*selp = NULL;
}

void uid_set_write(struct buf *out, const uint32_t *uids, size_t count)
{
	for (size_t i = 0; i < count;) {
		size_t j = i;
		while (j + 1 < count && uids[j + 1] == uids[j] + 1)
			j++;
		buf_printf(out, "%s%u", i ? "," : "", uids[i]);
		if (j > i)
			buf_printf(out, ":%u", uids[j]);
		i = j + 1;
	}
}
