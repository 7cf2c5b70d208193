/*
 * server.c - the SSH listener, sessions and public-key authentication.
 *
 * Shape: we own the listening sockets. One acceptor thread polls them (and a
 * wake-up pipe used by sshd_stop), applies the connection limits before a
 * single byte of SSH is spoken (MaxSessions overall, PerSourceMaxStartups
 * unauthenticated connections per address, like OpenSSH's MaxStartups), and
 * hands each accepted socket to libssh with ssh_bind_accept_fd() and to a
 * new detached thread. A session never touches another thread's libssh
 * objects.
 *
 * In its thread a session does the key exchange, then polls an ssh_event
 * with server callbacks until it is authenticated and its one session
 * channel has asked for the "sftp" subsystem or an exec command (within
 * LoginGraceTime), then leaves the event loop and does blocking channel
 * I/O in the protocol handler. It ends the channel the way OpenSSH expects
 * (exit-status, EOF, close, then waits for the client's close) so that
 * scp and sftp exit 0.
 *
 * Authentication is public key only. The user name is the client's name;
 * the offered key must be registered for that client in the catalog and the
 * client must be enabled. This is checked in the probe (no signature yet)
 * too, so a client is never told a key is acceptable when it is not. Every
 * answer is read from the catalog at login (the tenant cache trusts a row
 * for at most a few seconds), so a removed key or a disabled client is
 * refused at the next login without a restart.
 *
 * Metrics and audit (store/ops.c): every accepted login, and one refusal
 * per connection that never logs in (a client offers each of its keys in
 * turn), is counted and audited here; the protocol handlers report each
 * file they move or change through sshd_record() and open transfers
 * through sshd_transfer(), which also keeps a stop from ending a session
 * that has one open.
 */
#include "sshd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

#include "log.h"
#include "ops.h"
#include "session.h"
#include "rsync.h"
#include "sshkey.h"

/* Only modern algorithms: nothing SHA-1, no CBC, no non-etm MACs. */
#define KEX_ALGOS "curve25519-sha256,curve25519-sha256@libssh.org," \
	"ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521," \
	"diffie-hellman-group18-sha512,diffie-hellman-group16-sha512," \
	"diffie-hellman-group14-sha256"
#define CIPHERS "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com," \
	"aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"
#define MACS "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"
#define HOSTKEY_ALGOS "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512," \
	"rsa-sha2-256"
#define PUBKEY_ALGOS "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384," \
	"ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com," \
	"sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256"

#define MAX_SOURCES 4096        /* distinct addresses tracked at once */

/* Limits that sshd_reload may change; read under srv->mu. */
struct limits {
	int max_auth_tries;
	int login_grace_time;
	int max_sessions;
	int per_source;
	int idle_timeout;
};

struct source {
	char addr[64];
	int unauth;                     /* connections not yet authenticated */
};

struct conn;

struct conn_callbacks {
	struct ssh_server_callbacks_struct server;
	struct ssh_channel_callbacks_struct channel;
};

struct sshd_server {
	struct catalog *cat;
	struct tenant_cache *tc;
	ssh_bind bind;
	char spool_dir[CONF_PATH_MAX];
	int lfd[CONF_MAX_LISTEN];
	int port[CONF_MAX_LISTEN];
	int nl;
	int wake[2];
	pthread_t acceptor;
	int acceptor_started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct limits lim;
	int stopping;                   /* atomic */
	int live;                       /* session threads running */
	struct source *sources;
	int nsources;
	struct conn *conns;             /* live sessions, for sshd_stop */
};

/* One connection, owned by its thread. */
struct conn {
	struct sshd_server *srv;
	struct conn *next, *prev;
	ssh_session ssh;
	int killed;                     /* atomic: sshd_stop gave up waiting */
	int counted_unauth;             /* still counted in its source */
	struct limits lim;              /* snapshot at accept */

	int auth_tries;
	int authenticated;
	char fail_user[CATALOG_NAME_MAX]; /* last refused attempt: user, */
	char fail_fp[128];              /* key fingerprint */
	const char *fail_why;           /* and reason (a static string) */
	int too_many_tries;
	int remote_closed;              /* the client sent CHANNEL_CLOSE */
	ssh_channel chan;
	enum { REQ_NONE, REQ_SFTP, REQ_EXEC, REQ_SHELL } req;
	char command[4096];

	struct sshd_session sess;
	struct catalog_key key;         /* the key that logged in */
	struct conn_callbacks *cbs;     /* libssh keeps pointers to these */
};

/* ---- source accounting ---------------------------------------------- */

static struct source *source_find(struct sshd_server *srv, const char *addr)
{
	for (int i = 0; i < srv->nsources; i++)
		if (!strcmp(srv->sources[i].addr, addr))
			return &srv->sources[i];
	return NULL;
}

/* Count one unauthenticated connection from ADDR; 0, or -1 if over the
 * limit. Called with srv->mu held. */
static int source_take(struct sshd_server *srv, const char *addr, int limit)
{
	struct source *s = source_find(srv, addr);
	if (!s) {
		if (srv->nsources >= MAX_SOURCES)
			return -1;
		s = &srv->sources[srv->nsources++];
		snprintf(s->addr, sizeof s->addr, "%s", addr);
		s->unauth = 0;
	}
	if (limit > 0 && s->unauth >= limit)
		return -1;
	s->unauth++;
	return 0;
}

static void source_release(struct sshd_server *srv, const char *addr)
{
	struct source *s = source_find(srv, addr);
	if (!s)
		return;
	if (--s->unauth <= 0)
		*s = srv->sources[--srv->nsources];
}

static void conn_authenticated(struct conn *c)
{
	pthread_mutex_lock(&c->srv->mu);
	if (c->counted_unauth) {
		source_release(c->srv, c->sess.addr);
		c->counted_unauth = 0;
	}
	pthread_mutex_unlock(&c->srv->mu);
}

/* ---- channel I/O (session.h) ---------------------------------------- */

ssize_t sshd_io_read(struct sshd_session *s, void *buf, size_t cap)
{
	for (;;) {
		if (__atomic_load_n(s->killed, __ATOMIC_RELAXED))
			return -1;
		int n = ssh_channel_poll_timeout(s->chan, 1000, 0);
		if (n == SSH_EOF) {
			/* Data may still be buffered before the EOF. */
			int r = ssh_channel_read_nonblocking(s->chan, buf,
							     (uint32_t)cap, 0);
			return r > 0 ? r : 0;
		}
		if (n == SSH_ERROR)
			return -1;
		if (n > 0) {
			uint32_t want = (uint32_t)(cap < (size_t)n ? cap : (size_t)n);
			int r = ssh_channel_read(s->chan, buf, want, 0);
			if (r < 0)
				return -1;
			if (r == 0 && ssh_channel_is_eof(s->chan))
				return 0;
			s->last_io = time(NULL);
			s->bytes_in += (uint64_t)r;
			if (r > 0)
				return r;
			continue;
		}
		/* Timed out this slice: a stop request ends idle sessions
		 * only. One that is mid-request, or has a transfer open (an
		 * upload whose client paused), goes on until the grace is
		 * over and the session is killed. */
		if (__atomic_load_n(s->stopping, __ATOMIC_RELAXED) &&
		    s->busy <= 0)
			return -1;
		if (s->idle_timeout > 0 &&
		    time(NULL) - s->last_io >= s->idle_timeout) {
			log_info("ssh_idle_timeout", "client=%s addr=%s",
				 log_q(s->client), log_q(s->addr));
			return -1;
		}
	}
}

int sshd_io_read_full(struct sshd_session *s, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = sshd_io_read(s, p, n);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int sshd_io_write(struct sshd_session *s, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		if (__atomic_load_n(s->killed, __ATOMIC_RELAXED))
			return -1;
		uint32_t chunk = n > 65536 ? 65536 : (uint32_t)n;
		int w = ssh_channel_write(s->chan, p, chunk);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		s->bytes_out += (uint64_t)w;
	}
	s->last_io = time(NULL);
	return 0;
}

void sshd_io_stderr(struct sshd_session *s, const char *msg)
{
	size_t n = strlen(msg);
	if (n)
		ssh_channel_write_stderr(s->chan, msg, (uint32_t)n);
}

/* ---- metrics and audit ------------------------------------------------ */

void sshd_record(struct sshd_session *s, const char *op, const char *path,
		 const char *to, int rc, uint64_t bytes, int in)
{
	struct ops_actor who = { s->protocol ? s->protocol : "ssh", s->client,
				 s->fingerprint, s->addr };
	ops_file(&who, op, path, to, rc, bytes, in);
}

void sshd_transfer(struct sshd_session *s, int delta)
{
	s->busy += delta;
	ops_transfer(s->protocol ? s->protocol : "ssh", delta);
}

/* ---- authentication -------------------------------------------------- */

/* Decide whether USER may log in with KEY. 0 = yes (fills C->key and the
 * session's store), else a reason for the log. */
static const char *check_key(struct conn *c, const char *user, ssh_key key)
{
	struct sshd_server *srv = c->srv;
	char *b64 = NULL;
	const char *type;
	struct catalog_client row;
	struct store *st = NULL;
	int rc;

	if (!catalog_name_valid(user))
		return "no such client";
	type = ssh_key_type_to_char(ssh_key_type(key));
	if (!type)
		return "unsupported key type";
	if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return "unreadable key";
	rc = catalog_key_find(srv->cat, user, type, b64, &c->key);
	ssh_string_free_char(b64);
	if (rc == CATALOG_ENOENT)
		return "key not registered for this client";
	if (rc != 0)
		return "catalog error";
	rc = tenant_get(srv->tc, user, &row, &st);
	if (rc == CATALOG_ENOENT)
		return "no such client";
	if (rc != 0 || !st)
		return "client location unavailable";
	if (row.disabled)
		return "client disabled";
	c->sess.store = st;
	return NULL;
}

static int auth_pubkey(ssh_session session, const char *user,
		       struct ssh_key_struct *pubkey, char signature_state,
		       void *userdata)
{
	struct conn *c = userdata;
	char fp[128];
	const char *why;
	(void)session;

	if (sshkey_fingerprint(pubkey, fp, sizeof fp) != 0)
		snprintf(fp, sizeof fp, "?");
	if (signature_state != SSH_PUBLICKEY_STATE_NONE &&
	    signature_state != SSH_PUBLICKEY_STATE_VALID) {
		why = "bad signature";
	} else {
		why = check_key(c, user, pubkey);
	}
	if (!why) {
		if (signature_state == SSH_PUBLICKEY_STATE_NONE)
			return SSH_AUTH_SUCCESS; /* probe: "key acceptable" */
		snprintf(c->sess.client, sizeof c->sess.client, "%s", user);
		snprintf(c->sess.fingerprint, sizeof c->sess.fingerprint, "%s",
			 fp);
		c->authenticated = 1;
		catalog_key_touch(c->srv->cat, c->key.id, (int64_t)time(NULL));
		struct ops_actor who = { "ssh", user, fp, c->sess.addr };
		ops_login(&who, 1, NULL);
		log_info("ssh_login", "client=%s fingerprint=%s addr=%s",
			 log_q(user), log_q(fp), log_q(c->sess.addr));
		return SSH_AUTH_SUCCESS;
	}
	c->auth_tries++;
	/* Remembered for the one audit line of a connection that never
	 * logs in (a client tries each of its keys; one refusal per
	 * connection is what an operator wants to see). */
	snprintf(c->fail_user, sizeof c->fail_user, "%s", user);
	snprintf(c->fail_fp, sizeof c->fail_fp, "%s", fp);
	c->fail_why = why;
	log_warn("ssh_login_failed",
		 "client=%s fingerprint=%s addr=%s reason=%s probe=%d", log_q(user),
		 log_q(fp), log_q(c->sess.addr), log_q(why),
		 signature_state == SSH_PUBLICKEY_STATE_NONE);
	if (c->lim.max_auth_tries > 0 && c->auth_tries >= c->lim.max_auth_tries)
		c->too_many_tries = 1;
	return SSH_AUTH_DENIED;
}

/* ---- channel requests ------------------------------------------------ */

static int chan_subsystem(ssh_session session, ssh_channel channel,
			  const char *subsystem, void *userdata)
{
	struct conn *c = userdata;
	(void)session;
	(void)channel;
	if (c->req != REQ_NONE || strcmp(subsystem, "sftp") != 0)
		return -1;
	c->req = REQ_SFTP;
	return 0;
}

static int chan_exec(ssh_session session, ssh_channel channel,
		     const char *command, void *userdata)
{
	struct conn *c = userdata;
	(void)session;
	(void)channel;
	if (c->req != REQ_NONE)
		return -1;
	snprintf(c->command, sizeof c->command, "%s", command);
	c->req = REQ_EXEC;
	return 0;
}

static int chan_shell(ssh_session session, ssh_channel channel,
		      void *userdata)
{
	struct conn *c = userdata;
	(void)session;
	(void)channel;
	if (c->req != REQ_NONE)
		return -1;
	c->req = REQ_SHELL;
	return 0;
}

static int chan_pty(ssh_session session, ssh_channel channel,
		    const char *term, int width, int height, int pxwidth,
		    int pwheight, void *userdata)
{
	(void)session; (void)channel; (void)term; (void)width; (void)height;
	(void)pxwidth; (void)pwheight; (void)userdata;
	return -1; /* no terminals here */
}

static int chan_env(ssh_session session, ssh_channel channel,
		    const char *env_name, const char *env_value,
		    void *userdata)
{
	(void)session; (void)channel; (void)env_name; (void)env_value;
	(void)userdata;
	return -1; /* no environment to set */
}

static void chan_close_cb(ssh_session session, ssh_channel channel,
			  void *userdata)
{
	struct conn *c = userdata;
	(void)session;
	(void)channel;
	c->remote_closed = 1;
}

static struct ssh_channel_callbacks_struct chan_cb_template = {
	.channel_pty_request_function = chan_pty,
	.channel_shell_request_function = chan_shell,
	.channel_exec_request_function = chan_exec,
	.channel_env_request_function = chan_env,
	.channel_subsystem_request_function = chan_subsystem,
	.channel_close_function = chan_close_cb,
};

static ssh_channel chan_open(ssh_session session, void *userdata)
{
	struct conn *c = userdata;
	if (!c->authenticated || c->chan)
		return NULL; /* one session channel per connection */
	c->chan = ssh_channel_new(session);
	if (!c->chan)
		return NULL;
	ssh_set_channel_callbacks(c->chan, &c->cbs->channel);
	return c->chan;
}

/* ---- one session ----------------------------------------------------- */

static void conn_finish_channel(struct conn *c, int status)
{
	ssh_channel ch = c->chan;
	ssh_event ev;
	if (!ch)
		return;
	if (!c->remote_closed) {
		ssh_channel_request_send_exit_status(ch, status);
		ssh_channel_send_eof(ch);
	}
	ssh_channel_close(ch);
	/* Wait (briefly) for the client's CLOSE: disconnecting before it
	 * makes OpenSSH report "closed by remote host" and scp exit 1. */
	ev = ssh_event_new();
	if (!ev)
		return;
	if (ssh_event_add_session(ev, c->ssh) == SSH_OK) {
		for (int i = 0; i < 50 && !c->remote_closed; i++) {
			if (ssh_event_dopoll(ev, 100) == SSH_ERROR)
				break;
			if (ssh_get_status(c->ssh) &
			    (SSH_CLOSED | SSH_CLOSED_ERROR))
				break;
		}
		ssh_event_remove_session(ev, c->ssh);
	}
	ssh_event_free(ev);
}

static int run_request(struct conn *c)
{
	struct sshd_session *s = &c->sess;
	int rc;
	s->chan = c->chan;
	s->last_io = time(NULL);
	switch (c->req) {
	case REQ_SFTP:
		log_info("ssh_request", "client=%s addr=%s request=sftp",
			 log_q(s->client), log_q(s->addr));
		s->protocol = "sftp";
		ops_session(s->protocol, 1);
		rc = sshd_sftp_serve(s);
		ops_session(s->protocol, -1);
		return rc;
	case REQ_EXEC:
		log_info("ssh_request", "client=%s addr=%s request=exec command=%s",
			 log_q(s->client), log_q(s->addr), log_q(c->command));
		s->protocol = rsync_is_server_command(c->command) ? "rsync"
								  : "scp";
		ops_session(s->protocol, 1);
		rc = sshd_scp_serve(s, c->command);
		ops_session(s->protocol, -1);
		return rc;
	case REQ_SHELL:
	default:
		sshd_io_stderr(s, "This service offers sftp, scp and rsync "
				  "only; there is no shell.\r\n");
		return 1;
	}
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct sshd_server *srv = c->srv;
	struct conn_callbacks *cbs = calloc(1, sizeof *cbs);
	ssh_event ev = NULL;
	time_t deadline;
	int status = -1;

	if (!cbs)
		goto done;
	cbs->server.userdata = c;
	cbs->server.auth_pubkey_function = auth_pubkey;
	cbs->server.channel_open_request_session_function = chan_open;
	ssh_callbacks_init(&cbs->server);
	cbs->channel = chan_cb_template;
	cbs->channel.userdata = c;
	ssh_callbacks_init(&cbs->channel);
	ssh_set_server_callbacks(c->ssh, &cbs->server);
	ssh_set_auth_methods(c->ssh, SSH_AUTH_METHOD_PUBLICKEY);
	c->sess.stopping = &srv->stopping;
	c->sess.killed = &c->killed;
	c->sess.idle_timeout = c->lim.idle_timeout;
	c->sess.cat = srv->cat;
	c->sess.tc = srv->tc;
	c->sess.spool_dir = srv->spool_dir;
	c->cbs = cbs;

	long grace = c->lim.login_grace_time > 0 ? c->lim.login_grace_time : 120;
	ssh_options_set(c->ssh, SSH_OPTIONS_TIMEOUT, &grace);
	deadline = time(NULL) + grace;
	if (ssh_handle_key_exchange(c->ssh) != SSH_OK) {
		log_info("ssh_kex_failed", "addr=%s msg=%s", log_q(c->sess.addr),
			 log_q(ssh_get_error(c->ssh)));
		goto done;
	}
	ev = ssh_event_new();
	if (!ev || ssh_event_add_session(ev, c->ssh) != SSH_OK)
		goto done;
	while (!(c->authenticated && c->chan && c->req != REQ_NONE)) {
		if (__atomic_load_n(&srv->stopping, __ATOMIC_RELAXED))
			goto done;
		if (c->too_many_tries) {
			log_warn("ssh_too_many_auth_tries", "addr=%s tries=%d",
				 log_q(c->sess.addr), c->auth_tries);
			goto done;
		}
		/* The grace time covers authentication and the first request. */
		if (time(NULL) >= deadline) {
			log_info("ssh_login_timeout", "addr=%s",
				 log_q(c->sess.addr));
			goto done;
		}
		if (ssh_event_dopoll(ev, 500) == SSH_ERROR)
			goto done;
		if (ssh_get_status(c->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))
			goto done;
		if (c->authenticated)
			conn_authenticated(c);
	}
	conn_authenticated(c);
	ssh_event_remove_session(ev, c->ssh);
	ssh_event_free(ev);
	ev = NULL;
	/* From here a blocking write may wait for the client's window; bound
	 * it by the idle timeout (or ten minutes). */
	long tmo = c->lim.idle_timeout > 0 ? c->lim.idle_timeout : 600;
	ssh_options_set(c->ssh, SSH_OPTIONS_TIMEOUT, &tmo);
	status = run_request(c);
	conn_finish_channel(c, status);
	log_info("ssh_session_end",
		 "client=%s addr=%s status=%d bytes_in=%llu bytes_out=%llu",
		 log_q(c->sess.client), log_q(c->sess.addr), status,
		 (unsigned long long)c->sess.bytes_in,
		 (unsigned long long)c->sess.bytes_out);
done:
	if (!c->authenticated && c->auth_tries > 0) {
		struct ops_actor who = { "ssh", c->fail_user, c->fail_fp,
					 c->sess.addr };
		ops_login(&who, 0, c->fail_why);
	}
	if (ev) {
		ssh_event_remove_session(ev, c->ssh);
		ssh_event_free(ev);
	}
	ssh_disconnect(c->ssh);
	ssh_free(c->ssh);
	free(cbs);

	pthread_mutex_lock(&srv->mu);
	if (c->counted_unauth)
		source_release(srv, c->sess.addr);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->live--;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
	free(c);
	return NULL;
}

/* ---- the acceptor ---------------------------------------------------- */

static void addr_text(const struct sockaddr_storage *ss, char *out,
		      size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
			  host, sizeof host);
	else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], host,
				  sizeof host);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
	}
	snprintf(out, outlen, "%s", host);
}

static void accept_one(struct sshd_server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[64];
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	addr_text(&ss, addr, sizeof addr);

	pthread_mutex_lock(&srv->mu);
	struct limits lim = srv->lim;
	const char *refuse = NULL;
	if (lim.max_sessions > 0 && srv->live >= lim.max_sessions)
		refuse = "MaxSessions reached";
	else if (source_take(srv, addr, lim.per_source) != 0)
		refuse = "too many unauthenticated connections from this address";
	pthread_mutex_unlock(&srv->mu);
	if (refuse) {
		log_warn("ssh_refused", "addr=%s reason=%s", log_q(addr),
			 log_q(refuse));
		close(fd);
		return;
	}

	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	struct conn *c = calloc(1, sizeof *c);
	ssh_session ssh = c ? ssh_new() : NULL;
	if (!ssh || ssh_bind_accept_fd(srv->bind, ssh, fd) != SSH_OK) {
		log_error("ssh_accept", "addr=%s msg=%s", log_q(addr),
			  log_q(ssh ? ssh_get_error(srv->bind) : "out of memory"));
		if (ssh)
			ssh_free(ssh);
		free(c);
		close(fd);
		pthread_mutex_lock(&srv->mu);
		source_release(srv, addr);
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	c->srv = srv;
	c->ssh = ssh;
	c->lim = lim;
	c->counted_unauth = 1;
	snprintf(c->sess.addr, sizeof c->sess.addr, "%s", addr);

	pthread_mutex_lock(&srv->mu);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->live++;
	pthread_mutex_unlock(&srv->mu);

	pthread_attr_t at;
	pthread_t th;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	/* SFTP buffers live on the heap; a modest stack is plenty. */
	pthread_attr_setstacksize(&at, 512 * 1024);
	int rc = pthread_create(&th, &at, conn_thread, c);
	pthread_attr_destroy(&at);
	if (rc != 0) {
		log_error("ssh_thread", "addr=%s msg=%s", log_q(addr),
			  log_q(strerror(rc)));
		/* conn_thread's cleanup, done here. */
		ssh_free(ssh);
		pthread_mutex_lock(&srv->mu);
		source_release(srv, addr);
		if (c->next)
			c->next->prev = c->prev;
		if (c->prev)
			c->prev->next = c->next;
		else
			srv->conns = c->next;
		srv->live--;
		pthread_mutex_unlock(&srv->mu);
		free(c);
	}
}

static void *acceptor_thread(void *arg)
{
	struct sshd_server *srv = arg;
	struct pollfd pfd[CONF_MAX_LISTEN + 1];

	for (;;) {
		int n = 0;
		for (int i = 0; i < srv->nl; i++) {
			pfd[n].fd = srv->lfd[i];
			pfd[n].events = POLLIN;
			n++;
		}
		pfd[n].fd = srv->wake[0];
		pfd[n].events = POLLIN;
		int r = poll(pfd, (nfds_t)n + 1, -1);
		if (__atomic_load_n(&srv->stopping, __ATOMIC_RELAXED))
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error("ssh_poll", "msg=%s", log_q(strerror(errno)));
			break;
		}
		for (int i = 0; i < srv->nl; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(srv, srv->lfd[i]);
	}
	return NULL;
}

/* REUSE: SO_REUSEPORT (ReusePort), so that a new instance can bind the
 * same port while this one drains. */
static int listen_on(const struct conf_listen *l, int *port_out, int reuse)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char port[16];
	int fd = -1;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof port, "%d", l->port);
	const char *host = l->host[0] && strcmp(l->host, "*") ? l->host : NULL;
	if (!host)
		hints.ai_family = AF_INET6; /* dual-stack "any" */
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 && !host) {
		hints.ai_family = AF_INET;
		rc = getaddrinfo(host, port, &hints, &res);
	}
	if (rc != 0) {
		log_error("ssh_listen", "host=%s port=%d msg=%s", log_q(l->host),
			  l->port, log_q(gai_strerror(rc)));
		return -1;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int one = 1, zero = 0;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (reuse)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
		if (ai->ai_family == AF_INET6 && !host)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				   sizeof zero);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_error("ssh_listen", "host=%s port=%d msg=%s", log_q(l->host),
			  l->port, log_q(strerror(errno)));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ntohs(ss.ss_family == AF_INET6 ?
				  ((struct sockaddr_in6 *)&ss)->sin6_port :
				  ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static void limits_from(struct limits *lim, const struct conf *conf)
{
	lim->max_auth_tries = conf->max_auth_tries;
	lim->login_grace_time = conf->login_grace_time;
	lim->max_sessions = conf->max_sessions;
	lim->per_source = conf->max_startups_per_source;
	lim->idle_timeout = conf->idle_timeout;
}

static int bind_set(ssh_bind b, enum ssh_bind_options_e opt, const void *v,
		    const char *what)
{
	if (ssh_bind_options_set(b, opt, v) != SSH_OK) {
		log_error("ssh_bind_option", "option=%s msg=%s", what,
			  log_q(ssh_get_error(b)));
		return -1;
	}
	return 0;
}

static void server_free(struct sshd_server *srv)
{
	for (int i = 0; i < srv->nl; i++)
		close(srv->lfd[i]);
	if (srv->wake[0] >= 0)
		close(srv->wake[0]);
	if (srv->wake[1] >= 0)
		close(srv->wake[1]);
	if (srv->bind)
		ssh_bind_free(srv->bind);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv->sources);
	free(srv);
}

int sshd_start(const struct conf *conf, struct catalog *cat,
	       struct tenant_cache *tc, struct sshd_server **out)
{
	struct sshd_server *srv;

	*out = NULL;
	/* A client vanishing mid-write must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	if (ssh_init() != SSH_OK)
		return -1;
	srv = calloc(1, sizeof *srv);
	if (!srv)
		return -1;
	srv->wake[0] = srv->wake[1] = -1;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	srv->cat = cat;
	srv->tc = tc;
	limits_from(&srv->lim, conf);
	snprintf(srv->spool_dir, sizeof srv->spool_dir, "%s", conf->spool_dir);
	srv->sources = calloc(MAX_SOURCES, sizeof *srv->sources);
	if (!srv->sources || pipe2(srv->wake, O_CLOEXEC) != 0)
		goto fail;

	srv->bind = ssh_bind_new();
	if (!srv->bind)
		goto fail;
	int nkeys = 0;
	for (int i = 0; i < conf->n_host_keys; i++) {
		if (access(conf->host_keys[i], R_OK) != 0) {
			log_error("ssh_hostkey", "path=%s msg=%s",
				  log_q(conf->host_keys[i]),
				  log_q(strerror(errno)));
			continue;
		}
		if (bind_set(srv->bind, SSH_BIND_OPTIONS_HOSTKEY,
			     conf->host_keys[i], "HostKey") == 0)
			nkeys++;
	}
	if (nkeys == 0) {
		log_error("ssh_hostkey", "msg=%s", log_q("no usable host key"));
		goto fail;
	}
	if (bind_set(srv->bind, SSH_BIND_OPTIONS_KEY_EXCHANGE, KEX_ALGOS, "kex") ||
	    bind_set(srv->bind, SSH_BIND_OPTIONS_CIPHERS_C_S, CIPHERS, "ciphers") ||
	    bind_set(srv->bind, SSH_BIND_OPTIONS_CIPHERS_S_C, CIPHERS, "ciphers") ||
	    bind_set(srv->bind, SSH_BIND_OPTIONS_HMAC_C_S, MACS, "macs") ||
	    bind_set(srv->bind, SSH_BIND_OPTIONS_HMAC_S_C, MACS, "macs") ||
	    bind_set(srv->bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS,
		     HOSTKEY_ALGOS, "hostkey algorithms") ||
	    bind_set(srv->bind, SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES,
		     PUBKEY_ALGOS, "pubkey algorithms"))
		goto fail;
	/* Never read /etc/ssh configuration meant for the system's sshd. */
	bool no = false;
	ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no);

	for (int i = 0; i < conf->n_ssh; i++) {
		int fd = listen_on(&conf->ssh[i], &srv->port[srv->nl],
				   conf->reuse_port);
		if (fd < 0)
			goto fail;
		srv->lfd[srv->nl++] = fd;
		log_info("ssh_listen", "host=%s port=%d",
			 log_q(conf->ssh[i].host[0] ? conf->ssh[i].host : "*"),
			 srv->port[srv->nl - 1]);
	}
	if (pthread_create(&srv->acceptor, NULL, acceptor_thread, srv) != 0)
		goto fail;
	srv->acceptor_started = 1;
	*out = srv;
	return 0;
fail:
	server_free(srv);
	return -1;
}

int sshd_port(const struct sshd_server *srv, int i)
{
	if (!srv || i < 0 || i >= srv->nl)
		return 0;
	return srv->port[i];
}

int sshd_reload(struct sshd_server *srv, const struct conf *conf)
{
	if (!srv)
		return -1;
	pthread_mutex_lock(&srv->mu);
	limits_from(&srv->lim, conf);
	pthread_mutex_unlock(&srv->mu);
	log_info("ssh_reload", "max_sessions=%d max_auth_tries=%d "
		 "login_grace_time=%d per_source=%d idle_timeout=%d",
		 conf->max_sessions, conf->max_auth_tries,
		 conf->login_grace_time, conf->max_startups_per_source,
		 conf->idle_timeout);
	return 0;
}

void sshd_stop(struct sshd_server *srv, int grace_seconds)
{
	if (!srv)
		return;
	__atomic_store_n(&srv->stopping, 1, __ATOMIC_RELAXED);
	if (write(srv->wake[1], "x", 1) < 0) {
		/* the acceptor also wakes on its next poll */
	}
	if (srv->acceptor_started)
		pthread_join(srv->acceptor, NULL);
	for (int i = 0; i < srv->nl; i++)
		close(srv->lfd[i]);
	srv->nl = 0;

	/* Idle sessions end at their next read slice; busy ones get GRACE
	 * seconds to finish, then are told to end (writes in flight are
	 * aborted, so nothing half-written appears). */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += grace_seconds > 0 ? grace_seconds : 0;
	pthread_mutex_lock(&srv->mu);
	while (srv->live > 0) {
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until) != 0)
			break;
	}
	if (srv->live > 0) {
		log_warn("ssh_stop", "sessions=%d msg=%s", srv->live,
			 log_q("ending sessions still running"));
		for (struct conn *c = srv->conns; c; c = c->next)
			__atomic_store_n(&c->killed, 1, __ATOMIC_RELAXED);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		while (srv->live > 0)
			if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until))
				break;
	}
	int left = srv->live;
	pthread_mutex_unlock(&srv->mu);
	if (left > 0) {
		/* A thread stuck in the network still references SRV: leak it
		 * rather than free memory under it. */
		log_error("ssh_stop", "sessions=%d msg=%s", left,
			  log_q("sessions did not end; leaving them"));
		return;
	}
	server_free(srv);
}
