/* Evaluating a parsed SEARCH (imap/search_parse.h) against messages of the
 * selected mailbox. A message's body file is opened, mapped and parsed only
 * when a key needs it, and each AND and OR evaluates its cheap keys first
 * (flags, sizes, dates and UIDs from the view, then the save date from the
 * index, then headers, then bodies), so SEARCH UNSEEN never reads a body.
 *
 * Text matching (RFC 3501 6.4.4: case-insensitive substring): both sides
 * are folded with search_fold() and compared bytewise. Header keys look at
 * the RFC 2047 decoded value and at the raw value; BODY at the text of
 * every text part, transfer-decoded and converted to UTF-8; TEXT at the
 * header and the body.
 *
 * Blocking: search_match_message may read a message file and query the
 * index; the caller bounds how much it does per loop turn. */
#ifndef POSTERN_IMAPD_SEARCH_MATCH_H
#define POSTERN_IMAPD_SEARCH_MATCH_H

#include "core/buf.h"
#include "imap/search_parse.h"
#include "imapd/selected.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A query made ready for one mailbox: needles folded, sequence sets
 * resolved, keywords looked up, keys ordered by cost. */
struct search_plan {
	struct search_query *query;	/* borrowed, changed in place by the plan */
	struct store *store;
	const struct selected *sel;
	int64_t now;			/* seconds since the epoch, for OLDER/YOUNGER */
	unsigned bodies_opened;		/* messages whose file was read so far */
	int errno_failure;		/* an ERROR not from the store (mmap): errno */
};

/* Prepares query for sel (which must not change while the plan is used). */
void search_plan_init(struct search_plan *plan, struct search_query *query, struct store *store,
		      const struct selected *sel, int64_t now);

enum search_match_result {
	SEARCH_MATCH_NO = 0,
	SEARCH_MATCH_YES = 1,
	/* The store no longer has the message (expunged by another session):
	 * it does not match, whatever the keys say. */
	SEARCH_MATCH_GONE = 2,
	/* The store failed; store_last_error() tells why. */
	SEARCH_MATCH_ERROR = -1,
};

/* Evaluates the plan against sel->msgs[index]. */
enum search_match_result search_match_message(struct search_plan *plan, size_t index);

/* Appends text case-folded for matching: Unicode simple case folding for
 * Latin (with Extended-A, -B and Additional), Greek, Cyrillic, Armenian and
 * fullwidth Latin; other code points unchanged. Bytes that are not valid
 * UTF-8 are copied as they are, so raw 8-bit header text can still match
 * itself. */
void search_fold(const char *in, size_t len, struct buf *out);

/* The day (days since 1970-01-01) written in an RFC 5322 Date: value,
 * disregarding time and zone (RFC 3501 6.4.4 SENTON: "disregarding time
 * and timezone"). Lenient: day names, comments, obsolete two-digit years
 * (RFC 5322 4.3). 0, or -1 when no date can be read. */
int search_parse_sent_date(const char *value, size_t len, int64_t *day_r);

#endif
