/* LMTP syntax: the DATA reader (dot-unstuffing, line endings, the end
 * line, the size limit), paths and recipient addresses. Every DATA case is
 * also fed one byte at a time. */
#include "harness.h"
#include "core/limits.h"
#include "lmtp/address.h"
#include "lmtp/data.h"

#include <stdlib.h>
#include <string.h>

struct data_case {
	const char *in;
	const char *out;	/* the message; NULL: too big */
	size_t rest;		/* bytes left after the end line */
	int done;
};

static const struct data_case data_cases[] = {
	{ ".\r\n", "", 0, 1 },
	{ "a\r\n.\r\n", "a\r\n", 0, 1 },
	{ "a\r\n.\r\nQUIT\r\n", "a\r\n", 6, 1 },
	{ "a\nb\n.\n", "a\r\nb\r\n", 0, 1 },			/* bare LF lines */
	{ "a\r\nb\n.\r\n", "a\r\nb\r\n", 0, 1 },		/* mixed */
	{ "..\r\n.\r\n", ".\r\n", 0, 1 },			/* a line holding one dot */
	{ "..x\r\n...\r\n.\r\n", ".x\r\n..\r\n", 0, 1 },
	{ ".x\r\n.\r\n", "x\r\n", 0, 1 },			/* unneeded stuffing */
	{ "a.\r\n.b\r\n.\r\n", "a.\r\nb\r\n", 0, 1 },
	{ "a\rb\r\n.\r\n", "a\rb\r\n", 0, 1 },			/* bare CR kept */
	{ ".\rx\r\n.\r\n", "\rx\r\n", 0, 1 },
	{ "a\r\n.\r", "a\r\n", 0, 0 },				/* not finished */
	{ "a\r\n. \r\n.\r\n", "a\r\n \r\n", 0, 1 },
	{ "a\r\n", "a\r\n", 0, 0 },
};

static void run_data_case(const struct data_case *c, size_t step, uint64_t limit)
{
	struct buf out = BUF_INIT;
	struct lmtp_data d;
	lmtp_data_init(&d, &out, limit);
	size_t len = strlen(c->in), pos = 0;
	int done = 0;
	while (pos < len && !done) {
		size_t n = step == 0 || len - pos < step ? len - pos : step;
		size_t used = 0;
		done = lmtp_data_feed(&d, c->in + pos, n, &used);
		CHECK(used <= n);
		CHECK(done || used == n);
		pos += used;
	}
	CHECK_INT(done, c->done);
	if (c->done)
		CHECK_INT(len - pos, c->rest);
	if (c->out == NULL) {
		CHECK(d.too_big);
	} else {
		CHECK(!d.too_big);
		CHECK_INT(out.len, strlen(c->out));
		CHECK(out.len == strlen(c->out) && memcmp(out.data ? out.data : "", c->out, out.len) == 0);
	}
	buf_free(&out);
}

static void test_data_cases(void)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		run_data_case(&data_cases[i], 0, 1000);
		run_data_case(&data_cases[i], 1, 1000);
		run_data_case(&data_cases[i], 2, 1000);
	}
}

static void test_data_limit(void)
{
	/* 10 bytes of message fit a limit of 10; 11 do not, and the reader
	 * still finds the end line. */
	static const struct data_case fits = { "12345678\r\n.\r\nNOOP", "12345678\r\n", 4, 1 };
	static const struct data_case over = { "123456789\r\n.\r\nNOOP", NULL, 4, 1 };
	for (size_t step = 0; step < 3; step++) {
		run_data_case(&fits, step, 10);
		run_data_case(&over, step, 10);
	}
	/* A big message past the limit keeps no memory. */
	struct buf out = BUF_INIT;
	struct lmtp_data d;
	lmtp_data_init(&d, &out, 100);
	char chunk[4096];
	memset(chunk, 'x', sizeof(chunk));
	size_t used;
	for (int i = 0; i < 100; i++)
		CHECK_INT(lmtp_data_feed(&d, chunk, sizeof(chunk), &used), 0);
	CHECK(d.too_big);
	CHECK(out.data == NULL);
	CHECK_INT(d.size, 100 * sizeof(chunk));
	CHECK_INT(lmtp_data_feed(&d, "\r\n.\r\n", 5, &used), 1);
	CHECK_INT(used, 5);
	buf_free(&out);
}

static void check_path(const char *args, int ret, const char *path, const char *params)
{
	char *p = NULL;
	const char *rest = NULL, *error = NULL;
	int r = lmtp_parse_path(args, &p, &rest, &error);
	CHECK_INT(r, ret);
	if (r == 0) {
		CHECK_STR(p, path);
		CHECK_STR(rest, params);
	} else {
		CHECK(error != NULL);
	}
	free(p);
}

static void test_paths(void)
{
	check_path("<alice@example.org>", 0, "alice@example.org", "");
	check_path("<>", 0, "", "");
	check_path(" <a@b> SIZE=10 BODY=8BITMIME", 0, "a@b", "SIZE=10 BODY=8BITMIME");
	check_path("a@b", 0, "a@b", "");
	check_path("<@relay.example,@r2.example:bob@example.org>", 0, "bob@example.org", "");
	check_path("<\"odd > name\"@example.org>", 0, "\"odd > name\"@example.org", "");
	check_path("<a@b", -1, NULL, NULL);
	check_path("<a@b>x", -1, NULL, NULL);
	check_path("<a\x01@b>", -1, NULL, NULL);
	check_path("<@relay:>", 0, "", "");
	check_path("", -1, NULL, NULL);
	char long_path[LIMIT_LMTP_PATH + 10];
	memset(long_path, 'a', sizeof(long_path));
	long_path[0] = '<';
	long_path[sizeof(long_path) - 2] = '>';
	long_path[sizeof(long_path) - 1] = '\0';
	check_path(long_path, -1, NULL, NULL);
}

static void test_address_split(void)
{
	struct lmtp_address a;
	CHECK_INT(lmtp_address_split("alice", &a), 0);
	CHECK_STR(a.user, "alice");
	CHECK(a.detail == NULL && a.domain == NULL);
	lmtp_address_free(&a);
	CHECK_INT(lmtp_address_split("alice+lists@example.org", &a), 0);
	CHECK_STR(a.user, "alice");
	CHECK_STR(a.detail, "lists");
	CHECK_STR(a.domain, "example.org");
	lmtp_address_free(&a);
	CHECK_INT(lmtp_address_split("bob+a+b@x@example.org", &a), 0);
	CHECK_STR(a.user, "bob");
	CHECK_STR(a.detail, "a+b@x");
	CHECK_STR(a.domain, "example.org");
	lmtp_address_free(&a);
	CHECK_INT(lmtp_address_split("carol+@example.org", &a), 0);
	CHECK_STR(a.detail, "");
	lmtp_address_free(&a);
	CHECK_INT(lmtp_address_split("+x@example.org", &a), -1);
	lmtp_address_free(&a);
	CHECK_INT(lmtp_address_split("@example.org", &a), -1);
	lmtp_address_free(&a);
}

static void test_params(void)
{
	const char *p = "SIZE=123  BODY=8BITMIME SMTPUTF8";
	char key[8], value[8];
	CHECK(lmtp_next_param(&p, key, sizeof(key), value, sizeof(value)));
	CHECK_STR(key, "SIZE");
	CHECK_STR(value, "123");
	CHECK(lmtp_next_param(&p, key, sizeof(key), value, sizeof(value)));
	CHECK_STR(key, "BODY");
	CHECK_STR(value, "8BITMIM");	/* truncated to the array */
	CHECK(lmtp_next_param(&p, key, sizeof(key), value, sizeof(value)));
	CHECK_STR(key, "SMTPUTF");
	CHECK_STR(value, "");
	CHECK(!lmtp_next_param(&p, key, sizeof(key), value, sizeof(value)));
}

int main(void)
{
	RUN(test_data_cases);
	RUN(test_data_limit);
	RUN(test_paths);
	RUN(test_address_split);
	RUN(test_params);
	return harness_finish();
}
