/* Every protocol cap in one place (STYLE.md). Where an admin would tune a
 * cap, a config key overrides the default named here. */
#ifndef POSTERN_CORE_LIMITS_H
#define POSTERN_CORE_LIMITS_H

/* Longest command line (excluding literals), config `max_line_length`. */
#define LIMIT_LINE_DEFAULT (64 * 1024)
/* Largest literal, and APPENDLIMIT; config `max_literal_size`. */
#define LIMIT_LITERAL_DEFAULT (64u * 1024 * 1024)
/* After login, APPEND literals above this size go to a file as they arrive
 * (a store blob) instead of into the command's memory; smaller ones are
 * cheaper kept in memory. */
#define LIMIT_STREAM_THRESHOLD (256u * 1024)
/* Longest tag a client may use. */
#define LIMIT_TAG_LEN 128
/* Deepest nesting of parenthesised lists in one command. */
#define LIMIT_LIST_DEPTH 32
/* Deepest nesting of NOT, OR and parentheses in one SEARCH: evaluation
 * recurses over the key tree, and NOT NOT NOT ... needs no list. */
#define LIMIT_SEARCH_DEPTH 64
/* Most arguments (atoms, strings, lists counted together) in one command. */
#define LIMIT_ARGS 100000
/* Literals in one command; APPEND of many messages stays well below. */
#define LIMIT_LITERALS 10000
/* Seconds before login and after, config `login_timeout`, `idle_timeout`. */
#define LIMIT_LOGIN_TIMEOUT_S 60
#define LIMIT_AUTH_TIMEOUT_S (30 * 60)
/* Longest user name and password accepted by LOGIN/AUTHENTICATE. */
#define LIMIT_USER_LEN 256
#define LIMIT_PASSWORD_LEN 1024
/* Output queued for one client before it is considered a stuck reader
 * and disconnected; config `max_output_buffer`. */
#define LIMIT_OUTPUT_QUEUE (16 * 1024 * 1024)

/* Abuse limits, each a config key (docs/configuration.md explains the
 * defaults). Connections from one source address at once, over every
 * worker: `max_connections_per_ip`. A household behind one NAT with a
 * few devices, each holding a connection per folder it watches, stays
 * well below. */
#define LIMIT_CONNECTIONS_PER_IP 50
/* Logged-in sessions of one user at once, over every worker and address:
 * `max_sessions_per_user`; and of one user from one address:
 * `max_sessions_per_user_ip`. */
#define LIMIT_SESSIONS_PER_USER 100
#define LIMIT_SESSIONS_PER_USER_IP 50
/* Commands one session may run per second; excess waits, it is not
 * dropped: `max_commands_per_second`. The bucket holds one second's
 * worth, so a client's startup burst is not slowed. */
#define LIMIT_COMMANDS_PER_SECOND 200
/* Messages whose file one SEARCH may read (body, text or header keys
 * that are not in the index): `max_search_body_reads`. */
#define LIMIT_SEARCH_BODY_READS 1000000
/* Slots of each worker's table of shared counts (source addresses, users,
 * user and address pairs it holds sessions for): a power of two. A worker
 * whose table is 3/4 full stops counting new keys (and admits them). */
#define LIMIT_SHARED_COUNT_SLOTS_LOG2 16

/* LMTP (src/lmtp): longest command line (RFC 5321 4.5.3.1.4 asks for at
 * least 512 octets; parameters make real lines longer), longest path in
 * MAIL FROM or RCPT TO (RFC 5321 4.5.3.1.3: 256), recipients in one
 * transaction (RFC 5321 4.5.3.1.8: at least 100), seconds a session may
 * stay silent (RFC 5321 4.5.3.2.7: at least 5 minutes). The message size
 * limit is `max_literal_size`, advertised as SIZE. */
#define LIMIT_LMTP_LINE 4096
#define LIMIT_LMTP_PATH 512
#define LIMIT_LMTP_RECIPIENTS 1000
#define LIMIT_LMTP_TIMEOUT_S 300
/* Input an LMTP session buffers while its DATA is being delivered (the
 * next pipelined commands, RFC 2920); past it the session stops reading
 * until the replies are sent. */
#define LIMIT_LMTP_PIPELINED (64 * 1024)

/* MIME parsing (src/mime): deepest nesting of multipart and message/rfc822
 * parts (deeper entities become text/plain leaves), most parts in one
 * message (later boundaries are body text), most parameters kept from one
 * Content-Type or Content-Disposition field (RFC 2231 merging is quadratic
 * in them), longest boundary recognised (RFC 2046 5.1.1 allows 70). */
#define LIMIT_MIME_DEPTH 100
#define LIMIT_MIME_PARTS 10000
#define LIMIT_MIME_PARAMS 256
#define LIMIT_MIME_BOUNDARY_LEN 1024

#endif
