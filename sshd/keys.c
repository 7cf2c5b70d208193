/*
 * keys.c - host keys: created on first start, never overwritten.
 *
 * Each configured HostKey path gets a key whose type follows its name
 * (".._rsa_key" -> RSA 3072, ".._ecdsa_key" -> ECDSA P-256, anything else
 * -> Ed25519), like ssh-keygen -A. A new key is written to a temp file
 * created with mode 0600 and O_EXCL, fsynced, then renamed into place, so
 * a key file is never readable by others and never half-written. The
 * public half goes beside it as PATH.pub.
 */
#include "sshd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "log.h"

static int write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[CONF_PATH_MAX + 32];
	size_t len = strlen(text);
	int fd;

	if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >=
	    (int)sizeof tmp)
		return -1;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) != 0 || write(fd, text, len) != (ssize_t)len ||
	    fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* mkdir -p of PATH's parent directory, mode 0700 for what we create. */
static int make_parent(const char *path)
{
	char dir[CONF_PATH_MAX];
	if (strlen(path) >= sizeof dir)
		return -1;
	strcpy(dir, path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static enum ssh_keytypes_e type_for(const char *path, int *bits)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strstr(base, "rsa")) {
		*bits = 3072;
		return SSH_KEYTYPE_RSA;
	}
	if (strstr(base, "ecdsa")) {
		*bits = 256;
		return SSH_KEYTYPE_ECDSA_P256;
	}
	*bits = 0;
	return SSH_KEYTYPE_ED25519;
}

static int create_key(const char *path)
{
	int bits;
	enum ssh_keytypes_e type = type_for(path, &bits);
	ssh_key key = NULL;
	char *priv = NULL, *pub = NULL, *publine = NULL;
	char pubpath[CONF_PATH_MAX + 8];
	int rc = -1;

	if (make_parent(path) != 0) {
		log_error("hostkey_create", "path=%s msg=%s", log_q(path),
			  log_q(strerror(errno)));
		return -1;
	}
	if (ssh_pki_generate(type, bits, &key) != SSH_OK)
		goto out;
	if (ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &priv) !=
	    SSH_OK)
		goto out;
	if (ssh_pki_export_pubkey_base64(key, &pub) != SSH_OK)
		goto out;
	if (write_file(path, priv, 0600) != 0)
		goto out;
	size_t n = strlen(pub) + 64;
	publine = malloc(n);
	if (!publine)
		goto out;
	snprintf(publine, n, "%s %s assetd\n", ssh_key_type_to_char(type), pub);
	if (snprintf(pubpath, sizeof pubpath, "%s.pub", path) <
	    (int)sizeof pubpath)
		write_file(pubpath, publine, 0644); /* convenience only */
	log_info("hostkey_created", "path=%s type=%s", log_q(path),
		 ssh_key_type_to_char(type));
	rc = 0;
out:
	if (rc != 0)
		log_error("hostkey_create", "path=%s msg=%s", log_q(path),
			  log_q("cannot generate or write the host key"));
	if (priv) {
		explicit_bzero(priv, strlen(priv));
		ssh_string_free_char(priv);
	}
	if (pub)
		ssh_string_free_char(pub);
	free(publine);
	ssh_key_free(key);
	return rc;
}

int sshd_ensure_host_keys(const struct conf *conf)
{
	int rc = 0;
	for (int i = 0; i < conf->n_host_keys; i++) {
		const char *path = conf->host_keys[i];
		struct stat st;
		if (stat(path, &st) == 0) {
			if (st.st_mode & 077) {
				log_warn("hostkey_mode",
					 "path=%s mode=%o msg=%s", log_q(path),
					 (unsigned)(st.st_mode & 0777),
					 log_q("host key readable by others; "
					       "set mode 0600"));
			}
			continue;
		}
		if (errno != ENOENT) {
			log_error("hostkey", "path=%s msg=%s", log_q(path),
				  log_q(strerror(errno)));
			rc = -1;
			continue;
		}
		if (create_key(path) != 0)
			rc = -1;
	}
	return rc;
}
