/* SEARCH syntax tests: command text goes through the IMAP parser (whole and
 * one byte at a time), then search_parse(); the tree is rendered as
 * s-expressions and compared. */
#include "harness.h"

#include "core/buf.h"
#include "imap/parser.h"
#include "imap/search_parse.h"

#include <stdio.h>
#include <string.h>

static const char *const flag_names[] = { "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN" };

static void render_set(struct buf *out, const struct seqset *set)
{
	if (set->is_saved)
		buf_append_char(out, '$');
	for (size_t i = 0; i < set->count; i++) {
		const struct seq_range *r = &set->ranges[i];
		buf_printf(out, "%s", i ? "," : "");
		if (r->lo == SEQ_STAR)
			buf_append_str(out, "*");
		else
			buf_printf(out, "%u", r->lo);
		if (r->hi != r->lo) {
			if (r->hi == SEQ_STAR)
				buf_append_str(out, ":*");
			else
				buf_printf(out, ":%u", r->hi);
		}
	}
}

static void render(struct buf *out, const struct search_key *k)
{
	static const char *const names[] = {
		[SEARCH_ALL] = "ALL", [SEARCH_AND] = "AND", [SEARCH_OR] = "OR", [SEARCH_NOT] = "NOT",
		[SEARCH_SEQSET] = "SEQ", [SEARCH_UID] = "UID", [SEARCH_FLAG] = "FLAG",
		[SEARCH_UNFLAG] = "UNFLAG", [SEARCH_KEYWORD] = "KEYWORD", [SEARCH_UNKEYWORD] = "UNKEYWORD",
		[SEARCH_NEW] = "NEW", [SEARCH_OLD] = "OLD", [SEARCH_RECENT] = "RECENT",
		[SEARCH_LARGER] = "LARGER", [SEARCH_SMALLER] = "SMALLER", [SEARCH_BEFORE] = "BEFORE",
		[SEARCH_ON] = "ON", [SEARCH_SINCE] = "SINCE", [SEARCH_SENTBEFORE] = "SENTBEFORE",
		[SEARCH_SENTON] = "SENTON", [SEARCH_SENTSINCE] = "SENTSINCE",
		[SEARCH_SAVEDBEFORE] = "SAVEDBEFORE", [SEARCH_SAVEDON] = "SAVEDON",
		[SEARCH_SAVEDSINCE] = "SAVEDSINCE", [SEARCH_OLDER] = "OLDER", [SEARCH_YOUNGER] = "YOUNGER",
		[SEARCH_HEADER] = "HEADER", [SEARCH_BODY] = "BODY", [SEARCH_TEXT] = "TEXT",
		[SEARCH_MODSEQ] = "MODSEQ", [SEARCH_EMAILID] = "EMAILID", [SEARCH_THREADID] = "THREADID",
	};
	buf_printf(out, "(%s", names[k->type]);
	switch (k->type) {
	case SEARCH_SEQSET:
	case SEARCH_UID:
		buf_append_char(out, ' ');
		render_set(out, &k->set);
		break;
	case SEARCH_FLAG:
	case SEARCH_UNFLAG:
		buf_printf(out, " %s", flag_names[k->flag]);
		break;
	case SEARCH_LARGER:
	case SEARCH_SMALLER:
	case SEARCH_OLDER:
	case SEARCH_YOUNGER:
		buf_printf(out, " %u", k->number);
		break;
	case SEARCH_BEFORE: case SEARCH_ON: case SEARCH_SINCE:
	case SEARCH_SENTBEFORE: case SEARCH_SENTON: case SEARCH_SENTSINCE:
	case SEARCH_SAVEDBEFORE: case SEARCH_SAVEDON: case SEARCH_SAVEDSINCE:
		buf_printf(out, " %lld", (long long)k->day);
		break;
	case SEARCH_MODSEQ:
		buf_printf(out, " %llu", (unsigned long long)k->modseq);
		break;
	case SEARCH_HEADER:
		buf_printf(out, " %s", k->field);
		__attribute__((fallthrough));
	case SEARCH_KEYWORD:
	case SEARCH_UNKEYWORD:
	case SEARCH_BODY:
	case SEARCH_TEXT:
	case SEARCH_EMAILID:
	case SEARCH_THREADID:
		buf_append_str(out, " \"");
		for (size_t i = 0; i < k->str_len; i++) {
			if (k->str[i] == '\0')
				buf_append_str(out, "\\0");
			else
				buf_append_char(out, k->str[i]);
		}
		buf_append_char(out, '"');
		break;
	default:
		break;
	}
	for (size_t i = 0; i < k->child_count; i++) {
		buf_append_char(out, ' ');
		render(out, k->children[i]);
	}
	buf_append_char(out, ')');
}

/* Runs "t SEARCH <args>\r\n" through the IMAP parser; step 0 feeds all at
 * once, 1 one byte at a time. Renders the result or "BAD: error". */
static void parse_text(const char *args, size_t step, struct buf *out)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct buf line = BUF_INIT;
	buf_printf(&line, "t SEARCH %s\r\n", args);
	size_t pos = 0;
	buf_clear(out);
	while (pos < line.len) {
		size_t n = step ? (line.len - pos < step ? line.len - pos : step) : line.len - pos;
		size_t consumed = 0;
		enum imap_parse_result r = imap_parser_feed(p, line.data + pos, n, &consumed);
		pos += consumed;
		if (r == IMAP_PARSE_LITERAL) {
			imap_parser_literal_accept(p);
		} else if (r == IMAP_PARSE_ERROR || r == IMAP_PARSE_FATAL) {
			buf_printf(out, "PARSER: %s", imap_parser_error(p));
			break;
		} else if (r == IMAP_PARSE_COMMAND) {
			const struct imap_command *cmd = imap_parser_command(p);
			struct search_query q;
			const char *error = NULL;
			if (search_parse(cmd->args, cmd->arg_count, &q, &error) < 0) {
				buf_printf(out, "BAD: %s", error);
			} else {
				if (q.esearch)
					buf_printf(out, "RETURN %u ", q.return_options);
				if (q.charset)
					buf_printf(out, "CHARSET %s ", q.charset);
				render(out, q.root);
				if (q.has_modseq)
					buf_append_str(out, " +MODSEQ");
			}
			search_query_free(&q);
			search_query_free(&q);	/* freeing twice is allowed */
			break;
		}
	}
	buf_free(&line);
	imap_parser_free(&p);
}

struct pcase {
	const char *in;
	const char *out;	/* rendered tree, or "BAD: ..." prefix */
};

/* 1-Feb-1994 is day 8797 since 1970-01-01. */
static const struct pcase cases[] = {
	{ "ALL", "(AND (ALL))" },
	{ "all seen", "(AND (ALL) (FLAG SEEN))" },
	{ "ANSWERED DELETED DRAFT FLAGGED SEEN", "(AND (FLAG ANSWERED) (FLAG DELETED) (FLAG DRAFT) (FLAG FLAGGED) (FLAG SEEN))" },
	{ "UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN",
	  "(AND (UNFLAG ANSWERED) (UNFLAG DELETED) (UNFLAG DRAFT) (UNFLAG FLAGGED) (UNFLAG SEEN))" },
	{ "NEW OLD RECENT", "(AND (NEW) (OLD) (RECENT))" },
	{ "KEYWORD $Work UNKEYWORD Junk", "(AND (KEYWORD \"$Work\") (UNKEYWORD \"Junk\"))" },
	{ "LARGER 0 SMALLER 4294967295", "(AND (LARGER 0) (SMALLER 4294967295))" },
	/* Numbers are capped by digits before value: leading zeros count. */
	{ "LARGER 0000000001", "(AND (LARGER 1))" },
	{ "LARGER 00000000001", "BAD: Search key LARGER needs a number, not 00000000001" },
	{ "MODSEQ 0000000000000000001", "(AND (MODSEQ 1)) +MODSEQ" },
	{ "MODSEQ 00000000000000000001", "BAD: Search key MODSEQ needs a mod-sequence" },
	{ "OLDER 1 YOUNGER 86400", "(AND (OLDER 1) (YOUNGER 86400))" },
	{ "BEFORE 1-Feb-1994", "(AND (BEFORE 8797))" },
	{ "ON 01-feb-1994 SINCE \"1-FEB-1994\"", "(AND (ON 8797) (SINCE 8797))" },
	{ "SENTBEFORE 1-Jan-1970 SENTON 2-Jan-1970 SENTSINCE 31-Dec-1969",
	  "(AND (SENTBEFORE 0) (SENTON 1) (SENTSINCE -1))" },
	{ "SAVEDBEFORE 29-Feb-2000 SAVEDON 1-Mar-2000 SAVEDSINCE 1-Jan-2100",
	  "(AND (SAVEDBEFORE 11016) (SAVEDON 11017) (SAVEDSINCE 47482))" },
	{ "FROM alice TO \"Bob B\" CC c BCC d SUBJECT s",
	  "(AND (HEADER From \"alice\") (HEADER To \"Bob B\") (HEADER Cc \"c\") (HEADER Bcc \"d\") (HEADER Subject \"s\"))" },
	{ "HEADER X-Spam \"\"", "(AND (HEADER X-Spam \"\"))" },
	{ "HEADER \"Reply-To\" NIL", "(AND (HEADER Reply-To \"NIL\"))" },
	{ "BODY {3}\r\na\"b TEXT ~{2}\r\nxy", "(AND (BODY \"a\"b\") (TEXT \"xy\"))" },
	{ "1,3:5,7:* UID 2:1", "(AND (SEQ 1,3:5,7:*) (UID 1:2))" },
	{ "* 5", "(AND (SEQ *) (SEQ 5))" },
	{ "NOT SEEN", "(AND (NOT (FLAG SEEN)))" },
	{ "NOT NOT SEEN", "(AND (NOT (NOT (FLAG SEEN))))" },
	{ "OR SEEN DRAFT", "(AND (OR (FLAG SEEN) (FLAG DRAFT)))" },
	{ "OR (SEEN FLAGGED) NOT OR DRAFT 4", "(AND (OR (AND (FLAG SEEN) (FLAG FLAGGED)) (NOT (OR (FLAG DRAFT) (SEQ 4)))))" },
	{ "((SEEN))", "(AND (AND (AND (FLAG SEEN))))" },
	{ "CHARSET UTF-8 ALL", "CHARSET UTF-8 (AND (ALL))" },
	{ "charset \"koi8-r\" ALL", "CHARSET koi8-r (AND (ALL))" },
	{ "RETURN () ALL", "RETURN 4 (AND (ALL))" },
	{ "RETURN (MIN MAX) ALL", "RETURN 3 (AND (ALL))" },
	/* RFC 5182: SAVE alone keeps the result and asks for nothing else;
	 * "$" is a sequence set of its own, bare or after UID. */
	{ "RETURN (SAVE) ALL", "RETURN 16 (AND (ALL))" },
	{ "RETURN (save min) ALL", "RETURN 17 (AND (ALL))" },
	{ "$", "(AND (SEQ $))" },
	{ "UID $ NOT $", "(AND (UID $) (NOT (SEQ $)))" },
	{ "RETURN (SAVE) OR $ SEEN", "RETURN 16 (AND (OR (SEQ $) (FLAG SEEN)))" },
	{ "return (count all) CHARSET US-ASCII SEEN", "RETURN 12 CHARSET US-ASCII (AND (FLAG SEEN))" },
	/* RFC 7162 3.1.5, RFC 8474 6. */
	{ "MODSEQ 620162338", "(AND (MODSEQ 620162338)) +MODSEQ" },
	{ "MODSEQ \"/flags/\\\\draft\" all 620162338", "(AND (MODSEQ 620162338)) +MODSEQ" },
	{ "NOT modseq \"/flags/$Work\" PRIV 0", "(AND (NOT (MODSEQ 0))) +MODSEQ" },
	{ "MODSEQ 9223372036854775807", "(AND (MODSEQ 9223372036854775807)) +MODSEQ" },
	{ "EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9bd", "(AND (EMAILID \"M6d99ac3275bb4e\") (THREADID \"T64b478a75b7ea9bd\"))" },
	/* Errors. */
	{ "", "PARSER:" },
	{ "MODSEQ", "BAD: Search key MODSEQ needs a mod-sequence" },
	{ "MODSEQ x", "BAD: Search key MODSEQ needs a mod-sequence (a number below 2^63), not x" },
	{ "MODSEQ 9223372036854775808", "BAD: Search key MODSEQ needs a mod-sequence" },
	{ "MODSEQ \"/flags/\\\\draft\" 5", "BAD: MODSEQ with an entry name needs priv" },
	{ "MODSEQ \"/flags/\\\\draft\" any 5", "BAD: MODSEQ entry type must be priv, shared or all" },
	{ "MODSEQ \"/vendor/x\" all 5", "BAD: MODSEQ entry name must be" },
	{ "MODSEQ \"/flags/a b\" all 5", "BAD: MODSEQ entry name must be" },
	{ "MODSEQ \"/flags/\" all 5", "BAD: MODSEQ entry name must be" },
	{ "EMAILID", "BAD: Search key EMAILID needs an object id" },
	{ "EMAILID \"M1\"", "BAD: Search key EMAILID needs an object id" },
	{ "THREADID a.b", "BAD: Search key THREADID needs an object id" },
	{ "RETURN (MIN)", "BAD: SEARCH needs at least one search key" },
	{ "CHARSET UTF-8", "BAD: SEARCH needs at least one search key" },
	{ "CHARSET", "BAD: CHARSET needs a charset name" },
	{ "CHARSET (x) ALL", "BAD: CHARSET needs a charset name" },
	{ "RETURN", "BAD: RETURN needs a parenthesised list" },
	{ "RETURN MIN ALL", "BAD: RETURN needs a parenthesised list" },
	{ "RETURN (PARTIAL) ALL", "BAD: Unknown RETURN option PARTIAL" },
	{ "RETURN (\"MIN\") ALL", "BAD: RETURN options are atoms" },
	{ "FOO", "BAD: Unknown search key FOO" },
	{ "SEEN FOO", "BAD: Unknown search key FOO" },
	{ "\"SEEN\"", "BAD: Expected a search key, got a string" },
	{ "FROM", "BAD: Search key FROM needs a string" },
	{ "FROM (a)", "BAD: Search key FROM needs a string, not a list" },
	{ "HEADER", "BAD: Search key HEADER needs a header field name and a string" },
	{ "HEADER X", "BAD: Search key HEADER needs a string after the field name" },
	{ "HEADER \"\" x", "BAD: Search key HEADER needs a header field name" },
	{ "KEYWORD", "BAD: Search key KEYWORD needs a keyword" },
	{ "KEYWORD \"a b\"", "BAD: Search key KEYWORD needs a keyword (an atom)" },
	{ "LARGER", "BAD: Search key LARGER needs a number" },
	{ "LARGER -1", "BAD: Search key LARGER needs a number, not -1" },
	{ "LARGER 4294967296", "BAD: Search key LARGER needs a number, not 4294967296" },
	{ "SMALLER (1)", "BAD: Search key SMALLER needs a number, not a list" },
	{ "OLDER 0", "BAD: Search key OLDER needs a number above 0, not 0" },
	{ "BEFORE", "BAD: Search key BEFORE needs a date like 1-Feb-1994" },
	{ "BEFORE 30-Feb-2024", "BAD: Bad date after BEFORE: 30-Feb-2024" },
	{ "ON 29-Feb-2023", "BAD: Bad date after ON" },
	{ "ON 29-Feb-1900", "BAD: Bad date after ON" },
	{ "ON 0-Jan-2024", "BAD: Bad date after ON" },
	{ "ON 001-Jan-2024", "BAD: Bad date after ON" },
	{ "ON 1-Jan-24", "BAD: Bad date after ON" },
	{ "ON 1-January-2024", "BAD: Bad date after ON" },
	{ "ON 1/Jan/2024", "BAD: Bad date after ON" },
	{ "SINCE NIL", "BAD: Bad date after SINCE" },
	{ "SINCE {10}\r\n1-Jan-2024", "BAD: Bad date after SINCE" },
	{ "UID", "BAD: Search key UID needs a UID set" },
	{ "UID x", "BAD: Invalid sequence set in SEARCH: x" },
	{ "$,1", "BAD: Invalid sequence set in SEARCH: $,1" },
	{ "UID 1:$", "BAD: Invalid sequence set in SEARCH: 1:$" },
	{ "1:", "BAD: Invalid sequence set in SEARCH: 1:" },
	{ "0", "BAD: Invalid sequence set" },
	{ "NOT", "BAD: Search key NOT needs a search key" },
	{ "OR", "BAD: Search key OR needs two search keys" },
	{ "OR SEEN", "BAD: Search key OR needs two search keys" },
	{ "OR SEEN FOO", "BAD: Unknown search key FOO" },
	{ "()", "BAD: Empty parentheses" },
	{ "(SEEN ())", "BAD: Empty parentheses" },
	{ "(SEEN", "PARSER:" },
	{ "SEEN)", "PARSER:" },
};

static void test_table(void)
{
	struct buf got = BUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i].in;
		for (size_t step = 0; step <= 1; step++) {
			parse_text(in, step, &got);
			const char *want = cases[i].out;
			bool prefix = strncmp(want, "BAD:", 4) == 0 || strncmp(want, "PARSER:", 7) == 0;
			bool ok = got.data != NULL &&
				  (prefix ? strncmp(got.data, want, strlen(want)) == 0 : strcmp(got.data, want) == 0);
			if (!ok)
				fprintf(stderr, "case %zu step %zu: %s\n  got:  %s\n  want: %s\n", i, step, in,
					got.data ? got.data : "(null)", want);
			CHECK(ok);
		}
	}
	buf_free(&got);
}

/* A literal with a NUL inside can't go through the C-string table. */
static void test_literal_with_nul(void)
{
	static const char input[] = "t SEARCH BODY {3}\r\na\0b\r\n";
	struct imap_parser *p = imap_parser_new(NULL);
	size_t pos = 0, len = sizeof(input) - 1;
	struct buf got = BUF_INIT;
	while (pos < len) {
		size_t consumed = 0;
		enum imap_parse_result r = imap_parser_feed(p, input + pos, len - pos, &consumed);
		pos += consumed;
		if (r == IMAP_PARSE_LITERAL)
			imap_parser_literal_accept(p);
		if (r == IMAP_PARSE_COMMAND) {
			const struct imap_command *cmd = imap_parser_command(p);
			struct search_query q;
			const char *error;
			CHECK_INT(search_parse(cmd->args, cmd->arg_count, &q, &error), 0);
			render(&got, q.root);
			search_query_free(&q);
			break;
		}
	}
	CHECK_STR(got.data, "(AND (BODY \"a\\0b\"))");
	buf_free(&got);
	imap_parser_free(&p);
}

static void test_every_key_name_is_known(void)
{
	static const char *const names[] = {
		"ALL", "ANSWERED", "BCC x", "BEFORE 1-Jan-2000", "BODY x", "CC x", "DELETED", "DRAFT",
		"FLAGGED", "FROM x", "HEADER x y", "KEYWORD x", "LARGER 1", "NEW", "NOT ALL", "OLD",
		"OLDER 1", "ON 1-Jan-2000", "OR ALL ALL", "RECENT", "SAVEDBEFORE 1-Jan-2000",
		"SAVEDON 1-Jan-2000", "SAVEDSINCE 1-Jan-2000", "SEEN", "SENTBEFORE 1-Jan-2000",
		"SENTON 1-Jan-2000", "SENTSINCE 1-Jan-2000", "SINCE 1-Jan-2000", "SMALLER 1",
		"SUBJECT x", "TEXT x", "TO x", "UID 1", "UNANSWERED", "UNDELETED", "UNDRAFT",
		"UNFLAGGED", "UNKEYWORD x", "UNSEEN", "YOUNGER 1", "1:*", "MODSEQ 1", "EMAILID x",
		"THREADID x",
	};
	struct buf got = BUF_INIT;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		parse_text(names[i], 0, &got);
		bool ok = got.data != NULL && strncmp(got.data, "(AND (", 6) == 0;
		if (!ok)
			fprintf(stderr, "key %s: %s\n", names[i], got.data ? got.data : "(null)");
		CHECK(ok);
		/* Lower case too. */
		char lower[64];
		snprintf(lower, sizeof(lower), "%s", names[i]);
		for (char *c = lower; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		parse_text(lower, 0, &got);
		CHECK(got.data != NULL && strncmp(got.data, "(AND (", 6) == 0);
	}
	buf_free(&got);
}

static void test_depth_limit(void)
{
	struct buf in = BUF_INIT, got = BUF_INIT;
	/* One below the limit parses; at the limit it is refused. */
	for (int i = 0; i < LIMIT_SEARCH_DEPTH - 1; i++)
		buf_append_str(&in, "NOT ");
	buf_append_str(&in, "SEEN");
	parse_text(in.data, 0, &got);
	CHECK(strncmp(got.data, "(AND (NOT", 9) == 0);
	buf_clear(&in);
	for (int i = 0; i < LIMIT_SEARCH_DEPTH; i++)
		buf_append_str(&in, "NOT ");
	buf_append_str(&in, "SEEN");
	parse_text(in.data, 0, &got);
	CHECK_STR(got.data, "BAD: Search keys are nested too deeply (at most 64 levels)");
	/* OR chains and groups count too. */
	buf_clear(&in);
	for (int i = 0; i < 200; i++)
		buf_append_str(&in, "OR SEEN ");
	buf_append_str(&in, "SEEN");
	parse_text(in.data, 0, &got);
	CHECK(strncmp(got.data, "BAD: Search keys are nested too deeply", 38) == 0);
	/* Many keys side by side are not nesting. */
	buf_clear(&in);
	for (int i = 0; i < 5000; i++)
		buf_append_str(&in, "SEEN ");
	buf_append_str(&in, "ALL");
	parse_text(in.data, 0, &got);
	CHECK(strncmp(got.data, "(AND (FLAG SEEN)", 16) == 0);
	buf_free(&in);
	buf_free(&got);
}

static void test_dates(void)
{
	int64_t d;
	CHECK_INT(search_parse_date("1-Jan-1970", 10, &d), 0);
	CHECK_INT(d, 0);
	CHECK_INT(search_parse_date("1-Feb-1994", 10, &d), 0);
	CHECK_INT(d, 8797);
	CHECK_INT(search_parse_date("29-Feb-2024", 11, &d), 0);
	CHECK_INT(d, 19782);
	CHECK_INT(search_parse_date("31-Dec-1969", 11, &d), 0);
	CHECK_INT(d, -1);
	CHECK_INT(search_parse_date("1-Jan-0000", 10, &d), 0);
	CHECK_INT(d, -719528);
	CHECK_INT(search_parse_date("31-Dec-9999", 11, &d), 0);
	CHECK_INT(d, 2932896);
	CHECK_INT(search_parse_date("29-Feb-2100", 11, &d), -1);
	CHECK_INT(search_parse_date("29-Feb-2000", 11, &d), 0);
	CHECK_INT(search_parse_date("31-Apr-2000", 11, &d), -1);
	CHECK_INT(search_parse_date("1-Jan-2000 ", 11, &d), -1);
	CHECK_INT(search_parse_date("1-Jan-", 6, &d), -1);
	CHECK_INT(search_parse_date("", 0, &d), -1);
	CHECK_INT(search_parse_date("-Jan-2000", 9, &d), -1);
	CHECK_INT(search_days_from_civil(2000, 3, 1), 11017);
}

int main(void)
{
	RUN(test_table);
	RUN(test_literal_with_nul);
	RUN(test_every_key_name_is_known);
	RUN(test_depth_limit);
	RUN(test_dates);
	return harness_finish();
}
