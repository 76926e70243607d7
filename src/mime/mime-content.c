/* Content-Type, Content-Disposition, Content-Language and
 * Content-Transfer-Encoding values: RFC 2045 5.1 tokens and parameters with
 * RFC 822 comments, RFC 2231 parameter continuations, RFC 3282 language
 * lists. Lenient: garbage up to the next ';' is skipped. */
#include "mime/mime-private.h"

#include "core/limits.h"
#include "core/xalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct lex {
	const char *s;
	size_t len, pos;
};

static bool is_tspecial(unsigned char c)
{
	return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* RFC 2045 5.1 token; 8-bit bytes are accepted as raw mail has them. */
static bool is_token_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && !is_tspecial(c);
}

/* Skips blanks and (nested (comments)), RFC 822 3.4.3. */
static void lex_skip_cfws(struct lex *l)
{
	while (l->pos < l->len) {
		char c = l->s[l->pos];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			l->pos++;
		} else if (c == '(') {
			size_t depth = 0;
			while (l->pos < l->len) {
				c = l->s[l->pos++];
				if (c == '\\' && l->pos < l->len)
					l->pos++;
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
}

static size_t lex_token(struct lex *l)
{
	size_t start = l->pos;
	while (l->pos < l->len && is_token_char((unsigned char)l->s[l->pos]))
		l->pos++;
	return l->pos - start;
}

/* At a '"': appends the unescaped content; an unterminated string ends at
 * the end of the value. */
static void lex_quoted(struct lex *l, struct buf *out)
{
	l->pos++;
	while (l->pos < l->len) {
		char c = l->s[l->pos++];
		if (c == '"')
			return;
		if (c == '\\' && l->pos < l->len)
			c = l->s[l->pos++];
		buf_append_char(out, c);
	}
}

static void lex_skip_to_semicolon(struct lex *l)
{
	while (l->pos < l->len && l->s[l->pos] != ';') {
		if (l->s[l->pos] == '"') {
			struct buf junk = BUF_INIT;
			lex_quoted(l, &junk);
			buf_free(&junk);
		} else {
			l->pos++;
		}
	}
}

static char *pool_lower(struct mime_pool *pool, const char *s, size_t n)
{
	char *d = mime_pool_strndup(pool, s, n);
	for (size_t i = 0; i < n; i++)
		d[i] = mime_ascii_lower(d[i]);
	return d;
}

struct raw_param {
	char *name;	/* lowercased */
	char *value;
	size_t value_len;
	bool used;
};

/* RFC 2231 3: "name*N" or "name*N*" is section N of "name". Returns the
 * section number, or -1 when the name is not a continuation. */
static long section_of(const char *name, size_t *base_len_r, bool *extended_r)
{
	const char *star = strchr(name, '*');
	if (star == NULL || star[1] < '0' || star[1] > '9')
		return -1;
	long n = 0;
	const char *s = star + 1;
	while (*s >= '0' && *s <= '9') {
		n = n * 10 + (*s - '0');
		if (n > LIMIT_MIME_PARAMS)
			return -1;
		s++;
	}
	if (*s == '*' && s[1] == '\0')
		*extended_r = true;
	else if (*s == '\0')
		*extended_r = false;
	else
		return -1;
	*base_len_r = (size_t)(star - name);
	return n;
}

/* Joins RFC 2231 continuations into one parameter each, keeping the
 * encoded form of extended values (charset'language'%XX) under "name*", as
 * IMAP has no way to say a parameter's charset; the client decodes it
 * (this is also what Dovecot sends). Quadratic in the number of parameters,
 * which LIMIT_MIME_PARAMS bounds. */
static void merge_params(struct mime_pool *pool, struct raw_param *raw, size_t n,
			 struct mime_params *out)
{
	out->v = mime_pool_alloc(pool, (n + 1) * sizeof(*out->v));
	out->count = 0;
	for (size_t i = 0; i < n; i++) {
		if (raw[i].used)
			continue;
		size_t base_len;
		bool ext0;
		if (section_of(raw[i].name, &base_len, &ext0) < 0) {
			out->v[out->count].name = raw[i].name;
			out->v[out->count].value = raw[i].value;
			out->count++;
			raw[i].used = true;
			continue;
		}
		struct buf value = BUF_INIT;
		bool extended = false;
		for (long want = 0;; want++) {
			size_t j, blen;
			bool ext = false;
			for (j = i; j < n; j++) {
				if (!raw[j].used && section_of(raw[j].name, &blen, &ext) == want &&
				    blen == base_len && memcmp(raw[j].name, raw[i].name, base_len) == 0)
					break;
			}
			if (j == n)
				break;
			raw[j].used = true;
			if (want == 0)
				extended = ext;
			if (extended && !ext) {
				/* A plain section after an encoded one: keep
				 * the whole value decodable by escaping '%'. */
				for (size_t k = 0; k < raw[j].value_len; k++) {
					if (raw[j].value[k] == '%')
						buf_append_str(&value, "%25");
					else
						buf_append_char(&value, raw[j].value[k]);
				}
			} else {
				buf_append(&value, raw[j].value, raw[j].value_len);
			}
		}
		if (raw[i].used) {
			char *name = mime_pool_alloc(pool, base_len + 2);
			memcpy(name, raw[i].name, base_len);
			if (extended)
				name[base_len] = '*';
			out->v[out->count].name = name;
			out->v[out->count].value =
				mime_pool_strndup(pool, value.data != NULL ? value.data : "", value.len);
			out->count++;
		} else {
			/* Sections not starting at 0: keep this one as is. */
			out->v[out->count].name = raw[i].name;
			out->v[out->count].value = raw[i].value;
			out->count++;
			raw[i].used = true;
		}
		buf_free(&value);
	}
}

/* Parses "; name=value" pairs from l to the end. */
static void parse_params(struct mime_pool *pool, struct lex *l, struct mime_params *out)
{
	struct raw_param *raw = NULL;
	size_t n = 0, cap = 0;
	struct buf value = BUF_INIT;

	while (n < LIMIT_MIME_PARAMS) {
		lex_skip_cfws(l);
		if (l->pos >= l->len)
			break;
		if (l->s[l->pos] == ';') {
			l->pos++;
			continue;
		}
		size_t name_start = l->pos;
		size_t name_len = lex_token(l);
		lex_skip_cfws(l);
		if (name_len == 0 || l->pos >= l->len || l->s[l->pos] != '=') {
			lex_skip_to_semicolon(l);
			continue;
		}
		l->pos++;
		lex_skip_cfws(l);
		buf_clear(&value);
		if (l->pos < l->len && l->s[l->pos] == '"') {
			lex_quoted(l, &value);
		} else {
			/* Lenient: a value is anything up to ';' or blank,
			 * as unquoted tspecials ("boundary==_x") are common. */
			size_t start = l->pos;
			while (l->pos < l->len && l->s[l->pos] != ';' && l->s[l->pos] != ' ' &&
			       l->s[l->pos] != '\t' && l->s[l->pos] != '(' && l->s[l->pos] != '"')
				l->pos++;
			buf_append(&value, l->s + start, l->pos - start);
		}
		lex_skip_to_semicolon(l);
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			raw = xrealloc(raw, cap * sizeof(*raw));
		}
		raw[n].name = pool_lower(pool, l->s + name_start, name_len);
		raw[n].value = mime_pool_strndup(pool, value.data != NULL ? value.data : "", value.len);
		raw[n].value_len = value.len;
		raw[n].used = false;
		n++;
	}
	merge_params(pool, raw, n, out);
	free(raw);
	buf_free(&value);
}

void mime_parse_content_type(struct mime_pool *pool, const char *v, size_t len,
			     struct mime_part *part)
{
	struct lex l = { v, len, 0 };
	lex_skip_cfws(&l);
	size_t ts = l.pos, tl = lex_token(&l);
	lex_skip_cfws(&l);
	if (tl == 0 || l.pos >= l.len || l.s[l.pos] != '/')
		return;	/* RFC 2045 5.2: invalid means text/plain us-ascii */
	l.pos++;
	lex_skip_cfws(&l);
	size_t ss = l.pos, sl = lex_token(&l);
	if (sl == 0)
		return;
	part->type = pool_lower(pool, v + ts, tl);
	part->subtype = pool_lower(pool, v + ss, sl);
	part->flags |= MIME_PART_HAS_CONTENT_TYPE;
	parse_params(pool, &l, &part->params);
}

void mime_parse_disposition(struct mime_pool *pool, const char *v, size_t len,
			    struct mime_part *part)
{
	struct lex l = { v, len, 0 };
	lex_skip_cfws(&l);
	size_t ts = l.pos, tl = lex_token(&l);
	/* An empty type is kept (""): the parameters may still name the
	 * file, which is what clients look for. */
	part->disposition = mime_pool_strndup(pool, v != NULL ? v + ts : "", tl);
	parse_params(pool, &l, &part->disposition_params);
}

void mime_parse_language(struct mime_pool *pool, const char *v, size_t len,
			 struct mime_part *part)
{
	/* RFC 3282 2: Language-List = Language-Tag [CFWS] *("," [CFWS] Language-Tag) */
	struct lex l = { v, len, 0 };
	size_t cap = 0;
	while (l.pos < l.len && part->language_count < LIMIT_MIME_PARAMS) {
		lex_skip_cfws(&l);
		size_t ts = l.pos, tl = lex_token(&l);
		if (tl > 0) {
			if (part->language_count == cap) {
				cap = cap ? cap * 2 : 4;
				char **nv = mime_pool_alloc(pool, cap * sizeof(*nv));
				if (part->language_count > 0)
					memcpy(nv, part->languages,
					       part->language_count * sizeof(*nv));
				part->languages = nv;
			}
			part->languages[part->language_count++] =
				mime_pool_strndup(pool, v + ts, tl);
		}
		lex_skip_cfws(&l);
		if (l.pos < l.len && l.s[l.pos] != ',' && tl == 0)
			l.pos++;	/* skip a byte that is no token */
		else if (l.pos < l.len && l.s[l.pos] == ',')
			l.pos++;
	}
}

char *mime_parse_token_value(struct mime_pool *pool, const char *v, size_t len)
{
	struct lex l = { v, len, 0 };
	lex_skip_cfws(&l);
	size_t ts = l.pos, tl = lex_token(&l);
	return mime_pool_strndup(pool, v != NULL ? v + ts : "", tl);
}
