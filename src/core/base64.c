#include "core/base64.h"

#include <openssl/crypto.h>

#include <stdbool.h>
#include <stdint.h>

static const char base64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, or -1 outside the alphabet ('=' included). */
static int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void base64_encode(struct buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;

	buf_reserve(out, (len + 2) / 3 * 4);
	for (size_t i = 0; i < len; i += 3) {
		size_t n = len - i < 3 ? len - i : 3;
		uint32_t v = (uint32_t)p[i] << 16;
		if (n > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		char quad[4] = {
			base64_alphabet[(v >> 18) & 63],
			base64_alphabet[(v >> 12) & 63],
			n > 1 ? base64_alphabet[(v >> 6) & 63] : '=',
			n > 2 ? base64_alphabet[v & 63] : '=',
		};
		buf_append(out, quad, sizeof(quad));
	}
}

/* Strict: the whole text is quads, '=' only as the last one or two
 * characters, and the bits the padding drops must be zero (RFC 4648 3.5
 * lets a decoder reject them; SASL has no reason to send them). The output
 * may be a password, so on failure what was appended is wiped and dropped. */
int base64_decode_strict(struct buf *out, const char *text, size_t len)
{
	size_t start = out->len;

	if (len % 4 != 0)
		return -1;
	/* Reserve once: a growing buffer would leave copies of the secret in
	 * freed memory. */
	buf_reserve(out, len / 4 * 3);
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int v[4];
		size_t pad = 0;
		for (size_t j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)text[i + j];
			if (c == '=' && last && j >= 2) {
				pad++;
				v[j] = 0;
				continue;
			}
			v[j] = base64_value(c);
			if (v[j] < 0 || pad > 0)
				goto fail;
		}
		uint32_t bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
				(uint32_t)v[2] << 6 | (uint32_t)v[3];
		if ((pad == 1 && (bits & 0xff) != 0) || (pad == 2 && (bits & 0xffff) != 0))
			goto fail;
		unsigned char bytes[3] = { bits >> 16, (bits >> 8) & 0xff, bits & 0xff };
		buf_append(out, bytes, 3 - pad);
		OPENSSL_cleanse(bytes, sizeof(bytes));
	}
	return 0;
fail:
	OPENSSL_cleanse(out->data + start, out->len - start);
	out->len = start;
	out->data[start] = '\0';
	return -1;
}

void base64_decode_lenient(struct buf *out, const char *text, size_t len)
{
	uint32_t bits = 0;
	unsigned n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '=')
			break;
		int v = base64_value(c);
		if (v < 0)
			continue;
		bits = bits << 6 | (uint32_t)v;
		if (++n == 4) {
			unsigned char bytes[3] = { bits >> 16, (bits >> 8) & 0xff, bits & 0xff };
			buf_append(out, bytes, 3);
			bits = 0;
			n = 0;
		}
	}
	/* A truncated last group: two characters carry one byte, three carry
	 * two; a lone character carries nothing whole and is dropped. */
	if (n == 2) {
		buf_append_char(out, (char)(bits >> 4));
	} else if (n == 3) {
		unsigned char bytes[2] = { bits >> 10, (bits >> 2) & 0xff };
		buf_append(out, bytes, 2);
	}
}
