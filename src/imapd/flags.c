#include "imapd/flags.h"
#include "core/xalloc.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	uint32_t bit;
} system_flags[] = {
	{ "\\Seen", STORE_FLAG_SEEN }, { "\\Answered", STORE_FLAG_ANSWERED },
	{ "\\Flagged", STORE_FLAG_FLAGGED }, { "\\Deleted", STORE_FLAG_DELETED },
	{ "\\Draft", STORE_FLAG_DRAFT },
};

int flags_parse(const struct imap_arg *args, size_t count, struct flag_list *out, const char **error_r)
{
	*out = (struct flag_list){ 0 };
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *arg = &args[i];
		if (!imap_arg_is_atom(arg) || strpbrk(arg->str, "[]") != NULL) {
			*error_r = "Flags must be atoms";
			flag_list_free(out);
			return -1;
		}
		if (arg->str[0] != '\\') {
			out->keywords = xrealloc(out->keywords, (out->keyword_count + 1) * sizeof(char *));
			out->keywords[out->keyword_count++] = arg->str;
			continue;
		}
		bool known = false;
		for (size_t k = 0; k < sizeof(system_flags) / sizeof(system_flags[0]); k++) {
			if (strcasecmp(arg->str, system_flags[k].name) == 0) {
				out->flags |= system_flags[k].bit;
				known = true;
			}
		}
		if (!known) {
			/* RFC 9051 2.3.2: \Recent is the server's; other
			 * backslash names are not flags a client can set. */
			*error_r = strcasecmp(arg->str, "\\Recent") == 0 ? "\\Recent can't be set by a client"
									 : "Unknown system flag";
			flag_list_free(out);
			return -1;
		}
	}
	return 0;
}

void flag_list_free(struct flag_list *list)
{
	free(list->keywords);
	list->keywords = NULL;
	list->keyword_count = 0;
}
