/* Packed IDLE view tests: every operation is checked against a plain array
 * of store_msg doing the same thing, which is what the view replaces. */
#include "harness.h"

#include "imapd/packed_view.h"

#include <stdlib.h>

struct model {
	struct store_msg msgs[512];
	size_t count;
};

static void model_remove(struct model *m, size_t index)
{
	memmove(&m->msgs[index], &m->msgs[index + 1], (m->count - index - 1) * sizeof(m->msgs[0]));
	m->count--;
}

/* The packed view says the same as the model about every message. */
static int same(const struct packed_view *p, const struct model *m)
{
	if (p->count != m->count)
		return 0;
	for (size_t i = 0; i < m->count; i++) {
		struct store_msg got;
		packed_view_get(p, i, &got);
		if (got.uid != m->msgs[i].uid || got.flags != m->msgs[i].flags ||
		    got.keywords != m->msgs[i].keywords)
			return 0;
		if (packed_view_find(p, m->msgs[i].uid) != i)
			return 0;
	}
	return packed_view_last_uid(p) == (m->count ? m->msgs[m->count - 1].uid : 0);
}

static void fill(struct model *m, size_t count)
{
	m->count = count;
	for (size_t i = 0; i < count; i++)
		m->msgs[i] = (struct store_msg){ .uid = (uint32_t)(i + 1), .flags = (uint32_t)(i % 32),
						 .modseq = 100 + i, .size = 1000 + (uint32_t)i };
}

static void test_pack_and_find(void)
{
	struct model m;
	fill(&m, 10);
	model_remove(&m, 4);			/* UIDs 1-4, 6-10: two runs */
	struct packed_view p;
	packed_view_pack(&p, m.msgs, m.count);
	CHECK(same(&p, &m));
	CHECK_INT(p.run_count, 2);
	CHECK(p.keywords == NULL);
	CHECK_INT(packed_view_find(&p, 5), SIZE_MAX);
	CHECK_INT(packed_view_find(&p, 11), SIZE_MAX);
	CHECK_INT(packed_view_find(&p, 0), SIZE_MAX);
	packed_view_free(&p);
}

static void test_empty(void)
{
	struct packed_view p;
	packed_view_pack(&p, NULL, 0);
	CHECK_INT(p.count, 0);
	CHECK_INT(packed_view_last_uid(&p), 0);
	CHECK_INT(packed_view_find(&p, 1), SIZE_MAX);
	CHECK_INT(packed_view_count_above(&p, 0), 0);
	struct store_msg m = { .uid = 7, .flags = 3 };
	packed_view_append(&p, &m);
	CHECK_INT(p.count, 1);
	CHECK_INT(packed_view_find(&p, 7), 0);
	size_t count;
	struct store_msg *back = packed_view_unpack(&p, NULL, 0, 50, &count);
	CHECK_INT(count, 1);
	CHECK_INT(back[0].uid, 7);
	CHECK_INT(back[0].flags, 3);
	free(back);
	packed_view_remove(&p, 0);
	CHECK_INT(p.count, 0);
	CHECK_INT(p.run_count, 0);
	packed_view_free(&p);
}

/* Removing from the start, the end and the middle of runs, appending new
 * UIDs after gaps and right after the last, and flag and keyword changes,
 * in a pseudo-random order, always agree with the array. */
static void test_against_model(void)
{
	struct model m;
	fill(&m, 200);
	struct packed_view p;
	packed_view_pack(&p, m.msgs, m.count);
	unsigned seed = 12345;
	uint32_t next_uid = 201;
	for (int step = 0; step < 3000; step++) {
		seed = seed * 1103515245u + 12345u;
		unsigned r = (seed >> 8) % 10;
		if (r < 4 && m.count > 0) {
			size_t index = (seed >> 4) % m.count;
			model_remove(&m, index);
			packed_view_remove(&p, index);
		} else if (r < 7 && m.count < 500) {
			next_uid += (seed >> 12) % 3;	/* sometimes a gap */
			struct store_msg msg = { .uid = next_uid++, .flags = (seed >> 3) % 32,
						 .keywords = r == 6 ? (uint64_t)seed << 20 : 0 };
			m.msgs[m.count++] = msg;
			packed_view_append(&p, &msg);
		} else if (m.count > 0) {
			size_t index = (seed >> 4) % m.count;
			uint64_t kw = r == 9 ? (uint64_t)(seed >> 2) : 0;
			m.msgs[index].flags = (seed >> 6) % 32;
			m.msgs[index].keywords = kw;
			packed_view_set(&p, index, m.msgs[index].flags, kw);
		}
		if (!same(&p, &m)) {
			CHECK(!"packed view and model differ");
			fprintf(stderr, "  at step %d\n", step);
			break;
		}
	}
	/* count_above is what RECENT counts. */
	for (uint32_t above = 0; above < next_uid + 1; above += 17) {
		size_t expected = 0;
		for (size_t i = 0; i < m.count; i++)
			expected += m.msgs[i].uid > above;
		CHECK_INT(packed_view_count_above(&p, above), expected);
	}
	packed_view_free(&p);
}

/* Unpacking takes dates and sizes from the store's rows, keeps the flags
 * the client was told, holds back the modseq of rows changed since, and
 * keeps a row for a message the store has lost until the expunge is sent. */
static void test_unpack(void)
{
	struct model m;
	fill(&m, 6);
	struct packed_view p;
	packed_view_pack(&p, m.msgs, m.count);
	struct store_msg rows[6];
	size_t n = 0;
	for (size_t i = 0; i < 6; i++) {
		if (i == 2)
			continue;		/* UID 3 expunged in the store */
		rows[n] = m.msgs[i];
		if (i == 4) {
			rows[n].flags = 31;	/* changed after the client's view */
			rows[n].modseq = 900;
		}
		n++;
	}
	rows[n++] = (struct store_msg){ .uid = 50, .modseq = 901 };	/* new, not announced */
	size_t count;
	struct store_msg *back = packed_view_unpack(&p, rows, n, 500, &count);
	CHECK_INT(count, 6);
	for (size_t i = 0; i < count && i < 6; i++) {
		CHECK_INT(back[i].uid, m.msgs[i].uid);
		CHECK_INT(back[i].flags, m.msgs[i].flags);
	}
	CHECK_INT(back[0].size, 1000);
	CHECK_INT(back[0].modseq, 100);
	CHECK_INT(back[2].size, 0);		/* lost: placeholder */
	CHECK_INT(back[4].modseq, 500);		/* changed since: held back */
	CHECK_INT(back[5].size, 1005);
	free(back);
	packed_view_free(&p);
}

int main(void)
{
	RUN(test_pack_and_find);
	RUN(test_empty);
	RUN(test_against_model);
	RUN(test_unpack);
	return harness_finish();
}
