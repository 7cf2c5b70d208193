/*
 * server.c - the SSH listener, sessions and public-key authentication.
 *
 * Shape: we own the listening sockets. One acceptor thread polls them (and a
 * wake-up pipe used by sshd_stop), applies the connection limits before a
 * single byte of SSH is spoken (per-source penalties, MaxConnections
 * overall, MaxStartups for unauthenticated connections from everywhere and
 * PerSourceMaxStartups from one address, as OpenSSH does), and hands each
 * accepted socket to libssh with ssh_bind_accept_fd() and to a new
 * detached thread. A refused connection is closed at once, before the
 * banner: it costs no thread, no key exchange, and learns nothing. Refusals
 * are counted in /metrics and logged at most once a second per reason, so
 * a flood cannot flood the log too. A session never touches another
 * thread's libssh objects.
 *
 * In its thread a connection does the key exchange and authentication
 * (within LoginGraceTime), polling an ssh_event with server callbacks.
 * After login each session channel the client opens (up to MaxSessions at
 * once: OpenSSH's ControlMaster runs several commands over one
 * connection) that asks for the "sftp" subsystem or an exec command gets
 * a thread of its own, which does blocking I/O on its channel in the
 * protocol handler. libssh is not thread-safe within a session, so every
 * libssh call on a connection is made holding the connection's lock; a
 * thread that finds no data for its channel lets the lock go and waits,
 * the first of them in poll() on the socket, the others on a condition
 * broadcast whenever packets were read (they may carry any channel's
 * data). With one channel, the common case, its thread simply polls the
 * socket as a single-threaded server would. A channel ends the way OpenSSH
 * expects (exit-status, EOF, close, then the client's close) so that scp
 * and sftp exit 0; the connection ends when the client leaves and every
 * channel is done.
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
#include "net.h"
#include "ops.h"
#include "penalty.h"
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
	int max_connections;
	int max_sessions;               /* session channels per connection */
	int per_source;
	struct conf_startups startups;  /* MaxStartups */
	int idle_timeout;
};

struct source {
	char addr[64];
	int unauth;                     /* connections not yet authenticated */
};

struct conn;

/* Why a connection is closed at accept: the metric's reason label. */
enum refusal {
	REFUSE_PENALTY,
	REFUSE_MAX_CONNECTIONS,
	REFUSE_MAX_STARTUPS,
	REFUSE_PER_SOURCE,
	REFUSE_N
};

static const char *const refusal_reason[REFUSE_N] = {
	"penalty", "max_connections", "max_startups", "per_source"
};

/* One session channel of a connection and the thread that serves it. */
struct chan {
	struct conn *c;
	struct chan *next;
	ssh_channel ch;
	struct ssh_channel_callbacks_struct cb; /* libssh keeps a pointer */
	enum { REQ_NONE, REQ_SFTP, REQ_EXEC, REQ_SHELL } req;
	char command[4096];
	int started;                    /* its thread was started */
	int finished;                   /* its thread is done: join, free */
	int remote_closed;              /* the client sent CHANNEL_CLOSE */
	pthread_t thread;
	struct sshd_session sess;       /* what the protocol handler sees */
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
	int unauth;                     /* unauthenticated connections, all
					   sources (MaxStartups) */
	time_t refused_logged[REFUSE_N]; /* last ssh_refused line, per reason */
	int refused_quiet[REFUSE_N];    /* refusals since that line */
	struct penalty_table *pen;      /* per-source penalties (own lock) */
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
	int grace_expired;              /* LoginGraceTime ran out */
	int authenticated;
	char fail_user[CATALOG_NAME_MAX]; /* last refused attempt: user, */
	char fail_fp[128];              /* key fingerprint */
	const char *fail_why;           /* and reason (a static string) */
	int too_many_tries;

	struct sshd_session sess;       /* the login: each channel's session
					   starts as a copy of it */
	struct catalog_key key;         /* the key that logged in */
	struct ssh_server_callbacks_struct cbs; /* libssh keeps a pointer */

	/* Every libssh call on SSH is made holding IO, by the connection's
	 * thread or by a channel's. A thread that finds no data for its
	 * channel waits: the first in poll() on the socket (POLLING), the
	 * others on IO_CV, which is broadcast whenever packets were read,
	 * as they may carry data for any channel. */
	pthread_mutex_t io;
	pthread_cond_t io_cv;
	pthread_cond_t serve_cv;        /* a channel asked for something or
					   ended: conn_serve has work */
	ssh_event ev;                   /* the session's poll context */
	int polling;                    /* a thread waits in poll() */
	int wake[2];                    /* wakes it (non-blocking pipe) */
	struct chan *chans;             /* open session channels */
	int nchans;                     /* their number (MaxSessions) */
	int running;                    /* channel threads not finished */
	time_t last_active;             /* when the last channel ended */
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
	srv->unauth++;
	ops_unauthenticated("ssh", 1);
	return 0;
}

static void source_release(struct sshd_server *srv, const char *addr)
{
	struct source *s = source_find(srv, addr);
	if (!s)
		return;
	srv->unauth--;
	ops_unauthenticated("ssh", -1);
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

/* The connection's lock, condition and wake-up pipe. 0 or -1. */
static int conn_init_sync(struct conn *c)
{
	if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	pthread_mutex_init(&c->io, NULL);
	pthread_cond_init(&c->io_cv, NULL);
	pthread_cond_init(&c->serve_cv, NULL);
	return 0;
}

static void conn_free_sync(struct conn *c)
{
	pthread_mutex_destroy(&c->io);
	pthread_cond_destroy(&c->io_cv);
	pthread_cond_destroy(&c->serve_cv);
	close(c->wake[0]);
	close(c->wake[1]);
}

/* ---- channel I/O (session.h) ---------------------------------------- */

static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(cv, mu, &until);
}

/* Wait, with C->io held, until something may have changed for a channel:
 * the first waiter polls the socket (then reads what came, for all
 * channels), the others wait to be told. At most MS milliseconds. */
static void io_wait(struct conn *c, int ms)
{
	if (!c->polling) {
		struct pollfd p[2] = { { ssh_get_fd(c->ssh), POLLIN, 0 },
				       { c->wake[0], POLLIN, 0 } };
		char junk[64];
		c->polling = 1;
		pthread_mutex_unlock(&c->io);
		poll(p, 2, ms);
		if (p[1].revents & POLLIN)
			while (read(c->wake[0], junk, sizeof junk) > 0) {
			}
		pthread_mutex_lock(&c->io);
		c->polling = 0;
		ssh_event_dopoll(c->ev, 0);
		pthread_cond_broadcast(&c->io_cv);
		return;
	}
	cond_wait_ms(&c->io_cv, &c->io, ms);
}

/* Done with libssh for now: the packets just read may be for another
 * channel, so tell the waiters (and the one in poll(), which would not
 * see them on the socket any more). Unlocks C->io. */
static void io_release(struct conn *c)
{
	pthread_cond_broadcast(&c->io_cv);
	if (c->polling) {
		ssize_t w = write(c->wake[1], "", 1);
		(void)w; /* a full pipe already wakes it */
	}
	pthread_mutex_unlock(&c->io);
}

static struct conn *conn_of(struct sshd_session *s)
{
	return ((struct chan *)s->io)->c;
}

ssize_t sshd_io_read(struct sshd_session *s, void *buf, size_t cap)
{
	struct conn *c = conn_of(s);
	ssize_t r = -1;

	pthread_mutex_lock(&c->io);
	for (;;) {
		if (__atomic_load_n(s->killed, __ATOMIC_RELAXED))
			break;
		int n = ssh_channel_poll(s->chan, 0);
		if (n == SSH_ERROR)
			break;
		if (n == SSH_EOF) {
			/* Data may still be buffered before the EOF. */
			int got = ssh_channel_read_nonblocking(s->chan, buf,
							       (uint32_t)cap, 0);
			r = got > 0 ? got : 0;
			break;
		}
		if (n > 0) {
			uint32_t want = (uint32_t)(cap < (size_t)n ? cap : (size_t)n);
			int got = ssh_channel_read_nonblocking(s->chan, buf,
							       want, 0);
			if (got < 0)
				break;
			if (got > 0) {
				s->last_io = time(NULL);
				s->bytes_in += (uint64_t)got;
				r = got;
				break;
			}
		}
		if (ssh_channel_is_closed(s->chan)) {
			r = 0;
			break;
		}
		if (ssh_get_status(c->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))
			break;
		/* Nothing yet: a stop request ends idle sessions only. One
		 * that is mid-request, or has a transfer open (an upload
		 * whose client paused), goes on until the grace is over and
		 * the session is killed. */
		if (__atomic_load_n(s->stopping, __ATOMIC_RELAXED) &&
		    s->busy <= 0)
			break;
		if (s->idle_timeout > 0 &&
		    time(NULL) - s->last_io >= s->idle_timeout) {
			log_info("ssh_idle_timeout", "client=%s addr=%s",
				 log_q(s->client), log_q(s->addr));
			break;
		}
		io_wait(c, 1000);
	}
	io_release(c);
	return r;
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
	struct conn *c = conn_of(s);
	const uint8_t *p = buf;
	while (n > 0) {
		if (__atomic_load_n(s->killed, __ATOMIC_RELAXED))
			return -1;
		/* The lock is let go between chunks, so that the other
		 * channels of the connection move too. */
		uint32_t chunk = n > 65536 ? 65536 : (uint32_t)n;
		pthread_mutex_lock(&c->io);
		int w = ssh_channel_write(s->chan, p, chunk);
		io_release(c);
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
	struct conn *c = conn_of(s);
	size_t n = strlen(msg);
	if (!n)
		return;
	pthread_mutex_lock(&c->io);
	ssh_channel_write_stderr(s->chan, msg, (uint32_t)n);
	io_release(c);
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
	struct chan *c = userdata;
	(void)session;
	(void)channel;
	if (c->req != REQ_NONE || strcmp(subsystem, "sftp") != 0)
		return -1;
	c->req = REQ_SFTP;
	pthread_cond_signal(&c->c->serve_cv);
	return 0;
}

static int chan_exec(ssh_session session, ssh_channel channel,
		     const char *command, void *userdata)
{
	struct chan *c = userdata;
	(void)session;
	(void)channel;
	if (c->req != REQ_NONE)
		return -1;
	snprintf(c->command, sizeof c->command, "%s", command);
	c->req = REQ_EXEC;
	pthread_cond_signal(&c->c->serve_cv);
	return 0;
}

static int chan_shell(ssh_session session, ssh_channel channel,
		      void *userdata)
{
	struct chan *c = userdata;
	(void)session;
	(void)channel;
	if (c->req != REQ_NONE)
		return -1;
	c->req = REQ_SHELL;
	pthread_cond_signal(&c->c->serve_cv);
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
	struct chan *c = userdata;
	(void)session;
	(void)channel;
	c->remote_closed = 1;
	pthread_cond_signal(&c->c->serve_cv);
}

static struct ssh_channel_callbacks_struct chan_cb_template = {
	.channel_pty_request_function = chan_pty,
	.channel_shell_request_function = chan_shell,
	.channel_exec_request_function = chan_exec,
	.channel_env_request_function = chan_env,
	.channel_subsystem_request_function = chan_subsystem,
	.channel_close_function = chan_close_cb,
};

/* A client's request for a session channel: granted up to MaxSessions
 * at once (OpenSSH's ControlMaster multiplexes several commands over one
 * connection). Runs in whichever thread is reading packets, C->io held. */
static ssh_channel chan_open(ssh_session session, void *userdata)
{
	struct conn *c = userdata;
	if (!c->authenticated)
		return NULL;
	if (c->lim.max_sessions > 0 && c->nchans >= c->lim.max_sessions) {
		log_warn("ssh_channel_refused", "client=%s addr=%s reason=%s",
			 log_q(c->sess.client), log_q(c->sess.addr),
			 log_q("MaxSessions reached"));
		return NULL;
	}
	struct chan *ch = calloc(1, sizeof *ch);
	if (!ch)
		return NULL;
	ch->ch = ssh_channel_new(session);
	if (!ch->ch) {
		free(ch);
		return NULL;
	}
	ch->c = c;
	ch->cb = chan_cb_template;
	ch->cb.userdata = ch;
	ssh_callbacks_init(&ch->cb);
	ssh_set_channel_callbacks(ch->ch, &ch->cb);
	ch->sess = c->sess;
	ch->sess.chan = ch->ch;
	ch->sess.io = ch;
	ch->sess.bytes_in = ch->sess.bytes_out = 0;
	ch->next = c->chans;
	c->chans = ch;
	c->nchans++;
	return ch->ch;
}

/* ---- one channel ----------------------------------------------------- */

/* End a channel the way OpenSSH expects: exit status, EOF, close, then
 * wait (briefly) for the client's CLOSE; disconnecting before it makes
 * OpenSSH report "closed by remote host" and scp exit 1. C->io held. */
static void chan_finish(struct chan *ch, int status)
{
	struct conn *c = ch->c;
	if (!ch->remote_closed) {
		ssh_channel_request_send_exit_status(ch->ch, status);
		ssh_channel_send_eof(ch->ch);
	}
	ssh_channel_close(ch->ch);
	time_t until = time(NULL) + 5;
	while (!ch->remote_closed && time(NULL) < until &&
	       !(ssh_get_status(c->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR)) &&
	       !__atomic_load_n(&c->killed, __ATOMIC_RELAXED)) {
		ssh_event_dopoll(c->ev, 0);
		if (!ch->remote_closed)
			io_wait(c, 100);
	}
}

static int run_request(struct chan *ch)
{
	struct sshd_session *s = &ch->sess;
	int rc;
	s->last_io = time(NULL);
	switch (ch->req) {
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
			 log_q(s->client), log_q(s->addr), log_q(ch->command));
		s->protocol = rsync_is_server_command(ch->command) ? "rsync"
								   : "scp";
		ops_session(s->protocol, 1);
		rc = sshd_scp_serve(s, ch->command);
		ops_session(s->protocol, -1);
		return rc;
	case REQ_SHELL:
	default:
		sshd_io_stderr(s, "This service offers sftp, scp and rsync "
				  "only; there is no shell.\r\n");
		return 1;
	}
}

static void *chan_thread(void *arg)
{
	struct chan *ch = arg;
	struct conn *c = ch->c;
	int status = run_request(ch);

	pthread_mutex_lock(&c->io);
	chan_finish(ch, status);
	log_info("ssh_session_end",
		 "client=%s addr=%s status=%d bytes_in=%llu bytes_out=%llu",
		 log_q(ch->sess.client), log_q(ch->sess.addr), status,
		 (unsigned long long)ch->sess.bytes_in,
		 (unsigned long long)ch->sess.bytes_out);
	ch->finished = 1;
	c->running--;
	c->last_active = time(NULL);
	pthread_cond_signal(&c->serve_cv);
	io_release(c);
	return NULL;
}

/* Start the thread of a channel that asked for sftp, a command or a
 * shell. C->io held. */
static void chan_start(struct chan *ch)
{
	struct conn *c = ch->c;
	pthread_attr_t at;
	ch->started = 1;
	pthread_attr_init(&at);
	/* SFTP buffers live on the heap; a modest stack is plenty. */
	pthread_attr_setstacksize(&at, 512 * 1024);
	int rc = pthread_create(&ch->thread, &at, chan_thread, ch);
	pthread_attr_destroy(&at);
	if (rc != 0) {
		log_error("ssh_thread", "addr=%s msg=%s", log_q(c->sess.addr),
			  log_q(strerror(rc)));
		ssh_channel_request_send_exit_status(ch->ch, 1);
		ssh_channel_close(ch->ch);
		ch->started = 0; /* nothing to join */
		ch->finished = 1;
		return;
	}
	c->running++;
}

/* Free the channels whose threads are done, and those the client closed
 * before asking for anything. C->io held. */
static void chans_reap(struct conn *c)
{
	struct chan **pp = &c->chans;
	while (*pp) {
		struct chan *ch = *pp;
		if (!ch->finished && !(ch->remote_closed && !ch->started)) {
			pp = &ch->next;
			continue;
		}
		if (ch->started)
			pthread_join(ch->thread, NULL); /* it has let go of
							   everything */
		*pp = ch->next;
		ssh_remove_channel_callbacks(ch->ch, &ch->cb);
		ssh_channel_free(ch->ch);
		free(ch);
		c->nchans--;
	}
}

/* After login: start a thread for each session channel the client opens,
 * until it disconnects (or the server stops) and every channel is done.
 * While channels run, their threads read the packets; with none, this
 * thread does. C->io held. */
static void conn_serve(struct conn *c)
{
	struct sshd_server *srv = c->srv;
	c->last_active = time(NULL);
	for (;;) {
		for (struct chan *ch = c->chans; ch; ch = ch->next)
			if (!ch->started && !ch->finished &&
			    ch->req != REQ_NONE)
				chan_start(ch);
		chans_reap(c);
		if (c->running > 0) {
			/* The channel threads read the packets (a new
			 * channel's request among them); this one waits to
			 * be told, not to slow them with wake-ups. */
			cond_wait_ms(&c->serve_cv, &c->io, 1000);
			continue;
		}
		if (__atomic_load_n(&srv->stopping, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&c->killed, __ATOMIC_RELAXED))
			break;
		if (ssh_get_status(c->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))
			break;
		if (c->lim.idle_timeout > 0 &&
		    time(NULL) - c->last_active >= c->lim.idle_timeout) {
			log_info("ssh_idle_timeout", "client=%s addr=%s",
				 log_q(c->sess.client), log_q(c->sess.addr));
			break;
		}
		/* No channel thread: nobody else reads the socket. */
		if (ssh_event_dopoll(c->ev, 500) == SSH_ERROR)
			break;
	}
	chans_reap(c);
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct sshd_server *srv = c->srv;
	time_t deadline;

	pthread_mutex_lock(&c->io);
	c->cbs.userdata = c;
	c->cbs.auth_pubkey_function = auth_pubkey;
	c->cbs.channel_open_request_session_function = chan_open;
	ssh_callbacks_init(&c->cbs);
	ssh_set_server_callbacks(c->ssh, &c->cbs);
	ssh_set_auth_methods(c->ssh, SSH_AUTH_METHOD_PUBLICKEY);
	c->sess.stopping = &srv->stopping;
	c->sess.killed = &c->killed;
	c->sess.idle_timeout = c->lim.idle_timeout;
	c->sess.cat = srv->cat;
	c->sess.tc = srv->tc;
	c->sess.spool_dir = srv->spool_dir;

	long grace = c->lim.login_grace_time > 0 ? c->lim.login_grace_time : 120;
	ssh_options_set(c->ssh, SSH_OPTIONS_TIMEOUT, &grace);
	deadline = time(NULL) + grace;
	if (ssh_handle_key_exchange(c->ssh) != SSH_OK) {
		/* A client silent until the grace time ran out is a slow
		 * one, not one that merely left. */
		c->grace_expired = time(NULL) >= deadline;
		log_info(c->grace_expired ? "ssh_login_timeout" :
					    "ssh_kex_failed",
			 "addr=%s msg=%s", log_q(c->sess.addr),
			 log_q(ssh_get_error(c->ssh)));
		goto done;
	}
	c->ev = ssh_event_new();
	if (!c->ev || ssh_event_add_session(c->ev, c->ssh) != SSH_OK)
		goto done;
	while (!c->authenticated) {
		if (__atomic_load_n(&srv->stopping, __ATOMIC_RELAXED))
			goto done;
		if (c->too_many_tries) {
			log_warn("ssh_too_many_auth_tries", "addr=%s tries=%d",
				 log_q(c->sess.addr), c->auth_tries);
			goto done;
		}
		if (time(NULL) >= deadline) {
			log_info("ssh_login_timeout", "addr=%s",
				 log_q(c->sess.addr));
			c->grace_expired = 1;
			goto done;
		}
		if (ssh_event_dopoll(c->ev, 500) == SSH_ERROR)
			goto done;
		if (ssh_get_status(c->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))
			goto done;
	}
	conn_authenticated(c);
	/* From here a blocking write may wait for the client's window; bound
	 * it by the idle timeout (or ten minutes). */
	long tmo = c->lim.idle_timeout > 0 ? c->lim.idle_timeout : 600;
	ssh_options_set(c->ssh, SSH_OPTIONS_TIMEOUT, &tmo);
	conn_serve(c);
done:
	if (!c->authenticated && c->auth_tries > 0) {
		struct ops_actor who = { "ssh", c->fail_user, c->fail_fp,
					 c->sess.addr };
		ops_login(&who, 0, c->fail_why);
	}
	if (c->ev) {
		ssh_event_remove_session(c->ev, c->ssh);
		ssh_event_free(c->ev);
	}
	/* A connection that never logged in costs its source: most for
	 * failed keys, less for running out of time, least for leaving
	 * (scans, failed key exchanges, garbage). */
	if (!c->authenticated &&
	    !__atomic_load_n(&srv->stopping, __ATOMIC_RELAXED))
		penalty_add(srv->pen, c->sess.addr,
			    c->auth_tries > 0 ? PENALTY_AUTHFAIL :
			    c->grace_expired ? PENALTY_GRACE : PENALTY_NOAUTH,
			    (int64_t)time(NULL));
	ssh_disconnect(c->ssh);
	ssh_free(c->ssh);
	pthread_mutex_unlock(&c->io);
	conn_free_sync(c);

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

int sshd_startups_drop(const struct conf_startups *ms, int unauth,
		       unsigned draw)
{
	if (ms->start <= 0 || unauth < ms->start)
		return 0;
	if (unauth >= ms->full)
		return 1;
	/* start <= unauth < full: from RATE% at start to 100% at full */
	int p = ms->rate + (100 - ms->rate) * (unauth - ms->start) /
				   (ms->full - ms->start);
	return draw < (unsigned)p;
}

/* Close FD, refused for WHY, with srv->mu held (let go here): counted in
 * /metrics every time, logged at most once a second per reason, each line
 * with the refusals it stands for. LEFT: a penalty's seconds to run. */
static void refuse(struct sshd_server *srv, int fd, const char *addr,
		   enum refusal why, int left)
{
	time_t now = time(NULL);
	int unauth = srv->unauth, live = srv->live;
	const struct limits *lim = &srv->lim;
	char limit[64];
	switch (why) {
	case REFUSE_PENALTY:
		snprintf(limit, sizeof limit, "penalty_seconds=%d", left);
		break;
	case REFUSE_MAX_CONNECTIONS:
		snprintf(limit, sizeof limit, "max_connections=%d",
			 lim->max_connections);
		break;
	case REFUSE_MAX_STARTUPS:
		snprintf(limit, sizeof limit, "max_startups=%d:%d:%d",
			 lim->startups.start, lim->startups.rate,
			 lim->startups.full);
		break;
	default:
		snprintf(limit, sizeof limit, "per_source=%d", lim->per_source);
		break;
	}
	int quiet = ++srv->refused_quiet[why];
	int log_now = now != srv->refused_logged[why];
	if (log_now) {
		srv->refused_logged[why] = now;
		srv->refused_quiet[why] = 0;
	}
	pthread_mutex_unlock(&srv->mu);
	close(fd);
	ops_refused("ssh", refusal_reason[why]);
	if (!log_now)
		return;
	/* A penalised source was already logged when it became refused. */
	log_event(why == REFUSE_PENALTY ? LOG_LVL_DEBUG : LOG_LVL_WARN,
		  "ssh_refused", "addr=%s reason=%s %s unauthenticated=%d "
		  "connections=%d dropped=%d",
		  log_q(addr), refusal_reason[why], limit, unauth, live, quiet);
}

static void accept_one(struct sshd_server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[64];
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	net_addr_text((const struct sockaddr *)&ss, addr, sizeof addr);

	/* A penalised source is dropped before a byte of SSH: it learns
	 * nothing, and costs no thread or key exchange. */
	int left = penalty_refused(srv->pen, addr, (int64_t)time(NULL));
	unsigned draw = arc4random_uniform(100); /* MaxStartups' chance */
	pthread_mutex_lock(&srv->mu);
	struct limits lim = srv->lim;
	enum refusal why = REFUSE_N;
	if (left > 0)
		why = REFUSE_PENALTY;
	else if (lim.max_connections > 0 && srv->live >= lim.max_connections)
		why = REFUSE_MAX_CONNECTIONS;
	else if (sshd_startups_drop(&lim.startups, srv->unauth, draw))
		why = REFUSE_MAX_STARTUPS;
	else if (source_take(srv, addr, lim.per_source) != 0)
		why = REFUSE_PER_SOURCE;
	if (why != REFUSE_N) {
		refuse(srv, fd, addr, why, left);
		return; /* refuse() unlocked srv->mu */
	}
	pthread_mutex_unlock(&srv->mu);

	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	struct conn *c = calloc(1, sizeof *c);
	if (c && conn_init_sync(c) != 0) {
		free(c);
		c = NULL;
	}
	ssh_session ssh = c ? ssh_new() : NULL;
	if (!ssh || ssh_bind_accept_fd(srv->bind, ssh, fd) != SSH_OK) {
		log_error("ssh_accept", "addr=%s msg=%s", log_q(addr),
			  log_q(ssh ? ssh_get_error(srv->bind) : "out of memory"));
		if (ssh)
			ssh_free(ssh);
		if (c)
			conn_free_sync(c);
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
		conn_free_sync(c);
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

static void limits_from(struct limits *lim, const struct conf *conf)
{
	lim->max_auth_tries = conf->max_auth_tries;
	lim->login_grace_time = conf->login_grace_time;
	lim->max_connections = conf->max_connections;
	lim->max_sessions = conf->max_sessions;
	lim->per_source = conf->max_startups_per_source;
	lim->startups = conf->max_startups;
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
	penalty_free(srv->pen);
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
	struct penalty_settings ps;
	penalty_from_conf(conf, &ps);
	srv->pen = penalty_new(&ps, "ssh");
	if (!srv->pen)
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
		/* ReusePort: a new instance can bind the same port while
		 * this one drains. */
		int fd = net_listen(conf->ssh[i].host, conf->ssh[i].port, 128,
				    conf->reuse_port ? NET_REUSEPORT : 0,
				    &srv->port[srv->nl]);
		if (fd < 0) {
			log_error("ssh_listen", "host=%s port=%d msg=%s",
				  log_q(conf->ssh[i].host), conf->ssh[i].port,
				  log_q(net_strerror(fd)));
			goto fail;
		}
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
	struct penalty_settings ps;
	penalty_from_conf(conf, &ps);
	penalty_reload(srv->pen, &ps);
	log_info("ssh_reload", "max_connections=%d max_sessions=%d "
		 "max_auth_tries=%d login_grace_time=%d per_source=%d "
		 "max_startups=%d:%d:%d idle_timeout=%d",
		 conf->max_connections, conf->max_sessions,
		 conf->max_auth_tries,
		 conf->login_grace_time, conf->max_startups_per_source,
		 conf->max_startups.start, conf->max_startups.rate,
		 conf->max_startups.full, conf->idle_timeout);
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
