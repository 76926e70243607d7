/* SEARCH syntax: IMAP arguments to a tree of search keys. */
#include "imap/search_parse.h"

#include "core/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What follows a key name. */
enum search_arg_kind {
	ARG_NONE,
	ARG_ASTRING,	/* FROM "x", BODY x, ... */
	ARG_DATE,	/* BEFORE 1-Feb-1994 */
	ARG_NUMBER,	/* LARGER 100: number, 0 allowed */
	ARG_NZNUMBER,	/* OLDER 60: RFC 5032 4 nz-number */
	ARG_SEQSET,	/* UID 1:* */
	ARG_KEYWORD,	/* KEYWORD $Label: flag-keyword is an atom */
	ARG_HEADER,	/* HEADER field string */
	ARG_ONE_KEY,	/* NOT key */
	ARG_TWO_KEYS,	/* OR key key */
	ARG_MODSEQ,	/* MODSEQ ["/flags/x" priv|shared|all] 620162338 */
	ARG_OBJECTID,	/* EMAILID M6d99ac3275bb4e */
};

struct search_key_def {
	const char *name;
	enum search_key_type type;
	enum search_arg_kind arg;
	enum search_flag flag;		/* FLAG, UNFLAG */
	const char *field;		/* HEADER shorthands: FROM, TO, ... */
};

/* RFC 3501 6.4.4 and 9, RFC 9051 6.4.4 (which dropped NEW, OLD and RECENT
 * with \Recent; clients still send them to IMAP4rev1 servers, so they
 * stay), RFC 5032 3, RFC 8514 4.2. */
static const struct search_key_def key_defs[] = {
	{ "ALL", SEARCH_ALL, ARG_NONE, 0, NULL },
	{ "ANSWERED", SEARCH_FLAG, ARG_NONE, SEARCH_FLAG_ANSWERED, NULL },
	{ "BCC", SEARCH_HEADER, ARG_ASTRING, 0, "Bcc" },
	{ "BEFORE", SEARCH_BEFORE, ARG_DATE, 0, NULL },
	{ "BODY", SEARCH_BODY, ARG_ASTRING, 0, NULL },
	{ "CC", SEARCH_HEADER, ARG_ASTRING, 0, "Cc" },
	{ "DELETED", SEARCH_FLAG, ARG_NONE, SEARCH_FLAG_DELETED, NULL },
	{ "DRAFT", SEARCH_FLAG, ARG_NONE, SEARCH_FLAG_DRAFT, NULL },
	{ "EMAILID", SEARCH_EMAILID, ARG_OBJECTID, 0, NULL },
	{ "FLAGGED", SEARCH_FLAG, ARG_NONE, SEARCH_FLAG_FLAGGED, NULL },
	{ "FROM", SEARCH_HEADER, ARG_ASTRING, 0, "From" },
	{ "HEADER", SEARCH_HEADER, ARG_HEADER, 0, NULL },
	{ "KEYWORD", SEARCH_KEYWORD, ARG_KEYWORD, 0, NULL },
	{ "LARGER", SEARCH_LARGER, ARG_NUMBER, 0, NULL },
	{ "MODSEQ", SEARCH_MODSEQ, ARG_MODSEQ, 0, NULL },
	{ "NEW", SEARCH_NEW, ARG_NONE, 0, NULL },
	{ "NOT", SEARCH_NOT, ARG_ONE_KEY, 0, NULL },
	{ "OLD", SEARCH_OLD, ARG_NONE, 0, NULL },
	{ "OLDER", SEARCH_OLDER, ARG_NZNUMBER, 0, NULL },
	{ "ON", SEARCH_ON, ARG_DATE, 0, NULL },
	{ "OR", SEARCH_OR, ARG_TWO_KEYS, 0, NULL },
	{ "RECENT", SEARCH_RECENT, ARG_NONE, 0, NULL },
	{ "SAVEDBEFORE", SEARCH_SAVEDBEFORE, ARG_DATE, 0, NULL },
	{ "SAVEDON", SEARCH_SAVEDON, ARG_DATE, 0, NULL },
	{ "SAVEDSINCE", SEARCH_SAVEDSINCE, ARG_DATE, 0, NULL },
	{ "SEEN", SEARCH_FLAG, ARG_NONE, SEARCH_FLAG_SEEN, NULL },
	{ "SENTBEFORE", SEARCH_SENTBEFORE, ARG_DATE, 0, NULL },
	{ "SENTON", SEARCH_SENTON, ARG_DATE, 0, NULL },
	{ "SENTSINCE", SEARCH_SENTSINCE, ARG_DATE, 0, NULL },
	{ "SINCE", SEARCH_SINCE, ARG_DATE, 0, NULL },
	{ "SMALLER", SEARCH_SMALLER, ARG_NUMBER, 0, NULL },
	{ "SUBJECT", SEARCH_HEADER, ARG_ASTRING, 0, "Subject" },
	{ "TEXT", SEARCH_TEXT, ARG_ASTRING, 0, NULL },
	{ "THREADID", SEARCH_THREADID, ARG_OBJECTID, 0, NULL },
	{ "TO", SEARCH_HEADER, ARG_ASTRING, 0, "To" },
	{ "UID", SEARCH_UID, ARG_SEQSET, 0, NULL },
	{ "UNANSWERED", SEARCH_UNFLAG, ARG_NONE, SEARCH_FLAG_ANSWERED, NULL },
	{ "UNDELETED", SEARCH_UNFLAG, ARG_NONE, SEARCH_FLAG_DELETED, NULL },
	{ "UNDRAFT", SEARCH_UNFLAG, ARG_NONE, SEARCH_FLAG_DRAFT, NULL },
	{ "UNFLAGGED", SEARCH_UNFLAG, ARG_NONE, SEARCH_FLAG_FLAGGED, NULL },
	{ "UNKEYWORD", SEARCH_UNKEYWORD, ARG_KEYWORD, 0, NULL },
	{ "UNSEEN", SEARCH_UNFLAG, ARG_NONE, SEARCH_FLAG_SEEN, NULL },
	{ "YOUNGER", SEARCH_YOUNGER, ARG_NZNUMBER, 0, NULL },
};

/* The arguments still to read at one level: the command's, or a list's. */
struct cursor {
	const struct imap_arg *args;
	size_t count;
	size_t pos;
};

struct parse_ctx {
	struct search_query *query;
};

static int fail(struct parse_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->query->error, sizeof(ctx->query->error), fmt, ap);
	va_end(ap);
	return -1;
}

static int compare_def(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct search_key_def *)elem)->name);
}

/* Printable excerpt of a client's atom for an error text. */
static const char *excerpt(const struct imap_arg *arg, char *out, size_t size)
{
	size_t n = 0;
	for (size_t i = 0; i < arg->len && n + 4 < size; i++) {
		char ch = arg->str[i];
		out[n++] = ch >= 0x21 && ch < 0x7f ? ch : '?';
	}
	if (n + 4 >= size && arg->len > n) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

int64_t search_days_from_civil(int64_t year, unsigned month, unsigned day)
{
	/* Count from 1 March so the leap day ends the year; eras of 400
	 * years repeat exactly (146097 days). */
	year -= month <= 2;
	int64_t era = (year >= 0 ? year : year - 399) / 400;
	int64_t yoe = year - era * 400;
	int64_t mp = (month + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static unsigned days_in_month(unsigned year, unsigned month)
{
	static const unsigned char days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return month == 2 && leap ? 29 : days[month - 1];
}

static const char month_names[12][4] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
};

int search_parse_date(const char *text, size_t len, int64_t *day_r)
{
	/* date-text = date-day "-" date-month "-" date-year; 1*2DIGIT, 3 letters
	 * (ABNF literals are case-insensitive), 4DIGIT. */
	size_t i = 0;
	unsigned day = 0, year = 0;
	while (i < len && i < 2 && text[i] >= '0' && text[i] <= '9')
		day = day * 10 + (unsigned)(text[i++] - '0');
	if (i == 0 || i >= len || text[i] != '-' || len - i != 1 + 3 + 1 + 4)
		return -1;
	const char *m = text + i + 1;
	unsigned month = 0;
	for (unsigned k = 0; k < 12; k++) {
		if (strncasecmp(m, month_names[k], 3) == 0) {
			month = k + 1;
			break;
		}
	}
	if (month == 0 || m[3] != '-')
		return -1;
	for (size_t k = 4; k < 8; k++) {
		if (m[k] < '0' || m[k] > '9')
			return -1;
		year = year * 10 + (unsigned)(m[k] - '0');
	}
	if (day < 1 || day > days_in_month(year, month))
		return -1;
	*day_r = search_days_from_civil(year, month, day);
	return 0;
}

/* An atom of at most max_digits decimal digits whose value is at most max.
 * The length cap comes first, so leading zeros count against it and the
 * value cannot overflow (max_digits <= 19). */
static int parse_decimal(const struct imap_arg *arg, size_t max_digits, uint64_t max, uint64_t *n_r)
{
	if (!imap_arg_is_atom(arg) || arg->len == 0 || arg->len > max_digits)
		return -1;
	uint64_t n = 0;
	for (size_t i = 0; i < arg->len; i++) {
		if (arg->str[i] < '0' || arg->str[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(arg->str[i] - '0');
	}
	if (n > max)
		return -1;
	*n_r = n;
	return 0;
}

/* RFC 3501 9: number (0 .. 2^32-1), at most 10 digits. */
static int parse_number(const struct imap_arg *arg, uint32_t *n_r)
{
	uint64_t n;
	if (parse_decimal(arg, 10, UINT32_MAX, &n) < 0)
		return -1;
	*n_r = (uint32_t)n;
	return 0;
}

/* RFC 7162 7: entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE, where
 * attr-flag is a system flag or a keyword; checked for form only, since
 * postern keeps one modseq per message, not per flag (3.1.5 allows a
 * server to use the message's modseq). */
static bool entry_name_valid(const struct imap_arg *arg)
{
	static const char prefix[] = "/flags/";
	if (!imap_arg_is_string(arg) || imap_arg_has_nul(arg) || arg->len <= sizeof(prefix) - 1 ||
	    strncasecmp(arg->str, prefix, sizeof(prefix) - 1) != 0)
		return false;
	const char *flag = arg->str + sizeof(prefix) - 1;
	size_t len = arg->len - (sizeof(prefix) - 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)flag[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"]", ch) != NULL)
			return false;
		if (ch == '\\' && i != 0)
			return false;
	}
	return !(flag[0] == '\\' && len == 1);
}

/* RFC 8474 7: objectid = 1*255(ALPHA / DIGIT / "_" / "-"). */
static bool objectid_valid(const struct imap_arg *arg)
{
	if (!imap_arg_is_atom(arg) || arg->len == 0 || arg->len > 255)
		return false;
	for (size_t i = 0; i < arg->len; i++) {
		char ch = arg->str[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static struct search_key *key_new(enum search_key_type type)
{
	struct search_key *key = xcalloc(1, sizeof(*key));
	key->type = type;
	return key;
}

static void key_free(struct search_key *key)
{
	if (key == NULL)
		return;
	for (size_t i = 0; i < key->child_count; i++)
		key_free(key->children[i]);
	free(key->children);
	seqset_free(&key->set);
	free(key->field);
	free(key->str);
	free(key);
}

/* The key's string argument, a copy that keeps any NUL (a literal may
 * hold one; str_len is its length). */
static void key_copy_str(struct search_key *key, const struct imap_arg *arg)
{
	key->str = xmalloc(arg->len + 1);
	memcpy(key->str, arg->str, arg->len);
	key->str[arg->len] = '\0';
	key->str_len = arg->len;
}

static void key_add_child(struct search_key *parent, struct search_key *child)
{
	parent->children = xrealloc(parent->children, (parent->child_count + 1) * sizeof(*parent->children));
	parent->children[parent->child_count++] = child;
}

static int parse_key(struct parse_ctx *ctx, struct cursor *cur, unsigned depth, struct search_key **key_r);

/* Reads keys until the cursor is used up, as children of an AND (RFC 3501
 * 6.4.4: keys side by side must all match, and so inside parentheses). */
static int parse_keys(struct parse_ctx *ctx, struct cursor *cur, unsigned depth, struct search_key *and_key)
{
	while (cur->pos < cur->count) {
		struct search_key *child;
		if (parse_key(ctx, cur, depth, &child) < 0)
			return -1;
		key_add_child(and_key, child);
	}
	return 0;
}

static int parse_seqset(struct parse_ctx *ctx, const struct imap_arg *arg, struct seqset *set)
{
	char text[48];
	if (!imap_arg_is_atom(arg) || seqset_parse(arg->str, set) < 0)
		return fail(ctx, "Invalid sequence set in SEARCH: %s", excerpt(arg, text, sizeof(text)));
	/* RFC 5182 2.1: "$" stays unresolved (is_saved); the evaluator
	 * knows the saved result. */
	return 0;
}

static int parse_argument(struct parse_ctx *ctx, struct cursor *cur, const struct search_key_def *def,
			  unsigned depth, struct search_key *key)
{
	char text[48];
	if (def->arg == ARG_NONE)
		return 0;
	if (cur->pos >= cur->count) {
		static const char *const wants[] = {
			[ARG_ASTRING] = "a string", [ARG_DATE] = "a date like 1-Feb-1994",
			[ARG_NUMBER] = "a number", [ARG_NZNUMBER] = "a number above 0",
			[ARG_SEQSET] = "a UID set", [ARG_KEYWORD] = "a keyword",
			[ARG_HEADER] = "a header field name and a string",
			[ARG_ONE_KEY] = "a search key", [ARG_TWO_KEYS] = "two search keys",
			[ARG_MODSEQ] = "a mod-sequence", [ARG_OBJECTID] = "an object id",
		};
		return fail(ctx, "Search key %s needs %s", def->name, wants[def->arg]);
	}
	const struct imap_arg *arg = &cur->args[cur->pos];
	switch (def->arg) {
	case ARG_NONE:
		return 0;
	case ARG_ONE_KEY:
	case ARG_TWO_KEYS: {
		unsigned n = def->arg == ARG_ONE_KEY ? 1 : 2;
		for (unsigned i = 0; i < n; i++) {
			if (cur->pos >= cur->count)
				return fail(ctx, "Search key %s needs two search keys", def->name);
			struct search_key *child;
			if (parse_key(ctx, cur, depth + 1, &child) < 0)
				return -1;
			key_add_child(key, child);
		}
		return 0;
	}
	case ARG_SEQSET:
		cur->pos++;
		return parse_seqset(ctx, arg, &key->set);
	case ARG_MODSEQ:
		/* RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] modseq. */
		cur->pos++;
		ctx->query->has_modseq = true;
		if (!imap_arg_is_atom(arg)) {
			if (!entry_name_valid(arg))
				return fail(ctx, "MODSEQ entry name must be a quoted \"/flags/<flag>\"");
			if (cur->pos + 2 > cur->count)
				return fail(ctx, "MODSEQ with an entry name needs priv, shared or all and a mod-sequence");
			arg = &cur->args[cur->pos++];
			if (!imap_arg_is_atom(arg) || (strcasecmp(arg->str, "priv") != 0 &&
							strcasecmp(arg->str, "shared") != 0 &&
							strcasecmp(arg->str, "all") != 0))
				return fail(ctx, "MODSEQ entry type must be priv, shared or all");
			arg = &cur->args[cur->pos++];
		}
		/* mod-sequence-valzer (RFC 7162 7): 0 .. 2^63-1. */
		if (parse_decimal(arg, 19, INT64_MAX, &key->modseq) < 0)
			return fail(ctx, "Search key MODSEQ needs a mod-sequence (a number below 2^63), not %s",
				    imap_arg_is_list(arg) ? "a list" : excerpt(arg, text, sizeof(text)));
		return 0;
	case ARG_OBJECTID:
		cur->pos++;
		if (!objectid_valid(arg))
			return fail(ctx, "Search key %s needs an object id (letters, digits, '_' and '-')", def->name);
		key_copy_str(key, arg);
		return 0;
	case ARG_NUMBER:
	case ARG_NZNUMBER:
		cur->pos++;
		if (parse_number(arg, &key->number) < 0 || (def->arg == ARG_NZNUMBER && key->number == 0))
			return fail(ctx, "Search key %s needs %s, not %s", def->name,
				    def->arg == ARG_NUMBER ? "a number" : "a number above 0",
				    imap_arg_is_list(arg) ? "a list" : excerpt(arg, text, sizeof(text)));
		return 0;
	case ARG_DATE:
		cur->pos++;
		if (imap_arg_is_list(arg) || imap_arg_is_nil(arg) || arg->type == IMAP_ARG_LITERAL ||
		    search_parse_date(arg->str, arg->len, &key->day) < 0)
			return fail(ctx, "Bad date after %s: %s (expected a date like 1-Feb-1994)", def->name,
				    imap_arg_is_list(arg) ? "a list" : excerpt(arg, text, sizeof(text)));
		return 0;
	case ARG_KEYWORD:
		cur->pos++;
		if (!imap_arg_is_atom(arg))
			return fail(ctx, "Search key %s needs a keyword (an atom)", def->name);
		key_copy_str(key, arg);
		return 0;
	case ARG_HEADER:
		cur->pos++;
		if (!imap_arg_is_astring(arg) || imap_arg_has_nul(arg) || arg->len == 0)
			return fail(ctx, "Search key HEADER needs a header field name");
		key->field = xstrndup(arg->str, arg->len);
		if (cur->pos >= cur->count)
			return fail(ctx, "Search key HEADER needs a string after the field name");
		arg = &cur->args[cur->pos];
		__attribute__((fallthrough));	/* to the string */
	case ARG_ASTRING:
		cur->pos++;
		if (!imap_arg_is_astring(arg))
			return fail(ctx, "Search key %s needs a string, not a list", def->name);
		key_copy_str(key, arg);
		if (def->field != NULL)
			key->field = xstrdup(def->field);
		return 0;
	}
	return 0;
}

static int parse_key(struct parse_ctx *ctx, struct cursor *cur, unsigned depth, struct search_key **key_r)
{
	char text[48];
	*key_r = NULL;
	if (depth >= LIMIT_SEARCH_DEPTH)
		return fail(ctx, "Search keys are nested too deeply (at most %d levels)", LIMIT_SEARCH_DEPTH);
	const struct imap_arg *arg = &cur->args[cur->pos++];
	if (imap_arg_is_list(arg)) {
		/* RFC 3501 9: "(" search-key *(SP search-key) ")": at least one. */
		if (arg->list_count == 0)
			return fail(ctx, "Empty parentheses in SEARCH: a group needs at least one search key");
		struct search_key *group = key_new(SEARCH_AND);
		struct cursor inner = { arg->list, arg->list_count, 0 };
		if (parse_keys(ctx, &inner, depth + 1, group) < 0) {
			key_free(group);
			return -1;
		}
		*key_r = group;
		return 0;
	}
	if (!imap_arg_is_atom(arg))
		return fail(ctx, "Expected a search key, got a string");
	char first = arg->len > 0 ? arg->str[0] : '\0';
	if ((first >= '0' && first <= '9') || first == '*' || first == '$') {
		/* RFC 3501 9: a bare sequence-set is a key of its own. */
		struct search_key *key = key_new(SEARCH_SEQSET);
		if (parse_seqset(ctx, arg, &key->set) < 0) {
			key_free(key);
			return -1;
		}
		*key_r = key;
		return 0;
	}
	const struct search_key_def *def =
		bsearch(arg->str, key_defs, sizeof(key_defs) / sizeof(key_defs[0]), sizeof(key_defs[0]), compare_def);
	if (def == NULL)
		return fail(ctx, "Unknown search key %s", excerpt(arg, text, sizeof(text)));
	struct search_key *key = key_new(def->type);
	key->flag = def->flag;
	if (parse_argument(ctx, cur, def, depth, key) < 0) {
		key_free(key);
		return -1;
	}
	*key_r = key;
	return 0;
}

/* RFC 4731 3.1: RETURN (MIN MAX ALL COUNT); an empty list means ALL.
 * RFC 5182 2.1: SAVE too, alone or with the others. */
static int parse_return(struct parse_ctx *ctx, const struct imap_arg *list)
{
	char text[48];
	struct search_query *q = ctx->query;
	if (!imap_arg_is_list(list))
		return fail(ctx, "RETURN needs a parenthesised list of result options");
	q->esearch = true;
	for (size_t i = 0; i < list->list_count; i++) {
		const struct imap_arg *opt = &list->list[i];
		if (!imap_arg_is_atom(opt))
			return fail(ctx, "RETURN options are atoms: MIN, MAX, ALL, COUNT, SAVE");
		if (strcasecmp(opt->str, "MIN") == 0)
			q->return_options |= SEARCH_RETURN_MIN;
		else if (strcasecmp(opt->str, "MAX") == 0)
			q->return_options |= SEARCH_RETURN_MAX;
		else if (strcasecmp(opt->str, "ALL") == 0)
			q->return_options |= SEARCH_RETURN_ALL;
		else if (strcasecmp(opt->str, "COUNT") == 0)
			q->return_options |= SEARCH_RETURN_COUNT;
		else if (strcasecmp(opt->str, "SAVE") == 0)
			q->return_options |= SEARCH_RETURN_SAVE;
		else
			/* RFC 4731 3.1: unknown options are a BAD. */
			return fail(ctx, "Unknown RETURN option %s", excerpt(opt, text, sizeof(text)));
	}
	if (q->return_options == 0)
		q->return_options = SEARCH_RETURN_ALL;
	return 0;
}

int search_parse(const struct imap_arg *args, size_t count, struct search_query *query_r,
		 const char **error_r)
{
	*query_r = (struct search_query){ 0 };
	struct parse_ctx ctx = { query_r };
	struct cursor cur = { args, count, 0 };
	int r = 0;
	if (cur.pos < count && imap_arg_is_atom(&args[cur.pos]) && strcasecmp(args[cur.pos].str, "RETURN") == 0) {
		cur.pos++;
		if (cur.pos >= count)
			r = fail(&ctx, "RETURN needs a parenthesised list of result options");
		else
			r = parse_return(&ctx, &args[cur.pos++]);
	}
	if (r == 0 && cur.pos < count && imap_arg_is_atom(&args[cur.pos]) &&
	    strcasecmp(args[cur.pos].str, "CHARSET") == 0) {
		cur.pos++;
		if (cur.pos >= count || !imap_arg_is_astring(&args[cur.pos]) || imap_arg_has_nul(&args[cur.pos]))
			r = fail(&ctx, "CHARSET needs a charset name");
		else
			query_r->charset = xstrdup(args[cur.pos++].str);
	}
	if (r == 0 && cur.pos >= count)
		r = fail(&ctx, "SEARCH needs at least one search key");
	if (r == 0) {
		query_r->root = key_new(SEARCH_AND);
		r = parse_keys(&ctx, &cur, 0, query_r->root);
	}
	if (r < 0) {
		char error[sizeof(query_r->error)];
		memcpy(error, query_r->error, sizeof(error));
		search_query_free(query_r);
		memcpy(query_r->error, error, sizeof(error));
		*error_r = query_r->error;
		return -1;
	}
	return 0;
}

void search_query_free(struct search_query *query)
{
	key_free(query->root);
	free(query->charset);
	*query = (struct search_query){ 0 };
}
