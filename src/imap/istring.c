#include "imap/istring.h"

#include <stdbool.h>
#include <string.h>

#define REPLACEMENT "\xef\xbf\xbd"	/* U+FFFD, for NUL */

void imap_istring_write(struct buf *out, const char *s, size_t len)
{
	bool quotable = len <= IMAP_ISTRING_QUOTED_MAX;
	size_t nuls = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0') {
			nuls++;
			quotable = false;
		} else if (c == '\r' || c == '\n' || c >= 0x80) {
			quotable = false;
		}
	}
	if (quotable) {
		buf_reserve(out, len + 2);
		buf_append_char(out, '"');
		size_t run = 0;
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\') {
				buf_append(out, s + run, i - run);
				buf_append_char(out, '\\');
				run = i;
			}
		}
		buf_append(out, s + run, len - run);
		buf_append_char(out, '"');
		return;
	}
	/* Each NUL grows by two bytes when replaced. */
	buf_printf(out, "{%zu}\r\n", len + nuls * 2);
	if (nuls == 0) {
		buf_append(out, s, len);
		return;
	}
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0') {
			buf_append(out, s + run, i - run);
			buf_append_str(out, REPLACEMENT);
			run = i + 1;
		}
	}
	buf_append(out, s + run, len - run);
}

void imap_istring_write_nstring(struct buf *out, const char *s, size_t len)
{
	if (s == NULL)
		buf_append_str(out, "NIL");
	else
		imap_istring_write(out, s, len);
}

void imap_istring_write_cstr(struct buf *out, const char *s)
{
	imap_istring_write_nstring(out, s, s != NULL ? strlen(s) : 0);
}
