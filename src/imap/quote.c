/* Writing IMAP strings (RFC 3501 4.1-4.3, RFC 9051 4.3). */
#include "imap/quote.h"

#include "imap/utf7.h"

#include <strings.h>

/* Longest string we write quoted; longer ones go out as literals, which
 * clients read faster and which need no escaping. */
#define QUOTED_MAX 1024

/* ATOM-CHAR: any CHAR except atom-specials, RFC 3501 9:
 * "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
 * resp-specials. */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '{': case '%': case '*':
	case '"': case '\\': case ']':
		return false;
	default:
		return true;
	}
}

void imap_write_astring(struct buf *out, const char *s, size_t len)
{
	bool atom = len > 0 && !(len == 3 && strncasecmp(s, "NIL", 3) == 0);
	for (size_t i = 0; atom && i < len; i++)
		atom = is_atom_char((unsigned char)s[i]);
	if (atom)
		buf_append(out, s, len);
	else
		imap_write_string(out, s, len, false);
}

static bool can_quote(const char *s, size_t len, bool utf8)
{
	if (len > QUOTED_MAX)
		return false;
	bool high = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0' || c == '\r' || c == '\n')
			return false;
		if (c >= 0x80) {
			if (!utf8)
				return false;
			high = true;
		}
	}
	/* RFC 9051 9: 8-bit in a quoted string must be UTF-8. */
	return !high || imap_utf8_is_valid(s, len);
}

void imap_write_string(struct buf *out, const char *s, size_t len, bool utf8)
{
	if (!can_quote(s, len, utf8)) {
		buf_printf(out, "{%zu}\r\n", len);
		buf_append(out, s, len);
		return;
	}
	buf_reserve(out, len + 2);
	buf_append_char(out, '"');
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			buf_append(out, s + start, i - start);
			buf_append_char(out, '\\');
			start = i;
		}
	}
	buf_append(out, s + start, len - start);
	buf_append_char(out, '"');
}

void imap_write_nstring(struct buf *out, const char *s, size_t len, bool utf8)
{
	if (s == NULL)
		buf_append_str(out, "NIL");
	else
		imap_write_string(out, s, len, utf8);
}

void imap_write_text(struct buf *out, const char *s, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') {
			buf_append(out, s + start, i - start);
			buf_append_char(out, ' ');
			start = i + 1;
		}
	}
	buf_append(out, s + start, len - start);
}
