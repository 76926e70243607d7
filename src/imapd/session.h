/* An IMAP session: the state machine of RFC 9051 3 (not authenticated,
 * authenticated, selected, logout) over one connection, and the command
 * table every command goes through. Internal to src/imapd. */
#ifndef POSTERN_IMAPD_SESSION_H
#define POSTERN_IMAPD_SESSION_H

#include "core/buf.h"
#include "imap/parser.h"
#include "imapd/imapd.h"
#include "net/conn.h"

#include <stdbool.h>
#include <stdint.h>

enum session_state {
	SESSION_NOT_AUTHENTICATED,
	SESSION_AUTHENTICATED,
	SESSION_SELECTED,
	SESSION_LOGOUT,
};

/* Which states a command is valid in (RFC 9051 6). */
#define CMD_NOT_AUTH (1u << 0)
#define CMD_AUTH (1u << 1)
#define CMD_SELECTED (1u << 2)
#define CMD_ANY_STATE (CMD_NOT_AUTH | CMD_AUTH | CMD_SELECTED)

struct session;
typedef void command_handler(struct session *s, const struct imap_command *cmd);

struct command_def {
	const char *name;
	unsigned states;
	command_handler *handler;
};

/* A login waiting for its password check and then its throttle delay. */
struct pending_login {
	char *tag;
	char *user;
	const char *mechanism;		/* "LOGIN" or "PLAIN" */
	uint64_t started_ms;
	uint32_t delay_ms;		/* throttle delay decided before the check */
	bool user_known;
	bool matched;			/* result of the check */
	struct auth_job *job;		/* while hashing, else NULL */
};

struct session {
	struct imapd_context *ctx;
	struct session *prev, *next;	/* in ctx->sessions */
	struct conn *conn;
	const struct config_listener *listener;
	enum session_state state;
	char id[24];			/* for logs: worker and counter */
	struct imap_parser *parser;
	struct ev_timer idle_timer;	/* autologout */
	struct ev_timer delay_timer;	/* throttle delay before a login answer */
	uint64_t connected_ms;
	char *user;			/* after login */
	bool busy;			/* a command is in progress: input waits */
	bool greeted;
	char *auth_tag;			/* AUTHENTICATE waiting for its response line */
	struct pending_login *login;
	char *close_reason;
};

/* The command table, sorted by name (session.c looks names up with bsearch). */
extern const struct command_def session_commands[];
extern const size_t session_command_count;

/* Replies. text is copied; CR/LF in it are neutralised. */
void session_tagged(struct session *s, const char *tag, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void session_untagged(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void session_capabilities(const struct session *s, struct buf *out);
/* Ends the session after queued output is written. */
void session_logout(struct session *s, const char *reason);

bool session_plaintext_auth_allowed(const struct session *s);
bool session_starttls_available(const struct session *s);
void session_set_state(struct session *s, enum session_state state);
/* A command finished asynchronously: take the next pipelined one. */
void session_command_done(struct session *s);

/* Command handlers, one file per family. */
void cmd_capability(struct session *s, const struct imap_command *cmd);
void cmd_noop(struct session *s, const struct imap_command *cmd);
void cmd_logout(struct session *s, const struct imap_command *cmd);
void cmd_id(struct session *s, const struct imap_command *cmd);
void cmd_enable(struct session *s, const struct imap_command *cmd);
void cmd_starttls(struct session *s, const struct imap_command *cmd);
void cmd_login(struct session *s, const struct imap_command *cmd);
void cmd_authenticate(struct session *s, const struct imap_command *cmd);
/* The AUTHENTICATE continuation line arrived. */
void session_auth_continue(struct session *s, const char *line, size_t len);
void session_login_cancel(struct session *s);

#endif
