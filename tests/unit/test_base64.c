#include "core/base64.h"
#include "harness.h"

/* RFC 4648 10 test vectors. */
static const struct {
	const char *plain;
	const char *encoded;
} rfc_vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};
#define N_RFC (sizeof(rfc_vectors) / sizeof(rfc_vectors[0]))

static void test_encode(void)
{
	for (size_t i = 0; i < N_RFC; i++) {
		struct buf b = BUF_INIT;
		base64_encode(&b, rfc_vectors[i].plain, strlen(rfc_vectors[i].plain));
		CHECK_STR(b.data != NULL ? b.data : "", rfc_vectors[i].encoded);
		buf_free(&b);
	}
	struct buf b = BUF_INIT;
	base64_encode(&b, "\0\xff\xfe", 3);
	CHECK_STR(b.data, "AP/+");
	buf_free(&b);
}

static void test_decode_strict(void)
{
	for (size_t i = 0; i < N_RFC; i++) {
		struct buf b = BUF_INIT;
		CHECK_INT(base64_decode_strict(&b, rfc_vectors[i].encoded,
					       strlen(rfc_vectors[i].encoded)), 0);
		CHECK_INT(b.len, strlen(rfc_vectors[i].plain));
		CHECK(b.len == 0 || memcmp(b.data, rfc_vectors[i].plain, b.len) == 0);
		buf_free(&b);
	}
	struct buf b = BUF_INIT;
	CHECK_INT(base64_decode_strict(&b, "AP/+", 4), 0);
	CHECK_INT(b.len, 3);
	CHECK(memcmp(b.data, "\0\xff\xfe", 3) == 0);
	/* Appends to what is there. */
	CHECK_INT(base64_decode_strict(&b, "Zm8=", 4), 0);
	CHECK_INT(b.len, 5);
	CHECK(memcmp(b.data + 3, "fo", 2) == 0);
	buf_free(&b);
}

static void test_decode_strict_rejects(void)
{
	static const char *const bad[] = {
		"Zg=", "Zg", "Z", "Zm9", "Zm9vY",	/* not whole quads */
		"Zg==Zg==",				/* padding in the middle */
		"Z===", "====", "=Zm8",			/* too much or misplaced padding */
		"Zm 9v", "Zm9v\n", " Zm9v",		/* whitespace */
		"Zm9*", "Zm9v-_==",			/* outside the alphabet */
		"Zh==", "Zm9=",				/* non-zero bits under the padding */
		"Zg=a",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b = BUF_INIT;
		buf_append_str(&b, "keep");
		int r = base64_decode_strict(&b, bad[i], strlen(bad[i]));
		if (r != -1)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
		CHECK_INT(r, -1);
		CHECK_STR(b.data, "keep");	/* nothing half-decoded left behind */
		buf_free(&b);
	}
}

static void test_decode_lenient(void)
{
	static const struct { const char *in; const char *out; } cases[] = {
		{ "Zm9v\r\nYmFy", "foobar" },
		{ " Zm9v YmE= trailing", "fooba" },	/* stops at padding */
		{ "Zm9vYg", "foob" },			/* missing padding */
		{ "Zm9vYmE", "fooba" },
		{ "Zm9vY", "foo" },			/* a lone sextet is dropped */
		{ "Z*m-9!v", "foo" },			/* garbage skipped */
		{ "", "" },
		{ "====", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = BUF_INIT;
		base64_decode_lenient(&b, cases[i].in, strlen(cases[i].in));
		CHECK_STR(b.data != NULL ? b.data : "", cases[i].out);
		buf_free(&b);
	}
}

static void test_round_trip_all_bytes(void)
{
	unsigned char data[256];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(255 - i);
	for (size_t len = 0; len <= sizeof(data); len += 17) {
		struct buf enc = BUF_INIT, dec = BUF_INIT, len_dec = BUF_INIT;
		base64_encode(&enc, data, len);
		CHECK_INT(enc.len, (len + 2) / 3 * 4);
		CHECK_INT(base64_decode_strict(&dec, enc.data != NULL ? enc.data : "", enc.len), 0);
		CHECK_INT(dec.len, len);
		CHECK(len == 0 || memcmp(dec.data, data, len) == 0);
		base64_decode_lenient(&len_dec, enc.data != NULL ? enc.data : "", enc.len);
		CHECK_INT(len_dec.len, len);
		buf_free(&enc);
		buf_free(&dec);
		buf_free(&len_dec);
	}
}

int main(void)
{
	RUN(test_encode);
	RUN(test_decode_strict);
	RUN(test_decode_strict_rejects);
	RUN(test_decode_lenient);
	RUN(test_round_trip_all_bytes);
	return harness_finish();
}
