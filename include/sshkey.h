/*
 * sshkey.h - SSH public keys as admins and clients present them.
 *
 * Parses authorized_keys lines ("[options] type base64 [comment]"), checks
 * the key with libssh, and computes the fingerprint exactly as OpenSSH
 * prints it ("SHA256:" + unpadded base64 of the SHA-256 of the key blob).
 * assetctl uses it to register keys; the SSH side uses sshkey_fingerprint()
 * on the key a client offers, so both speak of a key the same way.
 */
#ifndef ASSETD_SSHKEY_H
#define ASSETD_SSHKEY_H

#include <stddef.h>

#define SSHKEY_TYPE_MAX	   64	/* matches CATALOG_NAME_MAX */
#define SSHKEY_BLOB_MAX	   8192 /* base64, matches CATALOG_KEYBLOB_MAX */
#define SSHKEY_COMMENT_MAX 256	/* matches CATALOG_TEXT_MAX */
#define SSHKEY_FP_MAX	   64	/* "SHA256:" + 43 characters */

struct sshkey_info {
	char type[SSHKEY_TYPE_MAX];	  /* "ssh-ed25519", "ssh-rsa", ... */
	char blob[SSHKEY_BLOB_MAX];	  /* base64 of the public key */
	char comment[SSHKEY_COMMENT_MAX]; /* "" if none */
	char fingerprint[SSHKEY_FP_MAX];  /* "SHA256:..." */
	char label[16];			  /* "ED25519", "RSA", "ECDSA", ...:
					     what ssh-keygen -l prints */
	int bits;			  /* key size as ssh-keygen -l prints */
};

/* Parse one authorized_keys line (a trailing newline is fine). Options that
 * only take something away that assetd never offers (restrict, no-pty,
 * no-port-forwarding, no-agent-forwarding, no-X11-forwarding, no-user-rc)
 * are accepted and dropped; options that assetd would not enforce (from=,
 * command=, expiry-time=, cert-authority, ...) are refused.
 * Returns 0 with OUT filled, 1 for a blank or comment line (OUT untouched),
 * or -1 with a message in ERR. */
int sshkey_parse_line(const char *line, struct sshkey_info *out, char *err,
		      size_t errlen);

struct ssh_key_struct;

/* The OpenSSH SHA256 fingerprint of a libssh public key into OUT
 * (at least SSHKEY_FP_MAX bytes). 0 or -1. */
int sshkey_fingerprint(const struct ssh_key_struct *key, char *out,
		       size_t outlen);

/* Print KEY as "BITS FINGERPRINT COMMENT (LABEL)", as ssh-keygen -l does
 * (comment "no comment" when empty). */
int sshkey_format(const struct sshkey_info *key, char *out, size_t outlen);

#endif
