/* FETCH data item parsing (RFC 3501 6.4.5, 9). Each case is the text after
 * "a FETCH 1 " as a client sends it; it goes through the real command
 * parser (so sections arrive as single atoms, as in the server) and then
 * through fetch_parse(). The result is rendered as one line:
 *	UID FLAGS ... for simple items, in the order asked;
 *	NAME/peek<o.n> for sections: the response name, "/peek" when \Seen
 *	is left alone, the partial when given.
 * A NULL expectation means a BAD whose text must contain `error`. */
#include "harness.h"

#include "core/buf.h"
#include "imap/fetch_parse.h"
#include "imap/parser.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct fcase {
	const char *in;
	const char *expect;	/* NULL: must fail */
	const char *error;	/* a part of the error text */
};

static const struct fcase cases[] = {
	/* Simple items and macros. */
	{ "FLAGS", "FLAGS", NULL },
	{ "uid", "UID", NULL },
	{ "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)",
	  "UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE", NULL },
	{ "ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE", NULL },
	{ "fast", "FLAGS INTERNALDATE RFC822.SIZE", NULL },
	{ "FULL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY", NULL },
	{ "(FLAGS FLAGS uid UID)", "FLAGS UID", NULL },
	/* RFC822 forms keep their names; HEADER is a peek. */
	{ "RFC822", "RFC822", NULL },
	{ "(RFC822.HEADER RFC822.TEXT)", "RFC822.HEADER/peek RFC822.TEXT", NULL },
	/* Sections. */
	{ "BODY[]", "BODY[]", NULL },
	{ "body.peek[]", "BODY[]/peek", NULL },
	{ "BODY[HEADER]", "BODY[HEADER]", NULL },
	{ "BODY[text]", "BODY[TEXT]", NULL },
	{ "BODY[1]", "BODY[1]", NULL },
	{ "BODY[1.2.3]", "BODY[1.2.3]", NULL },
	{ "BODY[4.2.HEADER]", "BODY[4.2.HEADER]", NULL },
	{ "BODY[3.TEXT]", "BODY[3.TEXT]", NULL },
	{ "BODY[4.1.MIME]", "BODY[4.1.MIME]", NULL },
	{ "BODY[HEADER.FIELDS (From To)]", "BODY[HEADER.FIELDS (From To)]", NULL },
	{ "BODY.PEEK[header.fields.not (Subject)]", "BODY[HEADER.FIELDS.NOT (Subject)]/peek", NULL },
	{ "BODY[HEADER.FIELDS (\"From\" \"X-Odd(\")]", "BODY[HEADER.FIELDS (From \"X-Odd(\")]", NULL },
	{ "BODY[2.HEADER.FIELDS (DATE)]", "BODY[2.HEADER.FIELDS (DATE)]", NULL },
	{ "BODY[]<0.10>", "BODY[]<0.10>", NULL },
	{ "BODY.PEEK[TEXT]<100.4294967296>", "BODY[TEXT]/peek<100.4294967296>", NULL },
	{ "(BODY[] BODY.PEEK[])", "BODY[]", NULL },	/* one answer, \Seen set */
	{ "(BODY.PEEK[] BODY.PEEK[])", "BODY[]/peek", NULL },
	{ "(BODY[]<0.5> BODY[]<5.5>)", "BODY[]<0.5> BODY[]<5.5>", NULL },
	{ "(UID BODY.PEEK[HEADER.FIELDS (A B C)] FLAGS)",
	  "UID BODY[HEADER.FIELDS (A B C)]/peek FLAGS", NULL },
	/* Errors. */
	{ "()", NULL, "Empty list" },
	{ "NOPE", NULL, "Unknown FETCH data item" },
	{ "(FLAGS ALL)", NULL, "must be used alone" },
	{ "(FAST)", NULL, "must be used alone" },
	{ "\"FLAGS\"", NULL, "atom or a parenthesised list" },
	{ "(FLAGS \"UID\")", NULL, "not strings" },
	{ "(FLAGS (UID))", NULL, "Nested lists" },
	{ "BODY.PEEK", NULL, "Unknown FETCH data item" },
	{ "BODY[MIME]", NULL, "MIME needs a part number" },
	{ "BODY[0]", NULL, "non-zero" },
	{ "BODY[01]", NULL, "leading zeros" },
	{ "BODY[1.]", NULL, "ends with '.'" },
	{ "BODY[1..2]", NULL, "Unknown section" },
	{ "BODY[.1]", NULL, "Unknown section" },
	{ "BODY[1HEADER]", NULL, "separated by '.'" },
	{ "BODY[4294967296]", NULL, "non-zero" },
	{ "BODY[HEADERS]", NULL, "end with ']'" },
	{ "BODY[FOO]", NULL, "Unknown section" },
	{ "BODY[HEADER.FIELDS]", NULL, "parenthesised list" },
	{ "BODY[HEADER.FIELDS ()]", NULL, "Empty header field name" },
	{ "BODY[HEADER.FIELDS (A  B)]", NULL, "Empty header field name" },
	{ "BODY[HEADER.FIELDS (A B]", NULL, "separated by single spaces" },
	{ "BODY[HEADER.FIELDS (\"A:B\")]", NULL, "without ':'" },
	{ "BODY[HEADER.FIELDS (\"\")]", NULL, "Empty header field name" },
	{ "BODY[HEADER.FIELDS (\"A\\B\")]", NULL, "Invalid escape" },
	{ "BODY[HEADER.FIELDS (\"A)]", NULL, "Missing ']'" },	/* the command parser sees it */
	{ "BODY[]<>", NULL, "Partial must be" },
	{ "BODY[]<1>", NULL, "Partial must be" },
	{ "BODY[]<1.0>", NULL, "octets greater than 0" },
	{ "BODY[]<1.2", NULL, "octets greater than 0" },
	{ "BODY[]<-1.2>", NULL, "Partial must be" },
	{ "BODY[]<99999999999999999999.1>", NULL, "Partial must be" },
	{ "BODY[]<0.1>x", NULL, "Unexpected text" },
	{ "BODY[]x", NULL, "Unexpected text" },
	{ "BINARY[1]", NULL, "BINARY is not supported" },
	{ "RFC822.SIZEX", NULL, "Unknown FETCH data item" },
};

static void render(const struct fetch_request *req, struct buf *out)
{
	static const char *const names[] = {
		[FETCH_UID] = "UID",
		[FETCH_FLAGS] = "FLAGS",
		[FETCH_INTERNALDATE] = "INTERNALDATE",
		[FETCH_RFC822_SIZE] = "RFC822.SIZE",
		[FETCH_ENVELOPE] = "ENVELOPE",
		[FETCH_BODY] = "BODY",
		[FETCH_BODYSTRUCTURE] = "BODYSTRUCTURE",
	};
	for (size_t i = 0; i < req->count; i++) {
		const struct fetch_item *it = &req->items[i];
		if (i > 0)
			buf_append_char(out, ' ');
		if (it->type != FETCH_SECTION) {
			buf_append_str(out, names[it->type]);
			continue;
		}
		buf_append_str(out, it->section->name);
		if (it->section->peek)
			buf_append_str(out, "/peek");
		if (it->section->partial)
			buf_printf(out, "<%llu.%llu>", (unsigned long long)it->section->origin,
				   (unsigned long long)it->section->octets);
	}
}

/* Runs the command parser over "a FETCH 1 <in>" and the FETCH parser over
 * its second argument. Returns 0 with the rendering, -1 with the error. */
static int run_case(const char *in, struct buf *out)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct buf line = BUF_INIT;
	buf_printf(&line, "a FETCH 1 %s\r\n", in);
	size_t consumed = 0;
	enum imap_parse_result r = imap_parser_feed(p, line.data, line.len, &consumed);
	int ret = -1;
	if (r != IMAP_PARSE_COMMAND) {
		buf_printf(out, "command parser: %s", imap_parser_error(p));
	} else {
		const struct imap_command *cmd = imap_parser_command(p);
		struct fetch_request req;
		const char *error = NULL;
		if (cmd->arg_count != 2) {
			buf_append_str(out, "argument count");
		} else if (fetch_parse(&cmd->args[1], &req, &error) < 0) {
			buf_append_str(out, error);
			CHECK(req.count == 0 && req.items == NULL);
		} else {
			render(&req, out);
			fetch_request_free(&req);
			ret = 0;
		}
	}
	buf_free(&line);
	imap_parser_free(&p);
	return ret;
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fcase *c = &cases[i];
		struct buf out = BUF_INIT;
		int r = run_case(c->in, &out);
		const char *got = out.data ? out.data : "";
		if (c->expect != NULL) {
			if (r != 0 || strcmp(got, c->expect) != 0)
				fprintf(stderr, "case %s\n", c->in);
			CHECK(r == 0);
			CHECK_STR(got, c->expect);
		} else {
			if (r == 0 || strstr(got, c->error) == NULL)
				fprintf(stderr, "case %s: got \"%s\"\n", c->in, got);
			CHECK(r < 0);
			CHECK(strstr(got, c->error) != NULL);
		}
		buf_free(&out);
	}
}

/* fetch_parse_item over raw text, without the command parser: bytes the
 * command parser would refuse must still be handled safely. */
static void test_raw_items(void)
{
	static const struct {
		const char *text;
		size_t len;
		bool ok;
	} raw[] = {
		{ "BODY[", 5, false },
		{ "BODY[HEADER.FIELDS (", 20, false },
		{ "BODY[HEADER.FIELDS (\"", 21, false },
		{ "BODY[HEADER.FIELDS (\"a\\", 23, false },
		{ "BODY[1", 6, false },
		{ "BODY[]<", 7, false },
		{ "BODY[]<0.", 9, false },
		{ "BODY[HEADER.FIELDS (\x01)]", 24, false },
		{ "BODY[HEADER.FIELDS (\xff)]", 24, false },
		{ "BODY[]\0", 7, false },
		{ "BODY[1.2]", 9, true },
	};
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		struct fetch_request req = { 0 };
		const char *error = NULL;
		int r = fetch_parse_item(raw[i].text, raw[i].len, &req, &error);
		CHECK_INT(r, raw[i].ok ? 0 : -1);
		CHECK(raw[i].ok || error != NULL);
		fetch_request_free(&req);
	}
}

static void test_many_fields(void)
{
	struct buf in = BUF_INIT;
	buf_append_str(&in, "BODY[HEADER.FIELDS (");
	for (int i = 0; i < FETCH_MAX_FIELDS; i++)
		buf_printf(&in, "%sX-F%d", i ? " " : "", i);
	buf_append_str(&in, ")]");
	struct buf out = BUF_INIT;
	CHECK_INT(run_case(in.data, &out), 0);
	buf_free(&out);
	/* One more is refused. */
	in.len -= 2;
	buf_append_str(&in, " X-Last)]");
	CHECK_INT(run_case(in.data, &out), -1);
	CHECK(strstr(out.data, "Too many") != NULL);
	buf_free(&out);
	buf_free(&in);
}

static void test_has(void)
{
	struct fetch_request req = { 0 };
	const char *error = NULL;
	CHECK_INT(fetch_parse_item("BODY[1]", 7, &req, &error), 0);
	CHECK(fetch_request_has(&req, FETCH_SECTION));
	CHECK(!fetch_request_has(&req, FETCH_UID));
	fetch_request_free(&req);
	CHECK(req.count == 0);
}

int main(void)
{
	RUN(test_table);
	RUN(test_raw_items);
	RUN(test_many_fields);
	RUN(test_has);
	return harness_finish();
}
