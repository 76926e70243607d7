#include "imap/istring.h"
#include "imap/quote.h"

#include <stdbool.h>
#include <string.h>

#define REPLACEMENT "\xef\xbf\xbd"	/* U+FFFD, for NUL */

void imap_istring_write(struct buf *out, const char *s, size_t len)
{
	size_t nuls = 0;
	for (size_t i = 0; i < len; i++)
		nuls += s[i] == '\0';
	if (nuls == 0) {
		/* ENVELOPE and BODYSTRUCTURE strings go to every client: no
		 * raw 8-bit in quoted strings, whatever was enabled. */
		imap_write_string(out, s, len, false);
		return;
	}
	/* RFC 3501 9: no NUL in a string at all; each becomes U+FFFD,
	 * growing by two bytes, in a literal. */
	buf_printf(out, "{%zu}\r\n", len + nuls * 2);
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
