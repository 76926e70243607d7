#include "imapd/message_meta.h"
#include "core/buf.h"
#include "core/xalloc.h"
#include "imap/bodystructure.h"
#include "imap/envelope.h"
#include "imapd/search_text.h"
#include "mime/mime.h"

#include <stdio.h>
#include <string.h>

/* Versioned text, so a later postern can add fields and still read these. */
#define EXTRA_PREFIX "v1 "

static bool has_bare_lf(const char *data, size_t len)
{
	const char *p = data;
	const char *end = data + len;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (p == data || p[-1] != '\r')
			return true;
		p++;
	}
	return false;
}

void message_meta_compute(const char *data, size_t len, struct store_message_meta *meta_r)
{
	struct mime_part *root = mime_parse(data, len);
	struct buf envelope = BUF_INIT, bodystructure = BUF_INIT, body = BUF_INIT;
	imap_write_envelope(&envelope, root, data);
	imap_write_bodystructure(&bodystructure, root, data, true);
	imap_write_bodystructure(&body, root, data, false);
	bool bare = has_bare_lf(data, len);
	uint64_t imap_size = bare ? (uint64_t)root->header_size + root->body_size : len;
	struct store_search_text *search = search_text_headers(root, data);
	mime_free(&root);
	*meta_r = (struct store_message_meta){
		.envelope = buf_steal(&envelope),
		.bodystructure = buf_steal(&bodystructure),
		.body = buf_steal(&body),
		.extra = xasprintf(EXTRA_PREFIX "size=%llu bare_lf=%d", (unsigned long long)imap_size, bare),
		.search = search,
	};
	meta_r->extra_len = strlen(meta_r->extra);
}

int message_extra_decode(const void *extra, size_t len, struct message_extra *out)
{
	if (extra == NULL || len < strlen(EXTRA_PREFIX) || len > 200)
		return -1;
	char text[201];
	memcpy(text, extra, len);
	text[len] = '\0';
	unsigned long long size;
	int bare;
	if (sscanf(text, EXTRA_PREFIX "size=%llu bare_lf=%d", &size, &bare) != 2)
		return -1;
	out->imap_size = size;
	out->bare_lf = bare != 0;
	return 0;
}
