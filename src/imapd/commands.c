/* The command table: every command, the states it is valid in, whether it
 * has a UID form, and whether EXPUNGE responses must wait (RFC 9051 7.4.1).
 * Sorted by name: session.c finds commands with bsearch. */
#include "imapd/session.h"

#define SEL CMD_SELECTED
#define AUTH_OR_SEL (CMD_AUTH | CMD_SELECTED)

const struct command_def session_commands[] = {
	{ "APPEND", AUTH_OR_SEL, cmd_append },
	{ "AUTHENTICATE", CMD_NOT_AUTH, cmd_authenticate },
	{ "CAPABILITY", CMD_ANY_STATE, cmd_capability },
	{ "CHECK", SEL, cmd_check },
	{ "CLOSE", SEL, cmd_close },
	{ "COPY", SEL | CMD_UID, cmd_copy },
	{ "CREATE", AUTH_OR_SEL, cmd_create },
	{ "DELETE", AUTH_OR_SEL, cmd_delete },
	{ "ENABLE", CMD_AUTH, cmd_enable },
	{ "EXAMINE", AUTH_OR_SEL, cmd_examine },
	{ "EXPUNGE", SEL | CMD_UID, cmd_expunge },
	{ "FETCH", SEL | CMD_UID | CMD_NO_EXPUNGE, cmd_fetch },
	{ "ID", CMD_ANY_STATE, cmd_id },
	{ "IDLE", AUTH_OR_SEL, cmd_idle },
	{ "LIST", AUTH_OR_SEL, cmd_list },
	{ "LOGIN", CMD_NOT_AUTH, cmd_login },
	{ "LOGOUT", CMD_ANY_STATE, cmd_logout },
	{ "LSUB", AUTH_OR_SEL, cmd_lsub },
	{ "MOVE", SEL | CMD_UID, cmd_move },
	{ "NAMESPACE", AUTH_OR_SEL, cmd_namespace },
	{ "NOOP", CMD_ANY_STATE, cmd_noop },
	{ "RENAME", AUTH_OR_SEL, cmd_rename },
	{ "SEARCH", SEL | CMD_UID | CMD_NO_EXPUNGE, cmd_search },
	{ "SELECT", AUTH_OR_SEL, cmd_select },
	{ "STARTTLS", CMD_NOT_AUTH, cmd_starttls },
	{ "STATUS", AUTH_OR_SEL, cmd_status },
	{ "STORE", SEL | CMD_UID | CMD_NO_EXPUNGE, cmd_store },
	{ "SUBSCRIBE", AUTH_OR_SEL, cmd_subscribe },
	{ "UNSELECT", SEL, cmd_unselect },
	{ "UNSUBSCRIBE", AUTH_OR_SEL, cmd_unsubscribe },
};
const size_t session_command_count = sizeof(session_commands) / sizeof(session_commands[0]);
