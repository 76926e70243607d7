/* Tests for writing IMAP strings. */
#include "harness.h"

#include "core/buf.h"
#include "imap/quote.h"

#include <string.h>

enum kind { ASTRING, STRING, STRING_UTF8, NSTRING, TEXT };

struct qcase {
	enum kind kind;
	const char *in;		/* NULL for nstring NIL */
	size_t len;
	const char *expect;
	size_t expect_len;
};

#define Q(kind, in, out) { kind, in, sizeof(in) - 1, out, sizeof(out) - 1 }

static const struct qcase cases[] = {
	Q(ASTRING, "INBOX", "INBOX"),
	Q(ASTRING, "a.b-c_d[e", "a.b-c_d[e"),
	Q(ASTRING, "~peter/&U,BTFw-", "~peter/&U,BTFw-"),
	Q(ASTRING, "", "\"\""),
	Q(ASTRING, "NIL", "\"NIL\""),
	Q(ASTRING, "nil", "\"nil\""),
	Q(ASTRING, "NILS", "NILS"),
	Q(ASTRING, "a b", "\"a b\""),
	Q(ASTRING, "a(b", "\"a(b\""),
	Q(ASTRING, "a)b", "\"a)b\""),
	Q(ASTRING, "a{b", "\"a{b\""),
	Q(ASTRING, "a%b", "\"a%b\""),
	Q(ASTRING, "a*b", "\"a*b\""),
	Q(ASTRING, "a]b", "\"a]b\""),
	Q(ASTRING, "a\"b", "\"a\\\"b\""),
	Q(ASTRING, "a\\b", "\"a\\\\b\""),
	Q(ASTRING, "\\Seen", "\"\\\\Seen\""),
	Q(ASTRING, "a\tb", "\"a\tb\""),
	Q(ASTRING, "a\x7f", "\"a\x7f\""),
	Q(ASTRING, "caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9"),
	Q(ASTRING, "a\r\nb", "{4}\r\na\r\nb"),
	Q(STRING, "", "\"\""),
	Q(STRING, "plain", "\"plain\""),
	Q(STRING, "\"\\\"", "\"\\\"\\\\\\\"\""),
	Q(STRING, "a\nb", "{3}\r\na\nb"),
	Q(STRING, "a\rb", "{3}\r\na\rb"),
	Q(STRING, "a\0b", "{3}\r\na\0b"),
	Q(STRING, "caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9"),
	Q(STRING_UTF8, "caf\xc3\xa9", "\"caf\xc3\xa9\""),
	Q(STRING_UTF8, "bad\xc3(", "{5}\r\nbad\xc3("),
	Q(STRING_UTF8, "a\r", "{2}\r\na\r"),
	Q(NSTRING, "x", "\"x\""),
	Q(NSTRING, "", "\"\""),
	Q(TEXT, "hello world", "hello world"),
	Q(TEXT, "a\r\nb\0c", "a  b c"),
	Q(TEXT, "\r\n", "  "),
	Q(TEXT, "", ""),
};

static void write_case(struct buf *out, const struct qcase *c)
{
	switch (c->kind) {
	case ASTRING: imap_write_astring(out, c->in, c->len); break;
	case STRING: imap_write_string(out, c->in, c->len, false); break;
	case STRING_UTF8: imap_write_string(out, c->in, c->len, true); break;
	case NSTRING: imap_write_nstring(out, c->in, c->len, false); break;
	case TEXT: imap_write_text(out, c->in, c->len); break;
	}
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf out = BUF_INIT;
		buf_append_str(&out, "<");
		write_case(&out, &cases[i]);
		if (out.len != cases[i].expect_len + 1 ||
		    memcmp(out.data + 1, cases[i].expect, cases[i].expect_len) != 0) {
			fprintf(stderr, "case %zu (\"%s\"): got \"%s\"\n", i, cases[i].in, out.data + 1);
			CHECK(!"quote case");
		}
		buf_free(&out);
	}
}

static void test_nil_and_long(void)
{
	struct buf out = BUF_INIT;
	imap_write_nstring(&out, NULL, 0, false);
	CHECK_STR(out.data, "NIL");
	buf_clear(&out);

	char s[1100];
	memset(s, 'a', sizeof(s));
	s[5] = ' ';
	imap_write_string(&out, s, 1024, false);
	CHECK_INT(out.len, 1026);
	CHECK(out.data[0] == '"' && out.data[1025] == '"');
	buf_clear(&out);
	imap_write_string(&out, s, 1025, false);
	CHECK(strncmp(out.data, "{1025}\r\n", 8) == 0);
	CHECK_INT(out.len, 8 + 1025);
	buf_clear(&out);
	imap_write_astring(&out, s + 6, 1000);	/* a long atom stays an atom */
	CHECK_INT(out.len, 1000);
	buf_free(&out);
}

int main(void)
{
	RUN(test_table);
	RUN(test_nil_and_long);
	return harness_finish();
}
