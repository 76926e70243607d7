/* libFuzzer target: the parser fed in chunks sized by the first byte, with
 * literals accepted when allowed (or, when the first byte says so, those
 * above 16 bytes streamed to a sink that counts them); every argument also goes through
 * seqset_parse() and a UTF-7 round trip, which must give back the input. */
#include "imap/parser.h"
#include "imap/seqset.h"
#include "imap/utf7.h"

#include <string.h>

static void visit(const struct imap_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct seqset set;
		struct buf u8 = BUF_INIT, u7 = BUF_INIT;
		if (args[i].type == IMAP_ARG_LIST) {
			visit(args[i].list, args[i].list_count);
			continue;
		}
		if (imap_arg_is_streamed(&args[i]))
			continue;	/* its bytes are not here */
		if (seqset_parse(args[i].str, &set) == 0) {
			seqset_resolve(&set, 1000);
			(void)seqset_contains(&set, 7);
			seqset_free(&set);
		}
		if (imap_utf7_to_utf8(args[i].str, args[i].len, &u8) == 0 &&
		    (imap_utf8_to_utf7(u8.data, u8.len, &u7) != 0 || u7.len != args[i].len ||
		     (u7.len > 0 && memcmp(u7.data, args[i].str, u7.len) != 0)))
			__builtin_trap();
		buf_free(&u8);
		buf_free(&u7);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count_sink(void *ctx, const char *bytes, size_t len)
{
	(void)bytes;
	*(size_t *)ctx += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits limits = {
		.max_line = 200, .max_literal = 300, .max_depth = 6,
		.stream_threshold = size > 0 && (data[0] & 0x40) ? 16 : 0,
	};
	struct imap_parser *p = imap_parser_new(&limits);
	size_t streamed = 0;
	size_t chunk = size > 0 ? data[0] % 32 + 1 : 1, pos = 0, consumed;
	while (pos < size) {
		size_t len = size - pos < chunk ? size - pos : chunk;
		enum imap_parse_result r = imap_parser_feed(p, (const char *)data + pos, len, &consumed);
		pos += consumed;
		if (r == IMAP_PARSE_FATAL)
			break;
		if (r == IMAP_PARSE_LITERAL && imap_parser_literal_too_large(p))
			imap_parser_literal_reject(p);
		else if (r == IMAP_PARSE_LITERAL && imap_parser_literal_size(p) > 16 &&
			 limits.stream_threshold > 0)
			imap_parser_literal_stream(p, count_sink, &streamed);
		else if (r == IMAP_PARSE_LITERAL)
			imap_parser_literal_accept(p);
		else if (r == IMAP_PARSE_COMMAND) {
			visit(imap_parser_command(p)->args, imap_parser_command(p)->arg_count);
			if (strcmp(imap_parser_command(p)->name, "IDLE") == 0)
				imap_parser_expect_line(p);
		}
	}
	imap_parser_free(&p);
	return 0;
}
