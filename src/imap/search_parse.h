/* SEARCH command syntax (RFC 3501 6.4.4 and 9, RFC 9051 6.4.4 and 9):
 * the arguments of SEARCH / UID SEARCH, as the IMAP parser delivers them,
 * turned into a tree of search keys nested at most LIMIT_SEARCH_DEPTH
 * deep. Pure syntax: nothing here knows a mailbox. Also the extensions that only add keys or result options:
 * RFC 4731 (ESEARCH: RETURN (MIN MAX ALL COUNT)), RFC 5032 (WITHIN:
 * OLDER, YOUNGER) and RFC 8514 (SAVEDATE: SAVEDBEFORE, SAVEDON,
 * SAVEDSINCE).
 *
 *	search = "SEARCH" [SP "RETURN" SP "(" [opts] ")"]
 *		 [SP "CHARSET" SP astring] 1*(SP search-key)
 *
 * Return convention: 0 success, -1 a client mistake with a precise text
 * for a tagged BAD. The tree owns copies of everything it needs, so it
 * outlives the parser's arguments (a search may run over several loop
 * turns). */
#ifndef POSTERN_IMAP_SEARCH_PARSE_H
#define POSTERN_IMAP_SEARCH_PARSE_H

#include "core/limits.h"
#include "imap/parser.h"
#include "imap/seqset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum search_key_type {
	SEARCH_ALL,
	SEARCH_AND,		/* children: all must match (implicit AND, parentheses) */
	SEARCH_OR,		/* two children */
	SEARCH_NOT,		/* one child */
	SEARCH_SEQSET,		/* set: sequence numbers */
	SEARCH_UID,		/* set: UIDs */
	SEARCH_FLAG,		/* flag is set (ANSWERED, DELETED, ...) */
	SEARCH_UNFLAG,		/* flag is not set (UNANSWERED, ...) */
	SEARCH_KEYWORD,		/* str: keyword is set */
	SEARCH_UNKEYWORD,	/* str: keyword is not set */
	SEARCH_NEW,		/* recent and not seen */
	SEARCH_OLD,		/* not recent */
	SEARCH_RECENT,
	SEARCH_LARGER,		/* number: size above it */
	SEARCH_SMALLER,		/* number: size below it */
	SEARCH_BEFORE,		/* day: internal date, RFC 3501 6.4.4 */
	SEARCH_ON,
	SEARCH_SINCE,
	SEARCH_SENTBEFORE,	/* day: Date: header */
	SEARCH_SENTON,
	SEARCH_SENTSINCE,
	SEARCH_SAVEDBEFORE,	/* day: save date, RFC 8514 */
	SEARCH_SAVEDON,
	SEARCH_SAVEDSINCE,
	SEARCH_OLDER,		/* number: seconds, RFC 5032 */
	SEARCH_YOUNGER,
	SEARCH_HEADER,		/* field, str: FROM, TO, CC, BCC, SUBJECT, HEADER */
	SEARCH_BODY,		/* str */
	SEARCH_TEXT,		/* str */
};

/* System flags as search keys name them; the evaluator maps them to the
 * store's bits (this layer sits below the store). */
enum search_flag {
	SEARCH_FLAG_ANSWERED,
	SEARCH_FLAG_DELETED,
	SEARCH_FLAG_DRAFT,
	SEARCH_FLAG_FLAGGED,
	SEARCH_FLAG_SEEN,
};

struct search_key {
	enum search_key_type type;
	struct search_key **children;	/* AND, OR, NOT */
	size_t child_count;
	struct seqset set;		/* SEQSET, UID: as parsed, '*' unresolved */
	enum search_flag flag;		/* FLAG, UNFLAG */
	uint32_t number;		/* LARGER, SMALLER, OLDER, YOUNGER */
	int64_t day;			/* date keys: days since 1970-01-01 */
	char *field;			/* HEADER: field name, NUL-terminated */
	char *str;			/* the search string; may hold NULs */
	size_t str_len;
};

/* RFC 4731 3.1 result options. */
#define SEARCH_RETURN_MIN (1u << 0)
#define SEARCH_RETURN_MAX (1u << 1)
#define SEARCH_RETURN_ALL (1u << 2)
#define SEARCH_RETURN_COUNT (1u << 3)

struct search_query {
	struct search_key *root;	/* always an AND of the top-level keys */
	char *charset;			/* as given after CHARSET, or NULL */
	bool esearch;			/* RETURN was given: answer with ESEARCH */
	unsigned return_options;	/* SEARCH_RETURN_*; RETURN () means ALL */
	char error[200];		/* why parsing failed */
};

/* Parses the arguments after "SEARCH". On failure *error_r points into
 * query_r->error and the query holds nothing to free (freeing it is still
 * allowed). */
int search_parse(const struct imap_arg *args, size_t count, struct search_query *query_r,
		 const char **error_r);
void search_query_free(struct search_query *query);

/* RFC 3501 9 date ("1-Feb-1994", month names in any case) as days since
 * 1970-01-01. 0, or -1 for bad syntax or a day the month does not have. */
int search_parse_date(const char *text, size_t len, int64_t *day_r);
/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t search_days_from_civil(int64_t year, unsigned month, unsigned day);

#endif
