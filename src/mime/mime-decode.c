/* Decoding for SEARCH and previews: transfer encodings (RFC 2045 6.7, 6.8),
 * encoded words (RFC 2047), charsets to UTF-8 (iconv). All lenient: mail in
 * the wild is broken in every way and a search must still see the text. */
#include "core/base64.h"
#include "mime/mime-private.h"

#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void mime_decode_qp(const char *in, size_t len, struct buf *out)
{
	size_t i = 0;
	buf_reserve(out, len);
	while (i < len) {
		/* Copy up to the next '=' or line end in one go. */
		size_t j = i;
		while (j < len && in[j] != '=' && in[j] != '\n')
			j++;
		size_t k = j;
		if (k < len && in[k] == '\n') {
			/* RFC 2045 6.7 rule 3: blanks at the end of a line
			 * are transport padding, not text. */
			size_t e = k;
			if (e > i && in[e - 1] == '\r')
				e--;
			size_t t = e;
			while (t > i && (in[t - 1] == ' ' || in[t - 1] == '\t'))
				t--;
			buf_append(out, in + i, t - i);
			buf_append(out, in + e, k + 1 - e);
			i = k + 1;
			continue;
		}
		buf_append(out, in + i, j - i);
		if (j >= len)
			break;
		/* At '=': a soft line break (after optional blanks), an
		 * escape, or a stray '=' kept as it is. */
		size_t s = j + 1;
		while (s < len && (in[s] == ' ' || in[s] == '\t'))
			s++;
		if (s < len && in[s] == '\r' && s + 1 < len && in[s + 1] == '\n') {
			i = s + 2;
		} else if (s < len && in[s] == '\n') {
			i = s + 1;
		} else if (s >= len) {
			i = len;	/* "=" at the very end: a soft break */
		} else if (j + 2 < len && hex_value((unsigned char)in[j + 1]) >= 0 &&
			   hex_value((unsigned char)in[j + 2]) >= 0) {
			buf_append_char(out, (char)(hex_value((unsigned char)in[j + 1]) * 16 +
						    hex_value((unsigned char)in[j + 2])));
			i = j + 3;
		} else {
			buf_append_char(out, '=');
			i = j + 1;
		}
	}
}

void mime_decode_base64(const char *in, size_t len, struct buf *out)
{
	/* RFC 2045 6.8: the same lenient reading core/base64 offers. */
	base64_decode_lenient(out, in, len);
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if it is not valid. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

#define REPLACEMENT "\xef\xbf\xbd"	/* U+FFFD */

/* Appends s as UTF-8: valid sequences kept, each invalid byte replaced. */
static void append_utf8_sanitized(struct buf *out, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;
	buf_reserve(out, len);
	while (i < len) {
		size_t n = utf8_seq_len(u + i, len - i);
		if (n == 0) {
			buf_append(out, s + run, i - run);
			buf_append_str(out, REPLACEMENT);
			i++;
			run = i;
		} else {
			i += n;
		}
	}
	buf_append(out, s + run, i - run);
}

static bool charset_is_utf8_compatible(const char *cs)
{
	return cs == NULL || *cs == '\0' || strcasecmp(cs, "us-ascii") == 0 ||
		strcasecmp(cs, "ascii") == 0 || strcasecmp(cs, "utf-8") == 0 ||
		strcasecmp(cs, "utf8") == 0;
}

/* A charset name is a token (RFC 2978 2.3); anything else is refused
 * before it reaches iconv, where "x//TRANSLIT" or a path would mean more. */
static bool charset_name_ok(const char *cs)
{
	size_t n = strlen(cs);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)cs[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("-_.:+", c) != NULL))
			return false;
	}
	return true;
}

int mime_charset_to_utf8(const char *charset, const char *in, size_t len,
			 struct buf *out)
{
	if (charset_is_utf8_compatible(charset)) {
		/* US-ASCII text with 8-bit bytes is usually UTF-8. */
		append_utf8_sanitized(out, in, len);
		return 0;
	}
	iconv_t cd = charset_name_ok(charset) ? iconv_open("UTF-8", charset) : (iconv_t)-1;
	if (cd == (iconv_t)-1) {
		append_utf8_sanitized(out, in, len);
		return -1;
	}
	char *src = (char *)in;
	size_t left = len;
	while (left > 0) {
		buf_reserve(out, left * 2 + 16);
		char *dst = out->data + out->len;
		size_t room = out->cap - out->len;
		size_t r = iconv(cd, &src, &left, &dst, &room);
		out->len = (size_t)(dst - out->data);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		/* EILSEQ, or EINVAL for a sequence cut at the end. */
		buf_append_str(out, REPLACEMENT);
		src++;
		left--;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	/* Flush a stateful encoding's shift sequence. */
	buf_reserve(out, 16);
	char *dst = out->data + out->len;
	size_t room = out->cap - out->len;
	iconv(cd, NULL, NULL, &dst, &room);
	out->len = (size_t)(dst - out->data);
	out->data[out->len] = '\0';
	iconv_close(cd);
	return 0;
}

/* An RFC 2047 2 encoded word at in[i..len): sets its parts and returns its
 * length, or 0 if there is none. Encoded text may not hold blanks or '?'. */
static size_t encoded_word(const char *in, size_t i, size_t len, size_t *cs_start,
			   size_t *cs_len, char *enc, size_t *text_start, size_t *text_len)
{
	if (i + 2 > len || in[i] != '=' || in[i + 1] != '?')
		return 0;
	size_t p = i + 2, c = p;
	while (p < len && in[p] != '?' && p - c < 80 && in[p] != ' ')
		p++;
	if (p >= len || in[p] != '?' || p == c)
		return 0;
	*cs_start = c;
	*cs_len = p - c;
	/* RFC 2231 5: charset*language */
	const char *star = memchr(in + c, '*', p - c);
	if (star != NULL)
		*cs_len = (size_t)(star - (in + c));
	p++;
	if (p + 1 >= len || in[p + 1] != '?')
		return 0;
	*enc = in[p];
	if (*enc != 'B' && *enc != 'b' && *enc != 'Q' && *enc != 'q')
		return 0;
	p += 2;
	size_t t = p;
	while (p + 1 < len && !(in[p] == '?' && in[p + 1] == '=')) {
		if (in[p] == ' ' || in[p] == '\t' || in[p] == '?')
			return 0;
		p++;
	}
	if (p + 1 >= len)
		return 0;
	*text_start = t;
	*text_len = p - t;
	return p + 2 - i;
}

static void decode_q(const char *in, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '_') {
			buf_append_char(out, ' ');	/* RFC 2047 4.2 (2) */
		} else if (in[i] == '=' && i + 2 < len &&
			   hex_value((unsigned char)in[i + 1]) >= 0 &&
			   hex_value((unsigned char)in[i + 2]) >= 0) {
			buf_append_char(out, (char)(hex_value((unsigned char)in[i + 1]) * 16 +
						    hex_value((unsigned char)in[i + 2])));
			i += 2;
		} else {
			buf_append_char(out, in[i]);
		}
	}
}

/* Converts and empties the decoded bytes of the pending encoded words. */
static int flush_words(struct buf *pending, const char *charset, struct buf *out)
{
	int ret = 0;
	if (pending->len > 0)
		ret = mime_charset_to_utf8(charset, pending->data, pending->len, out);
	buf_clear(pending);
	return ret;
}

int mime_decode_header_value(const char *in, size_t len, struct buf *out)
{
	struct buf unfolded = BUF_INIT, pending = BUF_INIT;
	char charset[65] = "";
	bool have_word = false;
	int ret = 0;

	mime_header_unfold(in, len, &unfolded);
	const char *s = unfolded.data != NULL ? unfolded.data : "";
	size_t n = unfolded.len, i = 0, plain = 0;
	/* Bytes of adjacent encoded words in one charset are joined before
	 * conversion, as senders split multibyte characters across words. */
	while (i < n) {
		size_t cs, csl, ts, tl;
		char enc;
		size_t wl = encoded_word(s, i, n, &cs, &csl, &enc, &ts, &tl);
		if (wl == 0) {
			i++;
			continue;
		}
		/* RFC 2047 6.2: blanks between two encoded words vanish. */
		bool gap_blank = have_word;
		for (size_t k = plain; k < i && gap_blank; k++)
			gap_blank = s[k] == ' ' || s[k] == '\t';
		bool same_cs = csl < sizeof(charset) && strlen(charset) == csl &&
			strncasecmp(charset, s + cs, csl) == 0;
		if ((!gap_blank || !same_cs) && flush_words(&pending, charset, out) < 0)
			ret = -1;
		if (!gap_blank)
			append_utf8_sanitized(out, s + plain, i - plain);
		size_t keep = csl < sizeof(charset) ? csl : sizeof(charset) - 1;
		memcpy(charset, s + cs, keep);
		charset[keep] = '\0';
		if (enc == 'B' || enc == 'b')
			mime_decode_base64(s + ts, tl, &pending);
		else
			decode_q(s + ts, tl, &pending);
		have_word = true;
		i += wl;
		plain = i;
	}
	if (flush_words(&pending, charset, out) < 0)
		ret = -1;
	append_utf8_sanitized(out, s + plain, n - plain);
	buf_free(&unfolded);
	buf_free(&pending);
	return ret;
}

int mime_body_to_utf8(const struct mime_part *part, const char *data,
		      struct buf *out)
{
	if ((part->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)) != 0)
		return -1;
	const char *body = data + part->body_start;
	size_t len = part->body_end - part->body_start;
	const char *enc = part->encoding;
	struct buf decoded = BUF_INIT;
	if (enc != NULL && strcasecmp(enc, "base64") == 0) {
		mime_decode_base64(body, len, &decoded);
		body = decoded.data != NULL ? decoded.data : "";
		len = decoded.len;
	} else if (enc != NULL && strcasecmp(enc, "quoted-printable") == 0) {
		mime_decode_qp(body, len, &decoded);
		body = decoded.data != NULL ? decoded.data : "";
		len = decoded.len;
	}
	int ret = mime_charset_to_utf8(mime_part_charset(part), body, len, out);
	buf_free(&decoded);
	return ret;
}
