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

size_t selected_find_uid(const struct selected *sel, uint32_t uid)
{
	if (sel->is_packed)
		return packed_view_find(&sel->packed, uid);
	size_t i = lower_bound_uid(sel, uid);
	return i < sel->count && sel->msgs[i].uid == uid ? i : SIZE_MAX;
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
	size_t cap = 0;
	if (set.is_saved) {
		seqset_free(&set);
		for (size_t i = 0; i < sel->saved_count; i++) {
			size_t index = selected_find_uid(sel, sel->saved_uids[i]);
			if (index != SIZE_MAX)
				set_add_range(set_r, &cap, index, index + 1);
		}
		return 0;
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

void selected_save_result(struct selected *sel, const uint32_t *uids, size_t count)
{
	free(sel->saved_uids);
	sel->saved_uids = NULL;
	sel->saved_count = 0;
	if (count == 0)
		return;
	sel->saved_uids = xmalloc(count * sizeof(uint32_t));
	memcpy(sel->saved_uids, uids, count * sizeof(uint32_t));
	sel->saved_count = count;
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

/* msg: the message at index as it now stands in the view. */
static void send_flags_fetch(struct session *s, size_t index, const struct store_msg *msg,
			     bool with_uid)
{
	struct selected *sel = s->selected;
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
			send_flags_fetch(s, index, &sel->msgs[index], uid_command);
	}
}

static void view_remove(struct selected *sel, size_t index)
{
	if (sel->is_packed)
		packed_view_remove(&sel->packed, index);
	else
		memmove(&sel->msgs[index], &sel->msgs[index + 1],
			(sel->count - index - 1) * sizeof(sel->msgs[0]));
	sel->count--;
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
			view_remove(sel, index);
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
		view_remove(sel, index);
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
	if (sel->is_packed) {
		packed_view_append(&sel->packed, msg);
		sel->count++;
		return;
	}
	if (sel->count == sel->cap) {
		sel->cap = sel->cap ? sel->cap * 2 : 64;
		sel->msgs = xrealloc(sel->msgs, sel->cap * sizeof(sel->msgs[0]));
	}
	sel->msgs[sel->count++] = *msg;
}

/* New keywords appeared: the client learns them from FLAGS (RFC 9051 7.3.5). */
static void announce_keywords(struct session *s, const struct store_keywords *fresh)
{
	struct selected *sel = s->selected;
	if (fresh->count <= sel->keywords.count)
		return;
	store_keywords_free(&sel->keywords);
	sel->keywords.names = xcalloc(fresh->count, sizeof(char *));
	for (size_t i = 0; i < fresh->count; i++)
		sel->keywords.names[i] = xstrdup(fresh->names[i]);
	sel->keywords.count = fresh->count;
	struct buf line = BUF_INIT;
	buf_append_str(&line, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t i = 0; i < sel->keywords.count; i++)
		buf_printf(&line, " %s", sel->keywords.names[i]);
	buf_append_str(&line, ")\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
	sel->keywords_announced = sel->keywords.count;
}

/* The last changes read, shared by every session of the worker that asks
 * for the same thing: when a delivery wakes 10,000 IDLE sessions of one
 * mailbox, they all stood at the same modseq, and one query answers all. */
struct sync_cache {
	char *change_path;		/* whose store */
	uint64_t mailbox_id;
	uint64_t since;
	uint64_t counter;		/* the change counter it was read at */
	struct store_changes changes;
};

void session_sync_cache_free(struct imapd_context *ctx)
{
	struct sync_cache *c = ctx->sync_cache;
	if (c == NULL)
		return;
	store_changes_free(&c->changes);
	free(c->change_path);
	free(c);
	ctx->sync_cache = NULL;
}

static const struct store_changes *changes_since(struct session *s, uint64_t counter)
{
	struct selected *sel = s->selected;
	struct sync_cache *c = s->ctx->sync_cache;
	const char *path = store_change_path(s->store);
	if (c != NULL && counter != 0 && c->counter == counter && c->mailbox_id == sel->mailbox_id &&
	    c->since == sel->modseq && strcmp(c->change_path, path) == 0)
		return &c->changes;
	struct store_changes fresh;
	if (store_changes_since(s->store, sel->mailbox_id, sel->modseq, &fresh) < 0)
		return NULL;
	session_sync_cache_free(s->ctx);
	c = xcalloc(1, sizeof(*c));
	c->change_path = xstrdup(path);
	c->mailbox_id = sel->mailbox_id;
	c->since = sel->modseq;
	c->counter = counter;	/* 0 (unreadable) never matches above */
	c->changes = fresh;
	s->ctx->sync_cache = c;
	return &c->changes;
}

static uint32_t view_last_uid(const struct selected *sel)
{
	if (sel->is_packed)
		return packed_view_last_uid(&sel->packed);
	return sel->count ? sel->msgs[sel->count - 1].uid : 0;
}

/* Puts m in place of the message at index; true if its flags changed. */
static bool view_update(struct selected *sel, size_t index, const struct store_msg *m)
{
	if (sel->is_packed) {
		struct store_msg old;
		packed_view_get(&sel->packed, index, &old);
		packed_view_set(&sel->packed, index, m->flags, m->keywords);
		return old.flags != m->flags || old.keywords != m->keywords;
	}
	bool differs = sel->msgs[index].flags != m->flags || sel->msgs[index].keywords != m->keywords;
	sel->msgs[index] = *m;
	return differs;
}

static size_t view_count_recent(const struct selected *sel)
{
	if (sel->is_packed)
		return packed_view_count_above(&sel->packed, sel->recent_above);
	size_t recent = 0;
	for (size_t i = 0; i < sel->count; i++)
		recent += selected_is_recent(sel, &sel->msgs[i]);
	return recent;
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
	const struct store_changes *found = changes_since(s, counter);
	if (found == NULL) {
		const char *text = NULL;
		store_last_error(s->store, &text);
		log_msg(LOG_ERROR, "sync_failed", "session %s mailbox %s: %s", s->id, sel->name,
			text ? text : "");
		s->syncing = false;
		return;
	}
	const struct store_changes changes = *found;	/* read-only: the cache owns it */
	s->change_counter = counter;
	announce_keywords(s, &changes.keywords);
	if (allow_expunge)
		session_apply_expunges(s, changes.expunged.uids, changes.expunged.count);
	else
		hold_expunges(sel, changes.expunged.uids, changes.expunged.count);
	size_t before = sel->count;
	uint32_t last_uid = view_last_uid(sel);
	for (size_t i = 0; i < changes.changed_count; i++) {
		const struct store_msg *m = &changes.changed[i];
		if (m->uid > last_uid) {
			append_new_message(sel, m);
			last_uid = m->uid;
			continue;
		}
		size_t index = selected_find_uid(sel, m->uid);
		if (index != SIZE_MAX && view_update(sel, index, m))
			send_flags_fetch(s, index, m, false);
	}
	if (sel->count != before) {
		conn_printf(s->conn, "* %zu EXISTS\r\n", sel->count);
		if (!s->rev2)
			conn_printf(s->conn, "* %zu RECENT\r\n", view_count_recent(sel));
	}
	if (changes.highestmodseq > sel->modseq)
		sel->modseq = changes.highestmodseq;
	if (changes.uidnext > sel->uidnext)
		sel->uidnext = changes.uidnext;
	s->syncing = false;
}

void selected_pack(struct selected *sel)
{
	if (sel->is_packed)
		return;
	packed_view_pack(&sel->packed, sel->msgs, sel->count);
	free(sel->msgs);
	sel->msgs = NULL;
	sel->cap = 0;
	sel->is_packed = true;
}

int selected_unpack(struct session *s)
{
	struct selected *sel = s->selected;
	if (sel == NULL || !sel->is_packed)
		return 0;
	struct store_view now;
	if (store_view_load(s->store, sel->mailbox_id, &now) < 0)
		return -1;
	size_t count;
	sel->msgs = packed_view_unpack(&sel->packed, now.msgs, now.count, sel->modseq, &count);
	sel->count = sel->cap = count;
	store_view_free(&now);
	packed_view_free(&sel->packed);
	sel->is_packed = false;
	return 0;
}

void selected_free(struct selected **selp)
{
	struct selected *sel = *selp;
	if (sel == NULL)
		return;
	free(sel->name);
	free(sel->msgs);
	packed_view_free(&sel->packed);
	free(sel->pending_expunges);
	free(sel->saved_uids);
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

void session_enable_condstore(struct session *s)
{
	if (s->condstore)
		return;
	s->condstore = true;
	/* RFC 7162 3.1: after the first enabling command with a mailbox
	 * selected, the client needs the mailbox's HIGHESTMODSEQ; the view's
	 * value is what the client's messages reflect. */
	if (s->selected != NULL)
		conn_printf(s->conn, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
			    (unsigned long long)s->selected->modseq);
}

/* Appends "lo" or "lo:hi" to a set being written. */
static void write_range(struct buf *out, size_t *written, uint32_t lo, uint32_t hi)
{
	buf_printf(out, "%s%u", (*written)++ ? "," : "", lo);
	if (hi > lo)
		buf_printf(out, ":%u", hi);
}

int selected_send_vanished_earlier(struct session *s, const struct seqset *uid_set, uint64_t since)
{
	struct selected *sel = s->selected;
	struct store_changes changes;
	if (store_changes_since(s->store, sel->mailbox_id, since, &changes) < 0)
		return -1;
	/* '*' is the highest UID ever given, not the highest still there:
	 * "1:*" must cover a last message that was expunged. */
	uint32_t top = changes.uidnext > 1 ? changes.uidnext - 1 : 0;
	if (sel->count > 0 && sel->msgs[sel->count - 1].uid > top)
		top = sel->msgs[sel->count - 1].uid;
	struct seqset set = { 0 };
	set.ranges = xmalloc((uid_set->count ? uid_set->count : 1) * sizeof(*set.ranges));
	memcpy(set.ranges, uid_set->ranges, uid_set->count * sizeof(*set.ranges));
	set.count = uid_set->count;
	seqset_resolve(&set, top);
	struct buf line = BUF_INIT;
	size_t written = 0;
	buf_append_str(&line, "* VANISHED (EARLIER) ");
	if (changes.expunged_complete) {
		const uint32_t *uids = changes.expunged.uids;
		for (size_t i = 0; i < changes.expunged.count;) {
			if (!seqset_contains(&set, uids[i]) || selected_find_uid(sel, uids[i]) != SIZE_MAX) {
				i++;
				continue;
			}
			size_t j = i;
			while (j + 1 < changes.expunged.count && uids[j + 1] == uids[j] + 1 &&
			       seqset_contains(&set, uids[j + 1]) && selected_find_uid(sel, uids[j + 1]) == SIZE_MAX)
				j++;
			write_range(&line, &written, uids[i], uids[j]);
			i = j + 1;
		}
	} else {
		/* The log was trimmed past since: the gaps of the view below
		 * UIDNEXT, within the set, as ranges (never UID by UID: UIDs
		 * can be sparse after an import). */
		uint32_t limit = sel->uidnext > 1 ? sel->uidnext - 1 : 0;
		for (size_t r = 0; r < set.count; r++) {
			uint32_t lo = set.ranges[r].lo, hi = set.ranges[r].hi < limit ? set.ranges[r].hi : limit;
			if (lo == 0)
				lo = 1;
			size_t k = lower_bound_uid(sel, lo);
			while (lo <= hi) {
				uint32_t next = k < sel->count ? sel->msgs[k].uid : UINT32_MAX;
				if (next > lo) {
					uint32_t gap_hi = next - 1 < hi ? next - 1 : hi;
					write_range(&line, &written, lo, gap_hi);
					if (gap_hi == hi)
						break;
					lo = gap_hi + 1;
					continue;
				}
				/* lo is in the view: skip it. */
				if (lo == UINT32_MAX)
					break;
				lo++;
				k++;
			}
		}
	}
	if (written > 0) {
		buf_append_str(&line, "\r\n");
		conn_write(s->conn, line.data, line.len);
	}
	buf_free(&line);
	seqset_free(&set);
	store_changes_free(&changes);
	return 0;
}
