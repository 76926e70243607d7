/* An IMAP session: the state machine of RFC 9051 3 (not authenticated,
 * authenticated, selected, logout) over one connection, and the command
 * table every command goes through. Internal to src/imapd. */
#ifndef POSTERN_IMAPD_SESSION_H
#define POSTERN_IMAPD_SESSION_H

#include "auth/cache.h"
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
/* Has a UID form: "UID FETCH" etc. */
#define CMD_UID (1u << 3)
/* RFC 9051 7.4.1: no EXPUNGE responses during FETCH, STORE, SEARCH (the
 * UID forms may have them). */
#define CMD_NO_EXPUNGE (1u << 4)

struct session;
typedef void command_handler(struct session *s, const struct imap_command *cmd);

struct command_def {
	const char *name;
	unsigned flags;		/* CMD_ states it is valid in, and CMD_UID, CMD_NO_EXPUNGE */
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
	bool cached;			/* matched by the verified-login cache, no hash run */
	struct auth_cache_ticket ticket;	/* the offered password, keyed-hashed; wiped on free */
	struct auth_job *job;		/* while hashing, else NULL */
};

struct session {
	struct imapd_context *ctx;
	struct store *store;		/* the user's mail, after login */
	struct selected *selected;	/* the selected mailbox, or NULL */
	bool cmd_uid;			/* the running command came as "UID ..." */
	bool allow_expunge;		/* EXPUNGE responses allowed now */
	bool syncing;			/* inside session_sync: don't recurse */
	uint64_t change_counter;	/* store_change_counter() last synced */
	bool utf8;			/* UTF8=ACCEPT or IMAP4rev2 enabled: names in UTF-8 */
	bool condstore;			/* CONDSTORE enabled (RFC 7162 3.1) */
	bool qresync;			/* QRESYNC enabled: VANISHED instead of EXPUNGE */
	bool rev2;			/* IMAP4rev2 enabled: no \Recent, ESEARCH answers */
	/* Set by a command that streams output (FETCH of big bodies): called
	 * when the output queue has drained, to write the next piece. */
	void (*on_drained)(struct session *s);
	/* Set by such a command to release what it holds if the session ends
	 * before it finishes. */
	void (*on_close)(struct session *s);
	void *cmd_state;		/* that command's state */
	int cmd_index;			/* running command, for metrics; -1 when none */
	uint64_t cmd_started_us;
	bool idling;			/* in IDLE, waiting for DONE */
	char *idle_tag;
	struct ev_timer keepalive_timer;	/* "* OK Still here" while idling */
	struct ev_timer poll_timer;	/* IDLE without inotify */
	int watch_wd;			/* inotify watch of the change file, or -1 */
	struct session *prev, *next;	/* in ctx->sessions */
	struct conn *conn;
	const struct config_listener *listener;
	enum session_state state;
	char id[24];			/* for logs: worker and counter */
	struct imap_parser *parser;
	/* APPEND literals streamed to store blobs while the command is read,
	 * in the order of the command's streamed arguments. cmd_append uses
	 * them; the session frees them when the command ends, fails or the
	 * session goes. */
	struct store_blob **stream_blobs;
	size_t stream_blob_count, stream_blob_cap;
	/* Writing one failed: the rest is drained, and the APPEND answers with
	 * store_last_error() (no other store call happens in between). */
	bool stream_failed;
	struct ev_timer idle_timer;	/* autologout */
	struct ev_timer delay_timer;	/* throttle delay before a login answer */
	uint64_t connected_ms;
	char *user;			/* after login */
	bool busy;			/* a command is in progress: input waits */
	bool greeted;
	char *auth_tag;			/* AUTHENTICATE waiting for its response line */
	struct pending_login *login;
	char *close_reason;
	/* Shared counts this session holds (core/shcount.h), given back when
	 * it ends; a key is held only when its flag says it was counted. */
	uint64_t ip_key, user_key, user_ip_key;
	bool ip_counted, user_counted, user_ip_counted;
	/* Command rate: a token bucket in thousandths of a command, refilled
	 * at max_commands_per_second, holding one second's worth. */
	uint64_t rate_tokens;
	uint64_t rate_refilled_ms;
	struct ev_timer rate_timer;	/* input paused until a token is back */
	uint64_t stall_bytes_out;	/* bytes written when idle_timer was armed */
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
/* The listener's index among the boot listeners (metrics labels). */
size_t session_listener_index(const struct session *s);
/* A command finished asynchronously: take the next pipelined one. */
void session_command_done(struct session *s);

/* Opens the user's store at login (creating it and the special-use
 * mailboxes on first use). 0, or -1 logged. */
int session_open_store(struct session *s, const char *user);
/* Leaves the selected state (CLOSE, UNSELECT, a failed SELECT). */
void session_unselect(struct session *s);

/* Replies OK after sending any pending updates; for commands in the
 * selected state this is where other sessions' changes reach the client. */
void session_ok(struct session *s, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Maps a store failure to a tagged NO with a response code and a safe
 * text; the details go to the log (STYLE.md: one place does this). */
void session_store_error(struct session *s, const char *tag, const char *what);
/* Mailbox names on the wire: modified UTF-7 unless UTF-8 was enabled. */
int session_mailbox_from_wire(const struct session *s, const struct imap_arg *arg,
			      struct buf *utf8_r, const char **error_r);
/* The same for LIST/LSUB patterns, which may be atoms holding % and *. */
int session_pattern_from_wire(const struct session *s, const struct imap_arg *arg,
			      struct buf *utf8_r, const char **error_r);
void session_write_mailbox(const struct session *s, struct buf *out, const char *utf8_name);
/* Appends "* LIST (attributes) "/" name\r\n" for the existing mailbox
 * utf8_name (RFC 9051 6.3.2: SELECT and EXAMINE send it under IMAP4rev2):
 * children and special use, as LIST would. 0, or -1 when the store
 * failed (nothing appended). */
int session_list_one(struct session *s, const char *utf8_name, struct buf *out);

/* Command handlers, one file per family. */
void cmd_capability(struct session *s, const struct imap_command *cmd);
void cmd_noop(struct session *s, const struct imap_command *cmd);
void cmd_logout(struct session *s, const struct imap_command *cmd);
void cmd_id(struct session *s, const struct imap_command *cmd);
void cmd_enable(struct session *s, const struct imap_command *cmd);
void cmd_starttls(struct session *s, const struct imap_command *cmd);
void cmd_login(struct session *s, const struct imap_command *cmd);
void cmd_authenticate(struct session *s, const struct imap_command *cmd);
void cmd_select(struct session *s, const struct imap_command *cmd);
void cmd_examine(struct session *s, const struct imap_command *cmd);
void cmd_close(struct session *s, const struct imap_command *cmd);
void cmd_unselect(struct session *s, const struct imap_command *cmd);
void cmd_check(struct session *s, const struct imap_command *cmd);
void cmd_expunge(struct session *s, const struct imap_command *cmd);
void cmd_create(struct session *s, const struct imap_command *cmd);
void cmd_delete(struct session *s, const struct imap_command *cmd);
void cmd_rename(struct session *s, const struct imap_command *cmd);
void cmd_subscribe(struct session *s, const struct imap_command *cmd);
void cmd_unsubscribe(struct session *s, const struct imap_command *cmd);
void cmd_list(struct session *s, const struct imap_command *cmd);
void cmd_lsub(struct session *s, const struct imap_command *cmd);
void cmd_status(struct session *s, const struct imap_command *cmd);
void cmd_namespace(struct session *s, const struct imap_command *cmd);
void cmd_append(struct session *s, const struct imap_command *cmd);
void cmd_store(struct session *s, const struct imap_command *cmd);
void cmd_copy(struct session *s, const struct imap_command *cmd);
void cmd_move(struct session *s, const struct imap_command *cmd);
void cmd_fetch(struct session *s, const struct imap_command *cmd);
void cmd_idle(struct session *s, const struct imap_command *cmd);
void session_idle_wake(struct session *s);
void session_idle_end(struct session *s, const char *line, size_t len);
void session_idle_init(struct session *s);
void session_idle_deinit(struct session *s);
void cmd_search(struct session *s, const struct imap_command *cmd);
/* The AUTHENTICATE continuation line arrived. */
void session_auth_continue(struct session *s, const char *line, size_t len);
void session_login_cancel(struct session *s);
/* At a successful password check: 0 when the user may have one more
 * session, or -1 with *which_r set to the limit that refuses it. */
int session_user_limit_check(const struct session *s, const char *user, const char **which_r);
/* The user logged in: count the session against the user limits. */
void session_user_count(struct session *s, const char *user);

#endif
