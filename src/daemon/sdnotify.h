/* Telling systemd how the service is doing (sd_notify(3)) without linking
 * libsystemd: one datagram to the unix socket named by $NOTIFY_SOCKET, a
 * path or, when it starts with '@', an abstract socket name. The master
 * sends READY=1 once it listens, RELOADING=1 and READY=1 around a reload,
 * STOPPING=1 when it drains, and STATUS= lines that `systemctl status`
 * shows. Without $NOTIFY_SOCKET (not under systemd) nothing is sent. */
#ifndef POSTERN_DAEMON_SDNOTIFY_H
#define POSTERN_DAEMON_SDNOTIFY_H

/* Sends state ("READY=1\nSTATUS=..."). 1 when sent, 0 when there is no
 * $NOTIFY_SOCKET, -1 on failure (logged at debug level: systemd then
 * times the start out, which says more than a log line would). Never
 * blocks. */
int sdnotify(const char *state);

/* printf form; STATUS text comes from us, never from a client. */
int sdnotifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
