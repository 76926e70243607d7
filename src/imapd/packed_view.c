#include "imapd/packed_view.h"
#include "core/xalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void push_run(struct packed_view *p, uint32_t uid)
{
	if (p->run_count > 0 && p->runs[p->run_count - 1].hi + 1 == uid) {
		p->runs[p->run_count - 1].hi = uid;
		return;
	}
	if (p->run_count == p->run_cap) {
		p->run_cap = p->run_cap ? p->run_cap * 2 : 4;
		p->runs = xrealloc(p->runs, p->run_cap * sizeof(*p->runs));
	}
	p->runs[p->run_count].lo = p->runs[p->run_count].hi = uid;
	p->run_count++;
}

void packed_view_pack(struct packed_view *p, const struct store_msg *msgs, size_t count)
{
	*p = (struct packed_view){ 0 };
	bool any_keywords = false;
	for (size_t i = 0; i < count; i++) {
		push_run(p, msgs[i].uid);
		any_keywords |= msgs[i].keywords != 0;
	}
	/* Exact sizes: a packed view is made to be small. */
	if (p->run_count > 0 && p->run_count < p->run_cap) {
		p->runs = xrealloc(p->runs, p->run_count * sizeof(*p->runs));
		p->run_cap = p->run_count;
	}
	p->count = p->cap = count;
	p->flags = xmalloc(count ? count : 1);
	for (size_t i = 0; i < count; i++)
		p->flags[i] = (uint8_t)msgs[i].flags;
	if (any_keywords) {
		p->keywords = xmalloc(count * sizeof(uint64_t));
		for (size_t i = 0; i < count; i++)
			p->keywords[i] = msgs[i].keywords;
	}
}

void packed_view_free(struct packed_view *p)
{
	free(p->runs);
	free(p->flags);
	free(p->keywords);
	*p = (struct packed_view){ 0 };
}

size_t packed_view_find(const struct packed_view *p, uint32_t uid)
{
	size_t before = 0;
	for (size_t r = 0; r < p->run_count; r++) {
		const struct store_uid_range *run = &p->runs[r];
		if (uid < run->lo)
			return SIZE_MAX;
		if (uid <= run->hi)
			return before + (uid - run->lo);
		before += (size_t)(run->hi - run->lo) + 1;
	}
	return SIZE_MAX;
}

uint32_t packed_view_last_uid(const struct packed_view *p)
{
	return p->run_count ? p->runs[p->run_count - 1].hi : 0;
}

static uint32_t uid_at(const struct packed_view *p, size_t index)
{
	for (size_t r = 0; r < p->run_count; r++) {
		size_t len = (size_t)(p->runs[r].hi - p->runs[r].lo) + 1;
		if (index < len)
			return p->runs[r].lo + (uint32_t)index;
		index -= len;
	}
	return 0;
}

void packed_view_get(const struct packed_view *p, size_t index, struct store_msg *msg_r)
{
	*msg_r = (struct store_msg){ 0 };
	msg_r->uid = uid_at(p, index);
	msg_r->flags = p->flags[index];
	msg_r->keywords = p->keywords ? p->keywords[index] : 0;
}

void packed_view_set(struct packed_view *p, size_t index, uint32_t flags, uint64_t keywords)
{
	p->flags[index] = (uint8_t)flags;
	if (keywords != 0 && p->keywords == NULL)
		p->keywords = xcalloc(p->cap ? p->cap : 1, sizeof(uint64_t));
	if (p->keywords != NULL)
		p->keywords[index] = keywords;
}

/* Takes uid out of its run: the run shrinks, vanishes or splits in two. */
static void remove_uid(struct packed_view *p, uint32_t uid)
{
	size_t r = 0;
	while (r < p->run_count && uid > p->runs[r].hi)
		r++;
	struct store_uid_range *run = &p->runs[r];
	if (run->lo == run->hi) {
		memmove(run, run + 1, (p->run_count - r - 1) * sizeof(*run));
		p->run_count--;
	} else if (uid == run->lo) {
		run->lo++;
	} else if (uid == run->hi) {
		run->hi--;
	} else {
		if (p->run_count == p->run_cap) {
			p->run_cap = p->run_cap ? p->run_cap * 2 : 4;
			p->runs = xrealloc(p->runs, p->run_cap * sizeof(*p->runs));
			run = &p->runs[r];
		}
		memmove(run + 1, run, (p->run_count - r) * sizeof(*run));
		p->run_count++;
		run[0].hi = uid - 1;
		run[1].lo = uid + 1;
	}
}

void packed_view_remove(struct packed_view *p, size_t index)
{
	remove_uid(p, uid_at(p, index));
	size_t after = p->count - index - 1;
	memmove(&p->flags[index], &p->flags[index + 1], after);
	if (p->keywords != NULL)
		memmove(&p->keywords[index], &p->keywords[index + 1], after * sizeof(uint64_t));
	p->count--;
}

void packed_view_append(struct packed_view *p, const struct store_msg *msg)
{
	if (p->count == p->cap) {
		p->cap = p->cap ? p->cap + p->cap / 4 + 16 : 16;
		p->flags = xrealloc(p->flags, p->cap);
		if (p->keywords != NULL)
			p->keywords = xrealloc(p->keywords, p->cap * sizeof(uint64_t));
	}
	push_run(p, msg->uid);
	p->count++;
	if (p->keywords != NULL)
		p->keywords[p->count - 1] = 0;
	packed_view_set(p, p->count - 1, msg->flags, msg->keywords);
}

size_t packed_view_count_above(const struct packed_view *p, uint32_t uid)
{
	size_t n = 0;
	for (size_t r = p->run_count; r-- > 0 && p->runs[r].hi > uid;)
		n += (size_t)(p->runs[r].hi - (p->runs[r].lo > uid ? p->runs[r].lo : uid + 1)) + 1;
	return n;
}

struct store_msg *packed_view_unpack(const struct packed_view *p, const struct store_msg *rows,
				     size_t row_count, uint64_t known_modseq, size_t *count_r)
{
	struct store_msg *msgs = xmalloc((p->count ? p->count : 1) * sizeof(*msgs));
	size_t row = 0, index = 0;
	for (size_t r = 0; r < p->run_count; r++) {
		for (uint64_t uid = p->runs[r].lo; uid <= p->runs[r].hi; uid++, index++) {
			while (row < row_count && rows[row].uid < uid)
				row++;
			struct store_msg *m = &msgs[index];
			if (row < row_count && rows[row].uid == uid) {
				*m = rows[row];
				if (m->modseq > known_modseq)
					m->modseq = known_modseq;
			} else {
				*m = (struct store_msg){ .uid = (uint32_t)uid, .modseq = known_modseq };
			}
			m->flags = p->flags[index];
			m->keywords = p->keywords ? p->keywords[index] : 0;
		}
	}
	*count_r = index;
	return msgs;
}
