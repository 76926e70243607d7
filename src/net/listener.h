/* Binding listening sockets, with errors an admin can act on. */
#ifndef POSTERN_NET_LISTENER_H
#define POSTERN_NET_LISTENER_H

#include "core/buf.h"
#include "core/config.h"

/* Binds and listens on l's address (TCP, or a unix socket for "unix:PATH").
 * Returns the non-blocking, close-on-exec fd, or -1 with one line appended to
 * errors: the address in use and by which process when /proc tells,
 * permission denied below port 1024 and how to fix it, address not
 * available on this host. */
int listener_bind(const struct config_listener *l, struct buf *errors);

/* Describes who holds a TCP port, e.g. "pid 1234 (dovecot)", from /proc;
 * writes "" when it can't tell (another user's process without root). */
void listener_port_holder(int family, int port, char *out, size_t size);

#endif
