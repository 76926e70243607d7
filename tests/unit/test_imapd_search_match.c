/* SEARCH matching helpers: case folding and RFC 5322 sent dates. */
#include "harness.h"

#include "core/buf.h"
#include "imap/search_parse.h"
#include "imapd/search_match.h"
#include "imapd/search_text.h"
#include "mime/mime.h"

#include <stdlib.h>
#include <string.h>

static const char *fold(const char *in, struct buf *out)
{
	buf_clear(out);
	search_fold(in, strlen(in), out);
	return out->data ? out->data : "";
}

static void test_fold(void)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "", "" },
		{ "Hello WORLD 123 @[]", "hello world 123 @[]" },
		{ "ÄPFEL Öl ÜBER ÀÉÎÕÇ ÞÝ", "äpfel öl über àéîõç þý" },
		{ "×÷ß", "×÷ß" },			/* no case, sharp s stays (simple folding) */
		{ "ẞ", "ß" },
		{ "ŁÓDŹ ŻÓŁW ČEŠKÁ ŘEKA Ÿ ſ", "łódź żółw češká řeka ÿ s" },
		{ "ĲǄǅǱ", "ĳǆǆǳ" },
		{ "ΣΟΦΊΑ ΆΈΉΊΌΎΏ ς", "σοφία άέήίόύώ σ" },
		{ "ПРИВЕТ МИР ЁЖ ЇЖАК Ґ", "привет мир ёж їжак ґ" },
		{ "ԱՐԵՎ", "արեվ" },
		{ "ẠẢẤ Ḃ", "ạảấ ḃ" },
		{ "ἈἘἨ", "ἀἐἠ" },
		{ "ＡＢＣ", "ａｂｃ" },
		{ "K Å Ω µ", "k å ω μ" },
		{ "日本語 😀", "日本語 😀" },
		/* Not UTF-8: bytes kept as they are. */
		{ "\xC4PFEL \xff\xfe", "\xC4pfel \xff\xfe" },
		{ "\xc0\xaf \xed\xa0\x80 \xe2\x82", "\xc0\xaf \xed\xa0\x80 \xe2\x82" },
	};
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_STR(fold(cases[i].in, &out), cases[i].out);
	/* Folding is idempotent. */
	struct buf twice = BUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fold(cases[i].in, &out);
		buf_clear(&twice);
		search_fold(out.data ? out.data : "", out.len, &twice);
		CHECK_STR(twice.data ? twice.data : "", out.data ? out.data : "");
	}
	/* A NUL byte is data, not an end. */
	buf_clear(&out);
	search_fold("A\0B", 3, &out);
	CHECK_INT(out.len, 3);
	CHECK(memcmp(out.data, "a\0b", 3) == 0);
	buf_free(&twice);
	buf_free(&out);
}

static int64_t sent(const char *value)
{
	int64_t day = 0;
	return search_parse_sent_date(value, strlen(value), &day) < 0 ? -999999 : day;
}

static void test_sent_date(void)
{
	int64_t jul1 = search_days_from_civil(2024, 7, 1);
	CHECK_INT(sent("Mon, 1 Jul 2024 23:30:00 -0700"), jul1);
	CHECK_INT(sent("1 Jul 2024 00:00 +1400"), jul1);
	CHECK_INT(sent("  Mon,  01 jul 2024 10:00:00 GMT"), jul1);
	CHECK_INT(sent("(comment) Mon, 1 (x) Jul 2024 10:00:00 +0000"), jul1);
	CHECK_INT(sent("Monday, 1-Jul-2024"), jul1);
	CHECK_INT(sent("1 Jul 24 10:00"), jul1);			/* RFC 5322 4.3 */
	CHECK_INT(sent("1 Jul 99"), search_days_from_civil(1999, 7, 1));
	CHECK_INT(sent("1 Jul 124"), jul1);
	CHECK_INT(sent(""), -999999);
	CHECK_INT(sent("garbage"), -999999);
	CHECK_INT(sent("Mon, Jul 2024"), -999999);
	CHECK_INT(sent("32 Jul 2024"), -999999);
	CHECK_INT(sent("1 Foo 2024"), -999999);
	CHECK_INT(sent("1 Jul 20245"), -999999);
	CHECK_INT(sent("((((("), -999999);
}

static void test_index_needle(void)
{
	static const struct { const char *in; size_t len; bool ok; size_t chars; } cases[] = {
		{ "abc", 3, true, 3 },
		{ "", 0, true, 0 },
		{ "\xc3\xa9t\xc3\xa9", 5, true, 3 },
		{ "\"q\"", 3, true, 3 },
		{ "a\0b", 3, false, 0 },			/* NUL */
		{ "caf\xe9", 4, false, 0 },			/* Latin-1 byte */
		{ "\xc0\xaf", 2, false, 0 },			/* overlong */
		{ "\xed\xa0\x80", 3, false, 0 },		/* surrogate */
		{ "x\xef\xbf\xbdy", 5, false, 0 },		/* U+FFFD: what replacements are */
		{ "x\xef\xbf\xbey", 5, false, 0 },		/* U+FFFE */
		{ "\xf0\x9f\x98\x80" "ab", 6, true, 3 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t chars = 0;
		bool ok = search_text_index_needle(cases[i].in, cases[i].len, &chars);
		CHECK_INT(ok, cases[i].ok);
		if (ok)
			CHECK_INT(chars, cases[i].chars);
	}
}

static void test_for_index(void)
{
	static const struct { const char *in; size_t len; const char *out; } cases[] = {
		{ "plain text", 10, "plain text" },
		{ "caf\xe9 au", 7, "caf\xef\xbf\xbd au" },
		{ "a\0b", 3, "a\xef\xbf\xbd" "b" },
		{ "\xc3\xa9\xc3", 3, "\xc3\xa9\xef\xbf\xbd" },	/* cut sequence at the end */
		{ "\xe2\x82x", 3, "\xef\xbf\xbd\xef\xbf\xbdx" },
		{ "\xef\xbf\xbf!", 4, "\xef\xbf\xbd!" },		/* U+FFFF */
		{ "\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80" },
	};
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_clear(&out);
		search_text_for_index(cases[i].in, cases[i].len, &out);
		CHECK_STR(out.data ? out.data : "", cases[i].out);
	}
	/* Exactness: a valid needle occurs in the text exactly when it occurs
	 * in the indexed form, whatever bytes surround it. */
	const char text[] = "\xe4\xc3\xa9t\xc3\xa9\x80 x\xff\xc3\xa9t\xc3";
	const char *needles[] = { "\xc3\xa9t\xc3\xa9", "t\xc3\xa9", " x", "x\xc3\xa9" };
	bool expected[] = { true, true, true, false };
	buf_clear(&out);
	search_text_for_index(text, sizeof(text) - 1, &out);
	for (size_t i = 0; i < 4; i++) {
		bool raw = memmem(text, sizeof(text) - 1, needles[i], strlen(needles[i])) != NULL;
		bool indexed = memmem(out.data, out.len, needles[i], strlen(needles[i])) != NULL;
		CHECK_INT(raw, expected[i]);
		CHECK_INT(indexed, raw);
	}
	buf_free(&out);
}

static void test_compute(void)
{
	const char msg[] =
		"From: =?iso-8859-1?Q?J=FCrgen?= <j@example.de>\r\n"
		"Subject: Hello\r\n"
		"FROM: Second <s@example.org>\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"\r\n"
		"Body TEXT \xc3\x84pfel\r\n";
	struct mime_part *root = mime_parse(msg, sizeof(msg) - 1);
	struct store_search_text *t = search_text_headers(root, msg);
	CHECK(t != NULL && t->fields_valid);
	/* The delivery path computes no full text. */
	CHECK(t != NULL && t->head == NULL && t->body == NULL);
	CHECK(t != NULL && search_text_full(root, msg, t));
	if (t != NULL) {
		static const char from[] = "=?iso-8859-1?q?j=fcrgen?= <j@example.de>\nj\xc3\xbc"
					   "rgen <j@example.de>\n\0second <s@example.org>\nsecond <s@example.org>\n";
		CHECK_INT(t->field_lens[STORE_SEARCH_FROM], sizeof(from) - 1);
		CHECK(t->fields[STORE_SEARCH_FROM] != NULL &&
		      memcmp(t->fields[STORE_SEARCH_FROM], from, sizeof(from) - 1) == 0);
		CHECK_STR(t->fields[STORE_SEARCH_SUBJECT], "hello\nhello\n");
		CHECK(t->fields[STORE_SEARCH_TO] == NULL && t->fields[STORE_SEARCH_CC] == NULL);
		CHECK_STR(t->body, "body text \xc3\xa4pfel\r\n\n");
		CHECK(t->head != NULL && strstr(t->head, "subject: hello\nhello\n") != NULL);
		CHECK_INT(t->head_len, t->head ? strlen(t->head) : 0);
	}
	store_search_text_free(&t);
	CHECK(t == NULL);
	mime_free(&root);
}

int main(void)
{
	RUN(test_fold);
	RUN(test_sent_date);
	RUN(test_index_needle);
	RUN(test_for_index);
	RUN(test_compute);
	return harness_finish();
}
