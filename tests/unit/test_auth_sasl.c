#include "auth/sasl.h"
#include "core/base64.h"
#include "core/limits.h"
#include "harness.h"

#include <stdlib.h>

/* Encodes raw (with its NULs) and decodes it as a PLAIN response. */
static int decode_raw(const char *raw, size_t len, struct sasl_plain *out, const char **error_r)
{
	struct buf b = BUF_INIT;
	base64_encode(&b, raw, len);
	int r = sasl_plain_decode(b.data != NULL ? b.data : "", b.len, out, error_r);
	buf_free(&b);
	return r;
}

static void test_good(void)
{
	struct sasl_plain p;
	const char *error = "unset";
	/* RFC 4616 4: "\0tim\0tanstaaftanstaaf" */
	const char *msg = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm";
	CHECK_INT(sasl_plain_decode(msg, strlen(msg), &p, &error), 0);
	CHECK(error == NULL);
	CHECK_STR(p.authzid, "");
	CHECK_STR(p.authcid, "tim");
	CHECK_STR(p.password, "tanstaaftanstaaf");
	CHECK_INT(p.password_len, 16);
	sasl_plain_clear(&p);
	CHECK(p.password == NULL && p.authcid == NULL && p.authzid == NULL);
	sasl_plain_clear(&p);	/* twice is harmless */
}

static void test_authzid(void)
{
	struct sasl_plain p;
	const char *error = NULL;
	CHECK_INT(decode_raw("alice\0alice\0pw", 14, &p, &error), 0);
	CHECK_STR(p.authzid, "alice");
	CHECK_STR(p.authcid, "alice");
	CHECK_STR(p.password, "pw");
	sasl_plain_clear(&p);

	/* RFC 4616 4: "Ursel\0Kurt\0xipj3plmq" asks to act as another user. */
	const char *msg = "VXJzZWwAS3VydAB4aXBqM3BsbXE=";
	CHECK_INT(sasl_plain_decode(msg, strlen(msg), &p, &error), -1);
	CHECK_STR(error, "authorization identity not supported");
	CHECK(p.authcid == NULL && p.password == NULL);
	sasl_plain_clear(&p);

	CHECK_INT(decode_raw("alic\0alice\0pw", 13, &p, &error), -1);
	CHECK_STR(error, "authorization identity not supported");
	CHECK_INT(decode_raw("alicex\0alice\0pw", 15, &p, &error), -1);
	CHECK_STR(error, "authorization identity not supported");
}

static void test_bad_base64(void)
{
	struct sasl_plain p;
	const char *error = NULL;
	static const char *const bad[] = { "AHRpbQB0YW5zdGFhZnRhbnN0YWF", "AHRp bQ==", "@@@@", "=" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		CHECK_INT(sasl_plain_decode(bad[i], strlen(bad[i]), &p, &error), -1);
		CHECK_STR(error, "invalid base64");
	}
	CHECK_INT(sasl_plain_decode("", 0, &p, &error), -1);
	CHECK_STR(error, "empty response");
}

static void test_fields(void)
{
	static const struct {
		const char *raw;
		size_t len;
		const char *error;
	} cases[] = {
		{ "alice", 5, "missing NUL separators" },
		{ "\0alice", 6, "missing NUL separator" },
		{ "\0alice\0pw\0x", 11, "too many NUL separators" },
		{ "\0\0pw", 4, "empty user name" },
		{ "\0alice\0", 7, "empty password" },
		{ "\0", 1, "missing NUL separator" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sasl_plain p;
		const char *error = NULL;
		CHECK_INT(decode_raw(cases[i].raw, cases[i].len, &p, &error), -1);
		CHECK_STR(error, cases[i].error);
	}
}

static void test_limits(void)
{
	char raw[2 + LIMIT_USER_LEN + 1 + LIMIT_PASSWORD_LEN + 2];
	struct sasl_plain p;
	const char *error = NULL;

	/* Longest user and password accepted. */
	raw[0] = '\0';
	memset(raw + 1, 'u', LIMIT_USER_LEN);
	raw[1 + LIMIT_USER_LEN] = '\0';
	memset(raw + 2 + LIMIT_USER_LEN, 'p', LIMIT_PASSWORD_LEN);
	size_t len = 2 + LIMIT_USER_LEN + LIMIT_PASSWORD_LEN;
	CHECK_INT(decode_raw(raw, len, &p, &error), 0);
	CHECK_INT(strlen(p.authcid), LIMIT_USER_LEN);
	CHECK_INT(p.password_len, LIMIT_PASSWORD_LEN);
	sasl_plain_clear(&p);

	raw[len] = 'p';
	CHECK_INT(decode_raw(raw, len + 1, &p, &error), -1);
	CHECK_STR(error, "password too long");

	char user[LIMIT_USER_LEN + 10];
	memset(user, 0, sizeof(user));
	memset(user + 1, 'u', LIMIT_USER_LEN + 1);
	memcpy(user + LIMIT_USER_LEN + 3, "pw", 2);
	CHECK_INT(decode_raw(user, LIMIT_USER_LEN + 5, &p, &error), -1);
	CHECK_STR(error, "user name too long");
}

static void test_binary_password(void)
{
	struct sasl_plain p;
	const char *error = NULL;
	CHECK_INT(decode_raw("\0bob\0\xff\x01 \xc3\xa9", 10, &p, &error), 0);
	CHECK_STR(p.authcid, "bob");
	CHECK_INT(p.password_len, 5);
	CHECK(memcmp(p.password, "\xff\x01 \xc3\xa9", 5) == 0);
	sasl_plain_clear(&p);
}

int main(void)
{
	RUN(test_good);
	RUN(test_authzid);
	RUN(test_bad_base64);
	RUN(test_fields);
	RUN(test_limits);
	RUN(test_binary_password);
	return harness_finish();
}
