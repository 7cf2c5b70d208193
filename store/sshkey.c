/*
 * sshkey.c - authorized_keys lines and OpenSSH fingerprints.
 *
 * A line is split the way sshd reads authorized_keys: if its first word is
 * not a key type, it is an option list (commas, with double-quoted values
 * that may hold spaces) and the key type follows. The base64 blob is handed
 * to libssh, which decodes and checks it (a truncated or corrupted key, or
 * one whose blob names another type than the line, is refused), and libssh
 * gives the SHA-256 of the blob, which we render as OpenSSH does: "SHA256:"
 * and base64 without padding. The key size that ssh-keygen -l prints is
 * read from the blob itself for RSA and DSA (the bit length of the modulus,
 * or of p), and fixed by the type for the others.
 */
#include "sshkey.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>
#include <openssl/evp.h>

static int set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int sshkey_fingerprint(const struct ssh_key_struct *key, char *out,
		       size_t outlen)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	if (!key || outlen < SSHKEY_FP_MAX)
		return -1;
	if (ssh_get_publickey_hash((const ssh_key)key,
				   SSH_PUBLICKEY_HASH_SHA256, &hash,
				   &hlen) != 0 ||
	    hlen != 32) {
		ssh_clean_pubkey_hash(&hash);
		return -1;
	}
	unsigned char b64[48];
	int n = EVP_EncodeBlock(b64, hash, (int)hlen);
	ssh_clean_pubkey_hash(&hash);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	b64[n] = '\0';
	snprintf(out, outlen, "SHA256:%s", (const char *)b64);
	return 0;
}

/* Decode standard base64 (with or without padding) into OUT. Returns the
 * length or -1. */
static long b64_decode(const char *in, unsigned char *out, size_t cap)
{
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (const char *p = in; *p && *p != '='; p++) {
		int v;
		if (*p >= 'A' && *p <= 'Z')
			v = *p - 'A';
		else if (*p >= 'a' && *p <= 'z')
			v = *p - 'a' + 26;
		else if (*p >= '0' && *p <= '9')
			v = *p - '0' + 52;
		else if (*p == '+')
			v = 62;
		else if (*p == '/')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return -1;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)n;
}

/* Read one SSH "string" at *POS of BLOB; returns its length or -1. */
static long wire_string(const unsigned char *blob, size_t len, size_t *pos,
			const unsigned char **data)
{
	if (len - *pos < 4)
		return -1;
	uint32_t n = (uint32_t)blob[*pos] << 24 |
		     (uint32_t)blob[*pos + 1] << 16 |
		     (uint32_t)blob[*pos + 2] << 8 | blob[*pos + 3];
	*pos += 4;
	if (n > len - *pos)
		return -1;
	*data = blob + *pos;
	*pos += n;
	return (long)n;
}

/* Bit length of a big-endian unsigned number (an SSH mpint). */
static int mpint_bits(const unsigned char *p, long n)
{
	while (n > 0 && *p == 0) {
		p++;
		n--;
	}
	if (n == 0)
		return 0;
	int bits = (int)(n - 1) * 8;
	for (unsigned c = *p; c; c >>= 1)
		bits++;
	return bits;
}

/* The size ssh-keygen -l prints: for RSA the modulus (second mpint after the
 * type), for DSA p (the first). */
static int blob_bits(const char *b64, int which_mpint)
{
	size_t cap = strlen(b64) * 3 / 4 + 3;
	unsigned char *raw = malloc(cap);
	if (!raw)
		return 0;
	long len = b64_decode(b64, raw, cap);
	int bits = 0;
	if (len > 0) {
		size_t pos = 0;
		const unsigned char *d = NULL;
		long n = wire_string(raw, (size_t)len, &pos, &d); /* type */
		for (int i = 0; n >= 0 && i <= which_mpint; i++)
			n = wire_string(raw, (size_t)len, &pos, &d);
		if (n > 0)
			bits = mpint_bits(d, n);
	}
	free(raw);
	return bits;
}

/* Options sshd honours only by taking something away that assetd never
 * offers anyway: safe to accept. */
static const char *const harmless_options[] = {
    "restrict",		  "no-pty",
    "no-port-forwarding", "no-agent-forwarding",
    "no-x11-forwarding",  "no-user-rc",
};

/* Check the option list OPTS[0..N). */
static int check_options(const char *opts, size_t n, char *err, size_t errlen)
{
	size_t i = 0;
	while (i < n) {
		size_t start = i;
		while (i < n && opts[i] != ',' && opts[i] != '=')
			i++;
		size_t nlen = i - start;
		int known = 0;
		for (size_t k = 0;
		     k < sizeof harmless_options / sizeof harmless_options[0];
		     k++)
			if (strlen(harmless_options[k]) == nlen &&
			    strncasecmp(harmless_options[k], opts + start,
					nlen) == 0)
				known = 1;
		if (!known || (i < n && opts[i] == '='))
			return set_err(
			    err, errlen,
			    "the key option '%.*s' is not supported: "
			    "assetd would not enforce it; remove it "
			    "(only restrict and no-* options are "
			    "accepted)",
			    (int)nlen, opts + start);
		if (i < n)
			i++; /* the ',' */
	}
	return 0;
}

/* The label and size ssh-keygen -l shows for a key type. */
static void describe(enum ssh_keytypes_e t, const char *blob,
		     struct sshkey_info *out)
{
	const char *label = "UNKNOWN";
	int bits = 0;
	switch (t) {
	case SSH_KEYTYPE_ED25519:
		label = "ED25519";
		bits = 256;
		break;
	case SSH_KEYTYPE_SK_ED25519:
		label = "ED25519-SK";
		bits = 256;
		break;
	case SSH_KEYTYPE_ECDSA_P256:
		label = "ECDSA";
		bits = 256;
		break;
	case SSH_KEYTYPE_ECDSA_P384:
		label = "ECDSA";
		bits = 384;
		break;
	case SSH_KEYTYPE_ECDSA_P521:
		label = "ECDSA";
		bits = 521;
		break;
	case SSH_KEYTYPE_SK_ECDSA:
		label = "ECDSA-SK";
		bits = 256;
		break;
	case SSH_KEYTYPE_RSA:
		label = "RSA";
		bits = blob_bits(blob, 1);
		break;
	case SSH_KEYTYPE_DSS:
		label = "DSA";
		bits = blob_bits(blob, 0);
		break;
	default:
		break;
	}
	snprintf(out->label, sizeof out->label, "%s", label);
	out->bits = bits;
}

static int is_cert(enum ssh_keytypes_e t)
{
	switch (t) {
	case SSH_KEYTYPE_DSS_CERT01:
	case SSH_KEYTYPE_RSA_CERT01:
	case SSH_KEYTYPE_ECDSA_P256_CERT01:
	case SSH_KEYTYPE_ECDSA_P384_CERT01:
	case SSH_KEYTYPE_ECDSA_P521_CERT01:
	case SSH_KEYTYPE_ED25519_CERT01:
	case SSH_KEYTYPE_SK_ECDSA_CERT01:
	case SSH_KEYTYPE_SK_ED25519_CERT01:
		return 1;
	default:
		return 0;
	}
}

/* Copy the next whitespace-separated word at *P into OUT (CAP bytes). */
static int next_word(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = 0;
	while (s[n] && s[n] != ' ' && s[n] != '\t')
		n++;
	if (n == 0 || n >= cap)
		return n == 0 ? 0 : -1;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return 1;
}

int sshkey_parse_line(const char *line, struct sshkey_info *out, char *err,
		      size_t errlen)
{
	/* Work on a copy without the line end. */
	size_t len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	char *buf = malloc(len + 1);
	if (!buf)
		return set_err(err, errlen, "out of memory");
	memcpy(buf, line, len);
	buf[len] = '\0';
	int rc = -1;
	ssh_key key = NULL;
	const char *p = buf;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '#') {
		rc = 1;
		goto out;
	}
	for (const char *q = p; *q; q++)
		if ((unsigned char)*q < 0x20 && *q != '\t') {
			set_err(err, errlen,
				"the key line holds a control "
				"character");
			goto out;
		}
	if (strncmp(p, "-----BEGIN", 10) == 0) {
		set_err(err, errlen,
			"this is a private key: give the public key (the .pub "
			"file) instead");
		goto out;
	}
	if (strncmp(p, "---- BEGIN SSH2 PUBLIC KEY", 26) == 0) {
		set_err(err, errlen,
			"this is an RFC 4716 key: convert it with "
			"'ssh-keygen -i -f FILE' first");
		goto out;
	}

	struct sshkey_info k;
	memset(&k, 0, sizeof k);
	/* Options come first if the first word is not a key type. */
	size_t wlen = strcspn(p, " \t");
	char first[SSHKEY_TYPE_MAX];
	int first_is_type = 0;
	if (wlen < sizeof first) {
		memcpy(first, p, wlen);
		first[wlen] = '\0';
		first_is_type =
		    ssh_key_type_from_name(first) != SSH_KEYTYPE_UNKNOWN;
	}
	if (!first_is_type) {
		const char *o = p;
		int quoted = 0;
		while (*o && (quoted || (*o != ' ' && *o != '\t'))) {
			if (*o == '\\' && quoted && o[1])
				o++;
			else if (*o == '"')
				quoted = !quoted;
			o++;
		}
		if (quoted) {
			set_err(err, errlen,
				"unterminated quote in the key "
				"options");
			goto out;
		}
		/* Garbage is not an option list: say so, not "bad option". */
		const char *t2 = o;
		while (*t2 == ' ' || *t2 == '\t')
			t2++;
		size_t t2len = strcspn(t2, " \t");
		char second[SSHKEY_TYPE_MAX];
		if (t2len == 0 || t2len >= sizeof second) {
			set_err(
			    err, errlen,
			    "not an SSH public key (expected 'TYPE BASE64 "
			    "[COMMENT]', e.g. the contents of id_ed25519.pub)");
			goto out;
		}
		memcpy(second, t2, t2len);
		second[t2len] = '\0';
		if (ssh_key_type_from_name(second) == SSH_KEYTYPE_UNKNOWN) {
			set_err(
			    err, errlen,
			    "not an SSH public key: '%.40s' is not a key type "
			    "(expected ssh-ed25519, ssh-rsa, "
			    "ecdsa-sha2-nistp256, ...)",
			    first_is_type || wlen >= sizeof first ? "?"
								  : first);
			goto out;
		}
		if (check_options(p, (size_t)(o - p), err, errlen) != 0)
			goto out;
		p = o;
	}
	int w = next_word(&p, k.type, sizeof k.type);
	if (w <= 0) {
		set_err(err, errlen, "no key type in the line");
		goto out;
	}
	enum ssh_keytypes_e t = ssh_key_type_from_name(k.type);
	if (t == SSH_KEYTYPE_UNKNOWN) {
		set_err(err, errlen,
			"'%.40s' is not an SSH public key type (expected "
			"ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...)",
			k.type);
		goto out;
	}
	if (is_cert(t)) {
		set_err(err, errlen,
			"certificates (%s) are not supported: give the plain "
			"public key",
			k.type);
		goto out;
	}
	w = next_word(&p, k.blob, sizeof k.blob);
	if (w == 0) {
		set_err(err, errlen, "no key data after the type %s", k.type);
		goto out;
	}
	if (w < 0) {
		set_err(err, errlen, "the key data is too long");
		goto out;
	}
	if (ssh_pki_import_pubkey_base64(k.blob, t, &key) != SSH_OK) {
		set_err(err, errlen,
			"invalid %s key data (truncated or "
			"corrupted?)",
			k.type);
		goto out;
	}
	/* The blob names its own type; it must be the line's. */
	enum ssh_keytypes_e bt = ssh_key_type(key);
	if (bt != t &&
	    !(t == SSH_KEYTYPE_ECDSA &&
	      (bt == SSH_KEYTYPE_ECDSA_P256 || bt == SSH_KEYTYPE_ECDSA_P384 ||
	       bt == SSH_KEYTYPE_ECDSA_P521))) {
		set_err(err, errlen, "the key data is not a %s key", k.type);
		goto out;
	}
	if (bt == SSH_KEYTYPE_DSS) {
		set_err(err, errlen,
			"DSA keys are not accepted (OpenSSH "
			"dropped them): use ed25519");
		goto out;
	}
	if (sshkey_fingerprint(key, k.fingerprint, sizeof k.fingerprint) != 0) {
		set_err(err, errlen, "cannot compute the key's fingerprint");
		goto out;
	}
	describe(bt, k.blob, &k);
	if (bt == SSH_KEYTYPE_RSA && k.bits < 1024) {
		set_err(err, errlen,
			"RSA key of %d bits is too small (at least 1024; "
			"better ed25519)",
			k.bits);
		goto out;
	}
	/* The rest of the line, trimmed, is the comment. */
	while (*p == ' ' || *p == '\t')
		p++;
	size_t clen = strlen(p);
	while (clen > 0 && (p[clen - 1] == ' ' || p[clen - 1] == '\t'))
		clen--;
	if (clen >= sizeof k.comment) {
		set_err(err, errlen,
			"the key comment is too long (at most %zu "
			"bytes)",
			sizeof k.comment - 1);
		goto out;
	}
	memcpy(k.comment, p, clen);
	k.comment[clen] = '\0';
	/* A comment is one line of text; a tab in it is just a space. */
	for (char *c = k.comment; *c; c++)
		if (*c == '\t')
			*c = ' ';
	*out = k;
	rc = 0;
out:
	ssh_key_free(key);
	free(buf);
	return rc;
}

int sshkey_format(const struct sshkey_info *key, char *out, size_t outlen)
{
	int n =
	    snprintf(out, outlen, "%d %s %s (%s)", key->bits, key->fingerprint,
		     key->comment[0] ? key->comment : "no comment", key->label);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
