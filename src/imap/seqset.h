/* Sequence sets (RFC 9051 9: sequence-set): "1,3:5,7:*", "$" for SEARCHRES. */
#ifndef POSTERN_IMAP_SEQSET_H
#define POSTERN_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* '*' is stored as SEQ_STAR and resolved against the largest number in use.
 * Known limit: the number 4294967295 is stored the same way, so it behaves
 * like '*' (it can only differ when the mailbox holds fewer numbers). */
#define SEQ_STAR UINT32_MAX

struct seq_range {
	uint32_t lo, hi;	/* inclusive, lo <= hi after parsing (swapped if written n:m, m<n) */
};

struct seqset {
	struct seq_range *ranges;
	size_t count;
	bool is_saved;		/* "$": the saved search result (RFC 5182) */
	bool sorted;		/* set by seqset_resolve(): ranges sorted, disjoint */
};

/* Parses text; returns 0, or -1 on bad syntax (0, leading zeros, numbers
 * over 2^32-1, empty parts, trailing commas). "$" alone gives is_saved and no
 * ranges. On failure the set is empty and needs no seqset_free(). */
int seqset_parse(const char *text, struct seqset *set);
void seqset_free(struct seqset *set);
/* Replaces SEQ_STAR by max (max 0 means an empty mailbox: '*' matches nothing
 * but the set stays valid), sorts and merges the ranges. */
void seqset_resolve(struct seqset *set, uint32_t max);
/* Binary search after seqset_resolve(), a linear scan before. */
bool seqset_contains(const struct seqset *set, uint32_t n);

#endif
