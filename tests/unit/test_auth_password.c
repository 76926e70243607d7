/* Vectors made with the real tools, all for the password "secret":
 *	openssl passwd -6 -salt saltsaltsalt secret
 *	openssl passwd -5 -salt pepperpepper secret
 *	echo secret | mkpasswd -m bcrypt -s            (and -m bcrypt-a, yescrypt,
 *	                                               sha512crypt -R 5000)
 *	doveadm pw -s ARGON2ID|ARGON2I|BLF-CRYPT|SHA512-CRYPT|SHA256-CRYPT|PLAIN|CRYPT -p secret
 *	doveadm pw -s CLEAR -p 'pa:ss' */
#include "auth/password.h"
#include "harness.h"

#include <stdlib.h>

struct vector {
	const char *stored;
	const char *scheme;
};

static const struct vector secret_vectors[] = {
	{ "$6$saltsaltsalt$PMWE8DTlam1JU37Piyk43bHcMxTJq6sgu5DKB0/tGPjanN35jcY68QkpDfPFUGPWX5uCxIQkSPzMmqEiVNgts.",
	  "CRYPT" },
	{ "{SHA512-CRYPT}$6$saltsaltsalt$PMWE8DTlam1JU37Piyk43bHcMxTJq6sgu5DKB0/tGPjanN35jcY68QkpDfPFUGPWX5uCxIQkSPzMmqEiVNgts.",
	  "SHA512-CRYPT" },
	{ "{SHA256-CRYPT}$5$pepperpepper$1gXBgVPH9BVu9zNVdYv6UUB99ZgpVY/EnQWUGTdzAw2",
	  "SHA256-CRYPT" },
	{ "{BLF-CRYPT}$2b$05$WhQNYM.8FZQCi4Sbc7RcEuo7PQ49wOSc7kXR7NfIwAAeD5we5/rdq",
	  "BLF-CRYPT" },
	{ "{blf-crypt}$2a$05$dHTNLC/RX7U.zbO6fAneaOcC19FeYDc.DYDMvlGvgwf7rqvCCMp9a",
	  "BLF-CRYPT" },
	{ "$6$rounds=5000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
	  "CRYPT" },
	{ "$y$j9T$TpWqPIGS323ASb3uHIino1$QdeIN4LeVKVL/xHqo8QCJWXW52qCCPkLUXLbIDx3NjB",
	  "CRYPT" },
	/* doveadm */
	{ "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$KY5+84IJqpQDAOuMoKtEbQ$gK353rPLrde49/rfl/x4tN/3N2qbxPmsklHJ8BgwM3U",
	  "ARGON2ID" },
	{ "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$eE3gTwRjv34dy2JVH/biQw$oipSJ+VD1nH13L39PIaSaavq/iqH0EdWJQCrfb1kywI",
	  "ARGON2I" },
	{ "{BLF-CRYPT}$2y$05$C9qqWb0FsPSAqJLyJXivoO2QcASnFnJkIIzNtm2ZSmNsSzWt77zre",
	  "BLF-CRYPT" },
	{ "{SHA512-CRYPT}$6$E60njLRlk.QiZCuJ$PLwZEbcDHN6xiIwzEOZQi3hwqOvWg28IT5Eqjt5G2T6TKIwN1aXvyR/EAwvg2NS9ipUWosOjfnJ2qOwnB/9LD0",
	  "SHA512-CRYPT" },
	{ "{SHA256-CRYPT}$5$g9GvJAjsbi5nhbyq$31TkwKCWiDCW0jIZX/oO1TokHqGEFBh7ITwyFAB/oKB",
	  "SHA256-CRYPT" },
	{ "{CRYPT}$2y$05$Al6ku7pRVaXN2Mk1GnNry.scGXTfBCWd7KVVtz1tVVJlNWs1uOLXS", "CRYPT" },
	{ "{PLAIN}secret", "PLAIN" },
	{ "{plain}secret", "PLAIN" },
	{ "{CLEAR}secret", "CLEAR" },
	{ "{CLEARTEXT}secret", "CLEARTEXT" },
};

static enum password_result verify(const char *stored, const char *pw, size_t len)
{
	const char *error = "unset";
	enum password_result r = password_verify(stored, pw, len, &error);
	if (r == PASSWORD_ERROR)
		CHECK(error != NULL);
	else
		CHECK(error == NULL);
	return r;
}

static void test_vectors_match(void)
{
	for (size_t i = 0; i < sizeof(secret_vectors) / sizeof(secret_vectors[0]); i++) {
		enum password_result r = verify(secret_vectors[i].stored, "secret", 6);
		if (r != PASSWORD_MATCH)
			fprintf(stderr, "  vector %zu: %s\n", i, secret_vectors[i].stored);
		CHECK_INT(r, PASSWORD_MATCH);
	}
}

static void test_vectors_mismatch(void)
{
	static const struct { const char *pw; size_t len; } wrong[] = {
		{ "Secret", 6 }, { "secret ", 7 }, { "secre", 5 }, { "", 0 },
		{ "secret\0x", 8 },	/* NUL: never a match for crypt, a different string for PLAIN */
	};
	for (size_t i = 0; i < sizeof(secret_vectors) / sizeof(secret_vectors[0]); i++) {
		for (size_t j = 0; j < sizeof(wrong) / sizeof(wrong[0]); j++) {
			enum password_result r = verify(secret_vectors[i].stored, wrong[j].pw, wrong[j].len);
			if (r != PASSWORD_MISMATCH)
				fprintf(stderr, "  vector %zu, wrong %zu\n", i, j);
			CHECK_INT(r, PASSWORD_MISMATCH);
		}
	}
}

static void test_nul_prefix_is_mismatch(void)
{
	/* "secret\0..." must not match via C-string truncation. */
	CHECK_INT(verify("{SHA256-CRYPT}$5$pepperpepper$1gXBgVPH9BVu9zNVdYv6UUB99ZgpVY/EnQWUGTdzAw2",
			 "secret\0", 7), PASSWORD_MISMATCH);
	CHECK_INT(verify("{PLAIN}secret", "secret\0", 7), PASSWORD_MISMATCH);
}

static void test_plain_with_colon_and_empty(void)
{
	CHECK_INT(verify("{CLEAR}pa:ss", "pa:ss", 5), PASSWORD_MATCH);
	CHECK_INT(verify("{CLEAR}pa:ss", "pa", 2), PASSWORD_MISMATCH);
	CHECK_INT(verify("{PLAIN}", "", 0), PASSWORD_MATCH);
	CHECK_INT(verify("{PLAIN}", "x", 1), PASSWORD_MISMATCH);
}

static void test_errors(void)
{
	static const char *const bad[] = {
		"{MD5}whatever",		/* unknown scheme */
		"{SSHA}abc",
		"{}secret",
		"{PLAIN secret",		/* no closing brace */
		"secret",			/* no prefix, not crypt */
		"",
		"{SHA512-CRYPT}$5$pepperpepper$1gXBgVPH9BVu9zNVdYv6UUB99ZgpVY/EnQWUGTdzAw2",
		"{BLF-CRYPT}$6$saltsaltsalt$x",
		"{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$eE3gTwRjv34dy2JVH/biQw$oipSJ+VD1nH13L39PIaSaavq/iqH0EdWJQCrfb1kywI",
		"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$garbage",
		"{CRYPT}",
		"{CRYPT}$9$nosuchhash",
		"$",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *error = NULL;
		enum password_result r = password_verify(bad[i], "secret", 6, &error);
		if (r != PASSWORD_ERROR)
			fprintf(stderr, "  bad %zu: %s\n", i, bad[i]);
		CHECK_INT(r, PASSWORD_ERROR);
		CHECK(error != NULL && error[0] != '\0');
	}
	const char *error = NULL;
	CHECK_INT(password_verify("{MD5}x", "secret", 6, &error), PASSWORD_ERROR);
	CHECK_STR(error, "unknown password scheme");
}

static void test_hash_round_trip(void)
{
	const char *error = "unset";
	char *h1 = password_hash("correct horse", 13, &error);
	CHECK(h1 != NULL);
	CHECK(error == NULL);
	char *h2 = password_hash("correct horse", 13, &error);
	CHECK(h2 != NULL);
	if (h1 == NULL || h2 == NULL) {
		free(h1);
		free(h2);
		return;
	}
	CHECK(strncmp(h1, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", 41) == 0);
	CHECK(strcmp(h1, h2) != 0);	/* fresh salt each time */
	CHECK_INT(verify(h1, "correct horse", 13), PASSWORD_MATCH);
	CHECK_INT(verify(h2, "correct horse", 13), PASSWORD_MATCH);
	CHECK_INT(verify(h1, "correct horse!", 14), PASSWORD_MISMATCH);
	/* Binary passwords hash fine with Argon2. */
	char *h3 = password_hash("a\0b", 3, &error);
	CHECK(h3 != NULL);
	if (h3 != NULL) {
		CHECK_INT(verify(h3, "a\0b", 3), PASSWORD_MATCH);
		CHECK_INT(verify(h3, "a\0c", 3), PASSWORD_MISMATCH);
	}
	free(h1);
	free(h2);
	free(h3);
}

static void test_scheme_name(void)
{
	char name[32];
	for (size_t i = 0; i < sizeof(secret_vectors) / sizeof(secret_vectors[0]); i++) {
		password_scheme_name(secret_vectors[i].stored, name, sizeof(name));
		CHECK_STR(name, secret_vectors[i].scheme);
	}
	password_scheme_name("$argon2id$v=19$m=1,t=1,p=1$a$b", name, sizeof(name));
	CHECK_STR(name, "ARGON2ID");
	password_scheme_name("nothing", name, sizeof(name));
	CHECK_STR(name, "UNKNOWN");
	password_scheme_name("{}x", name, sizeof(name));
	CHECK_STR(name, "UNKNOWN");
	password_scheme_name("{a\nb}x", name, sizeof(name));
	CHECK_STR(name, "A?B");
	password_scheme_name("{SHA512-CRYPT}$6$", name, 4);
	CHECK_STR(name, "SHA");
	name[0] = 'z';
	password_scheme_name("{PLAIN}x", name, 0);
	CHECK(name[0] == 'z');
}

static void test_is_plain(void)
{
	CHECK(password_scheme_is_plain("{PLAIN}x"));
	CHECK(password_scheme_is_plain("{clear}x"));
	CHECK(password_scheme_is_plain("{CLEARTEXT}x"));
	CHECK(!password_scheme_is_plain("{SHA512-CRYPT}$6$x"));
	CHECK(!password_scheme_is_plain("$6$x"));
	CHECK(!password_scheme_is_plain("PLAIN"));
}

int main(void)
{
	RUN(test_vectors_match);
	RUN(test_vectors_mismatch);
	RUN(test_nul_prefix_is_mismatch);
	RUN(test_plain_with_colon_and_empty);
	RUN(test_errors);
	RUN(test_hash_round_trip);
	RUN(test_scheme_name);
	RUN(test_is_plain);
	return harness_finish();
}
