/* The text SEARCH compares, for the matcher and the index alike. */
#include "imapd/search_text.h"

#include "core/xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- case folding ---------------------------------------------------- */

/* Simple case folding (Unicode CaseFolding.txt, status C and S) for the
 * scripts mail in European languages uses. Written as ranges rather than
 * a table: most blocks alternate upper/lower or sit at a fixed distance. */
static uint32_t fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c < 0x100) {
		if (c == 0xb5)
			return 0x3bc;			/* micro sign: Greek mu */
		if (c >= 0xc0 && c <= 0xde && c != 0xd7)
			return c + 32;
		return c;
	}
	if (c < 0x180) {			/* Latin Extended-A */
		if (c == 0x130)
			return 'i';		/* dotted capital I: fold to i for matching */
		if (c == 0x178)
			return 0xff;
		if (c == 0x17f)
			return 's';		/* long s */
		if ((c >= 0x100 && c <= 0x137 && c != 0x131) || (c >= 0x14a && c <= 0x177))
			return c | 1;
		if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
			return (c & 1) ? c + 1 : c;
		return c;
	}
	if (c < 0x250) {			/* Latin Extended-B, regular parts */
		if (c == 0x1c4 || c == 0x1c5)
			return 0x1c6;
		if (c == 0x1c7 || c == 0x1c8)
			return 0x1c9;
		if (c == 0x1ca || c == 0x1cb)
			return 0x1cc;
		if (c == 0x1f1 || c == 0x1f2)
			return 0x1f3;
		if (c >= 0x1cd && c <= 0x1dc)
			return (c & 1) ? c + 1 : c;
		if ((c >= 0x1de && c <= 0x1ef) || c == 0x1f4 || (c >= 0x1f8 && c <= 0x21f) ||
		    (c >= 0x222 && c <= 0x233) || (c >= 0x246 && c <= 0x24f))
			return c | 1;
		return c;
	}
	if (c >= 0x345 && c < 0x400) {		/* Greek */
		switch (c) {
		case 0x345: return 0x3b9;
		case 0x37f: return 0x3f3;
		case 0x386: return 0x3ac;
		case 0x38c: return 0x3cc;
		case 0x38e: case 0x38f: return c + 63;
		case 0x3c2: return 0x3c3;	/* final sigma */
		case 0x3cf: return 0x3d7;
		case 0x3d0: return 0x3b2;
		case 0x3d1: return 0x3b8;
		case 0x3d5: return 0x3c6;
		case 0x3d6: return 0x3c0;
		case 0x3f0: return 0x3ba;
		case 0x3f1: return 0x3c1;
		case 0x3f4: return 0x3b8;
		case 0x3f5: return 0x3b5;
		case 0x3f7: return 0x3f8;
		case 0x3f9: return 0x3f2;
		case 0x3fa: return 0x3fb;
		case 0x3fd: case 0x3fe: case 0x3ff: return c - 130;
		default: break;
		}
		if (c >= 0x388 && c <= 0x38a)
			return c + 37;
		if ((c >= 0x391 && c <= 0x3a1) || (c >= 0x3a3 && c <= 0x3ab))
			return c + 32;
		if (c >= 0x3d8 && c <= 0x3ef)
			return c | 1;
		return c;
	}
	if (c >= 0x400 && c < 0x530) {		/* Cyrillic and Supplement */
		if (c <= 0x40f)
			return c + 80;
		if (c <= 0x42f)
			return c + 32;
		if (c == 0x4c0)
			return 0x4cf;
		if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) || (c >= 0x4d0 && c <= 0x52f))
			return c | 1;
		if (c >= 0x4c1 && c <= 0x4ce)
			return (c & 1) ? c + 1 : c;
		return c;
	}
	if (c >= 0x531 && c <= 0x556)		/* Armenian */
		return c + 48;
	if (c >= 0x1e00 && c < 0x1f00) {	/* Latin Extended Additional */
		if (c == 0x1e9b)
			return 0x1e61;
		if (c == 0x1e9e)
			return 0xdf;		/* capital sharp s */
		if (c <= 0x1e95 || (c >= 0x1ea0 && c <= 0x1eff))
			return c | 1;
		return c;
	}
	if (c >= 0x1f00 && c < 0x1f70) {	/* Greek Extended: capitals sit 8 above */
		unsigned low = c & 0xf;
		unsigned row = (c >> 4) & 0xf;
		if (low >= 8 && (row == 0 || row == 2 || row == 3 || row == 6))
			return c - 8;
		if (low >= 8 && low <= 0xd && (row == 1 || row == 4))
			return c - 8;
		if (row == 5 && (c == 0x1f59 || c == 0x1f5b || c == 0x1f5d || c == 0x1f5f))
			return c - 8;
		return c;
	}
	switch (c) {
	case 0x2126: return 0x3c9;		/* ohm sign */
	case 0x212a: return 'k';		/* kelvin sign */
	case 0x212b: return 0xe5;		/* angstrom sign */
	default: break;
	}
	if (c >= 0xff21 && c <= 0xff3a)		/* fullwidth Latin */
		return c + 32;
	return c;
}

/* Decodes one UTF-8 sequence at in[0..len); returns its length, or 0 when
 * the bytes are not a valid (shortest-form, non-surrogate) sequence. */
static size_t utf8_decode(const unsigned char *in, size_t len, uint32_t *cp_r)
{
	unsigned char b = in[0];
	size_t n;
	uint32_t cp, min;
	if (b < 0x80) {
		*cp_r = b;
		return 1;
	} else if (b >= 0xc2 && b <= 0xdf) {
		n = 2, cp = b & 0x1f, min = 0x80;
	} else if (b >= 0xe0 && b <= 0xef) {
		n = 3, cp = b & 0x0f, min = 0x800;
	} else if (b >= 0xf0 && b <= 0xf4) {
		n = 4, cp = b & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((in[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (in[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

static void utf8_encode(uint32_t cp, struct buf *out)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	buf_append(out, b, n);
}

void search_fold(const char *in, size_t len, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	buf_reserve(out, len);
	size_t i = 0;
	while (i < len) {
		/* ASCII runs are the common case: fold them without decoding. */
		if (p[i] < 0x80) {
			buf_append_char(out, (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]));
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0) {
			buf_append_char(out, (char)p[i]);
			i++;
			continue;
		}
		uint32_t folded = fold_cp(cp);
		if (folded == cp)
			buf_append(out, p + i, n);
		else
			utf8_encode(folded, out);
		i += n;
	}
}

/* ---- what keys compare ---------------------------------------------- */

void search_text_field(const struct mime_header_field *f, struct buf *out)
{
	struct buf raw = BUF_INIT, decoded = BUF_INIT;
	mime_header_unfold(f->value, f->value_len, &raw);
	search_fold(raw.data ? raw.data : "", raw.len, out);
	buf_append_char(out, '\n');
	(void)mime_decode_header_value(f->value, f->value_len, &decoded);
	search_fold(decoded.data ? decoded.data : "", decoded.len, out);
	buf_append_char(out, '\n');
	buf_free(&raw);
	buf_free(&decoded);
}

void search_text_header(const struct mime_part *part, const char *data, struct buf *out)
{
	size_t pos = 0;
	struct mime_header_field f;
	while (mime_header_next(part, data, &pos, &f) > 0) {
		search_fold(f.name, f.name_len, out);
		buf_append_str(out, ": ");
		search_text_field(&f, out);
	}
}

void search_text_body(const struct mime_part *part, const char *data, struct buf *out)
{
	if (part->flags & MIME_PART_MULTIPART) {
		for (const struct mime_part *c = part->children; c != NULL; c = c->next)
			search_text_body(c, data, out);
		return;
	}
	if (part->flags & MIME_PART_MESSAGE) {
		for (const struct mime_part *c = part->children; c != NULL; c = c->next) {
			search_text_header(c, data, out);
			search_text_body(c, data, out);
		}
		return;
	}
	if (strcmp(part->type, "text") != 0)
		return;
	struct buf decoded = BUF_INIT;
	(void)mime_body_to_utf8(part, data, &decoded);
	search_fold(decoded.data ? decoded.data : "", decoded.len, out);
	buf_append_char(out, '\n');
	buf_free(&decoded);
}


/* ---- the full-text index's conditions ------------------------------- */

/* What SQLite's tokenizer cannot read back exactly (NUL, U+FFFE and
 * U+FFFF, which it reads as U+FFFD) or a needle could be made of. */
static bool index_unsafe(uint32_t cp)
{
	return cp == 0 || cp == 0xfffd || cp == 0xfffe || cp == 0xffff;
}

bool search_text_index_needle(const char *needle, size_t len, size_t *chars_r)
{
	const unsigned char *p = (const unsigned char *)needle;
	size_t chars = 0;
	for (size_t i = 0; i < len; chars++) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0 || index_unsafe(cp))
			return false;
		i += n;
	}
	*chars_r = chars;
	return true;
}

/* Why replacing is exact: a needle is valid UTF-8 free of U+FFFD, so it
 * starts on a character boundary, the strict decoder reads its characters
 * back as they are, and no occurrence can overlap a replacement; every
 * occurrence in the text survives, and none is made. */
void search_text_for_index(const char *text, size_t len, struct buf *out)
{
	static const char replacement[] = "\xef\xbf\xbd";	/* U+FFFD */
	const unsigned char *p = (const unsigned char *)text;
	buf_reserve(out, len);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0 || index_unsafe(cp)) {
			buf_append(out, replacement, 3);
			i += n == 0 ? 1 : n;
			continue;
		}
		buf_append(out, p + i, n);
		i += n;
	}
}

/* ---- index rows ------------------------------------------------------ */

/* The names HEADER keys use for the store's cached fields, in
 * enum store_search_field order. */
static const char *const cached_fields[STORE_SEARCH_HEADER_FIELDS] = {
	"from", "to", "cc", "bcc", "subject",
};

int search_text_field_id(const char *name, size_t len)
{
	/* Compared as the matcher compares names: whole, without case. */
	for (int i = 0; i < STORE_SEARCH_HEADER_FIELDS; i++) {
		if (strlen(cached_fields[i]) == len && strncasecmp(name, cached_fields[i], len) == 0)
			return i;
	}
	return -1;
}

/* Each instance's text, joined by NUL: a needle without NUL (the only
 * kind the index is asked) cannot match across two instances, as the
 * matcher tries them one by one. */
static bool cache_fields(const struct mime_part *root, const char *data, struct buf fields[])
{
	size_t pos = 0;
	struct mime_header_field f;
	bool present[STORE_SEARCH_HEADER_FIELDS] = { false };
	while (mime_header_next(root, data, &pos, &f) > 0) {
		int id = search_text_field_id(f.name, f.name_len);
		if (id < 0)
			continue;
		if (present[id])
			buf_append_char(&fields[id], '\0');
		present[id] = true;
		search_text_field(&f, &fields[id]);
		if (fields[id].len > SEARCH_TEXT_FIELD_MAX)
			return false;
	}
	return true;
}

static char *index_copy(const struct buf *text, size_t *len_r)
{
	struct buf out = BUF_INIT;
	search_text_for_index(text->data, text->len, &out);
	*len_r = out.len;
	return buf_steal(&out);
}

struct store_search_text *search_text_headers(const struct mime_part *root, const char *data)
{
	struct buf fields[STORE_SEARCH_HEADER_FIELDS] = { BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT };
	struct store_search_text *text = xcalloc(1, sizeof(*text));
	text->fields_valid = cache_fields(root, data, fields);
	for (int i = 0; i < STORE_SEARCH_HEADER_FIELDS && text->fields_valid; i++) {
		/* A field present has at least its two LFs. */
		text->field_lens[i] = fields[i].len;
		text->fields[i] = fields[i].len > 0 ? buf_steal(&fields[i]) : NULL;
	}
	for (int i = 0; i < STORE_SEARCH_HEADER_FIELDS; i++)
		buf_free(&fields[i]);
	return text;
}

bool search_text_full(const struct mime_part *root, const char *data, struct store_search_text *text)
{
	struct buf head = BUF_INIT, body = BUF_INIT;
	search_text_header(root, data, &head);
	search_text_body(root, data, &body);
	bool fits = head.len + body.len <= SEARCH_TEXT_INDEX_MAX;
	if (fits) {
		text->head = index_copy(&head, &text->head_len);
		text->body = index_copy(&body, &text->body_len);
	}
	buf_free(&head);
	buf_free(&body);
	return fits;
}
