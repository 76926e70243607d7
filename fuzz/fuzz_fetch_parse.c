/* libFuzzer target for FETCH data items: the input is the text after
 * "a FETCH 1 ", run through the command parser and then fetch_parse(), and
 * also handed to fetch_parse_item() raw (bytes the command parser would
 * refuse must still be safe there). */
#include "core/buf.h"
#include "imap/fetch_parse.h"
#include "imap/parser.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
	struct fetch_request req = { 0 };
	const char *error = NULL;
	(void)fetch_parse_item((const char *)bytes, size, &req, &error);
	fetch_request_free(&req);

	struct imap_parser *p = imap_parser_new(NULL);
	struct buf line = BUF_INIT;
	buf_append_str(&line, "a FETCH 1 ");
	buf_append(&line, bytes, size);
	buf_append_str(&line, "\r\n");
	size_t consumed = 0;
	if (imap_parser_feed(p, line.data, line.len, &consumed) == IMAP_PARSE_COMMAND) {
		const struct imap_command *cmd = imap_parser_command(p);
		if (cmd->arg_count == 2 && fetch_parse(&cmd->args[1], &req, &error) == 0)
			fetch_request_free(&req);
	}
	buf_free(&line);
	imap_parser_free(&p);
	return 0;
}
