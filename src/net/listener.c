#include "net/listener.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024

static int address_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

/* Finds the socket inode of a listening TCP socket on port in
 * /proc/net/tcp or tcp6. Returns 0 when not found. */
static unsigned long listening_inode(int family, int port)
{
	const char *path = family == AF_INET6 ? "/proc/net/tcp6" : "/proc/net/tcp";
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	char line[512];
	unsigned long found = 0;
	if (fgets(line, sizeof(line), f) == NULL) {	/* header */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char local[128];
		unsigned state;
		unsigned long inode;
		if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &state, &inode) != 3)
			continue;
		const char *colon = strrchr(local, ':');
		if (colon == NULL)
			continue;
		/* state 0x0A is LISTEN in the kernel's tcp_states. */
		if (state == 0x0A && (int)strtol(colon + 1, NULL, 16) == port) {
			found = inode;
			break;
		}
	}
	fclose(f);
	return found;
}

static int process_has_socket(const char *pid, const char *target)
{
	char dirpath[300];
	snprintf(dirpath, sizeof(dirpath), "/proc/%s/fd", pid);
	DIR *fds = opendir(dirpath);
	if (fds == NULL)
		return 0;
	struct dirent *fd;
	int hit = 0;
	while (!hit && (fd = readdir(fds)) != NULL) {
		char linkpath[600], dest[64];
		snprintf(linkpath, sizeof(linkpath), "%s/%s", dirpath, fd->d_name);
		ssize_t n = readlink(linkpath, dest, sizeof(dest) - 1);
		if (n <= 0)
			continue;
		dest[n] = '\0';
		hit = strcmp(dest, target) == 0;
	}
	closedir(fds);
	return hit;
}

void listener_port_holder(int family, int port, char *out, size_t size)
{
	out[0] = '\0';
	unsigned long inode = listening_inode(family, port);
	if (inode == 0 && family == AF_INET)
		inode = listening_inode(AF_INET6, port);	/* a dual-stack [::] socket */
	if (inode == 0)
		return;
	char target[64];
	snprintf(target, sizeof(target), "socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	if (proc == NULL)
		return;
	struct dirent *d;
	while ((d = readdir(proc)) != NULL) {
		if (!isdigit((unsigned char)d->d_name[0]) || !process_has_socket(d->d_name, target))
			continue;
		char commpath[300], comm[64] = "";
		snprintf(commpath, sizeof(commpath), "/proc/%s/comm", d->d_name);
		FILE *f = fopen(commpath, "r");
		if (f != NULL) {
			if (fgets(comm, sizeof(comm), f) != NULL)
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		snprintf(out, size, "pid %s (%s)", d->d_name, comm);
		break;
	}
	closedir(proc);
}

static void explain_bind_error(const struct config_listener *l, int err, struct buf *errors)
{
	int port = address_port(&l->addr);
	buf_printf(errors, "listener %s: cannot bind %s: ", l->name, l->address);
	if (err == EADDRINUSE) {
		char holder[128];
		listener_port_holder(l->addr.ss_family, port, holder, sizeof(holder));
		if (holder[0] != '\0')
			buf_printf(errors, "address already in use by %s\n", holder);
		else
			buf_printf(errors, "address already in use by another process "
				   "(`ss -ltnp 'sport = :%d'` shows which)\n", port);
	} else if (err == EACCES && port > 0 && port < 1024) {
		buf_printf(errors, "permission denied: ports below 1024 need root or "
			   "CAP_NET_BIND_SERVICE (run as root, `setcap cap_net_bind_service=+ep postern`, "
			   "or use a port above 1023 in the [listener %s] section)\n", l->name);
	} else if (err == EADDRNOTAVAIL) {
		buf_printf(errors, "this host has no such address (check `ip addr`)\n");
	} else if (err == EAFNOSUPPORT) {
		buf_printf(errors, "the address family is not supported here (IPv6 disabled?)\n");
	} else {
		buf_printf(errors, "%s\n", strerror(err));
	}
}

/* The socket is made 0666, as Dovecot makes its LMTP socket: the MTA's
 * delivery agent runs as its own account (postfix, Debian-exim) and needs
 * to connect. Restrict who can reach it with the permissions of the
 * directory holding it. */
static int bind_unix(const struct config_listener *l, struct buf *errors)
{
	/* config.c has resolved "unix:PATH" to PATH in address and addr. */
	const char *path = ((const struct sockaddr_un *)&l->addr)->sun_path;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sun.sun_path)) {
		buf_printf(errors, "listener %s: socket path too long: %s\n", l->name, path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		buf_printf(errors, "listener %s: socket: %s\n", l->name, strerror(errno));
		return -1;
	}
	struct stat st;
	/* A stale socket from an earlier run; never remove anything else. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0666) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		buf_printf(errors, "listener %s: cannot bind %s: %s\n", l->name, path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int listener_bind(const struct config_listener *l, struct buf *errors)
{
	if (l->addr.ss_family == AF_UNIX)
		return bind_unix(l, errors);
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		explain_bind_error(l, errno, errors);
		return -1;
	}
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		buf_printf(errors, "listener %s: setsockopt: %s\n", l->name, strerror(errno));
		close(fd);
		return -1;
	}
	/* [::] and 0.0.0.0 are separate listeners in our defaults. */
	if (l->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
		buf_printf(errors, "listener %s: setsockopt IPV6_V6ONLY: %s\n", l->name, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) < 0) {
		explain_bind_error(l, errno, errors);
		close(fd);
		return -1;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		explain_bind_error(l, errno, errors);
		close(fd);
		return -1;
	}
	return fd;
}
