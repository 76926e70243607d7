/* Sequence sets, RFC 9051 9 (sequence-set) and RFC 5182 ("$"). */
#include "imap/seqset.h"

#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* Reads seq-number at *p: nz-number (no leading zero, at most 2^32-1) or
 * '*'. */
static int parse_number(const char **p, uint32_t *n_r)
{
	const char *s = *p;
	if (*s == '*') {
		*n_r = SEQ_STAR;
		*p = s + 1;
		return 0;
	}
	if (*s < '1' || *s > '9')
		return -1;
	uint64_t n = 0;
	while (*s >= '0' && *s <= '9') {
		n = n * 10 + (uint64_t)(*s - '0');
		if (n > UINT32_MAX)
			return -1;
		s++;
	}
	*n_r = (uint32_t)n;
	*p = s;
	return 0;
}

int seqset_parse(const char *text, struct seqset *set)
{
	memset(set, 0, sizeof(*set));
	if (strcmp(text, "$") == 0) {
		set->is_saved = true;
		return 0;
	}
	size_t cap = 0;
	const char *p = text;
	for (;;) {
		struct seq_range r;
		if (parse_number(&p, &r.lo) < 0)
			goto fail;
		r.hi = r.lo;
		if (*p == ':') {
			p++;
			if (parse_number(&p, &r.hi) < 0)
				goto fail;
			if (r.hi < r.lo) {
				uint32_t t = r.lo;
				r.lo = r.hi;
				r.hi = t;
			}
		}
		if (set->count == cap) {
			cap = cap ? cap * 2 : 4;
			set->ranges = xrealloc(set->ranges, cap * sizeof(*set->ranges));
		}
		set->ranges[set->count++] = r;
		if (*p == '\0')
			return 0;
		if (*p != ',')
			goto fail;
		p++;
	}
fail:
	seqset_free(set);
	return -1;
}

void seqset_free(struct seqset *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->count = 0;
	set->is_saved = false;
	set->sorted = false;
}

static int range_cmp(const void *a, const void *b)
{
	const struct seq_range *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

void seqset_resolve(struct seqset *set, uint32_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < set->count; i++) {
		struct seq_range r = set->ranges[i];
		if (r.hi == SEQ_STAR) {
			/* RFC 9051 6.4.8: "n:*" includes the largest number even
			 * when n is larger; an empty mailbox has none. */
			if (max == 0)
				continue;
			r.hi = max;
			if (r.lo == SEQ_STAR)
				r.lo = max;
			if (r.hi < r.lo) {
				uint32_t t = r.lo;
				r.lo = r.hi;
				r.hi = t;
			}
		}
		set->ranges[n++] = r;
	}
	set->count = n;
	if (n > 1)
		qsort(set->ranges, n, sizeof(*set->ranges), range_cmp);
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		struct seq_range r = set->ranges[i];
		/* Merge overlapping or adjacent ranges; hi + 1 can't wrap
		 * because a range ending at UINT32_MAX absorbs all later ones. */
		if (out > 0 && (set->ranges[out - 1].hi == UINT32_MAX ||
				r.lo <= set->ranges[out - 1].hi + 1)) {
			if (r.hi > set->ranges[out - 1].hi)
				set->ranges[out - 1].hi = r.hi;
			continue;
		}
		set->ranges[out++] = r;
	}
	set->count = out;
	set->sorted = true;
}

bool seqset_contains(const struct seqset *set, uint32_t n)
{
	if (set->sorted) {
		size_t lo = 0, hi = set->count;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (n < set->ranges[mid].lo)
				hi = mid;
			else if (n > set->ranges[mid].hi)
				lo = mid + 1;
			else
				return true;
		}
		return false;
	}
	for (size_t i = 0; i < set->count; i++) {
		if (n >= set->ranges[i].lo && n <= set->ranges[i].hi)
			return true;
	}
	return false;
}
