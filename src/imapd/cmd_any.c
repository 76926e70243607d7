/* Commands valid in any state: CAPABILITY, NOOP, LOGOUT (RFC 9051 6.1),
 * ID (RFC 2971) and, after login, ENABLE (RFC 5161). */
#include "imapd/session.h"
#include "core/log.h"
#include "imap/quote.h"

#include <string.h>
#include <strings.h>

/* RFC 2971 3.3: at most 30 pairs, fields up to 30 bytes, values up to 1024. */
#define ID_MAX_PAIRS 30
#define ID_MAX_FIELD 30
#define ID_MAX_VALUE 1024

static bool expect_no_args(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count == 0)
		return true;
	session_tagged(s, cmd->tag, "BAD", "%s takes no arguments", cmd->name);
	return false;
}

void cmd_capability(struct session *s, const struct imap_command *cmd)
{
	if (!expect_no_args(s, cmd))
		return;
	struct buf caps = BUF_INIT;
	session_capabilities(s, &caps);
	session_untagged(s, "CAPABILITY %s", caps.data);
	buf_free(&caps);
	session_tagged(s, cmd->tag, "OK", "Capability completed");
}

void cmd_noop(struct session *s, const struct imap_command *cmd)
{
	if (!expect_no_args(s, cmd))
		return;
	session_tagged(s, cmd->tag, "OK", "NOOP completed");
}

void cmd_logout(struct session *s, const struct imap_command *cmd)
{
	if (!expect_no_args(s, cmd))
		return;
	session_untagged(s, "BYE Logging out");
	session_tagged(s, cmd->tag, "OK", "Logout completed");
	session_logout(s, "logout");
}

static bool id_params_valid(const struct imap_arg *arg, const char **error_r)
{
	if (imap_arg_is_nil(arg))
		return true;
	if (!imap_arg_is_list(arg)) {
		*error_r = "ID takes NIL or a list of field and value strings";
		return false;
	}
	if (arg->list_count % 2 != 0 || arg->list_count > 2 * ID_MAX_PAIRS) {
		*error_r = "ID takes at most 30 field and value pairs";
		return false;
	}
	for (size_t i = 0; i < arg->list_count; i += 2) {
		const struct imap_arg *field = &arg->list[i], *value = &arg->list[i + 1];
		if (!imap_arg_is_string(field) || field->len > ID_MAX_FIELD) {
			*error_r = "ID field names are strings of at most 30 bytes";
			return false;
		}
		if (!(imap_arg_is_string(value) || imap_arg_is_nil(value)) || value->len > ID_MAX_VALUE) {
			*error_r = "ID values are strings of at most 1024 bytes, or NIL";
			return false;
		}
	}
	return true;
}

static void log_client_id(const struct session *s, const struct imap_arg *arg)
{
	if (!imap_arg_is_list(arg))
		return;
	struct log_line l;
	log_begin(&l, LOG_INFO, "client_id");
	log_str(&l, "session", s->id);
	for (size_t i = 0; i + 1 < arg->list_count; i += 2) {
		const struct imap_arg *field = &arg->list[i], *value = &arg->list[i + 1];
		char key[40] = "id_";
		size_t k = 3;
		/* Keys come from the client: keep them to safe characters. */
		for (size_t j = 0; j < field->len && k + 1 < sizeof(key); j++) {
			char ch = field->str[j];
			bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
			key[k++] = ok ? ch : '_';
		}
		key[k] = '\0';
		log_strn(&l, key, imap_arg_is_nil(value) ? NULL : value->str, value->len);
	}
	log_end(&l);
}

void cmd_id(struct session *s, const struct imap_command *cmd)
{
	const char *error = NULL;
	if (cmd->arg_count != 1 || !id_params_valid(&cmd->args[0], &error)) {
		session_tagged(s, cmd->tag, "BAD", "%s", error ? error : "ID takes one argument");
		return;
	}
	log_client_id(s, &cmd->args[0]);
	session_untagged(s, "ID (\"name\" \"postern\" \"vendor\" \"postern\" \"support-url\" \"https://postern.invalid/\")");
	session_tagged(s, cmd->tag, "OK", "ID completed");
}

/* RFC 5161 3.1: unknown capabilities are ignored, and the ENABLED response
 * lists only what this command newly enabled. */
void cmd_enable(struct session *s, const struct imap_command *cmd)
{
	if (cmd->arg_count == 0) {
		session_tagged(s, cmd->tag, "BAD", "ENABLE needs at least one capability name");
		return;
	}
	for (size_t i = 0; i < cmd->arg_count; i++) {
		if (!imap_arg_is_atom(&cmd->args[i])) {
			session_tagged(s, cmd->tag, "BAD", "ENABLE takes capability names (atoms)");
			return;
		}
	}
	struct buf enabled = BUF_INIT;
	buf_append_str(&enabled, "ENABLED");
	for (size_t i = 0; i < cmd->arg_count; i++) {
		const char *name = cmd->args[i].str;
		if (strcasecmp(name, "CONDSTORE") == 0 && !s->condstore) {
			s->condstore = true;
			buf_append_str(&enabled, " CONDSTORE");
		} else if (strcasecmp(name, "QRESYNC") == 0 && !s->qresync) {
			/* RFC 7162 3.2.3: QRESYNC implies CONDSTORE. */
			s->qresync = true;
			s->condstore = true;
			buf_append_str(&enabled, " QRESYNC");
		} else if (strcasecmp(name, "UTF8=ACCEPT") == 0 && !s->utf8) {
			/* RFC 6855 3: names and quoted strings in UTF-8 from now on. */
			s->utf8 = true;
			imap_parser_set_utf8(s->parser, true);
			buf_append_str(&enabled, " UTF8=ACCEPT");
		}
	}
	session_untagged(s, "%s", enabled.data);
	buf_free(&enabled);
	session_tagged(s, cmd->tag, "OK", "ENABLE completed");
}
