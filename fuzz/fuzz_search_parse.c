/* libFuzzer target: IMAP command lines (any command name) through the IMAP
 * parser, then every command's arguments through the SEARCH parser; the
 * input also goes through the case folding and the sent-date reader. */
#include "imap/parser.h"
#include "imap/search_parse.h"
#include "imapd/search_match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits limits = { 4096, 4096, 40 };
	struct imap_parser *p = imap_parser_new(&limits);
	size_t pos = 0, consumed;
	while (pos < size) {
		enum imap_parse_result r = imap_parser_feed(p, (const char *)data + pos, size - pos, &consumed);
		pos += consumed;
		if (r == IMAP_PARSE_FATAL)
			break;
		if (r == IMAP_PARSE_LITERAL && imap_parser_literal_too_large(p))
			imap_parser_literal_reject(p);
		else if (r == IMAP_PARSE_LITERAL)
			imap_parser_literal_accept(p);
		else if (r == IMAP_PARSE_COMMAND) {
			const struct imap_command *cmd = imap_parser_command(p);
			struct search_query q;
			const char *error;
			if (search_parse(cmd->args, cmd->arg_count, &q, &error) == 0 && q.root == NULL)
				__builtin_trap();
			search_query_free(&q);
		}
	}
	imap_parser_free(&p);
	struct buf folded = BUF_INIT;
	int64_t day;
	search_fold((const char *)data, size, &folded);
	(void)search_parse_sent_date((const char *)data, size, &day);
	buf_free(&folded);
	return 0;
}
