/* Modified UTF-7, RFC 3501 5.1.3: printable US-ASCII stands for itself
 * ("&" as "&-"), everything else is UTF-16BE in base64 with ',' for '/',
 * no padding, between "&" and "-". The decoder insists on the one canonical
 * form so that a name has exactly one spelling: two spellings of one mailbox
 * would let a client dodge checks done on the encoded name. */
#include "imap/utf7.h"

#include <string.h>

static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static bool is_printable_ascii(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

size_t imap_utf8_decode(const char *s, size_t len, uint32_t *cp_r)
{
	const unsigned char *u = (const unsigned char *)s;
	if (len == 0)
		return 0;
	if (u[0] < 0x80) {
		*cp_r = u[0];
		return 1;
	}
	size_t n;
	uint32_t cp, min;
	if (u[0] >= 0xc2 && u[0] <= 0xdf) {
		n = 2; cp = u[0] & 0x1f; min = 0x80;
	} else if (u[0] >= 0xe0 && u[0] <= 0xef) {
		n = 3; cp = u[0] & 0x0f; min = 0x800;
	} else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
		n = 4; cp = u[0] & 0x07; min = 0x10000;
	} else {
		return 0;	/* continuation byte, C0/C1 overlong lead, or > U+10FFFF */
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (u[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

bool imap_utf8_is_valid(const char *s, size_t len)
{
	uint32_t cp;
	for (size_t i = 0; i < len;) {
		size_t n = imap_utf8_decode(s + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static void append_utf8(struct buf *out, uint32_t cp)
{
	char tmp[4];
	size_t n;
	if (cp < 0x80) {
		tmp[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		tmp[0] = (char)(0xc0 | (cp >> 6));
		tmp[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		tmp[0] = (char)(0xe0 | (cp >> 12));
		tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		tmp[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		tmp[0] = (char)(0xf0 | (cp >> 18));
		tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		tmp[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, tmp, n);
}

/* Decodes the base64 run in[0..len) (between '&' and '-') as UTF-16BE. */
static int decode_run(const char *in, size_t len, struct buf *out)
{
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value((unsigned char)in[i]);
		if (v < 0)
			return -1;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t unit = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		if (high != 0) {
			if (unit < 0xdc00 || unit > 0xdfff)
				return -1;	/* high surrogate without its low half */
			append_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
			high = 0;
		} else if (unit >= 0xd800 && unit <= 0xdbff) {
			high = unit;
		} else if (unit >= 0xdc00 && unit <= 0xdfff) {
			return -1;	/* lone low surrogate */
		} else if (unit == 0 || is_printable_ascii(unit)) {
			return -1;	/* NUL, or ASCII that must stand for itself */
		} else {
			append_utf8(out, unit);
		}
	}
	/* Leftover bits: fewer than 6, all zero (RFC 2152 padding). */
	if (high != 0 || nbits >= 6 || bits != 0)
		return -1;
	return 0;
}

int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out)
{
	size_t start_len = out->len;
	bool after_run = false;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)in[i];
		if (c != '&') {
			if (!is_printable_ascii(c))
				goto fail;
			buf_append_char(out, (char)c);
			after_run = false;
			i++;
			continue;
		}
		const char *dash = memchr(in + i + 1, '-', len - i - 1);
		if (dash == NULL)
			goto fail;	/* unterminated shift */
		size_t run = (size_t)(dash - (in + i + 1));
		if (run == 0) {
			buf_append_char(out, '&');
			after_run = false;
		} else {
			/* "-&" directly after a run is a superfluous shift. */
			if (after_run || decode_run(in + i + 1, run, out) < 0)
				goto fail;
			after_run = true;
		}
		i += run + 2;
	}
	return 0;
fail:
	out->len = start_len;
	if (out->data != NULL)
		out->data[start_len] = '\0';
	return -1;
}

/* Streams UTF-16 units into base64; bits holds fewer than 6 pending bits. */
struct b64_enc {
	uint32_t bits;
	unsigned nbits;
	bool open;
};

static void enc_unit(struct b64_enc *e, struct buf *out, uint32_t unit)
{
	if (!e->open) {
		buf_append_char(out, '&');
		e->open = true;
	}
	e->bits = (e->bits << 16) | unit;
	e->nbits += 16;
	while (e->nbits >= 6) {
		e->nbits -= 6;
		buf_append_char(out, b64_chars[(e->bits >> e->nbits) & 0x3f]);
	}
	e->bits &= (1u << e->nbits) - 1;
}

static void enc_close(struct b64_enc *e, struct buf *out)
{
	if (!e->open)
		return;
	if (e->nbits > 0)
		buf_append_char(out, b64_chars[(e->bits << (6 - e->nbits)) & 0x3f]);
	buf_append_char(out, '-');
	e->bits = 0;
	e->nbits = 0;
	e->open = false;
}

int imap_utf8_to_utf7(const char *in, size_t len, struct buf *out)
{
	size_t start_len = out->len;
	/* Adjacent non-ASCII characters share one shift (RFC 3501 5.1.3). */
	struct b64_enc enc = { 0, 0, false };
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = imap_utf8_decode(in + i, len - i, &cp);
		if (n == 0 || cp == 0)
			goto fail;
		i += n;
		if (is_printable_ascii(cp)) {
			enc_close(&enc, out);
			if (cp == '&')
				buf_append_str(out, "&-");
			else
				buf_append_char(out, (char)cp);
		} else if (cp >= 0x10000) {
			cp -= 0x10000;
			enc_unit(&enc, out, 0xd800 + (cp >> 10));
			enc_unit(&enc, out, 0xdc00 + (cp & 0x3ff));
		} else {
			enc_unit(&enc, out, cp);
		}
	}
	enc_close(&enc, out);
	return 0;
fail:
	out->len = start_len;
	if (out->data != NULL)
		out->data[start_len] = '\0';
	return -1;
}
