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
 * header and the body (search_text.h builds that text). Where the store's
 * search index covers a message, those keys are answered from it instead,
 * with the same result: it holds the same text, built by the same code.
 *
 * Blocking: search_plan_init runs the index lookups in one go;
 * search_match_message may read a message file and query the index; the
 * caller bounds how much it does per loop turn. */
#ifndef POSTERN_IMAPD_SEARCH_MATCH_H
#define POSTERN_IMAPD_SEARCH_MATCH_H

#include "core/buf.h"
#include "imap/search_parse.h"
#include "imapd/search_text.h"
#include "imapd/selected.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A text key the store's search index answers, for the messages it
 * covers. */
struct search_index_key {
	const struct search_key *key;
	struct store_search_term term;	/* needle borrowed from key->str */
};

/* A query made ready for one mailbox: needles folded, sequence sets
 * resolved, keywords looked up, index lookups done, keys ordered by cost. */
struct search_plan {
	struct search_query *query;	/* borrowed, changed in place by the plan */
	struct store *store;
	const struct selected *sel;
	int64_t now;			/* seconds since the epoch, for OLDER/YOUNGER */
	/* IMAP4rev2 enabled: no message is \Recent (RFC 9051 Appendix E),
	 * so RECENT and NEW match nothing and OLD everything. */
	bool no_recent;
	struct search_index_key *indexed;	/* keys answered from the index */
	size_t indexed_count;
	struct store_search_coverage coverage;	/* messages the index answers for */
	unsigned bodies_opened;		/* messages whose file was read so far */
	int errno_failure;		/* an ERROR not from the store (mmap): errno */
};

/* Prepares query for sel (which must not change while the plan is used).
 * Keys the store's search index can answer (FROM, TO, CC, BCC, SUBJECT
 * and HEADER of those fields; BODY and TEXT of 3 characters or more) are
 * looked up here, in one store call that may block for a full scan of the
 * index; messages the index does not cover are read as before. When the
 * index fails, every message is read (logged, not an error). */
void search_plan_init(struct search_plan *plan, struct search_query *query, struct store *store,
		      const struct selected *sel, int64_t now);
void search_plan_deinit(struct search_plan *plan);
/* Whether the plan has a full-text key and some message of the view is
 * not in the full-text index (worth telling the indexer). */
bool search_plan_text_incomplete(const struct search_plan *plan);

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

/* The day (days since 1970-01-01) written in an RFC 5322 Date: value,
 * disregarding time and zone (RFC 3501 6.4.4 SENTON: "disregarding time
 * and timezone"). Lenient: day names, comments, obsolete two-digit years
 * (RFC 5322 4.3). 0, or -1 when no date can be read. */
int search_parse_sent_date(const char *value, size_t len, int64_t *day_r);

#endif
