/* SEARCH matching helpers: case folding and RFC 5322 sent dates. */
#include "harness.h"

#include "core/buf.h"
#include "imap/search_parse.h"
#include "imapd/search_match.h"

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

int main(void)
{
	RUN(test_fold);
	RUN(test_sent_date);
	return harness_finish();
}
