/* libFuzzer target for the MIME parser and the IMAP writers over it. */
#include "core/buf.h"
#include "imap/bodystructure.h"
#include "imap/envelope.h"
#include "mime/mime.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
	static const char *const sections[] = { "", "1", "2", "1.1", "1.2.1", "2.1.1", "3.1" };
	const char *data = (const char *)bytes;
	struct mime_part *root = mime_parse(data, size);
	struct buf out = BUF_INIT, text = BUF_INIT;
	imap_write_envelope(&out, root, data);
	imap_write_bodystructure(&out, root, data, true);
	imap_write_bodystructure(&out, root, data, false);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		const struct mime_part *p;
		if (mime_find_section(root, sections[i], &p) == 0) {
			buf_clear(&out);
			mime_body_to_utf8(p, data, &out);
			if (mime_header_get(p, data, "subject", &text) > 0)
				mime_decode_header_value(text.data, text.len, &out);
		}
	}
	buf_free(&out);
	buf_free(&text);
	mime_free(&root);
	return 0;
}
