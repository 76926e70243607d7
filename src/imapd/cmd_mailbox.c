/* Mailbox commands of the authenticated state: CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE (RFC 9051 6.3.4-6.3.8), LIST and LSUB (6.3.9,
 * RFC 3501 6.3.8-9, with the parts of LIST-EXTENDED (RFC 5258), CHILDREN
 * (RFC 3348), SPECIAL-USE (RFC 6154) and LIST-STATUS (RFC 5819) that LIST
 * needs), STATUS (6.3.11) and NAMESPACE (RFC 2342). */
#include "imapd/selected.h"
#include "imapd/session.h"
#include "core/limits.h"
#include "core/xalloc.h"
#include "imap/quote.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_MAX_PATTERNS 32

static bool name_arg(struct session *s, const struct imap_command *cmd, size_t index,
		     struct buf *name, const char *usage)
{
	const char *error = NULL;
	if (index >= cmd->arg_count) {
		session_tagged(s, cmd->tag, "BAD", "%s", usage);
		return false;
	}
	if (session_mailbox_from_wire(s, &cmd->args[index], name, &error) < 0) {
		session_tagged(s, cmd->tag, "BAD", "%s", error);
		return false;
	}
	return true;
}

/* "inbox/x" and "Inbox" name INBOX (RFC 9051 5.1). */
static void canonical_inbox(struct buf *name)
{
	if (name->len >= 5 && strncasecmp(name->data, "INBOX", 5) == 0 &&
	    (name->len == 5 || name->data[5] == '/'))
		memcpy(name->data, "INBOX", 5);
}

static const char *const special_use_names[] = {
	[STORE_SPECIAL_NONE] = NULL,
	[STORE_SPECIAL_DRAFTS] = "\\Drafts",
	[STORE_SPECIAL_SENT] = "\\Sent",
	[STORE_SPECIAL_TRASH] = "\\Trash",
	[STORE_SPECIAL_JUNK] = "\\Junk",
	[STORE_SPECIAL_ARCHIVE] = "\\Archive",
	[STORE_SPECIAL_ALL] = "\\All",
	[STORE_SPECIAL_FLAGGED] = "\\Flagged",
};

static int special_use_parse(const char *text, enum store_special_use *use_r)
{
	for (size_t i = 1; i < sizeof(special_use_names) / sizeof(special_use_names[0]); i++) {
		if (strcasecmp(text, special_use_names[i]) == 0) {
			*use_r = (enum store_special_use)i;
			return 0;
		}
	}
	return -1;
}

/* RFC 6154 3: CREATE name (USE (\Sent)). */
static int create_params(struct session *s, const struct imap_command *cmd,
			 enum store_special_use *use_r)
{
	*use_r = STORE_SPECIAL_NONE;
	if (cmd->arg_count == 1)
		return 0;
	const struct imap_arg *params = &cmd->args[1];
	if (cmd->arg_count != 2 || !imap_arg_is_list(params) || params->list_count != 2 ||
	    !imap_arg_is_atom(&params->list[0]) || strcasecmp(params->list[0].str, "USE") != 0 ||
	    !imap_arg_is_list(&params->list[1]) || params->list[1].list_count > 1) {
		session_tagged(s, cmd->tag, "BAD", "CREATE takes a mailbox name and optionally (USE (\\attribute))");
		return -1;
	}
	const struct imap_arg *uses = &params->list[1];
	if (uses->list_count == 1 &&
	    (!imap_arg_is_atom(&uses->list[0]) || special_use_parse(uses->list[0].str, use_r) < 0)) {
		session_tagged(s, cmd->tag, "NO", "[USEATTR] Unsupported special-use attribute");
		return -1;
	}
	return 0;
}

void cmd_create(struct session *s, const struct imap_command *cmd)
{
	struct buf name = BUF_INIT;
	enum store_special_use use;
	if (!name_arg(s, cmd, 0, &name, "CREATE takes a mailbox name") || create_params(s, cmd, &use) < 0) {
		buf_free(&name);
		return;
	}
	/* RFC 9051 6.3.4: a trailing delimiter declares intent to create children. */
	while (name.len > 1 && name.data[name.len - 1] == '/')
		name.data[--name.len] = '\0';
	canonical_inbox(&name);
	if (strcmp(name.data, "INBOX") == 0) {
		session_tagged(s, cmd->tag, "NO", "[ALREADYEXISTS] INBOX always exists");
		buf_free(&name);
		return;
	}
	/* RFC 9051 6.3.4: create the missing superiors too, so every level
	 * is a real mailbox. */
	for (char *slash = strchr(name.data, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		bool exists_already = strcmp(name.data, "INBOX") == 0;
		if (!exists_already && store_mailbox_create(s->store, name.data, STORE_SPECIAL_NONE) < 0 &&
		    store_last_error(s->store, NULL) != STORE_ERR_EXISTS) {
			*slash = '/';
			session_store_error(s, cmd->tag, "CREATE");
			buf_free(&name);
			return;
		}
		*slash = '/';
	}
	if (store_mailbox_create(s->store, name.data, use) < 0)
		session_store_error(s, cmd->tag, "CREATE");
	else
		session_ok(s, cmd->tag, "CREATE completed");
	buf_free(&name);
}

void cmd_delete(struct session *s, const struct imap_command *cmd)
{
	struct buf name = BUF_INIT;
	if (!name_arg(s, cmd, 0, &name, "DELETE takes a mailbox name")) {
		buf_free(&name);
		return;
	}
	canonical_inbox(&name);
	if (strcmp(name.data, "INBOX") == 0) {
		session_tagged(s, cmd->tag, "NO", "[CANNOT] INBOX can't be deleted");
		buf_free(&name);
		return;
	}
	bool was_selected = s->selected != NULL && strcmp(s->selected->name, name.data) == 0;
	if (store_mailbox_delete(s->store, name.data) < 0) {
		session_store_error(s, cmd->tag, "DELETE");
	} else {
		if (was_selected) {
			session_unselect(s);
			session_untagged(s, "OK [CLOSED] The selected mailbox was deleted");
		}
		session_ok(s, cmd->tag, "DELETE completed");
	}
	buf_free(&name);
}

void cmd_rename(struct session *s, const struct imap_command *cmd)
{
	struct buf from = BUF_INIT, to = BUF_INIT;
	if (cmd->arg_count != 2) {
		session_tagged(s, cmd->tag, "BAD", "RENAME takes two mailbox names");
		return;
	}
	if (name_arg(s, cmd, 0, &from, "") && name_arg(s, cmd, 1, &to, "")) {
		canonical_inbox(&from);
		canonical_inbox(&to);
		while (to.len > 1 && to.data[to.len - 1] == '/')
			to.data[--to.len] = '\0';
		if (store_mailbox_rename(s->store, from.data, to.data) < 0) {
			session_store_error(s, cmd->tag, "RENAME");
		} else {
			if (s->selected != NULL && strcmp(s->selected->name, from.data) == 0 &&
			    strcmp(from.data, "INBOX") != 0) {
				free(s->selected->name);
				s->selected->name = xstrdup(to.data);
			}
			session_ok(s, cmd->tag, "RENAME completed");
		}
	}
	buf_free(&from);
	buf_free(&to);
}

static void subscription(struct session *s, const struct imap_command *cmd, bool subscribe)
{
	struct buf name = BUF_INIT;
	if (!name_arg(s, cmd, 0, &name, "SUBSCRIBE takes a mailbox name")) {
		buf_free(&name);
		return;
	}
	if (cmd->arg_count != 1) {
		session_tagged(s, cmd->tag, "BAD", "Too many arguments");
		buf_free(&name);
		return;
	}
	canonical_inbox(&name);
	int r = subscribe ? store_subscribe(s->store, name.data) : store_unsubscribe(s->store, name.data);
	if (r < 0)
		session_store_error(s, cmd->tag, subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
	else
		session_ok(s, cmd->tag, "%s completed", subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
	buf_free(&name);
}

void cmd_subscribe(struct session *s, const struct imap_command *cmd)
{
	subscription(s, cmd, true);
}

void cmd_unsubscribe(struct session *s, const struct imap_command *cmd)
{
	subscription(s, cmd, false);
}

/* --- Wildcards ----------------------------------------------------------- */

/* '*' matches anything, '%' anything but the delimiter (RFC 9051 6.3.9).
 * Dynamic programming over (pattern, name) positions keeps patterns like
 * "*a*a*a*a*b" linear per cell instead of exponential. */
static bool wildcard_match(const char *pattern, const char *name)
{
	size_t pl = strlen(pattern), nl = strlen(name);
	/* row[j]: pattern[0..i) matches name[0..j) */
	bool *row = xcalloc(nl + 1, sizeof(bool)), *next = xcalloc(nl + 1, sizeof(bool));
	row[0] = true;
	for (size_t j = 1; j <= nl; j++)
		row[j] = false;
	for (size_t i = 0; i < pl; i++) {
		char p = pattern[i];
		if (p == '*' || p == '%') {
			bool reach = false;
			for (size_t j = 0; j <= nl; j++) {
				reach = reach || row[j];
				next[j] = reach;
				if (p == '%' && j < nl && name[j] == '/')
					reach = false;
			}
		} else {
			next[0] = false;
			for (size_t j = 1; j <= nl; j++)
				next[j] = row[j - 1] && name[j - 1] == p;
		}
		bool *tmp = row;
		row = next;
		next = tmp;
	}
	bool matched = row[nl];
	free(row);
	free(next);
	return matched;
}

/* --- LIST ---------------------------------------------------------------- */

struct list_item {
	char *name;
	bool exists;
	bool subscribed;
	bool has_children;		/* some existing mailbox below */
	bool has_subscribed_children;
	enum store_special_use special_use;
};

struct list_options {
	bool lsub;
	bool select_subscribed, select_special_use, recursive_match;
	bool return_subscribed, return_children, return_special_use;
	bool extended;			/* any LIST-EXTENDED syntax was used */
	const struct imap_arg *status_items;	/* RETURN (STATUS (...)) */
	char *patterns[LIST_MAX_PATTERNS];
	size_t pattern_count;
};

static struct list_item *find_item(struct list_item *items, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(items[i].name, name) == 0)
			return &items[i];
	}
	return NULL;
}

static struct list_item *add_item(struct list_item **items, size_t *count, size_t *cap, const char *name)
{
	struct list_item *found = find_item(*items, *count, name);
	if (found != NULL)
		return found;
	if (*count == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*items = xrealloc(*items, *cap * sizeof(**items));
	}
	struct list_item *item = &(*items)[(*count)++];
	*item = (struct list_item){ .name = xstrdup(name) };
	return item;
}

/* Every mailbox and subscription, plus each missing superior of one. */
static int gather_items(struct session *s, struct list_item **items_r, size_t *count_r)
{
	struct store_mailbox_entry *entries = NULL;
	size_t count = 0, cap = 0, n = 0;
	if (store_mailbox_list(s->store, &entries, &count) < 0)
		return -1;
	struct list_item *items = NULL;
	for (size_t i = 0; i < count; i++) {
		struct list_item *item = add_item(&items, &n, &cap, entries[i].name);
		item->exists = item->exists || entries[i].id != 0;
		item->subscribed = item->subscribed || entries[i].subscribed;
		if (entries[i].id != 0)
			item->special_use = entries[i].special_use;
		bool exists = entries[i].id != 0, subscribed = entries[i].subscribed;
		char *path = xstrdup(entries[i].name);
		for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
			*slash = '\0';
			struct list_item *parent = add_item(&items, &n, &cap, path);
			parent->has_children = parent->has_children || exists;
			parent->has_subscribed_children = parent->has_subscribed_children || subscribed;
		}
		free(path);
	}
	store_mailbox_list_free(&entries, count);
	*items_r = items;
	*count_r = n;
	return 0;
}

static bool any_pattern_matches(const struct list_options *o, const char *name)
{
	for (size_t i = 0; i < o->pattern_count; i++) {
		if (wildcard_match(o->patterns[i], name))
			return true;
	}
	return false;
}

static void write_status_items(struct session *s, struct buf *out, const struct store_status *st,
			       const struct imap_arg *items)
{
	buf_append_char(out, '(');
	for (size_t i = 0; i < items->list_count; i++) {
		const char *item = items->list[i].str;
		if (i > 0)
			buf_append_char(out, ' ');
		if (strcasecmp(item, "MESSAGES") == 0)
			buf_printf(out, "MESSAGES %u", st->messages);
		else if (strcasecmp(item, "RECENT") == 0)
			buf_printf(out, "RECENT %u", st->recent);
		else if (strcasecmp(item, "UIDNEXT") == 0)
			buf_printf(out, "UIDNEXT %u", st->uidnext);
		else if (strcasecmp(item, "UIDVALIDITY") == 0)
			buf_printf(out, "UIDVALIDITY %u", st->uidvalidity);
		else if (strcasecmp(item, "UNSEEN") == 0)
			buf_printf(out, "UNSEEN %u", st->unseen);
		else if (strcasecmp(item, "DELETED") == 0)
			buf_printf(out, "DELETED %u", st->deleted);
		else if (strcasecmp(item, "SIZE") == 0)
			buf_printf(out, "SIZE %llu", (unsigned long long)st->size);
		else if (strcasecmp(item, "HIGHESTMODSEQ") == 0)
			buf_printf(out, "HIGHESTMODSEQ %llu", (unsigned long long)st->highestmodseq);
		else if (strcasecmp(item, "MAILBOXID") == 0)
			buf_printf(out, "MAILBOXID (%s)", st->objectid);
	}
	buf_append_char(out, ')');
}

static bool status_items_valid(const struct imap_arg *items)
{
	static const char *const known[] = {
		"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
		"HIGHESTMODSEQ", "MAILBOXID",
	};
	if (!imap_arg_is_list(items) || items->list_count == 0)
		return false;
	for (size_t i = 0; i < items->list_count; i++) {
		bool ok = false;
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]) && imap_arg_is_atom(&items->list[i]); k++)
			ok = ok || strcasecmp(items->list[i].str, known[k]) == 0;
		if (!ok)
			return false;
	}
	return true;
}

static void send_list_item(struct session *s, const struct list_options *o, const struct list_item *item)
{
	struct buf line = BUF_INIT;
	buf_printf(&line, "* %s (", o->lsub ? "LSUB" : "LIST");
	size_t mark = line.len;
#define ATTR(text) do { if (line.len > mark) buf_append_char(&line, ' '); buf_append_str(&line, text); } while (0)
	if (!item->exists)
		ATTR(o->select_subscribed && !item->has_children ? "\\NonExistent" : "\\Noselect");
	if (!o->lsub || o->return_children) {
		/* RFC 3348: children means existing mailboxes below. */
		ATTR(item->has_children ? "\\HasChildren" : "\\HasNoChildren");
	}
	if (item->exists && item->special_use != STORE_SPECIAL_NONE && !o->lsub &&
	    (!o->extended || o->return_special_use || o->select_special_use))
		ATTR(special_use_names[item->special_use]);
	if (item->subscribed && (o->return_subscribed || o->select_subscribed))
		ATTR("\\Subscribed");
#undef ATTR
	buf_append_str(&line, ") \"/\" ");
	session_write_mailbox(s, &line, item->name);
	if (o->recursive_match && o->select_subscribed && !item->subscribed && item->has_subscribed_children)
		buf_append_str(&line, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	buf_append_str(&line, "\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);

	if (o->status_items != NULL && item->exists) {
		struct store_status st;
		if (store_mailbox_status(s->store, item->name, UINT32_MAX, &st) == 0) {
			struct buf status = BUF_INIT;
			buf_append_str(&status, "* STATUS ");
			session_write_mailbox(s, &status, item->name);
			buf_append_char(&status, ' ');
			write_status_items(s, &status, &st, o->status_items);
			buf_append_str(&status, "\r\n");
			conn_write(s->conn, status.data, status.len);
			buf_free(&status);
		}
	}
}

static bool item_selected(const struct list_options *o, const struct list_item *item)
{
	if (o->lsub)
		return item->subscribed || (item->has_subscribed_children);
	if (o->select_subscribed)
		return item->subscribed || (o->recursive_match && item->has_subscribed_children);
	if (o->select_special_use)
		return item->exists && item->special_use != STORE_SPECIAL_NONE;
	return item->exists || item->has_children;
}

static int compare_items(const void *a, const void *b)
{
	return strcmp(((const struct list_item *)a)->name, ((const struct list_item *)b)->name);
}

/* True when a subscribed name below parent matches no pattern, so the
 * client would not learn of it unless parent is shown. */
static bool hidden_subscribed_child(const struct list_options *o, const struct list_item *items,
				    size_t count, const char *parent)
{
	size_t len = strlen(parent);
	for (size_t i = 0; i < count; i++) {
		if (items[i].subscribed && strncmp(items[i].name, parent, len) == 0 &&
		    items[i].name[len] == '/' && !any_pattern_matches(o, items[i].name))
			return true;
	}
	return false;
}

static void run_list(struct session *s, const char *tag, struct list_options *o)
{
	struct list_item *items = NULL;
	size_t count = 0;
	if (gather_items(s, &items, &count) < 0) {
		session_store_error(s, tag, o->lsub ? "LSUB" : "LIST");
		return;
	}
	qsort(items, count, sizeof(*items), compare_items);
	for (size_t i = 0; i < count; i++) {
		struct list_item *item = &items[i];
		if (!item_selected(o, item) || !any_pattern_matches(o, item->name))
			continue;
		/* RFC 3501 6.3.9: LSUB of an unsubscribed parent shows it only
		 * as a \Noselect level reached by '%'. */
		if (o->lsub && !item->subscribed) {
			if (!hidden_subscribed_child(o, items, count, item->name))
				continue;
			struct list_item shown = *item;
			shown.exists = false;
			send_list_item(s, o, &shown);
			continue;
		}
		send_list_item(s, o, item);
	}
	for (size_t i = 0; i < count; i++)
		free(items[i].name);
	free(items);
	session_ok(s, tag, "%s completed", o->lsub ? "LSUB" : "LIST");
}

/* Pattern canonical form: reference + pattern, INBOX upper-cased. */
static int add_pattern(struct session *s, struct list_options *o, const char *ref,
		       const struct imap_arg *arg, const char **error_r)
{
	if (o->pattern_count == LIST_MAX_PATTERNS) {
		*error_r = "Too many patterns";
		return -1;
	}
	struct buf pattern = BUF_INIT;
	if (session_pattern_from_wire(s, arg, &pattern, error_r) < 0) {
		buf_free(&pattern);
		return -1;
	}
	struct buf full = BUF_INIT;
	buf_append_str(&full, ref);
	const char *p = pattern.data ? pattern.data : "";
	if (full.len > 0 && full.data[full.len - 1] == '/' && p[0] == '/')
		p++;
	buf_append_str(&full, p);
	canonical_inbox(&full);
	o->patterns[o->pattern_count++] = buf_steal(&full);
	buf_free(&pattern);
	return 0;
}

static int parse_selection(struct list_options *o, const struct imap_arg *list, const char **error_r)
{
	o->extended = true;
	for (size_t i = 0; i < list->list_count; i++) {
		const char *opt = imap_arg_is_atom(&list->list[i]) ? list->list[i].str : "";
		if (strcasecmp(opt, "SUBSCRIBED") == 0)
			o->select_subscribed = true;
		else if (strcasecmp(opt, "RECURSIVEMATCH") == 0)
			o->recursive_match = true;
		else if (strcasecmp(opt, "SPECIAL-USE") == 0)
			o->select_special_use = true;
		else if (strcasecmp(opt, "REMOTE") == 0)
			continue;	/* no remote mailboxes here */
		else {
			*error_r = "Unknown LIST selection option";
			return -1;
		}
	}
	/* RFC 5258 3.1: RECURSIVEMATCH alone is an error. */
	if (o->recursive_match && !o->select_subscribed) {
		*error_r = "RECURSIVEMATCH needs another selection option";
		return -1;
	}
	return 0;
}

static int parse_return(struct list_options *o, const struct imap_arg *list, const char **error_r)
{
	o->extended = true;
	for (size_t i = 0; i < list->list_count; i++) {
		const char *opt = imap_arg_is_atom(&list->list[i]) ? list->list[i].str : "";
		if (strcasecmp(opt, "SUBSCRIBED") == 0) {
			o->return_subscribed = true;
		} else if (strcasecmp(opt, "CHILDREN") == 0) {
			o->return_children = true;
		} else if (strcasecmp(opt, "SPECIAL-USE") == 0) {
			o->return_special_use = true;
		} else if (strcasecmp(opt, "STATUS") == 0 && i + 1 < list->list_count &&
			   status_items_valid(&list->list[i + 1])) {
			o->status_items = &list->list[++i];
		} else {
			*error_r = "Unknown or malformed LIST return option";
			return -1;
		}
	}
	return 0;
}

static void free_patterns(struct list_options *o)
{
	for (size_t i = 0; i < o->pattern_count; i++)
		free(o->patterns[i]);
}

static void list_or_lsub(struct session *s, const struct imap_command *cmd, bool lsub)
{
	struct list_options o = { .lsub = lsub };
	const char *error = NULL;
	size_t i = 0;
	if (!lsub && cmd->arg_count > 0 && imap_arg_is_list(&cmd->args[0])) {
		if (parse_selection(&o, &cmd->args[0], &error) < 0)
			goto bad;
		i++;
	}
	if (cmd->arg_count < i + 2)
		goto bad;
	struct buf ref = BUF_INIT;
	if (session_pattern_from_wire(s, &cmd->args[i], &ref, &error) < 0) {
		buf_free(&ref);
		goto bad;
	}
	const struct imap_arg *patterns = &cmd->args[i + 1];
	bool empty_pattern = imap_arg_is_astring(patterns) && patterns->len == 0;
	int r = 0;
	if (!lsub && imap_arg_is_list(patterns)) {
		o.extended = true;
		for (size_t k = 0; k < patterns->list_count && r == 0; k++)
			r = add_pattern(s, &o, ref.data ? ref.data : "", &patterns->list[k], &error);
	} else {
		r = add_pattern(s, &o, ref.data ? ref.data : "", patterns, &error);
	}
	buf_free(&ref);
	if (r < 0)
		goto bad;
	i += 2;
	if (!lsub && i + 2 == cmd->arg_count && imap_arg_is_atom(&cmd->args[i]) &&
	    strcasecmp(cmd->args[i].str, "RETURN") == 0 && imap_arg_is_list(&cmd->args[i + 1])) {
		if (parse_return(&o, &cmd->args[i + 1], &error) < 0)
			goto bad;
		i += 2;
	}
	if (i != cmd->arg_count)
		goto bad;
	if (empty_pattern && !o.extended) {
		/* RFC 9051 6.3.9: an empty pattern asks for the delimiter. */
		session_untagged(s, "%s (\\Noselect) \"/\" \"\"", lsub ? "LSUB" : "LIST");
		session_ok(s, cmd->tag, "%s completed", lsub ? "LSUB" : "LIST");
		free_patterns(&o);
		return;
	}
	run_list(s, cmd->tag, &o);
	free_patterns(&o);
	return;
bad:
	free_patterns(&o);
	session_tagged(s, cmd->tag, "BAD", "%s", error ? error : (lsub ? "LSUB takes a reference and a pattern"
								     : "LIST takes a reference and a pattern"));
}

void cmd_list(struct session *s, const struct imap_command *cmd)
{
	list_or_lsub(s, cmd, false);
}

void cmd_lsub(struct session *s, const struct imap_command *cmd)
{
	list_or_lsub(s, cmd, true);
}

void cmd_status(struct session *s, const struct imap_command *cmd)
{
	struct buf name = BUF_INIT;
	if (cmd->arg_count != 2) {
		session_tagged(s, cmd->tag, "BAD", "STATUS takes a mailbox name and a list of items");
		return;
	}
	if (!name_arg(s, cmd, 0, &name, "")) {
		buf_free(&name);
		return;
	}
	if (!status_items_valid(&cmd->args[1])) {
		session_tagged(s, cmd->tag, "BAD", "Unknown STATUS item");
		buf_free(&name);
		return;
	}
	canonical_inbox(&name);
	struct store_status st;
	if (store_mailbox_status(s->store, name.data, UINT32_MAX, &st) < 0) {
		session_store_error(s, cmd->tag, "STATUS");
		buf_free(&name);
		return;
	}
	struct buf line = BUF_INIT;
	buf_append_str(&line, "* STATUS ");
	session_write_mailbox(s, &line, name.data);
	buf_append_char(&line, ' ');
	write_status_items(s, &line, &st, &cmd->args[1]);
	buf_append_str(&line, "\r\n");
	conn_write(s->conn, line.data, line.len);
	buf_free(&line);
	buf_free(&name);
	session_ok(s, cmd->tag, "STATUS completed");
}

void cmd_namespace(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count != 0) {
		session_tagged(s, cmd->tag, "BAD", "NAMESPACE takes no arguments");
		return;
	}
	/* One personal namespace, no shared or other users' (RFC 2342 5). */
	session_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	session_ok(s, cmd->tag, "NAMESPACE completed");
}
