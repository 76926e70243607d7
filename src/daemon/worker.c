#include "daemon/daemon.h"
#include "auth/cache.h"
#include "auth/passwd_file.h"
#include "auth/pool.h"
#include "auth/throttle.h"
#include "core/log.h"
#include "core/shcount.h"
#include "core/xalloc.h"
#include "imapd/imapd.h"
#include "imapd/notify.h"
#include "imapd/selected.h"
#include "imapd/search_indexer.h"
#include "imapd/store_cache.h"
#include "metrics/metrics.h"
#include "lmtp/lmtp.h"
#include "lmtp/pool.h"
#include "net/ev.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* After SIGTERM, sessions get this long to take their BYE. */
#define WORKER_DRAIN_MS 10000
#define WORKER_ACCEPT_BATCH 64

struct worker_listener {
	struct worker *worker;
	const struct config_listener *config;
	struct ev_io io;
};

struct worker {
	unsigned index;
	struct ev_loop *loop;
	struct config *boot_cfg;	/* listeners point into it: kept to the end */
	struct config *cfg;		/* current settings; boot_cfg until a reload */
	struct imapd_context imapd;
	struct lmtp_context lmtp;	/* sessions of `protocol = lmtp` listeners */
	struct passwd_file passwd;
	struct worker_listener *listeners;
	size_t listener_count;
	int signal_fd;
	struct ev_io signal_io;
	struct ev_io pool_io;
	struct ev_io delivery_io;	/* the LMTP delivery pool's eventfd */
	struct ev_io inotify_io;
	struct ev_timer drain_check;
	struct metrics_worker local_metrics;	/* when there is no shared slot */
	uint64_t drain_deadline;
	bool draining;
};

static struct throttle_settings throttle_settings_from(const struct config *cfg)
{
	return (struct throttle_settings){
		.initial_delay_ms = (uint32_t)cfg->auth_fail_delay_ms,
		.max_delay_ms = (uint32_t)cfg->auth_fail_delay_max_ms,
		.spray_users = (unsigned)cfg->auth_spray_users,
		.distributed_sources = 10,
		.forget_after_ms = 15 * 60 * 1000,
		.max_entries = 65536,
	};
}

static struct auth_cache_settings auth_cache_settings_from(const struct config *cfg)
{
	return (struct auth_cache_settings){
		.ttl_ms = (uint64_t)cfg->auth_cache_ttl * 1000,
		.max_entries = (unsigned)cfg->auth_cache_size,
	};
}

/* The verified-login cache, keyed afresh in each worker (after the fork:
 * workers share no key). Without it logins still work, only slower. */
static void worker_setup_auth_cache(struct worker *w)
{
	struct auth_cache_settings cs = auth_cache_settings_from(w->cfg);
	const char *error = NULL;
	w->imapd.auth_cache = auth_cache_new(&cs, &error);
	if (w->imapd.auth_cache == NULL)
		log_msg(LOG_WARN, "auth_cache", "worker %u runs without the verified-login cache: %s", w->index, error);
}

static void accept_cb(void *ctx, uint32_t events)
{
	struct worker_listener *wl = ctx;
	struct worker *w = wl->worker;
	for (int i = 0; i < WORKER_ACCEPT_BATCH; i++) {
		int fd = accept4(wl->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			if (errno == ECONNABORTED)
				continue;
			/* EMFILE/ENFILE: the connection waits in the backlog. */
			log_msg(LOG_ERROR, "accept_failed", "listener %s: %s", wl->config->name, strerror(errno));
			return;
		}
		if (wl->config->protocol == LISTENER_PROTO_LMTP)
			lmtp_accept(&w->lmtp, fd, wl->config);
		else
			imapd_accept(&w->imapd, fd, wl->config);
	}
}

static void stop_listening(struct worker *w)
{
	for (size_t i = 0; i < w->listener_count; i++) {
		ev_io_stop(w->loop, &w->listeners[i].io);
		close(w->listeners[i].io.fd);
	}
	w->listener_count = 0;
}

static void drain_check_cb(void *ctx)
{
	struct worker *w = ctx;
	if ((w->imapd.session_count == 0 && w->lmtp.session_count == 0) ||
	    ev_now(w->loop) >= w->drain_deadline) {
		ev_loop_stop(w->loop);
		return;
	}
	ev_timer_start(w->loop, &w->drain_check, 50);
}

static void worker_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	log_msg(LOG_INFO, "worker_draining", "worker %u closing %u sessions", w->index,
		w->imapd.session_count + w->lmtp.session_count);
	stop_listening(w);
	imapd_shutdown_all(&w->imapd, "Server shutting down");
	lmtp_shutdown_all(&w->lmtp);
	w->drain_deadline = ev_now(w->loop) + WORKER_DRAIN_MS;
	ev_timer_start(w->loop, &w->drain_check, 0);
}

static void worker_reload(struct worker *w)
{
	struct config *cfg = daemon_reload_config(w->boot_cfg->path);
	if (cfg == NULL)
		return;	/* logged; the running settings stay */
	struct tls_server *tls = NULL;
	if (w->imapd.tls != NULL) {
		struct buf errors = BUF_INIT;
		tls = tls_server_new(cfg, &errors);
		if (tls == NULL) {
			log_msg(LOG_ERROR, "reload_failed", "certificates not reloaded: %s", daemon_error_text(&errors));
			buf_free(&errors);
			config_free(cfg);
			free(cfg);
			return;
		}
		buf_free(&errors);
		/* New connections get the new certificate; open sessions keep
		 * theirs (their SSL holds a reference to the old context). */
		tls_server_unref(&w->imapd.tls);
		w->imapd.tls = tls;
	}
	if (w->cfg != w->boot_cfg) {
		config_free(w->cfg);
		free(w->cfg);
	}
	w->cfg = cfg;
	w->imapd.cfg = cfg;
	w->lmtp.cfg = cfg;
	struct throttle_settings ts = throttle_settings_from(cfg);
	throttle_set_settings(w->imapd.throttle, &ts);
	if (w->imapd.auth_cache != NULL) {
		struct auth_cache_settings cs = auth_cache_settings_from(cfg);
		auth_cache_set_settings(w->imapd.auth_cache, &cs);
	}
	struct buf errors = BUF_INIT;
	if (passwd_file_refresh(&w->passwd, &errors) < 0)
		log_msg(LOG_ERROR, "passwd_file", "%s", errors.data ? errors.data : "");
	buf_free(&errors);
	log_msg(LOG_INFO, "worker_reloaded", "worker %u", w->index);
}

static void signal_cb(void *ctx, uint32_t events)
{
	struct worker *w = ctx;
	struct signalfd_siginfo si;
	while (read(w->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			worker_drain(w);
		else if (si.ssi_signo == SIGHUP && !w->draining)
			worker_reload(w);
	}
}

static void inotify_cb(void *ctx, uint32_t events)
{
	struct worker *w = ctx;
	notify_dispatch(&w->imapd);
}

static void pool_cb(void *ctx, uint32_t events)
{
	struct worker *w = ctx;
	imapd_auth_jobs_done(&w->imapd);
}

static void delivery_cb(void *ctx, uint32_t events)
{
	struct worker *w = ctx;
	lmtp_jobs_done(&w->lmtp);
}

/* The delivery threads, only when there is an LMTP listener to use them
 * (listeners come from the boot configuration, never from a reload). */
static int worker_setup_delivery(struct worker *w, const struct worker_start *start)
{
	bool lmtp = false;
	for (size_t i = 0; i < start->listen_count; i++)
		lmtp |= w->boot_cfg->listeners[i].protocol == LISTENER_PROTO_LMTP;
	if (!lmtp)
		return 0;
	int fd = -1;
	w->lmtp.pool = lmtp_pool_new((unsigned)w->boot_cfg->delivery_threads, &fd);
	if (w->lmtp.pool == NULL)
		return -1;
	ev_io_init(&w->delivery_io, fd, delivery_cb, w);
	if (ev_io_set(w->loop, &w->delivery_io, EPOLLIN) < 0) {
		workpool_free(&w->lmtp.pool);
		return -1;
	}
	return 0;
}

static int worker_setup_signals(struct worker *w)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	w->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (w->signal_fd < 0)
		return -1;
	ev_io_init(&w->signal_io, w->signal_fd, signal_cb, w);
	return ev_io_set(w->loop, &w->signal_io, EPOLLIN);
}

static int worker_setup_listeners(struct worker *w, const struct worker_start *start)
{
	w->listeners = xcalloc(start->listen_count, sizeof(*w->listeners));
	w->listener_count = start->listen_count;
	for (size_t i = 0; i < start->listen_count; i++) {
		struct worker_listener *wl = &w->listeners[i];
		wl->worker = w;
		wl->config = &w->boot_cfg->listeners[i];
		ev_io_init(&wl->io, start->listen_fds[i], accept_cb, wl);
		/* EPOLLEXCLUSIVE: one worker wakes per connection, not all. */
		if (ev_io_set_exclusive(w->loop, &wl->io, EPOLLIN) < 0)
			return -1;
	}
	return 0;
}

static void worker_cleanup(struct worker *w)
{
	stop_listening(w);
	imapd_close_all(&w->imapd);
	store_cache_deinit(&w->imapd);
	session_sync_cache_free(&w->imapd);
	if (w->imapd.inotify_fd >= 0)
		ev_io_stop(w->loop, &w->inotify_io);
	notify_deinit(&w->imapd);
	lmtp_close_all(&w->lmtp);
	if (w->lmtp.pool != NULL) {
		ev_io_stop(w->loop, &w->delivery_io);
		workpool_free(&w->lmtp.pool);
	}
	/* Once sessions and deliveries are gone, nothing pushes to it. */
	search_indexer_free(&w->imapd.indexer);
	w->lmtp.indexer = NULL;
	free(w->listeners);
	if (w->imapd.auth_pool != NULL) {
		ev_io_stop(w->loop, &w->pool_io);
		workpool_free(&w->imapd.auth_pool);
	}
	throttle_free(&w->imapd.throttle);
	auth_cache_free(&w->imapd.auth_cache);
	tls_server_unref(&w->imapd.tls);
	passwd_file_free(&w->passwd);
	if (w->cfg != w->boot_cfg) {
		config_free(w->cfg);
		free(w->cfg);
	}
	if (w->signal_fd >= 0)
		close(w->signal_fd);
	ev_loop_free(&w->loop);
}

int worker_run(const struct worker_start *start)
{
	struct worker w = { .index = start->index, .signal_fd = -1 };
	char name[16];
	snprintf(name, sizeof(name), "worker%u", start->index);
	log_setup(strcmp(start->cfg->log_target, "syslog") == 0 ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR,
		  LOG_INFO, name);
	enum log_level level;
	if (log_level_parse(start->cfg->log_level, &level) == 0)
		log_setup(strcmp(start->cfg->log_target, "syslog") == 0 ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR,
			  level, name);
	/* A worker never outlives its master. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() == 1)
		return 1;
	w.loop = ev_loop_new();
	if (w.loop == NULL)
		return 1;
	w.boot_cfg = start->cfg;
	w.cfg = start->cfg;
	w.imapd.loop = w.loop;
	w.imapd.cfg = w.cfg;
	w.imapd.tls = start->tls;
	w.imapd.worker_index = start->index;
	w.imapd.passwd = &w.passwd;
	w.imapd.inotify_fd = -1;
	w.imapd.metrics = start->metrics != NULL ? start->metrics : &w.local_metrics;
	w.imapd.listeners = start->cfg->listeners;
	/* What a killed predecessor counted died with its sessions. */
	shcount_worker_reset(start->counts, start->index);
	w.imapd.counts = start->counts;
	w.lmtp.loop = w.loop;
	w.lmtp.cfg = w.cfg;
	w.lmtp.worker_index = start->index;
	w.lmtp.metrics = w.imapd.metrics;
	w.lmtp.listeners = start->cfg->listeners;
	w.lmtp.passwd = &w.passwd;
	struct throttle_settings ts = throttle_settings_from(w.cfg);
	w.imapd.throttle = throttle_new(&ts);
	ev_timer_init(&w.drain_check, drain_check_cb, &w);

	struct buf errors = BUF_INIT;
	int status = 1;
	if (passwd_file_load(&w.passwd, w.cfg->passwd_file, &errors) < 0) {
		log_msg(LOG_ERROR, "passwd_file", "%s", errors.data ? errors.data : "");
		goto out;
	}
	int pool_fd = -1;
	w.imapd.auth_pool = auth_pool_new((unsigned)w.cfg->auth_threads, &pool_fd);
	if (w.imapd.auth_pool == NULL) {
		log_msg(LOG_ERROR, "worker_failed", "cannot start the hashing threads");
		goto out;
	}
	ev_io_init(&w.pool_io, pool_fd, pool_cb, &w);
	worker_setup_auth_cache(&w);
	/* Read at start, like the thread counts: a reload does not change it.
	 * Without the thread, searches read what the index lacks. */
	if (w.boot_cfg->search_indexer) {
		w.imapd.indexer = search_indexer_new(w.boot_cfg->data_dir, w.imapd.metrics);
		w.lmtp.indexer = w.imapd.indexer;
	}
	if (worker_setup_delivery(&w, start) < 0) {
		log_msg(LOG_ERROR, "worker_failed", "cannot start the delivery threads: %s", strerror(errno));
		goto out;
	}
	if (ev_io_set(w.loop, &w.pool_io, EPOLLIN) < 0 || worker_setup_signals(&w) < 0 ||
	    worker_setup_listeners(&w, start) < 0) {
		log_msg(LOG_ERROR, "worker_failed", "event loop setup: %s", strerror(errno));
		goto out;
	}
	if (notify_init(&w.imapd) == 0) {
		ev_io_init(&w.inotify_io, w.imapd.inotify_fd, inotify_cb, &w);
		if (ev_io_set(w.loop, &w.inotify_io, EPOLLIN) < 0)
			notify_deinit(&w.imapd);
	}
	if (start->reload_at_start)
		worker_reload(&w);
	log_msg(LOG_DEBUG, "worker_started", "worker %u", w.index);
	status = ev_loop_run(w.loop) == 0 ? 0 : 1;
out:
	buf_free(&errors);
	worker_cleanup(&w);
	return status;
}
