/* Header field access over a parsed part: RFC 2822 2.2 fields, names
 * compared case-insensitively (RFC 2822 1.2.2), bytes kept as they are. */
#include "mime/mime-private.h"

#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

static size_t header_end(const struct mime_part *part)
{
	return part->body_start;
}

int mime_header_next(const struct mime_part *part, const char *data,
		     size_t *pos, struct mime_header_field *field_r)
{
	size_t end = header_end(part);
	size_t p = part->header_start + *pos;

	while (p < end) {
		size_t start = p;
		/* The field runs over its continuation lines (2.2.3). */
		const char *nl = memchr(data + p, '\n', end - p);
		p = nl != NULL ? (size_t)(nl - data) + 1 : end;
		while (p < end && (data[p] == ' ' || data[p] == '\t')) {
			nl = memchr(data + p, '\n', end - p);
			p = nl != NULL ? (size_t)(nl - data) + 1 : end;
		}
		size_t fend = p;
		if (fend > start && data[fend - 1] == '\n')
			fend--;
		if (fend > start && data[fend - 1] == '\r')
			fend--;
		if (fend == start || data[start] == ' ' || data[start] == '\t')
			continue;	/* the blank line, or a stray continuation */
		const char *colon = memchr(data + start, ':', fend - start);
		if (colon == NULL)
			continue;	/* not a field: tolerated, skipped */
		size_t nlen = (size_t)(colon - (data + start));
		while (nlen > 0 && (data[start + nlen - 1] == ' ' || data[start + nlen - 1] == '\t'))
			nlen--;
		field_r->name = data + start;
		field_r->name_len = nlen;
		field_r->value = colon + 1;
		field_r->value_len = fend - (size_t)(colon + 1 - data);
		*pos = p - part->header_start;
		return 1;
	}
	*pos = end - part->header_start;
	return 0;
}

static bool field_is(const struct mime_header_field *f, const char *name, size_t len)
{
	if (f->name_len != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (mime_ascii_lower(f->name[i]) != mime_ascii_lower(name[i]))
			return false;
	}
	return true;
}

int mime_header_get(const struct mime_part *part, const char *data,
		    const char *name, struct buf *value_r)
{
	struct mime_header_field f;
	size_t pos = 0, len = strlen(name);
	while (mime_header_next(part, data, &pos, &f) > 0) {
		if (field_is(&f, name, len)) {
			buf_clear(value_r);
			mime_header_unfold(f.value, f.value_len, value_r);
			return 1;
		}
	}
	return 0;
}

size_t mime_header_get_all(const struct mime_part *part, const char *data,
			   const char *name, struct mime_header_field **fields_r)
{
	struct mime_header_field f, *v = NULL;
	size_t pos = 0, len = strlen(name), n = 0, cap = 0;
	while (mime_header_next(part, data, &pos, &f) > 0) {
		if (!field_is(&f, name, len))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = f;
	}
	*fields_r = v;
	return n;
}

void mime_header_unfold(const char *value, size_t len, struct buf *out)
{
	size_t i = 0;
	while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == '\r' ||
			   value[i] == '\n'))
		i++;
	while (len > i && (value[len - 1] == ' ' || value[len - 1] == '\t' ||
			   value[len - 1] == '\r' || value[len - 1] == '\n'))
		len--;
	buf_reserve(out, len - i);
	while (i < len) {
		/* Copy runs between line ends in one go: linear even for a
		 * megabyte of folds. */
		const char *nl = memchr(value + i, '\n', len - i);
		size_t run_end = nl != NULL ? (size_t)(nl - value) : len;
		size_t copy_end = run_end;
		if (nl != NULL && copy_end > i && value[copy_end - 1] == '\r')
			copy_end--;
		buf_append(out, value + i, copy_end - i);
		i = nl != NULL ? run_end + 1 : len;
	}
}
