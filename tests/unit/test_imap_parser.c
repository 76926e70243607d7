/* Parser tests. Each case is an input and the transcript of events it must
 * give; every case is run three ways: in one piece, one byte at a time, and
 * split in two at every offset. All three must give the same transcript.
 *
 * Transcript lines:
 *	CMD tag NAME args	args: atoms bare, "strings", {n}"literal",
 *				~{n}"literal8", ( lists ); bytes outside
 *				printable ASCII as \xNN
 *	LIT tag NAME size	a synchronizing literal (TOOBIG when too large;
 *				the driver then rejects it, and also rejects
 *				for command name NOLIT; else it accepts), or
 *				with NONSYNC a non-synchronizing one above the
 *				stream threshold. With a threshold set (only
 *				in test_streaming), the driver streams literals
 *				above it unless the command is KEEP.
 *	{n}S"bytes"		in CMD: a streamed literal, shown with the bytes
 *				its sink received
 *	DROP n			before ERR: the failed command had streamed n
 *				bytes to the sink
 *	ERR tag text		IMAP_PARSE_ERROR
 *	FATAL text		IMAP_PARSE_FATAL (feeding stops)
 *	LINE "text"		line mode, entered after AUTHENTICATE and IDLE */
#include "harness.h"

#include "core/buf.h"
#include "core/limits.h"
#include "imap/parser.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pcase {
	const char *name;
	const char *in;
	size_t in_len;
	const char *expect;
	size_t max_line;	/* 0: default */
	uint64_t max_literal;
	unsigned max_depth;
	bool utf8;
};

#define IN(s) s, sizeof(s) - 1

/* The stream threshold for the cases being run (pcase tables are
 * positional; this keeps the older tables unchanged). */
static uint64_t case_stream_threshold;
/* What the sink received in the current run, and how much of it the
 * rendered commands have shown. */
static struct buf sunk;
static size_t sunk_shown;

static void sink_append(void *ctx, const char *data, size_t len)
{
	CHECK(len > 0);
	buf_append(ctx, data, len);
}

static void render_bytes(struct buf *out, const char *s, size_t len)
{
	buf_append_char(out, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			buf_printf(out, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			buf_append_char(out, (char)c);
		else
			buf_printf(out, "\\x%02x", c);
	}
	buf_append_char(out, '"');
}

static void render_args(struct buf *out, const struct imap_arg *args, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		if (i > 0)
			buf_append_char(out, ' ');
		switch (a->type) {
		case IMAP_ARG_ATOM:
			buf_append(out, a->str, a->len);
			CHECK(strlen(a->str) == a->len);
			break;
		case IMAP_ARG_STRING:
			render_bytes(out, a->str, a->len);
			CHECK(a->str[a->len] == '\0');
			break;
		case IMAP_ARG_LITERAL:
			buf_printf(out, "%s{%zu}", a->literal8 ? "~" : "", a->len);
			if (a->streamed) {
				CHECK(a->str != NULL && a->str[0] == '\0');
				CHECK(imap_arg_is_streamed(a) && !imap_arg_is_string(a) &&
				      !imap_arg_is_astring(a) && !imap_arg_has_nul(a));
				CHECK(sunk_shown + a->len <= sunk.len);
				buf_append_char(out, 'S');
				if (sunk_shown + a->len <= sunk.len)
					render_bytes(out, sunk.data + sunk_shown, a->len);
				sunk_shown += a->len;
				break;
			}
			CHECK(!imap_arg_is_streamed(a));
			render_bytes(out, a->str, a->len);
			CHECK(a->str[a->len] == '\0');
			break;
		case IMAP_ARG_LIST:
			buf_append_char(out, '(');
			render_args(out, a->list, a->list_count);
			buf_append_char(out, ')');
			break;
		}
	}
}

/* Feeds one chunk, rendering every event. Returns false after FATAL. */
static bool drive(struct imap_parser *p, const char *data, size_t len, struct buf *out)
{
	for (;;) {
		size_t consumed = 12345;
		enum imap_parse_result r = imap_parser_feed(p, data, len, &consumed);
		CHECK(consumed <= len);
		data += consumed;
		len -= consumed;
		switch (r) {
		case IMAP_PARSE_MORE:
			CHECK(len == 0);
			return true;
		case IMAP_PARSE_COMMAND: {
			const struct imap_command *cmd = imap_parser_command(p);
			buf_printf(out, "CMD %s %s", cmd->tag, cmd->name);
			if (cmd->arg_count > 0) {
				buf_append_char(out, ' ');
				render_args(out, cmd->args, cmd->arg_count);
			}
			buf_append_char(out, '\n');
			CHECK_INT(sunk_shown, sunk.len);
			buf_clear(&sunk);
			sunk_shown = 0;
			if (strcmp(cmd->name, "AUTHENTICATE") == 0 || strcmp(cmd->name, "IDLE") == 0)
				imap_parser_expect_line(p);
			break;
		}
		case IMAP_PARSE_LITERAL: {
			bool big = imap_parser_literal_too_large(p);
			uint64_t size = imap_parser_literal_size(p);
			const char *name = imap_parser_partial_name(p);
			buf_printf(out, "LIT %s %s %llu%s%s\n", imap_parser_partial_tag(p), name,
				   (unsigned long long)size,
				   imap_parser_literal_is_sync(p) ? "" : " NONSYNC", big ? " TOOBIG" : "");
			if (big || strcmp(name, "NOLIT") == 0)
				imap_parser_literal_reject(p);
			else if (case_stream_threshold > 0 && size > case_stream_threshold &&
				 strcmp(name, "KEEP") != 0)
				imap_parser_literal_stream(p, sink_append, &sunk);
			else
				imap_parser_literal_accept(p);
			break;
		}
		case IMAP_PARSE_LINE: {
			size_t n;
			const char *line = imap_parser_line(p, &n);
			buf_append_str(out, "LINE ");
			render_bytes(out, line, n);
			buf_append_char(out, '\n');
			break;
		}
		case IMAP_PARSE_ERROR:
			if (sunk.len > 0)
				buf_printf(out, "DROP %zu\n", sunk.len);
			buf_clear(&sunk);
			sunk_shown = 0;
			buf_printf(out, "ERR %s %s\n", imap_parser_error_tag(p), imap_parser_error(p));
			break;
		case IMAP_PARSE_FATAL:
			buf_printf(out, "FATAL %s\n", imap_parser_error(p));
			return false;
		}
	}
}

static struct imap_parser *case_parser(const struct pcase *c)
{
	struct imap_parser_limits l = {
		.max_line = c->max_line, .max_literal = c->max_literal, .max_depth = c->max_depth,
		.stream_threshold = case_stream_threshold,
	};
	struct imap_parser *p = imap_parser_new(&l);
	imap_parser_set_utf8(p, c->utf8);
	return p;
}

/* Runs c with the input cut at the given offsets (sorted, may repeat). */
static char *run_split(const struct pcase *c, const size_t *cuts, size_t ncuts)
{
	struct imap_parser *p = case_parser(c);
	struct buf out = BUF_INIT;
	buf_clear(&sunk);
	sunk_shown = 0;
	size_t from = 0;
	bool alive = true;
	for (size_t i = 0; i <= ncuts && alive; i++) {
		size_t to = i < ncuts ? cuts[i] : c->in_len;
		/* A private copy, so a read past the chunk is an ASan error. */
		char *chunk = malloc(to - from + 1);
		memcpy(chunk, c->in + from, to - from);
		alive = drive(p, chunk, to - from, &out);
		free(chunk);
		from = to;
	}
	imap_parser_free(&p);
	CHECK(p == NULL);
	/* Bytes streamed for a command cut short by the end of the input. */
	if (sunk.len > sunk_shown)
		buf_printf(&out, "PENDING %zu\n", sunk.len - sunk_shown);
	buf_append_str(&out, "");
	return buf_steal(&out);
}

static int check_case(const struct pcase *c)
{
	int failures = 0;
	char *whole = run_split(c, NULL, 0);
	if (strcmp(whole, c->expect) != 0) {
		fprintf(stderr, "case %s: got\n%s---- expected\n%s----\n", c->name, whole, c->expect);
		failures++;
	}
	size_t *cuts = malloc((c->in_len + 1) * sizeof(*cuts));
	for (size_t i = 0; i < c->in_len; i++)
		cuts[i] = i + 1;
	char *bytes = run_split(c, cuts, c->in_len > 0 ? c->in_len - 1 : 0);
	if (strcmp(bytes, c->expect) != 0) {
		fprintf(stderr, "case %s, byte at a time: got\n%s----\n", c->name, bytes);
		failures++;
	}
	free(bytes);
	/* Every split point for short inputs, a spread of them for long ones. */
	size_t step = c->in_len <= 2048 ? 1 : c->in_len / 997 + 1;
	for (size_t k = 0; k <= c->in_len; k += step) {
		char *split = run_split(c, &k, 1);
		if (strcmp(split, c->expect) != 0) {
			fprintf(stderr, "case %s, split at %zu: got\n%s----\n", c->name, k, split);
			failures++;
			k = c->in_len;
		}
		free(split);
	}
	free(cuts);
	free(whole);
	return failures;
}

static int run_cases(const struct pcase *cases, size_t n)
{
	int failures = 0;
	for (size_t i = 0; i < n; i++)
		failures += check_case(&cases[i]);
	return failures;
}

#define RUN_CASES(table) CHECK_INT(run_cases(table, sizeof(table) / sizeof(table[0])), 0)

static void test_grammar(void)
{
	static const struct pcase cases[] = {
		{ "noop", IN("a1 NOOP\r\n"), "CMD a1 NOOP\n", 0, 0, 0, false },
		{ "name upper-cased", IN("a1 noop\r\n"), "CMD a1 NOOP\n", 0, 0, 0, false },
		{ "bare LF", IN("a1 Noop\n"), "CMD a1 NOOP\n", 0, 0, 0, false },
		{ "atoms", IN("A001 LOGIN fred secret\r\n"), "CMD A001 LOGIN fred secret\n", 0, 0, 0, false },
		{ "tag chars", IN("x.y-1]!&[ NOOP\r\n"), "CMD x.y-1]!&[ NOOP\n", 0, 0, 0, false },
		{ "quoted", IN("a LOGIN \"us er\" \"p\\\"a\\\\ss\"\r\n"),
		  "CMD a LOGIN \"us er\" \"p\\\"a\\\\ss\"\n", 0, 0, 0, false },
		{ "empty quoted", IN("a LOGIN \"\" \"\"\r\n"), "CMD a LOGIN \"\" \"\"\n", 0, 0, 0, false },
		{ "quoted specials kept", IN("a X \"(a) {3} [b] % * ~\"\r\n"),
		  "CMD a X \"(a) {3} [b] % * ~\"\n", 0, 0, 0, false },
		{ "quoted tab", IN("a X \"a\tb\"\r\n"), "CMD a X \"a\\x09b\"\n", 0, 0, 0, false },
		{ "nil", IN("a SELECT NIL\r\n"), "CMD a SELECT NIL\n", 0, 0, 0, false },
		{ "nested lists", IN("a X (a (b (c)) () d) ()\r\n"),
		  "CMD a X (a (b (c)) () d) ()\n", 0, 0, 0, false },
		{ "list of strings", IN("a X (\"a b\" \"\")\r\n"), "CMD a X (\"a b\" \"\")\n", 0, 0, 0, false },
		{ "section", IN("a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100> FLAGS)\r\n"),
		  "CMD a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100> FLAGS)\n", 0, 0, 0, false },
		{ "sections", IN("a UID FETCH 1:* (BODY[] BODY[1.2.MIME] BINARY.PEEK[1]<0.10> BODY[TEXT])\r\n"),
		  "CMD a UID FETCH 1:* (BODY[] BODY[1.2.MIME] BINARY.PEEK[1]<0.10> BODY[TEXT])\n",
		  0, 0, 0, false },
		{ "section quoted", IN("a FETCH 1 BODY[HEADER.FIELDS (\"X-]\" B)]\r\n"),
		  "CMD a FETCH 1 BODY[HEADER.FIELDS (\"X-]\" B)]\n", 0, 0, 0, false },
		{ "section last in list", IN("a FETCH 1 (BODY[])\r\n"), "CMD a FETCH 1 (BODY[])\n", 0, 0, 0, false },
		{ "flags", IN("a STORE 1 +FLAGS.SILENT (\\Seen \\* $Junk \\Deleted)\r\n"),
		  "CMD a STORE 1 +FLAGS.SILENT (\\Seen \\* $Junk \\Deleted)\n", 0, 0, 0, false },
		{ "wildcards", IN("a LIST \"\" %/*\r\n"), "CMD a LIST \"\" %/*\n", 0, 0, 0, false },
		{ "resp-specials in atom", IN("a X a]b\r\n"), "CMD a X a]b\n", 0, 0, 0, false },
		{ "seqset", IN("a COPY 1,3:5,7:* INBOX\r\n"), "CMD a COPY 1,3:5,7:* INBOX\n", 0, 0, 0, false },
		{ "utf7 name", IN("a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n"),
		  "CMD a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-\n", 0, 0, 0, false },
		{ "utf8 quoted allowed", IN("a SELECT \"caf\xc3\xa9\"\r\n"),
		  "CMD a SELECT \"caf\\xc3\\xa9\"\n", 0, 0, 0, true },
		{ "name only digits", IN("a 123\r\n"), "CMD a 123\n", 0, 0, 0, false },
		{ "search", IN("a UID SEARCH CHARSET UTF-8 (OR FROM x TO y) SINCE 1-Feb-1994 NOT SEEN\r\n"),
		  "CMD a UID SEARCH CHARSET UTF-8 (OR FROM x TO y) SINCE 1-Feb-1994 NOT SEEN\n",
		  0, 0, 0, false },
		{ "append date", IN("a APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {2+}\r\nhi\r\n"),
		  "CMD a APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {2}\"hi\"\n",
		  0, 0, 0, false },
	};
	RUN_CASES(cases);
}

static void test_literals(void)
{
	static const struct pcase cases[] = {
		{ "sync", IN("a LOGIN {4}\r\nuser {4}\r\npass\r\n"),
		  "LIT a LOGIN 4\nLIT a LOGIN 4\nCMD a LOGIN {4}\"user\" {4}\"pass\"\n", 0, 0, 0, false },
		{ "non-sync", IN("a LOGIN {4+}\r\nuser {4-}\r\npass\r\n"),
		  "CMD a LOGIN {4}\"user\" {4}\"pass\"\n", 0, 0, 0, false },
		{ "bare LF after size", IN("a LOGIN {4+}\nuser x\n"), "CMD a LOGIN {4}\"user\" x\n", 0, 0, 0, false },
		{ "NUL CR LF inside", IN("a APPEND box {7+}\r\na\0b\r\nc)\r\n"),
		  "CMD a APPEND box {7}\"a\\x00b\\x0d\\x0ac)\"\n", 0, 0, 0, false },
		{ "literal8 non-sync", IN("a APPEND box ~{3+}\r\n\0\1\2\r\n"),
		  "CMD a APPEND box ~{3}\"\\x00\\x01\\x02\"\n", 0, 0, 0, false },
		{ "literal8 sync", IN("a APPEND box (\\Seen) ~{2}\r\nhi\r\n"),
		  "LIT a APPEND 2\nCMD a APPEND box (\\Seen) ~{2}\"hi\"\n", 0, 0, 0, false },
		{ "zero length", IN("a LOGIN {0}\r\n {0+}\r\n\r\n"),
		  "LIT a LOGIN 0\nCMD a LOGIN {0}\"\" {0}\"\"\n", 0, 0, 0, false },
		{ "in list", IN("a X ({3}\r\nabc)\r\n"), "LIT a X 3\nCMD a X ({3}\"abc\")\n", 0, 0, 0, false },
		{ "nested lists", IN("a X ((a {1+}\r\nb) {2}\r\ncd) e\r\n"),
		  "LIT a X 2\nCMD a X ((a {1}\"b\") {2}\"cd\") e\n", 0, 0, 0, false },
		{ "leading zeros", IN("a X {003+}\r\nabc\r\n"), "CMD a X {3}\"abc\"\n", 0, 0, 0, false },
		{ "looks like syntax", IN("a X {8+}\r\n\"(}{\\\r\n)\r\n"),
		  "CMD a X {8}\"\\\"(}{\\\\\\x0d\\x0a)\"\n", 0, 0, 0, false },
		{ "multiappend", IN("a APPEND box {1+}\r\nx (\\Seen) {1+}\r\ny\r\nb NOOP\r\n"),
		  "CMD a APPEND box {1}\"x\" (\\Seen) {1}\"y\"\nCMD b NOOP\n", 0, 0, 0, false },
		{ "reject", IN("a NOLIT {3}\r\nb NOOP\r\n"), "LIT a NOLIT 3\nCMD b NOOP\n", 0, 0, 0, false },
		{ "reject second", IN("a NOLIT x {3+}\r\nabc {3}\r\nb NOOP\r\n"),
		  "LIT a NOLIT 3\nCMD b NOOP\n", 0, 0, 0, false },
		{ "at limit", IN("a X {10}\r\n0123456789\r\n"), "LIT a X 10\nCMD a X {10}\"0123456789\"\n",
		  0, 10, 0, false },
		{ "sync too big", IN("a APPEND box {11}\r\nb NOOP\r\n"),
		  "LIT a APPEND 11 TOOBIG\nCMD b NOOP\n", 0, 10, 0, false },
		{ "sync 2^32", IN("a APPEND box {4294967296}\r\nb NOOP\r\n"),
		  "LIT a APPEND 4294967296 TOOBIG\nCMD b NOOP\n", 0, 0, 0, false },
		{ "sync 2^64-1", IN("a APPEND box {18446744073709551615}\r\nb NOOP\r\n"),
		  "LIT a APPEND 18446744073709551615 TOOBIG\nCMD b NOOP\n", 0, 0, 0, false },
		{ "sync overflow", IN("a APPEND box {18446744073709551616}\r\nb NOOP\r\n"),
		  "ERR a [TOOBIG] Literal size overflows 64 bits\nCMD b NOOP\n", 0, 0, 0, false },
		{ "sync overflow 20 nines", IN("a APPEND box {99999999999999999999}\r\nb NOOP\r\n"),
		  "ERR a [TOOBIG] Literal size overflows 64 bits\nCMD b NOOP\n", 0, 0, 0, false },
		{ "non-sync overflow", IN("a APPEND box {99999999999999999999+}\r\nxxx\r\nb NOOP\r\n"),
		  "FATAL Non-synchronizing literal size overflows 64 bits: can't skip it\n", 0, 0, 0, false },
		{ "non-sync too big skipped", IN("a APPEND box {11+}\r\n01234567890 {3+}\r\nabc\r\nb NOOP\r\n"),
		  "ERR a [TOOBIG] Literal of 11 bytes exceeds the limit of 10\nCMD b NOOP\n", 0, 10, 0, false },
		{ "non-sync too big, then sync", IN("a APPEND box {11+}\r\n0123456789\n {3}\r\nb NOOP\r\n"),
		  "ERR a [TOOBIG] Literal of 11 bytes exceeds the limit of 10\nCMD b NOOP\n", 0, 10, 0, false },
		{ "non-sync 2^32 skipped", IN("a APPEND box {4294967296+}\r\nabc"),
		  "ERR a [TOOBIG] Literal of 4294967296 bytes exceeds the limit of 67108864\n", 0, 0, 0, false },
		{ "literal8 too big", IN("a APPEND box ~{5+}\r\n\0\0\0\0\0\r\nb NOOP\r\n"),
		  "ERR a [TOOBIG] Literal of 5 bytes exceeds the limit of 4\nCMD b NOOP\n", 0, 4, 0, false },
		{ "literal then pipelined", IN("a LOGIN {1}\r\nu p\r\nb NOOP\r\n"),
		  "LIT a LOGIN 1\nCMD a LOGIN {1}\"u\" p\nCMD b NOOP\n", 0, 0, 0, false },
	};
	RUN_CASES(cases);
}

static void test_errors(void)
{
	static const struct pcase cases[] = {
		{ "CR without LF", IN("a NOOP\rb NOOP\r\nc NOOP\r\n"),
		  "ERR a CR without LF\nCMD c NOOP\n", 0, 0, 0, false },
		{ "CR in quoted", IN("a X \"a\rb\"\r\nc NOOP\r\n"), "ERR a CR without LF\nCMD c NOOP\n", 0, 0, 0, false },
		{ "CR CR LF", IN("a X\r\r\nc NOOP\r\n"), "ERR a CR without LF\nCMD c NOOP\n", 0, 0, 0, false },
		{ "missing paren", IN("a X (a b\r\nb NOOP\r\n"), "ERR a Missing ')'\nCMD b NOOP\n", 0, 0, 0, false },
		{ "missing paren after (", IN("a X (\r\nb NOOP\r\n"), "ERR a Missing ')'\nCMD b NOOP\n", 0, 0, 0, false },
		{ "extra paren", IN("a X a)\r\nb NOOP\r\n"), "ERR a Unexpected ')'\nCMD b NOOP\n", 0, 0, 0, false },
		{ "extra paren first", IN("a X )\r\n"), "ERR a Unexpected ')'\n", 0, 0, 0, false },
		{ "space before )", IN("a X (a )\r\n"), "ERR a Unexpected space before ')'\n", 0, 0, 0, false },
		{ "space after (", IN("a X ( a)\r\n"), "ERR a Unexpected space after '('\n", 0, 0, 0, false },
		{ "bad escape", IN("a LOGIN \"\\a\" b\r\nb NOOP\r\n"),
		  "ERR a Invalid escape \\a in quoted string\nCMD b NOOP\n", 0, 0, 0, false },
		{ "bad escape of 8-bit", IN("a LOGIN \"\\\xff\" b\r\n"),
		  "ERR a Invalid escape of byte 0xff in quoted string\n", 0, 0, 0, false },
		{ "unterminated quoted", IN("a LOGIN \"abc\r\nb NOOP\r\n"),
		  "ERR a Unterminated quoted string\nCMD b NOOP\n", 0, 0, 0, false },
		{ "unterminated after escape", IN("a LOGIN \"abc\\\r\n"),
		  "ERR a Unterminated quoted string\n", 0, 0, 0, false },
		{ "8-bit in quoted", IN("a SELECT \"caf\xc3\xa9\"\r\nb NOOP\r\n"),
		  "ERR a 8-bit byte in quoted string\nCMD b NOOP\n", 0, 0, 0, false },
		{ "bad utf8 in quoted", IN("a SELECT \"caf\xc3(\"\r\n"),
		  "ERR a Invalid UTF-8 in quoted string\n", 0, 0, 0, true },
		{ "NUL in quoted", IN("a LOGIN \"a\0b\" c\r\nb NOOP\r\n"),
		  "ERR a NUL byte in quoted string\nCMD b NOOP\n", 0, 0, 0, false },
		{ "NUL in atom", IN("a X ab\0c\r\n"), "ERR a NUL byte in atom\n", 0, 0, 0, false },
		{ "NUL as argument", IN("a X \0\r\n"), "ERR a NUL byte in argument\n", 0, 0, 0, false },
		{ "NUL in tag", IN("a\0 NOOP\r\nb NOOP\r\n"), "ERR * NUL byte in tag\nCMD b NOOP\n", 0, 0, 0, false },
		{ "8-bit in atom", IN("a X caf\xc3\xa9\r\n"), "ERR a 8-bit byte in atom\n", 0, 0, 0, false },
		{ "control in atom", IN("a X a\x01\r\n"), "ERR a Control character 0x01 in atom\n", 0, 0, 0, false },
		{ "missing space quoted", IN("a LOGIN \"a\"\"b\"\r\n"),
		  "ERR a Missing space between arguments\n", 0, 0, 0, false },
		{ "missing space lists", IN("a X (a)(b)\r\n"), "ERR a Missing space between arguments\n", 0, 0, 0, false },
		{ "missing space after literal", IN("a X {1+}\r\nab\r\nb NOOP\r\n"),
		  "ERR a Missing space between arguments\nCMD b NOOP\n", 0, 0, 0, false },
		{ "atom then quote", IN("a X ab\"c\"\r\n"), "ERR a Invalid character '\"' in atom\n", 0, 0, 0, false },
		{ "backslash mid atom", IN("a X a\\b\r\n"), "ERR a Invalid character '\\' in atom\n", 0, 0, 0, false },
		{ "lone backslash", IN("a STORE 1 FLAGS (\\)\r\n"),
		  "ERR a Missing flag name after '\\'\n", 0, 0, 0, false },
		{ "double space", IN("a LOGIN  x\r\n"), "ERR a Double space between arguments\n", 0, 0, 0, false },
		{ "trailing space", IN("a NOOP \r\nb NOOP\r\n"),
		  "ERR a Unexpected space at end of line\nCMD b NOOP\n", 0, 0, 0, false },
		{ "plus tag", IN("+ NOOP\r\n"), "ERR * Invalid character '+' in tag\n", 0, 0, 0, false },
		{ "star tag", IN("a*b NOOP\r\n"), "ERR * Invalid character '*' in tag\n", 0, 0, 0, false },
		{ "brace tag", IN("a{1} NOOP\r\n"), "ERR * Invalid character '{' in tag\n", 0, 0, 0, false },
		{ "missing tag", IN(" NOOP\r\nb NOOP\r\n"), "ERR * Missing tag\nCMD b NOOP\n", 0, 0, 0, false },
		{ "tag only", IN("a\r\nb NOOP\r\n"), "ERR a Missing command name\nCMD b NOOP\n", 0, 0, 0, false },
		{ "tag space", IN("a \r\n"), "ERR a Missing command name\n", 0, 0, 0, false },
		{ "tag two spaces", IN("a  NOOP\r\n"), "ERR a Missing command name\n", 0, 0, 0, false },
		{ "bad name", IN("a NO(OP\r\n"), "ERR a Invalid character '(' in command name\n", 0, 0, 0, false },
		{ "name with ]", IN("a NO]OP\r\n"), "ERR a Invalid character ']' in command name\n", 0, 0, 0, false },
		{ "name is literal", IN("a {3}\r\nb NOOP\r\n"),
		  "ERR a Invalid character '{' in command name\nCMD b NOOP\n", 0, 0, 0, false },
		{ "literal no digits", IN("a X {abc}\r\n"), "ERR a Missing literal size after '{'\n", 0, 0, 0, false },
		{ "literal no close", IN("a X {3\r\n"), "ERR a Invalid literal size: expected '}'\n", 0, 0, 0, false },
		{ "literal double plus", IN("a X {3++}\r\n"), "ERR a Invalid literal size: expected '}'\n", 0, 0, 0, false },
		{ "literal not at end", IN("a X {3} y\r\nb NOOP\r\n"),
		  "ERR a Literal size must be followed by CRLF\nCMD b NOOP\n", 0, 0, 0, false },
		{ "missing ]", IN("a FETCH 1 BODY[HEADER\r\nb NOOP\r\n"),
		  "ERR a Missing ']' in section\nCMD b NOOP\n", 0, 0, 0, false },
		{ "literal in section", IN("a FETCH 1 BODY[HEADER.FIELDS ({4}\r\nb NOOP\r\n"),
		  "ERR a Literals inside a section are not supported\nCMD b NOOP\n", 0, 0, 0, false },
		{ "literal+ in section skipped", IN("a FETCH 1 BODY[HEADER.FIELDS ({4+}\r\nFrom)]\r\nb NOOP\r\n"),
		  "ERR a Literals inside a section are not supported\nCMD b NOOP\n", 0, 0, 0, false },
		{ "nested [", IN("a FETCH 1 BODY[a[b]]\r\n"), "ERR a Invalid character '[' in section\n", 0, 0, 0, false },
		{ "error skips non-sync literal", IN("a X \"\\a\" {5+}\r\nhello\r\nb NOOP\r\n"),
		  "ERR a Invalid escape \\a in quoted string\nCMD b NOOP\n", 0, 0, 0, false },
		{ "error skips literal8", IN("a X ) ~{5+}\r\nhe\0lo\r\nb NOOP\r\n"),
		  "ERR a Unexpected ')'\nCMD b NOOP\n", 0, 0, 0, false },
		{ "error skips several literals", IN("a X ) {2+}\r\nab {3-}\r\nabc (x)\r\nb NOOP\r\n"),
		  "ERR a Unexpected ')'\nCMD b NOOP\n", 0, 0, 0, false },
		{ "error skips zero literal", IN("a X ) {0+}\r\n {1+}\r\nx\r\nb NOOP\r\n"),
		  "ERR a Unexpected ')'\nCMD b NOOP\n", 0, 0, 0, false },
		{ "error before sync literal", IN("a X \"\\a\" {5}\r\nb NOOP\r\n"),
		  "ERR a Invalid escape \\a in quoted string\nCMD b NOOP\n", 0, 0, 0, false },
		{ "final {n+} after a bad quote still skipped", IN("a X \"\\\\{5+}\r\nb NOOP\r\n"),
		  "ERR a Unterminated quoted string\n", 0, 0, 0, false },
		{ "error in second segment", IN("a X {1}\r\nb)\r\nc NOOP\r\n"),
		  "LIT a X 1\nERR a Unexpected ')'\nCMD c NOOP\n", 0, 0, 0, false },
		{ "depth at limit", IN("a X (((a)))\r\n"), "CMD a X (((a)))\n", 0, 0, 3, false },
		{ "too deep", IN("a X ((((a))))\r\nb NOOP\r\n"),
		  "ERR a Lists nested too deeply (limit 3)\nCMD b NOOP\n", 0, 0, 3, false },
		{ "too deep default", IN("a X ((((((((((((((((((((((((((((((((()))))))))))))))))))))))))))))))))\r\n"),
		  "ERR a Lists nested too deeply (limit 32)\n", 0, 0, 0, false },
		{ "too many literals?", IN("a X {1+}\r\na\r\n"), "CMD a X {1}\"a\"\n", 0, 0, 0, false },
		{ "errors in a row", IN("a X )\r\nb X (\r\nc X \"\r\nd NOOP\r\n"),
		  "ERR a Unexpected ')'\nERR b Missing ')'\nERR c Unterminated quoted string\nCMD d NOOP\n",
		  0, 0, 0, false },
		{ "only spaces", IN("   \r\na NOOP\r\n"), "ERR * Missing tag\nCMD a NOOP\n", 0, 0, 0, false },
	};
	RUN_CASES(cases);
}

#define X10 "xxxxxxxxxx"
#define X40 X10 X10 X10 X10

static void test_line_limits(void)
{
	static const struct pcase cases[] = {
		{ "empty lines ignored", IN("\r\n\n\r\na NOOP\r\n\r\n\n"), "CMD a NOOP\n", 0, 0, 0, false },
		{ "at limit", IN("a X " "xxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
		  "CMD a X xxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", 32, 0, 0, false },
		{ "at limit bare LF", IN("a X " "xxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),
		  "CMD a X xxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", 32, 0, 0, false },
		{ "one over", IN("a X " "xxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nb NOOP\r\n"),
		  "ERR a Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "one over by CR", IN("a X " "xxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\r\nb NOOP\r\n"),
		  "ERR a Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "overlong", IN("a X " X40 X40 "\r\nb NOOP\r\n"),
		  "ERR a Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "overlong no tag", IN(X40 X40 "\r\nb NOOP\r\n"),
		  "ERR * Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "overlong tag beyond limit", IN("abcdefghij NOOP\r\nb NOOP\r\n"),
		  "ERR * Line too long (limit 8 bytes)\nCMD b NOOP\n", 8, 0, 0, false },
		{ "overlong tag at limit", IN("abcdefg NOOP\r\nb NOOP\r\n"),
		  "ERR abcdefg Line too long (limit 8 bytes)\nCMD b NOOP\n", 8, 0, 0, false },
		{ "overlong skips non-sync literal", IN("a X " X40 " {5+}\r\nhello\r\nb NOOP\r\n"),
		  "ERR a Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "overlong with sync literal", IN("a X " X40 " {5}\r\nb NOOP\r\n"),
		  "ERR a Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "overlong then more skipped", IN("a X " X40 " {2+}\r\nab " X40 " {1+}\r\nx )\r\nb NOOP\r\n"),
		  "ERR a Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "overlong second segment", IN("a X {3}\r\nabc " X40 "\r\nb NOOP\r\n"),
		  "LIT a X 3\nERR a Line too long (limit 32 bytes)\nCMD b NOOP\n", 32, 0, 0, false },
		{ "segments each under limit", IN("a X " X10 "x {3+}\r\nabc " X10 X10 "xxxxxxx\r\n"),
		  "CMD a X xxxxxxxxxxx {3}\"abc\" xxxxxxxxxxxxxxxxxxxxxxxxxxx\n", 32, 0, 0, false },
		{ "literal longer than line limit", IN("a X {40+}\r\n" X40 "\r\n"),
		  "CMD a X {40}\"" X40 "\"\n", 16, 0, 0, false },
		{ "reported once", IN("a X " X40 X40 X40 X40 X40 X40 "\r\n"),
		  "ERR a Line too long (limit 16 bytes)\n", 16, 0, 0, false },
		{ "overlong empty-looking", IN("\r\n" X40 "\r\n\r\na NOOP\r\n"),
		  "ERR * Line too long (limit 16 bytes)\nCMD a NOOP\n", 16, 0, 0, false },
	};
	RUN_CASES(cases);
}

static void test_pipelining(void)
{
	static const struct pcase cases[] = {
		{ "three", IN("a NOOP\r\nb NOOP\r\nc LOGOUT\r\n"), "CMD a NOOP\nCMD b NOOP\nCMD c LOGOUT\n",
		  0, 0, 0, false },
		{ "ten with literals",
		  IN("1 NOOP\r\n2 LOGIN {1+}\r\nu {1+}\r\np\r\n3 SELECT INBOX\r\n4 FETCH 1:* (FLAGS)\r\n"
		     "5 X )\r\n6 STORE 1 +FLAGS (\\Seen)\r\n7 APPEND x {2}\r\nab\r\n8 CHECK\r\n"
		     "9 EXPUNGE\r\n10 LOGOUT\r\n"),
		  "CMD 1 NOOP\nCMD 2 LOGIN {1}\"u\" {1}\"p\"\nCMD 3 SELECT INBOX\nCMD 4 FETCH 1:* (FLAGS)\n"
		  "ERR 5 Unexpected ')'\nCMD 6 STORE 1 +FLAGS (\\Seen)\nLIT 7 APPEND 2\nCMD 7 APPEND x {2}\"ab\"\n"
		  "CMD 8 CHECK\nCMD 9 EXPUNGE\nCMD 10 LOGOUT\n", 0, 0, 0, false },
		{ "partial last", IN("a NOOP\r\nb NOO"), "CMD a NOOP\n", 0, 0, 0, false },
	};
	RUN_CASES(cases);
}

static void test_line_mode(void)
{
	static const struct pcase cases[] = {
		{ "authenticate", IN("a AUTHENTICATE PLAIN\r\ndGVzdA==\r\nb NOOP\r\n"),
		  "CMD a AUTHENTICATE PLAIN\nLINE \"dGVzdA==\"\nCMD b NOOP\n", 0, 0, 0, false },
		{ "empty line", IN("a AUTHENTICATE PLAIN\r\n\r\n\r\nb NOOP\r\n"),
		  "CMD a AUTHENTICATE PLAIN\nLINE \"\"\nCMD b NOOP\n", 0, 0, 0, false },
		{ "idle done bare LF", IN("a IDLE\r\nDONE\nb NOOP\r\n"),
		  "CMD a IDLE\nLINE \"DONE\"\nCMD b NOOP\n", 0, 0, 0, false },
		{ "raw bytes", IN("a IDLE\r\n{5+} ( \"\\\x01\xff\r\nb NOOP\r\n"),
		  "CMD a IDLE\nLINE \"{5+} ( \\\"\\\\\\x01\\xff\"\nCMD b NOOP\n", 0, 0, 0, false },
		{ "overlong", IN("a IDLE\r\n" X40 " {5+}\r\nb NOOP\r\n"),
		  "CMD a IDLE\nERR * Line too long (limit 16 bytes)\nCMD b NOOP\n", 16, 0, 0, false },
		{ "CR", IN("a IDLE\r\nDO\rNE\r\nb NOOP\r\n"),
		  "CMD a IDLE\nERR * CR without LF\nCMD b NOOP\n", 0, 0, 0, false },
		{ "after literal command", IN("a AUTHENTICATE {5}\r\nPLAIN\r\nxyz\r\n"),
		  "LIT a AUTHENTICATE 5\nCMD a AUTHENTICATE {5}\"PLAIN\"\nLINE \"xyz\"\n", 0, 0, 0, false },
	};
	RUN_CASES(cases);
}

/* Direct checks that the transcript doesn't show. */
static void test_api(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	size_t consumed;
	static const char in[] = "a X atom \"q\" {3+}\r\na\0b NIL nil () \\Seen %x\r\nb NOOP\r\n";
	CHECK_INT(imap_parser_feed(p, in, sizeof(in) - 1, &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(consumed, sizeof(in) - 1 - strlen("b NOOP\r\n"));
	const struct imap_command *cmd = imap_parser_command(p);
	CHECK_INT(cmd->arg_count, 8);
	const struct imap_arg *a = cmd->args;
	CHECK(imap_arg_is_atom(&a[0]) && imap_arg_is_astring(&a[0]) && !imap_arg_is_string(&a[0]));
	CHECK(imap_arg_is_string(&a[1]) && imap_arg_is_astring(&a[1]) && !imap_arg_is_atom(&a[1]));
	CHECK(imap_arg_is_string(&a[2]) && imap_arg_has_nul(&a[2]) && !imap_arg_has_nul(&a[1]));
	CHECK_INT(a[2].len, 3);
	CHECK(!a[2].literal8);
	CHECK(imap_arg_is_nil(&a[3]) && imap_arg_is_nil(&a[4]) && !imap_arg_is_nil(&a[0]));
	CHECK(imap_arg_is_astring(&a[3]));
	CHECK(imap_arg_is_list(&a[5]) && a[5].list_count == 0 && !imap_arg_has_nul(&a[5]));
	CHECK(!imap_arg_is_astring(&a[5]));
	CHECK(imap_arg_is_atom(&a[6]) && !imap_arg_is_astring(&a[6]));	/* flag */
	CHECK(!imap_arg_is_astring(&a[7]));	/* wildcard */
	CHECK(!imap_arg_is_nil(&a[1]));

	/* The rest: the next command. */
	const char *rest = in + consumed;
	CHECK_INT(imap_parser_feed(p, rest, strlen(rest), &consumed), IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->name, "NOOP");
	CHECK_INT(consumed, strlen(rest));
	CHECK_INT(imap_parser_feed(p, "", 0, &consumed), IMAP_PARSE_MORE);
	CHECK_INT(consumed, 0);

	/* Partial tag and name during a literal, and reset mid-command. */
	CHECK_INT(imap_parser_feed(p, "t1 login {3}\r\n", 14, &consumed), IMAP_PARSE_LITERAL);
	CHECK_STR(imap_parser_partial_tag(p), "t1");
	CHECK_STR(imap_parser_partial_name(p), "LOGIN");
	CHECK_INT(imap_parser_literal_size(p), 3);
	CHECK(!imap_parser_literal_too_large(p));
	imap_parser_literal_accept(p);
	CHECK_INT(imap_parser_feed(p, "ab", 2, &consumed), IMAP_PARSE_MORE);
	imap_parser_reset(p);
	CHECK_STR(imap_parser_partial_tag(p), "");
	CHECK_STR(imap_parser_partial_name(p), "");
	CHECK_INT(imap_parser_feed(p, "c NOOP\r\n", 8, &consumed), IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->tag, "c");

	/* Reset in the middle of skipping. */
	struct imap_parser_limits l = { .max_line = 16, .max_literal = 4, .max_depth = 2 };
	imap_parser_set_limits(p, &l);
	CHECK_INT(imap_parser_feed(p, "d X {9+}\r\nabc", 13, &consumed), IMAP_PARSE_ERROR);
	CHECK_STR(imap_parser_error_tag(p), "d");
	imap_parser_reset(p);
	CHECK_INT(imap_parser_feed(p, "e NOOP\r\n", 8, &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(imap_parser_feed(p, "f X (((a)))\r\n", 13, &consumed), IMAP_PARSE_ERROR);
	CHECK_STR(imap_parser_error(p), "Lists nested too deeply (limit 2)");

	/* A big literal: memory is released after the command. */
	imap_parser_set_limits(p, NULL);
	size_t big = 1 << 20;
	char *data = malloc(big + 64);
	int head = snprintf(data, 64, "g APPEND x {%zu+}\r\n", big);
	memset(data + head, 'm', big);
	memcpy(data + head + big, "\r\n", 2);
	CHECK_INT(imap_parser_feed(p, data, (size_t)head + big + 2, &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(imap_parser_command(p)->args[1].len, big);
	CHECK_INT(consumed, (size_t)head + big + 2);
	free(data);
	CHECK_INT(imap_parser_feed(p, "h NOOP\r\n", 8, &consumed), IMAP_PARSE_COMMAND);

	imap_parser_free(&p);
	CHECK(p == NULL);
	imap_parser_free(&p);
}

static void test_arg_limit(void)
{
	struct buf in = BUF_INIT;
	buf_append_str(&in, "a X");
	for (int i = 0; i < LIMIT_ARGS; i++)
		buf_append_str(&in, " x");
	buf_append_str(&in, "\r\n");
	struct imap_parser_limits l = { .max_line = 4 * 1024 * 1024 };
	struct imap_parser *p = imap_parser_new(&l);
	size_t consumed;
	CHECK_INT(imap_parser_feed(p, in.data, in.len, &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(imap_parser_command(p)->arg_count, LIMIT_ARGS);
	buf_clear(&in);
	buf_append_str(&in, "b X");
	for (int i = 0; i <= LIMIT_ARGS; i++)
		buf_append_str(&in, " x");
	buf_append_str(&in, "\r\n");
	CHECK_INT(imap_parser_feed(p, in.data, in.len, &consumed), IMAP_PARSE_ERROR);
	CHECK_STR(imap_parser_error(p), "Too many arguments (limit 100000)");
	CHECK_STR(imap_parser_error_tag(p), "b");

	/* Too many literals: the command is skipped, including the literal
	 * that the client sends anyway. */
	buf_clear(&in);
	buf_append_str(&in, "c X");
	for (int i = 0; i <= LIMIT_LITERALS; i++)
		buf_append_str(&in, " {1+}\r\nx");
	buf_append_str(&in, "\r\nd NOOP\r\n");
	const char *s = in.data;
	size_t left = in.len;
	CHECK_INT(imap_parser_feed(p, s, left, &consumed), IMAP_PARSE_ERROR);
	CHECK_STR(imap_parser_error(p), "Too many literals in one command (limit 10000)");
	s += consumed;
	left -= consumed;
	CHECK_INT(imap_parser_feed(p, s, left, &consumed), IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->tag, "d");
	buf_free(&in);
	imap_parser_free(&p);
}

/* Literals above a stream threshold of 4 bytes: offered even when
 * non-synchronizing, and streamed to the sink (KEEP accepts them in memory,
 * NOLIT rejects them). Every case also runs byte by byte and split at every
 * offset, so the sink must get exactly the literal's bytes however they
 * arrive. */
static void test_streaming(void)
{
	static const struct pcase cases[] = {
		{ "sync streamed, small kept", IN("a APPEND box {6}\r\nab\r\ncd (\\Seen) {2}\r\nhi\r\nb NOOP\r\n"),
		  "LIT a APPEND 6\nLIT a APPEND 2\n"
		  "CMD a APPEND box {6}S\"ab\\x0d\\x0acd\" (\\Seen) {2}\"hi\"\nCMD b NOOP\n", 0, 0, 0, false },
		{ "non-sync streamed", IN("a APPEND box {5+}\r\nhello {5+}\r\nworld {1+}\r\nx\r\n"),
		  "LIT a APPEND 5 NONSYNC\nLIT a APPEND 5 NONSYNC\n"
		  "CMD a APPEND box {5}S\"hello\" {5}S\"world\" {1}\"x\"\n", 0, 0, 0, false },
		{ "literal8 both kinds", IN("a APPEND box ~{5}\r\n\0\1\2\3\4 ~{5+}\r\n\r\n\r\n\0\r\n"),
		  "LIT a APPEND 5\nLIT a APPEND 5 NONSYNC\n"
		  "CMD a APPEND box ~{5}S\"\\x00\\x01\\x02\\x03\\x04\" ~{5}S\"\\x0d\\x0a\\x0d\\x0a\\x00\"\n",
		  0, 0, 0, false },
		{ "looks like commands", IN("a APPEND box {11+}\r\nb NOOP\r\n}\r\n\r\nc NOOP\r\n"),
		  "LIT a APPEND 11 NONSYNC\nCMD a APPEND box {11}S\"b NOOP\\x0d\\x0a}\\x0d\\x0a\"\nCMD c NOOP\n",
		  0, 0, 0, false },
		{ "in a list", IN("a X ({5+}\r\nhello) y\r\n"),
		  "LIT a X 5 NONSYNC\nCMD a X ({5}S\"hello\") y\n", 0, 0, 0, false },
		{ "at the threshold: not offered", IN("a APPEND box {4+}\r\nabcd\r\n"),
		  "CMD a APPEND box {4}\"abcd\"\n", 0, 0, 0, false },
		{ "kept in memory", IN("a KEEP {5+}\r\nhello {6}\r\nworld!\r\n"),
		  "LIT a KEEP 5 NONSYNC\nLIT a KEEP 6\nCMD a KEEP {5}\"hello\" {6}\"world!\"\n", 0, 0, 0, false },
		{ "non-sync rejected: skipped", IN("a NOLIT x {5+}\r\nhello {2+}\r\nab\r\nb NOOP\r\n"),
		  "LIT a NOLIT 5 NONSYNC\nCMD b NOOP\n", 0, 0, 0, false },
		{ "non-sync rejected, then sync", IN("a NOLIT {5+}\r\nhello {3}\r\nb NOOP\r\n"),
		  "LIT a NOLIT 5 NONSYNC\nCMD b NOOP\n", 0, 0, 0, false },
		{ "error after a streamed literal", IN("a APPEND box {5+}\r\nhello \"open\r\nb NOOP\r\n"),
		  "LIT a APPEND 5 NONSYNC\nDROP 5\nERR a Unterminated quoted string\nCMD b NOOP\n",
		  0, 0, 0, false },
		{ "sync too big with streaming", IN("a APPEND box {11}\r\nb NOOP\r\n"),
		  "LIT a APPEND 11 TOOBIG\nCMD b NOOP\n", 0, 10, 0, false },
		{ "non-sync too big with streaming", IN("a APPEND box {11+}\r\n01234567890\r\nb NOOP\r\n"),
		  "ERR a [TOOBIG] Literal of 11 bytes exceeds the limit of 10\nCMD b NOOP\n", 0, 10, 0, false },
		{ "input ends inside", IN("a APPEND box {9+}\r\nabc"),
		  "LIT a APPEND 9 NONSYNC\nPENDING 3\n", 0, 0, 0, false },
	};
	case_stream_threshold = 4;
	RUN_CASES(cases);
	case_stream_threshold = 0;
}

struct sink_record {
	struct buf bytes;
	unsigned calls;
};

static void sink_record(void *ctx, const char *data, size_t len)
{
	struct sink_record *r = ctx;
	buf_append(&r->bytes, data, len);
	r->calls++;
}

/* Streaming through the API: sizes and kinds, a reset or a free in the
 * middle of a streamed literal, the threshold changed between commands. */
static void test_streaming_api(void)
{
	struct imap_parser_limits l = { .stream_threshold = 8 };
	struct imap_parser *p = imap_parser_new(&l);
	struct sink_record r = { BUF_INIT, 0 };
	size_t consumed;

	/* Non-synchronizing: offered although the data follows at once. */
	static const char in1[] = "A1 APPEND INBOX {12+}\r\nhello, world\r\n";
	CHECK_INT(imap_parser_feed(p, in1, sizeof(in1) - 1, &consumed), IMAP_PARSE_LITERAL);
	CHECK_INT(consumed, strlen("A1 APPEND INBOX {12+}\r\n"));
	CHECK(!imap_parser_literal_is_sync(p));
	CHECK_INT(imap_parser_literal_size(p), 12);
	CHECK_STR(imap_parser_partial_name(p), "APPEND");
	imap_parser_literal_stream(p, sink_record, &r);
	const char *rest = in1 + consumed;
	CHECK_INT(imap_parser_feed(p, rest, strlen(rest), &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(consumed, strlen(rest));
	CHECK_INT(r.bytes.len, 12);
	CHECK(r.bytes.len == 12 && memcmp(r.bytes.data, "hello, world", 12) == 0);
	const struct imap_command *cmd = imap_parser_command(p);
	CHECK_INT(cmd->arg_count, 2);
	CHECK(imap_arg_is_streamed(&cmd->args[1]) && cmd->args[1].len == 12);
	CHECK_STR(cmd->args[1].str, "");
	CHECK(imap_arg_is_astring(&cmd->args[0]) && !imap_arg_is_streamed(&cmd->args[0]));

	/* Synchronizing, fed in pieces, then a reset in the middle. */
	buf_clear(&r.bytes);
	r.calls = 0;
	CHECK_INT(imap_parser_feed(p, "A2 APPEND x {20}\r\n", 18, &consumed), IMAP_PARSE_LITERAL);
	CHECK(imap_parser_literal_is_sync(p));
	imap_parser_literal_stream(p, sink_record, &r);
	CHECK_INT(imap_parser_feed(p, "0123", 4, &consumed), IMAP_PARSE_MORE);
	CHECK_INT(imap_parser_feed(p, "4567", 4, &consumed), IMAP_PARSE_MORE);
	CHECK_INT(r.calls, 2);
	CHECK_INT(r.bytes.len, 8);
	imap_parser_reset(p);
	CHECK_INT(imap_parser_feed(p, "A3 NOOP\r\n", 9, &consumed), IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->tag, "A3");
	CHECK_INT(r.bytes.len, 8);	/* the sink is not called again */

	/* The same for a non-synchronizing literal, and small literals are
	 * not offered. */
	CHECK_INT(imap_parser_feed(p, "A4 APPEND x {9+}\r\nab", 20, &consumed), IMAP_PARSE_LITERAL);
	imap_parser_literal_stream(p, sink_record, &r);
	CHECK_INT(imap_parser_feed(p, "ab", 2, &consumed), IMAP_PARSE_MORE);
	imap_parser_reset(p);
	CHECK_INT(r.bytes.len, 10);
	CHECK_INT(imap_parser_feed(p, "A5 X {8+}\r\n12345678\r\n", 22, &consumed), IMAP_PARSE_COMMAND);
	CHECK(!imap_parser_command(p)->args[0].streamed);

	/* Streaming off again (as before login): plain literals. */
	imap_parser_set_limits(p, NULL);
	CHECK_INT(imap_parser_feed(p, "A6 X {9+}\r\n123456789\r\n", 23, &consumed), IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->args[0].str, "123456789");

	/* Freed in the middle of a streamed literal: nothing leaks. */
	imap_parser_set_limits(p, &l);
	CHECK_INT(imap_parser_feed(p, "A7 APPEND x {100}\r\n", 20, &consumed), IMAP_PARSE_LITERAL);
	imap_parser_literal_stream(p, sink_record, &r);
	CHECK_INT(imap_parser_feed(p, "abc", 3, &consumed), IMAP_PARSE_MORE);
	imap_parser_free(&p);
	CHECK_INT(r.bytes.len, 13);
	buf_free(&r.bytes);

	/* A big streamed literal: the parser's memory does not follow it. */
	p = imap_parser_new(&l);
	buf_clear(&r.bytes);
	size_t big = 8u << 20;
	char head[64];
	int n = snprintf(head, sizeof(head), "A8 APPEND x {%zu+}\r\n", big);
	CHECK_INT(imap_parser_feed(p, head, (size_t)n, &consumed), IMAP_PARSE_LITERAL);
	uint64_t total = 0;
	imap_parser_literal_stream(p, sink_record, &r);
	char chunk[65536];
	memset(chunk, 'z', sizeof(chunk));
	for (size_t off = 0; off < big; off += sizeof(chunk)) {
		CHECK_INT(imap_parser_feed(p, chunk, sizeof(chunk), &consumed), IMAP_PARSE_MORE);
		/* Each chunk goes straight through, whole. */
		CHECK_INT(r.bytes.len, sizeof(chunk));
		total += r.bytes.len;
		buf_clear(&r.bytes);
	}
	CHECK_INT(total, big);
	CHECK_INT(imap_parser_feed(p, "\r\n", 2, &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(imap_parser_command(p)->args[1].len, big);
	buf_free(&r.bytes);
	imap_parser_free(&p);
}

/* Random inputs built from grammar fragments: whatever the parser makes of
 * them, it must make the same of them however they are split. */
static void test_random_splits(void)
{
	static const char *const frags[] = {
		"\r\nt X ", "\r\nt X ", "\r\nt IDLE\r\n", "{3}\r\n", "{2+}\r\n", "{4+}\r\n", "{0}\r\n", "~{1+}\r\n", "{9+}\r\n",
		"\"", "\\", "(", ")", " ", "\r", "\n", "\r\n", "[", "]", "abc", "\\Seen", "<0.5>",
		"{99999999999999999999}\r\n", "NIL", "\xc3\xa9", "%", "*", "+", "{", "}", "b",
	};
	const size_t nfrags = sizeof(frags) / sizeof(frags[0]);
	uint64_t rng = 0x9e3779b97f4a7c15u;
	char in[400];
	int failures = 0;
	for (int round = 0; round < 3000 && failures == 0; round++) {
		size_t len = 4;
		memcpy(in, "t X ", 4);
		while (len < sizeof(in) - 32) {
			rng = rng * 6364136223846793005u + 1442695040888963407u;
			if ((rng >> 60) == 0)
				break;
			const char *f = frags[(rng >> 33) % nfrags];
			memcpy(in + len, f, strlen(f));
			len += strlen(f);
		}
		struct pcase c = { "random", in, len, NULL, 24, 8, 3, (rng >> 20) & 1 };
		case_stream_threshold = (rng >> 21) & 1 ? 2 : 0;
		char *whole = run_split(&c, NULL, 0);
		size_t cuts[8], ncuts = 0;
		for (size_t i = 0; i < 8 && len > 0; i++) {
			rng = rng * 6364136223846793005u + 1442695040888963407u;
			size_t cut = (rng >> 33) % (len + 1);
			size_t k = ncuts++;
			while (k > 0 && cuts[k - 1] > cut) {
				cuts[k] = cuts[k - 1];
				k--;
			}
			cuts[k] = cut;
		}
		char *split = run_split(&c, cuts, ncuts);
		size_t *all = malloc((len + 1) * sizeof(*all));
		for (size_t i = 0; i < len; i++)
			all[i] = i + 1;
		char *bytes = run_split(&c, all, len > 0 ? len - 1 : 0);
		if (strcmp(whole, split) != 0 || strcmp(whole, bytes) != 0) {
			fprintf(stderr, "random input %d differs:\n%s----\n%s----\n%s----\n", round,
				whole, split, bytes);
			failures++;
		}
		free(all);
		free(whole);
		free(split);
		free(bytes);
	}
	case_stream_threshold = 0;
	CHECK_INT(failures, 0);
}

int main(void)
{
	RUN(test_grammar);
	RUN(test_literals);
	RUN(test_errors);
	RUN(test_line_limits);
	RUN(test_pipelining);
	RUN(test_line_mode);
	RUN(test_api);
	RUN(test_arg_limit);
	RUN(test_streaming);
	RUN(test_streaming_api);
	RUN(test_random_splits);
	return harness_finish();
}
