/* Modified UTF-7 (RFC 3501 5.1.3) tests. */
#include "harness.h"

#include "core/buf.h"
#include "imap/utf7.h"

#include <string.h>

static int to8(const char *in, struct buf *out)
{
	buf_clear(out);
	return imap_utf7_to_utf8(in, strlen(in), out);
}

static int to7(const char *in, struct buf *out)
{
	buf_clear(out);
	return imap_utf8_to_utf7(in, strlen(in), out);
}

struct pair {
	const char *utf7;
	const char *utf8;
};

static const struct pair pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "&U,BTF2XlZyyKng-", "\xe5\x8f\xb0\xe5\x8c\x97\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "&Jjo-!", "\xe2\x98\xba!" },
	{ "&-", "&" },
	{ "a&-b&-&-", "a&b&&" },
	{ "Entw&APw-rfe", "Entw\xc3\xbc" "rfe" },
	{ "&AOQA9gD8-", "\xc3\xa4\xc3\xb6\xc3\xbc" },
	{ "&2D3eAA-", "\xf0\x9f\x98\x80" },			/* U+1F600, a surrogate pair */
	{ "x&2D3eANg93gE-y", "x\xf0\x9f\x98\x80\xf0\x9f\x98\x81y" },
	{ "&AAk-", "\t" },					/* control: encoded */
	{ "&AH8-", "\x7f" },
	{ "&AOk-&-", "\xc3\xa9&" },
	{ " ~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}", " ~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}" },
};

static void test_round_trips(void)
{
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		CHECK_INT(to8(pairs[i].utf7, &out), 0);
		CHECK_STR(out.data ? out.data : "", pairs[i].utf8);
		CHECK_INT(to7(pairs[i].utf8, &out), 0);
		CHECK_STR(out.data ? out.data : "", pairs[i].utf7);
	}
	/* Every BMP scalar value and a spread above it, one by one, and long
	 * runs which exercise every base64 bit alignment. */
	struct buf in = BUF_INIT, back = BUF_INIT;
	for (uint32_t cp = 1; cp < 0x110000; cp += cp < 0x10000 ? 1 : 97) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		char u[4];
		size_t n;
		if (cp < 0x80) {
			u[0] = (char)cp; n = 1;
		} else if (cp < 0x800) {
			u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2;
		} else if (cp < 0x10000) {
			u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
		} else {
			u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
		}
		buf_append(&in, u, n);
		if (cp % 7 == 0)
			buf_append_char(&in, 'a');
		buf_clear(&out);
		buf_clear(&back);
		if (imap_utf8_to_utf7(u, n, &out) != 0 || imap_utf7_to_utf8(out.data, out.len, &back) != 0 ||
		    back.len != n || memcmp(back.data, u, n) != 0) {
			CHECK(!"round trip of one code point");
			break;
		}
	}
	buf_clear(&out);
	buf_clear(&back);
	CHECK_INT(imap_utf8_to_utf7(in.data, in.len, &out), 0);
	CHECK_INT(imap_utf7_to_utf8(out.data, out.len, &back), 0);
	CHECK(back.len == in.len && memcmp(back.data, in.data, in.len) == 0);
	/* Output is appended, not replacing. */
	buf_clear(&out);
	buf_append_str(&out, "pre:");
	CHECK_INT(imap_utf8_to_utf7("\xc3\xa9", 2, &out), 0);
	CHECK_STR(out.data, "pre:&AOk-");
	buf_free(&in);
	buf_free(&back);
	buf_free(&out);
}

static void test_invalid_utf7(void)
{
	static const char *const bad[] = {
		"&",			/* unterminated shift */
		"&Jjo!",		/* RFC 3501's example: no shift back */
		"&Jjo",
		"&AGE-",		/* 'a' in base64: must stand for itself */
		"&ACY-",		/* '&' in base64 */
		"&ACA-",		/* space */
		"&AAA-",		/* U+0000 */
		"&U,BTFw-&ZeVnLIqe-",	/* superfluous shift */
		"&AOk-&AOk-",
		"&U/BTFw-",		/* '/' is not modified base64 */
		"&U,BTF-",		/* 30 bits: a partial unit */
		"&AO-",			/* 12 bits: incomplete unit */
		"&AOkA-",		/* 30 bits: 14 left over */
		"&AOkAQ-",		/* leftover bits nonzero */
		"&2D0-",		/* lone high surrogate */
		"&2D3YPQ-",		/* high surrogate then high surrogate */
		"&3gA-",		/* lone low surrogate */
		"&AOk=-",		/* padding */
		"caf\xc3\xa9",		/* raw 8-bit */
		"a\tb",			/* raw control */
		"a\x7f",
	};
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_clear(&out);
		buf_append_str(&out, "keep");
		if (imap_utf7_to_utf8(bad[i], strlen(bad[i]), &out) != -1) {
			fprintf(stderr, "accepted invalid utf7 \"%s\"\n", bad[i]);
			CHECK(!"invalid utf7 accepted");
		}
		CHECK_STR(out.data, "keep");
	}
	/* A NUL byte in the input. */
	CHECK_INT(imap_utf7_to_utf8("a\0b", 3, &out), -1);
	buf_free(&out);
}

static void test_invalid_utf8(void)
{
	static const char *const bad[] = {
		"\x80",			/* stray continuation */
		"\xc3",			/* truncated */
		"\xc0\xaf",		/* overlong '/' */
		"\xe0\x80\xaf",		/* overlong */
		"\xf0\x80\x80\xaf",	/* overlong */
		"\xed\xa0\x80",		/* surrogate U+D800 */
		"\xf4\x90\x80\x80",	/* U+110000 */
		"\xf5\x80\x80\x80",
		"\xff",
		"a\xe2\x98",		/* truncated at end */
		"\xe2\x28\xa1",		/* bad continuation */
	};
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_clear(&out);
		buf_append_str(&out, "keep");
		CHECK_INT(imap_utf8_to_utf7(bad[i], strlen(bad[i]), &out), -1);
		CHECK_STR(out.data, "keep");
		CHECK(!imap_utf8_is_valid(bad[i], strlen(bad[i])));
	}
	CHECK_INT(imap_utf8_to_utf7("a\0b", 3, &out), -1);
	CHECK(imap_utf8_is_valid("a\xc3\xa9\xf0\x9f\x98\x80", 7));
	uint32_t cp = 0;
	CHECK_INT(imap_utf8_decode("\xf4\x8f\xbf\xbf", 4, &cp), 4);
	CHECK_INT(cp, 0x10ffff);
	CHECK_INT(imap_utf8_decode("", 0, &cp), 0);
	buf_free(&out);
}

int main(void)
{
	RUN(test_round_trips);
	RUN(test_invalid_utf7);
	RUN(test_invalid_utf8);
	return harness_finish();
}
