#include "daemon/daemon.h"
#include "auth/passwd_file.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "net/ev.h"
#include "net/listener.h"
#include "imapd/imapd.h"
#include "metrics/http.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A worker that dies sooner than this after its start is restarted only
 * after a pause, so a crash loop does not spin the CPU. */
#define WORKER_MIN_LIFETIME_MS 2000
#define WORKER_RESTART_DELAY_MS 1000
#define MASTER_STOP_TIMEOUT_MS 15000

struct worker_slot {
	struct master *master;
	unsigned index;
	pid_t pid;			/* 0 when not running */
	uint64_t started_ms;
	struct ev_timer restart_timer;
};

struct master {
	struct ev_loop *loop;
	struct config *cfg;
	struct tls_server *tls;
	int *listen_fds;
	size_t listen_count;
	struct worker_slot *slots;
	unsigned slot_count;
	int signal_fd;
	struct ev_io signal_io;
	struct ev_timer cert_watch;
	unsigned long long cert_fingerprint;
	struct ev_timer stop_timer;
	struct metrics_shared *metrics;
	int metrics_fd;			/* bound [metrics] socket until the endpoint takes it */
	struct metrics_http *metrics_http;
	bool stopping;
	bool is_worker;			/* set in a forked child: it returns its status */
	int worker_status;
};

struct config *daemon_reload_config(const char *path)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct buf errors = BUF_INIT;
	if (config_load(cfg, path, &errors) < 0) {
		log_msg(LOG_ERROR, "reload_failed", "configuration not reloaded: %s",
			errors.data ? errors.data : "");
		buf_free(&errors);
		config_free(cfg);
		free(cfg);
		return NULL;
	}
	buf_free(&errors);
	/* Listeners are bound once, as root; a reload can't move them. */
	config_add_default_listeners(cfg, false);
	return cfg;
}

static bool needs_tls(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->listener_count; i++) {
		if (cfg->listeners[i].protocol == LISTENER_PROTO_IMAP &&
		    cfg->listeners[i].tls != LISTENER_TLS_NONE)
			return true;
	}
	return false;
}

static int bind_all(struct master *m)
{
	struct buf errors = BUF_INIT;
	m->listen_fds = xcalloc(m->cfg->listener_count, sizeof(int));
	m->listen_count = m->cfg->listener_count;
	int failed = 0;
	for (size_t i = 0; i < m->cfg->listener_count; i++) {
		m->listen_fds[i] = listener_bind(&m->cfg->listeners[i], &errors);
		if (m->listen_fds[i] < 0)
			failed = 1;
	}
	if (!failed && m->cfg->metrics_address != NULL) {
		struct config_listener metrics = {
			.name = "metrics", .address = m->cfg->metrics_address,
			.addr = m->cfg->metrics_addr, .addr_len = m->cfg->metrics_addr_len,
		};
		m->metrics_fd = listener_bind(&metrics, &errors);
		failed = m->metrics_fd < 0;
	}
	if (failed) {
		fprintf(stderr, "postern: %s", errors.data);
		log_msg(LOG_FATAL, "bind_failed", "%s", errors.data);
	}
	buf_free(&errors);
	return failed ? -1 : 0;
}

static void close_listeners(struct master *m)
{
	for (size_t i = 0; i < m->listen_count; i++) {
		if (m->listen_fds[i] >= 0)
			close(m->listen_fds[i]);
	}
	free(m->listen_fds);
	m->listen_fds = NULL;
	m->listen_count = 0;
}

static int ensure_data_dir(const struct config *cfg, uid_t uid, gid_t gid)
{
	if (mkdir(cfg->data_dir, 0750) < 0 && errno != EEXIST) {
		fprintf(stderr, "postern: data_dir %s: cannot create: %s\n", cfg->data_dir, strerror(errno));
		return -1;
	}
	if (geteuid() == 0 && chown(cfg->data_dir, uid, gid) < 0) {
		fprintf(stderr, "postern: data_dir %s: cannot give it to uid %d: %s\n", cfg->data_dir,
			(int)uid, strerror(errno));
		return -1;
	}
	return 0;
}

/* Root binds and reads the certificates; everything after runs as the
 * configured account. Not root: nothing to drop. */
static int drop_privileges(const struct config *cfg)
{
	if (geteuid() != 0) {
		log_msg(LOG_INFO, "privileges", "not started as root: running as uid %d", (int)geteuid());
		return ensure_data_dir(cfg, geteuid(), getegid());
	}
	errno = 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL) {
		fprintf(stderr, "postern: user '%s' does not exist: create it "
			"(adduser --system --group %s) or set `user` in %s\n",
			cfg->user, cfg->user, cfg->path ? cfg->path : "the configuration");
		return -1;
	}
	if (ensure_data_dir(cfg, pw->pw_uid, pw->pw_gid) < 0)
		return -1;
	if (pw->pw_uid == 0) {
		log_msg(LOG_WARN, "privileges", "running as root: set `user` to an unprivileged account");
		return 0;
	}
	/* initgroups keeps supplementary groups such as ssl-cert, so key files
	 * readable by that group stay readable on reload. */
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "postern: cannot switch to user %s: %s\n", cfg->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		fprintf(stderr, "postern: privileges could not be dropped\n");
		return -1;
	}
	log_msg(LOG_INFO, "privileges", "running as user %s (uid %d)", pw->pw_name, (int)pw->pw_uid);
	return 0;
}

static int write_pid_file(const struct config *cfg)
{
	if (cfg->pid_file == NULL || cfg->pid_file[0] == '\0')
		return 0;
	FILE *f = fopen(cfg->pid_file, "w");
	if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
		fprintf(stderr, "postern: pid_file %s: %s\n", cfg->pid_file, strerror(errno));
		return -1;
	}
	return 0;
}

static void start_worker(struct worker_slot *slot);

static void restart_cb(void *ctx)
{
	struct worker_slot *slot = ctx;
	if (!slot->master->stopping)
		start_worker(slot);
}

static void start_worker(struct worker_slot *slot)
{
	struct master *m = slot->master;
	pid_t pid = fork();
	if (pid < 0) {
		log_msg(LOG_ERROR, "fork_failed", "%s", strerror(errno));
		ev_timer_start(m->loop, &slot->restart_timer, WORKER_RESTART_DELAY_MS);
		return;
	}
	if (pid == 0) {
		/* The child leaves the master's loop and runs its own. */
		m->is_worker = true;
		m->worker_status = 1;
		ev_loop_detach_after_fork(m->loop);
		close(m->signal_fd);
		m->signal_fd = -1;
		/* The scrape endpoint is the master's alone. */
		metrics_http_free(&m->metrics_http);
		struct worker_start start = {
			.metrics = metrics_worker_slot(m->metrics, slot->index),
			.index = slot->index,
			.cfg = m->cfg,
			.tls = m->tls ? tls_server_ref(m->tls) : NULL,
			.listen_fds = m->listen_fds,
			.listen_count = m->listen_count,
		};
		m->worker_status = worker_run(&start);
		ev_loop_stop(m->loop);
		return;
	}
	if (slot->started_ms != 0 && m->metrics != NULL)
		METRIC_INC(metrics_worker_slot_peek(m->metrics, slot->index)->restarts);
	slot->pid = pid;
	slot->started_ms = ev_clock_ms();
	log_msg(LOG_INFO, "worker_started", "worker %u pid %d", slot->index, (int)pid);
}

static bool any_worker_running(const struct master *m)
{
	for (unsigned i = 0; i < m->slot_count; i++) {
		if (m->slots[i].pid != 0)
			return true;
	}
	return false;
}

static void reap_children(struct master *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < m->slot_count; i++) {
			struct worker_slot *slot = &m->slots[i];
			if (slot->pid != pid)
				continue;
			slot->pid = 0;
			struct log_line l;
			bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
			log_begin(&l, m->stopping && clean ? LOG_INFO : LOG_ERROR, "worker_exited");
			log_uint(&l, "worker", slot->index);
			log_int(&l, "pid", pid);
			if (WIFSIGNALED(status))
				log_str(&l, "signal", strsignal(WTERMSIG(status)));
			else
				log_int(&l, "status", WEXITSTATUS(status));
			log_end(&l);
			if (m->stopping)
				break;
			uint64_t lived = ev_clock_ms() - slot->started_ms;
			ev_timer_start(m->loop, &slot->restart_timer,
				       lived < WORKER_MIN_LIFETIME_MS ? WORKER_RESTART_DELAY_MS : 0);
		}
	}
	if (m->stopping && !any_worker_running(m))
		ev_loop_stop(m->loop);
}

static void signal_workers(struct master *m, int sig)
{
	for (unsigned i = 0; i < m->slot_count; i++) {
		if (m->slots[i].pid != 0 && kill(m->slots[i].pid, sig) < 0 && errno != ESRCH)
			log_msg(LOG_ERROR, "kill_failed", "worker %u: %s", i, strerror(errno));
	}
}

static void stop_timeout_cb(void *ctx)
{
	struct master *m = ctx;
	log_msg(LOG_WARN, "stop_timeout", "workers still running; killing them");
	signal_workers(m, SIGKILL);
}

static void master_stop(struct master *m)
{
	if (m->stopping)
		return;
	m->stopping = true;
	log_msg(LOG_INFO, "stopping", "draining workers");
	close_listeners(m);
	for (unsigned i = 0; i < m->slot_count; i++)
		ev_timer_stop(m->loop, &m->slots[i].restart_timer);
	signal_workers(m, SIGTERM);
	ev_timer_start(m->loop, &m->stop_timer, MASTER_STOP_TIMEOUT_MS);
	if (!any_worker_running(m))
		ev_loop_stop(m->loop);
}

/* Checks the new configuration and certificates here, where the errors are
 * easiest to see, then lets each worker load them. */
static void master_reload(struct master *m, const char *why)
{
	log_msg(LOG_INFO, "reloading", "%s", why);
	struct config *cfg = daemon_reload_config(m->cfg->path);
	if (cfg == NULL)
		return;
	if (m->tls != NULL) {
		struct buf errors = BUF_INIT;
		struct tls_server *tls = tls_server_new(cfg, &errors);
		if (tls == NULL) {
			log_msg(LOG_ERROR, "reload_failed", "certificates not reloaded: %s",
				errors.data ? errors.data : "");
			buf_free(&errors);
			config_free(cfg);
			free(cfg);
			return;
		}
		buf_free(&errors);
		tls_server_log_expiry(tls, time(NULL));
		tls_server_unref(&m->tls);
		m->tls = tls;	/* what restarted workers start from */
		m->cert_fingerprint = tls_files_fingerprint(cfg);
	}
	config_free(cfg);
	free(cfg);
	signal_workers(m, SIGHUP);
}

static void signal_cb(void *ctx, uint32_t events)
{
	struct master *m = ctx;
	struct signalfd_siginfo si;
	while (m->signal_fd >= 0 && read(m->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap_children(m);
			break;
		case SIGTERM:
		case SIGINT:
			master_stop(m);
			break;
		case SIGHUP:
			if (!m->stopping)
				master_reload(m, "SIGHUP");
			break;
		}
		if (m->is_worker)
			return;
	}
}

static void cert_watch_cb(void *ctx)
{
	struct master *m = ctx;
	unsigned long long fp = tls_files_fingerprint(m->cfg);
	if (fp != m->cert_fingerprint && !m->stopping) {
		m->cert_fingerprint = fp;
		master_reload(m, "certificate files changed on disk");
	}
	ev_timer_start(m->loop, &m->cert_watch, (uint64_t)m->cfg->tls_watch_interval * 1000);
}

static int setup_signals(struct master *m)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked here and in the workers, which inherit the mask and read
	 * the same signals from their own signalfd. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	m->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->signal_fd < 0)
		return -1;
	ev_io_init(&m->signal_io, m->signal_fd, signal_cb, m);
	return ev_io_set(m->loop, &m->signal_io, EPOLLIN);
}

static int load_tls(struct master *m)
{
	if (!needs_tls(m->cfg))
		return 0;
	struct buf errors = BUF_INIT;
	m->tls = tls_server_new(m->cfg, &errors);
	if (m->tls == NULL) {
		fprintf(stderr, "postern: %s", errors.data ? errors.data : "TLS setup failed\n");
		buf_free(&errors);
		return -1;
	}
	buf_free(&errors);
	tls_server_log_expiry(m->tls, time(NULL));
	m->cert_fingerprint = tls_files_fingerprint(m->cfg);
	return 0;
}

static int check_passwd_file(const struct config *cfg)
{
	struct passwd_file pf = { 0 };
	struct buf errors = BUF_INIT;
	int r = passwd_file_load(&pf, cfg->passwd_file, &errors);
	if (r < 0)
		fprintf(stderr, "postern: passwd_file: %s", errors.data ? errors.data : "unreadable\n");
	passwd_file_free(&pf);
	buf_free(&errors);
	return r;
}

static void log_ready(const struct master *m)
{
	struct log_line l;
	struct buf listeners = BUF_INIT;
	for (size_t i = 0; i < m->cfg->listener_count; i++) {
		const struct config_listener *cl = &m->cfg->listeners[i];
		static const char *const tls_names[] = { "implicit", "starttls", "none" };
		buf_printf(&listeners, "%s%s=%s/%s", i ? "," : "", cl->name, cl->address,
			   cl->protocol == LISTENER_PROTO_LMTP ? "lmtp" : tls_names[cl->tls]);
	}
	log_begin(&l, LOG_INFO, "ready");
	log_int(&l, "workers", m->cfg->workers);
	log_str(&l, "listeners", listeners.data);
	log_end(&l);
	buf_free(&listeners);
}

static void render_metrics(void *ctx, struct buf *body)
{
	struct master *m = ctx;
	const char *listener_names[METRICS_MAX_LISTENERS];
	size_t listener_count = m->cfg->listener_count < METRICS_MAX_LISTENERS ? m->cfg->listener_count
									      : METRICS_MAX_LISTENERS;
	for (size_t i = 0; i < listener_count; i++)
		listener_names[i] = m->cfg->listeners[i].name;
	const char *command_names[METRICS_MAX_COMMANDS];
	size_t command_count = imapd_command_name_count();
	if (command_count > METRICS_MAX_COMMANDS)
		command_count = METRICS_MAX_COMMANDS;
	for (size_t i = 0; i < command_count; i++)
		command_names[i] = imapd_command_name(i);
	size_t cert_count = m->tls != NULL ? tls_server_cert_count(m->tls) : 0;
	struct metrics_cert *certs = xcalloc(cert_count ? cert_count : 1, sizeof(*certs));
	for (size_t i = 0; i < cert_count; i++) {
		struct tls_cert_info info;
		tls_server_cert_info(m->tls, i, &info);
		certs[i] = (struct metrics_cert){ .name = info.name, .not_after = info.not_after };
	}
	unsigned running = 0;
	for (unsigned i = 0; i < m->slot_count; i++)
		running += m->slots[i].pid != 0;
	struct metrics_labels labels = {
		.listener_names = listener_names, .listener_count = listener_count,
		.command_names = command_names, .command_count = command_count,
		.certs = certs, .cert_count = cert_count, .workers_running = running,
	};
	metrics_render(m->metrics, &labels, body);
	free(certs);
}

static void master_cleanup(struct master *m)
{
	metrics_http_free(&m->metrics_http);
	if (m->metrics_fd >= 0)
		close(m->metrics_fd);
	metrics_shared_free(&m->metrics);
	close_listeners(m);
	if (m->signal_fd >= 0)
		close(m->signal_fd);
	free(m->slots);
	tls_server_unref(&m->tls);
	ev_loop_free(&m->loop);
}

int master_run(struct config *cfg)
{
	struct master m = { .cfg = cfg, .signal_fd = -1, .metrics_fd = -1 };
	enum log_level level = LOG_INFO;
	(void)log_level_parse(cfg->log_level, &level);
	enum log_target target = strcmp(cfg->log_target, "syslog") == 0 ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR;
	log_setup(target, level, "master");

	int status = 1;
	m.loop = ev_loop_new();
	if (m.loop == NULL || check_passwd_file(cfg) < 0 ||
	    load_tls(&m) < 0 || bind_all(&m) < 0 || write_pid_file(cfg) < 0 ||
	    drop_privileges(cfg) < 0 || setup_signals(&m) < 0)
		goto out;

	m.metrics = metrics_shared_new((unsigned)cfg->workers);
	if (m.metrics_fd >= 0 && m.metrics != NULL) {
		m.metrics_http = metrics_http_new(m.loop, m.metrics_fd, render_metrics, &m);
		m.metrics_fd = -1;	/* taken over, even on failure */
	}
	m.slot_count = (unsigned)cfg->workers;
	m.slots = xcalloc(m.slot_count, sizeof(*m.slots));
	for (unsigned i = 0; i < m.slot_count; i++) {
		m.slots[i].master = &m;
		m.slots[i].index = i;
		ev_timer_init(&m.slots[i].restart_timer, restart_cb, &m.slots[i]);
	}
	ev_timer_init(&m.stop_timer, stop_timeout_cb, &m);
	ev_timer_init(&m.cert_watch, cert_watch_cb, &m);
	for (unsigned i = 0; i < m.slot_count && !m.is_worker; i++)
		start_worker(&m.slots[i]);
	if (m.is_worker) {
		status = m.worker_status;
		goto out;
	}
	if (m.tls != NULL && cfg->tls_watch_interval > 0)
		ev_timer_start(m.loop, &m.cert_watch, (uint64_t)cfg->tls_watch_interval * 1000);
	log_ready(&m);
	ev_loop_run(m.loop);
	if (m.is_worker) {
		status = m.worker_status;
		goto out;
	}
	log_msg(LOG_INFO, "stopped", "all workers have exited");
	status = 0;
	if (cfg->pid_file != NULL && cfg->pid_file[0] != '\0')
		(void)unlink(cfg->pid_file);
out:
	master_cleanup(&m);
	return status;
}
