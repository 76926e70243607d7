/* imapload: shared declarations of the load generator (bench/imapload.c).
 *
 * One process, one epoll loop, level-triggered, many non-blocking
 * connections, each optionally under OpenSSL. A connection speaks IMAP or
 * LMTP; the engine (il_conn.c) frames responses (lines and literals),
 * checks them and hands each completed command to the workload's callback.
 * Any NO, BAD, BYE, unexpected continuation, unknown tag, malformed line,
 * timeout or connection loss ends the whole run through il_fail(): exit 1
 * with one message naming the client, the command and the server's line.
 *
 * Return convention: 0 on success, -1 on error, unless a comment says
 * otherwise. Nothing here is thread-safe: there is one thread. */
#ifndef IL_H
#define IL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* Caps on what a server may send before we call it a protocol violation. */
#define IL_MAX_LINE (1u << 20)           /* one line without its literals */
#define IL_MAX_LITERAL (256u << 20)      /* one literal */
#define IL_MAX_CMD_TEXT 512              /* printf-formatted command text */

enum il_sec { IL_SEC_PLAIN, IL_SEC_TLS, IL_SEC_STARTTLS };
enum il_proto { IL_PROTO_IMAP, IL_PROTO_LMTP };

/* Every option, parsed once in main(). */
struct il_opts {
	const char *host;       /* server address, numeric IPv4 */
	int port;
	enum il_sec sec;
	const char *user;       /* may hold one %d: the user index */
	const char *pass;
	int users;              /* user index = client number % users */
	int clients;            /* -c */
	double duration;        /* -d seconds */
	int count;              /* -m */
	uint64_t seed;
	const char *workload;
	int nsrc;               /* source addresses 127.0.0.1 .. 127.0.0.nsrc */
	double timeout;         /* per command, seconds */
	int ramp;               /* connections being set up at once */
	const char *pids;       /* --pids */
	int pid_tree;           /* --pid-tree */
	int resume;             /* handshake: resume sessions with tickets */
	int lmtp;               /* deliver: speak LMTP */
	const char *rcpt;       /* deliver: recipient (may hold %d) */
	int fill;               /* mixed: messages per mailbox before timing */
	int batch;              /* bigbox: messages per MULTIAPPEND */
	int no_search;          /* bigbox: STATUS, SELECT and FETCH only */
	int quiet;
};

extern struct il_opts il_opt;

/* --- utilities (il_util.c) --- */
uint64_t il_now_ns(void);
_Noreturn void il_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void il_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *il_xmalloc(size_t n);
void *il_xrealloc(void *p, size_t n);
char *il_xstrdup(const char *s);
/* The user name of client index i, in a static buffer. */
const char *il_user_name(int i);

/* xorshift64*: deterministic from the seed, never 0 state. */
struct il_rng { uint64_t s; };
void il_rng_seed(struct il_rng *r, uint64_t seed);
uint64_t il_rng_next(struct il_rng *r);
/* Uniform in [0, n); n > 0. */
uint32_t il_rng_below(struct il_rng *r, uint32_t n);
/* A well-mixed 64-bit hash of two numbers (splitmix64 finaliser). */
uint64_t il_mix(uint64_t a, uint64_t b);

/* A growable byte buffer: data[start, len) is unread. */
struct il_buf {
	char *data;
	size_t start, len, cap;
};
void il_buf_append(struct il_buf *b, const void *p, size_t n);
void il_buf_printf(struct il_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void il_buf_consume(struct il_buf *b, size_t n);
/* Makes room for at least n more bytes; returns the write pointer. */
char *il_buf_space(struct il_buf *b, size_t n);
void il_buf_free(struct il_buf *b);

/* --- latency statistics (il_stats.c) --- */
struct il_stat {
	const char *name;
	uint32_t *us;           /* one sample per completed command, microseconds */
	size_t n, cap;
	uint64_t skipped;       /* planned but not possible (empty mailbox) */
};
/* Samples of commands that end after this instant are dropped (0: none). */
extern uint64_t il_stat_until_ns;
void il_stat_add(struct il_stat *s, uint64_t ns);
/* Sorts the samples; q in [0,1]; 0 when empty. */
double il_stat_quantile_ms(struct il_stat *s, double q);
/* Prints the table header and one row per stat with n > 0. */
void il_stats_print(struct il_stat *stats, int nstats, double seconds);

/* Resident memory of the server processes, in KiB: VmRSS and Pss summed
 * over the processes named by --pids or the tree under --pid-tree.
 * Returns the number of processes read, 0 when neither option is given. */
int il_server_memory(long *rss_kib_r, long *pss_kib_r);

/* --- connections (il_conn.c) --- */
struct il_conn;
struct il_reply {
	const char *line;       /* tagged line (IMAP) or final reply line (LMTP) */
	size_t len;
	int code;               /* LMTP reply code; 0 for IMAP */
};
typedef void il_conn_fn(struct il_conn *c);
typedef void il_reply_fn(struct il_conn *c, const struct il_reply *r);
/* Untagged response, whole (literals included); return is ignored. */
typedef void il_untagged_fn(struct il_conn *c, const char *line, size_t len);

enum il_cap {
	IL_CAP_LITERALPLUS = 1 << 0,
	IL_CAP_MULTIAPPEND = 1 << 1,
	IL_CAP_IDLE = 1 << 2,
	IL_CAP_STARTTLS = 1 << 3,
};

struct il_conn {
	int id;                 /* client number, for messages */
	void *ud;               /* the workload's state */
	enum il_proto proto;
	unsigned caps;          /* enum il_cap, from any CAPABILITY seen */
	uint32_t exists;        /* last EXISTS, minus EXPUNGEs since */
	uint32_t fetches;       /* untagged FETCH responses in the current command */
	uint64_t literal_bytes; /* literal bytes in the current command's responses */
	il_untagged_fn *on_untagged;
	SSL_SESSION *session;   /* set before open: try to resume it */
	bool resumed;           /* the TLS handshake resumed a session */
	struct il_conn_private *p;
};

/* Opens connection id (source address chosen by id) with the security of
 * il_opt; calls ready() once the greeting (and STARTTLS) is done. */
struct il_conn *il_conn_open(int id, enum il_proto proto, void *ud, il_conn_fn *ready);
/* Closes now; safe from any callback (freed after the current event). */
void il_conn_close(struct il_conn *c);
/* Sends one tagged command; cb runs on its tagged OK. stat (may be NULL)
 * gets the latency from the send to the tagged reply. */
void il_cmd(struct il_conn *c, struct il_stat *stat, il_reply_fn *cb, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A tagged command with literals: parts[0] {len0} data0 parts[1] {len1}
 * data1 ... parts[n]. Uses LITERAL+ when advertised, otherwise waits for
 * each "+". ndata literals, ndata + 1 texts. */
void il_cmd_literals(struct il_conn *c, struct il_stat *stat, il_reply_fn *cb, int ndata,
		     const char *const *texts, const char *const *data, const size_t *lens);
/* IDLE: cb runs when the server's "+" arrives; DONE with il_idle_done(),
 * whose tagged OK runs done_cb. */
void il_idle(struct il_conn *c, il_conn_fn *cb);
void il_idle_done(struct il_conn *c, il_reply_fn *done_cb);
/* LMTP: sends raw text and waits for count replies (one per RCPT after
 * DATA's end); cb runs when all are 2xx/3xx. */
void il_lmtp(struct il_conn *c, struct il_stat *stat, il_reply_fn *cb, int count, const char *data,
	     size_t len);
/* The command text currently waiting for a reply, for messages. */
const char *il_conn_current(const struct il_conn *c);
/* Releases empty buffers (idle sessions). */
void il_conn_trim(struct il_conn *c);

/* The loop. Runs until stop() returns true (checked after every batch of
 * events and at least every 50 ms) or no connection is left and
 * stop_when_empty. Fails the run on any command older than il_opt.timeout. */
typedef bool il_stop_fn(void);
void il_loop_init(void);
void il_loop_run(il_stop_fn *stop);
int il_loop_open_count(void);
/* TLS handshakes completed, and of those resumed, since start. */
void il_tls_counts(uint64_t *full_r, uint64_t *resumed_r);

/* --- message generator (genmail.c) --- */
struct genmail_traits {
	bool from_walrus;       /* From: holds "walrus" (header search target) */
	bool phrase;            /* a text/plain part holds GENMAIL_PHRASE */
};
#define GENMAIL_PHRASE "quarterly lighthouse inventory"
#define GENMAIL_FROM_WORD "walrus"
/* Message number i of the stream for seed; written to out (CRLF lines).
 * The same (seed, i) always gives the same bytes. */
void genmail_message(uint64_t seed, uint64_t i, struct il_buf *out, struct genmail_traits *t_r);
/* The traits alone, cheaply, without generating the message. */
void genmail_traits(uint64_t seed, uint64_t i, struct genmail_traits *t_r);

#endif
