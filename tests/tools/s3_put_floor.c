/*
 * s3_put_floor.c - the cheapest client we can write for PUT Object: how
 * fast can an S3 server take N small objects at all? For the rsync
 * benchmark, which compares a push onto the test S3 server against rsync
 * to local disk: the server's own cost per PUT bounds what any client
 * reaches, and this measures that bound.
 *
 * usage: s3_put_floor HOST PORT BUCKET PREFIX COUNT SIZE PARALLEL MODE
 *
 * PARALLEL threads each hold one keep-alive HTTP/1.1 connection (plain
 * sockets, no libcurl) and PUT their share of COUNT objects of SIZE bytes,
 * named PREFIX dNNN/fNNNNN.jpg (100 a folder, as the rsync benchmark's
 * tree). Each request is written with one writev (headers and body) and
 * its reply read to its end, so there is no Expect, no chunking, no
 * connection churn. MODE says what the request carries:
 *   anon      no Authorization (the test server accepts anonymous PUTs)
 *   unsigned  SigV4 with x-amz-content-sha256: UNSIGNED-PAYLOAD
 *   signed    SigV4 over the body's SHA-256
 *   assetd    as assetd's small-object PUT: SigV4 over the body's SHA-256,
 *             Content-MD5, Content-Type and x-amz-meta-mtime
 * Credentials: S3RVER / S3RVER, us-east-1 (the test server's).
 * Prints one JSON object: seconds, puts, failures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sigv4.h"

enum { MODE_ANON, MODE_UNSIGNED, MODE_SIGNED, MODE_ASSETD };

struct job {
	const char *host;
	int port;
	const char *bucket, *prefix;
	int first, step, count;
	size_t size;
	int mode;
	int failures;
	pthread_t th;
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int dial(const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	int one = 1, fd;
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Read one reply: its status, and whether the server keeps the
 * connection. The body (an error's XML, if any) is read and dropped. */
static int read_reply(int fd, int *status, int *keep)
{
	char buf[16384];
	size_t have = 0;
	char *end = NULL;
	while (!end) {
		if (have + 1 >= sizeof buf)
			return -1;
		ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	if (sscanf(buf, "HTTP/1.1 %d", status) != 1)
		return -1;
	*keep = strcasestr(buf, "\r\nconnection: close") == NULL;
	long clen = 0;
	char *cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl)
		clen = strtol(cl + 17, NULL, 10);
	size_t body = have - (size_t)(end + 4 - buf);
	while ((long)body < clen) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0)
			return -1;
		body += (size_t)r;
	}
	return 0;
}

static void md5_b64(const void *p, size_t n, char out[32])
{
	unsigned char d[16];
	unsigned int dl = 0;
	EVP_Digest(p, n, d, &dl, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)out, d, 16);
}

static void *worker(void *arg)
{
	struct job *j = arg;
	char *body = malloc(j->size ? j->size : 1);
	char *hdr = malloc(8192);
	struct sigv4_result *sig = malloc(sizeof *sig);
	char hostport[64], path[1024], date[17], sha[65], md5[32], mt[24];
	int fd = -1;

	if (!body || !hdr || !sig) {
		j->failures = j->count;
		goto out;
	}
	memset(body, 'x', j->size);
	snprintf(hostport, sizeof hostport, "%s:%d", j->host, j->port);
	for (int i = 0; i < j->count; i++) {
		int n = j->first + i * j->step;
		int st = 0, keep = 0;
		memcpy(body, &n, j->size < sizeof n ? j->size : sizeof n);
		snprintf(path, sizeof path, "/%s/%sd%03d/f%05d.jpg", j->bucket,
			 j->prefix, n / 100, n);
		int hl = snprintf(hdr, 8192,
				  "PUT %s HTTP/1.1\r\nHost: %s\r\n"
				  "Content-Length: %zu\r\n",
				  path, hostport, j->size);
		if (j->mode != MODE_ANON) {
			struct sigv4_header h[8];
			int nh = 0;
			sigv4_amz_date((long long)time(NULL), date);
			if (j->mode == MODE_UNSIGNED)
				snprintf(sha, sizeof sha, "%s", SIGV4_UNSIGNED);
			else
				sigv4_sha256_hex(body, j->size, sha);
			h[nh++] = (struct sigv4_header){ "host", hostport };
			h[nh++] = (struct sigv4_header){ "x-amz-date", date };
			h[nh++] = (struct sigv4_header){ "x-amz-content-sha256",
							 sha };
			if (j->mode == MODE_ASSETD) {
				md5_b64(body, j->size, md5);
				snprintf(mt, sizeof mt, "%ld",
					 (long)time(NULL));
				h[nh++] = (struct sigv4_header){ "content-type",
								 "image/jpeg" };
				h[nh++] = (struct sigv4_header){
					"x-amz-meta-mtime", mt };
				h[nh++] = (struct sigv4_header){ "content-md5",
								 md5 };
			}
			struct sigv4_key k = { "S3RVER", "S3RVER", "us-east-1",
					       "s3" };
			struct sigv4_request rq = { "PUT", path, NULL, h,
						    (size_t)nh, sha, 0 };
			if (sigv4_sign(&rq, &k, date, sig) < 0) {
				j->failures++;
				continue;
			}
			for (int x = 1; x < nh; x++)
				hl += snprintf(hdr + hl, 8192 - (size_t)hl,
					       "%s: %s\r\n", h[x].name,
					       h[x].value);
			hl += snprintf(hdr + hl, 8192 - (size_t)hl,
				       "Authorization: %s\r\n",
				       sig->authorization);
		}
		hl += snprintf(hdr + hl, 8192 - (size_t)hl, "\r\n");
		for (int tries = 0; tries < 2; tries++) {
			if (fd < 0)
				fd = dial(j->host, j->port);
			if (fd < 0)
				break;
			struct iovec iov[2] = { { hdr, (size_t)hl },
						{ body, j->size } };
			if (send_all(fd, iov, 2) == 0 &&
			    read_reply(fd, &st, &keep) == 0)
				break;
			close(fd); /* a kept connection the server closed */
			fd = -1;
			st = 0;
		}
		if (st != 200) {
			if (j->failures++ == 0)
				fprintf(stderr, "PUT %s: status %d\n", path,
					st);
		}
		if (fd >= 0 && !keep) {
			close(fd);
			fd = -1;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(body);
	free(hdr);
	free(sig);
	return NULL;
}

int main(int argc, char **argv)
{
	static const char *modes[] = { "anon", "unsigned", "signed", "assetd" };
	if (argc != 9) {
		fprintf(stderr, "usage: s3_put_floor HOST PORT BUCKET PREFIX "
				"COUNT SIZE PARALLEL anon|unsigned|signed|"
				"assetd\n");
		return 2;
	}
	int count = atoi(argv[5]), par = atoi(argv[7]), mode = -1;
	size_t size = (size_t)strtoul(argv[6], NULL, 10);
	for (int m = 0; m < 4; m++)
		if (strcmp(argv[8], modes[m]) == 0)
			mode = m;
	if (count < 1 || par < 1 || par > 256 || mode < 0 ||
	    size > (64u << 20)) {
		fprintf(stderr, "s3_put_floor: bad arguments\n");
		return 2;
	}
	struct job *jobs = calloc((size_t)par, sizeof *jobs);
	if (!jobs)
		return 1;
	double t0 = now();
	for (int i = 0; i < par; i++) {
		jobs[i] = (struct job){ argv[1], atoi(argv[2]), argv[3],
					argv[4], i, par,
					count / par + (i < count % par), size,
					mode, 0, 0 };
		if (pthread_create(&jobs[i].th, NULL, worker, &jobs[i]) != 0)
			return 1;
	}
	int failures = 0;
	for (int i = 0; i < par; i++) {
		pthread_join(jobs[i].th, NULL);
		failures += jobs[i].failures;
	}
	printf("{\"seconds\": %.3f, \"puts\": %d, \"failures\": %d}\n",
	       now() - t0, count, failures);
	free(jobs);
	return failures ? 1 : 0;
}
