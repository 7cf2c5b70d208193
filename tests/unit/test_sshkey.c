/* test_sshkey.c - authorized_keys lines and fingerprints. The keys and the
 * expected lines below were made by OpenSSH's ssh-keygen (-t, then -lf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <libssh/libssh.h>

#include "sshkey.h"

#define ED25519                                                                \
	"ssh-ed25519 "                                                         \
	"AAAAC3NzaC1lZDI1NTE5AAAAILEc4LLBKnTAcgphX9wHAmYDB3xvsNVPFUsT89Pquc3Y"
#define ED25519_FP "SHA256:g5JJNlARxIi7TikDfvPuRL+sXRY6O0GFyj50iaLTufM"
#define ECDSA256                                                               \
	"ecdsa-sha2-nistp256 "                                                 \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM4AMDm1yKIOxEI2" \
	"DUQTOE9ftEy1CdmONSwb6qPK8vmqOGhodsjDkbPDIly2F68c4u9f44rjponTFpJtK9Zz" \
	"VKQ="
#define ECDSA256_FP "SHA256:cnRyaPrpco5twJgdqXCzBvOdERyhkKuJE/Z55hxDTos"
#define RSA1024                                                                \
	"ssh-rsa "                                                             \
	"AAAAB3NzaC1yc2EAAAADAQABAAAAgQDYPOWim7XhHI6TYqn2JpLqzYP0u5Re1YXcEZam" \
	"KBdmxA1U0IPv1nazH1vgdUjeIPjV+"                                        \
	"1zWXFnmvVWVtUtFN58EYsptS1RH2qRuLD2d5WAlv1Yg0mC96V3n4g4KsvNfug1H263Zc" \
	"kEFZnJm3zYHTOCOOaWWbehrAjtRbEknQ02hJQ=="
#define RSA1024_FP "SHA256:QtcjVomAji+9wsD/hJEd4XgWqkZqpbZPZV7NU2vDAX0"
#define ECDSA521                                                               \
	"ecdsa-sha2-nistp521 "                                                 \
	"AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBADRu+"           \
	"62kOVLrJOMMgYVbRnnorHTc9619sILIkHmvpQkayqQiPUFX7iqLJiTaB31Z4M2BTnBbv" \
	"wlXrbL0tvmOuUz1QDacNYdbc/Pi8Y5rBm8e9iH0TYO5j4z2kkwgQk3fpCrfVaH/"      \
	"J13ka4+XiY0N9ikHA+b2POziyBibqjmynJfFzDm9g=="
#define ECDSA521_FP "SHA256:3LFlpAtlqVdFRLVBKJwYFmXFU7ydAdo0ppkOQKks2Gs"

static struct sshkey_info k;
static char err[256];

static void parse_ok(const char *line)
{
	memset(&k, 0, sizeof k);
	err[0] = '\0';
	int rc = sshkey_parse_line(line, &k, err, sizeof err);
	if (rc != 0)
		fail_msg("'%.60s': rc %d: %s", line, rc, err);
}

static void parse_bad(const char *line, const char *why)
{
	err[0] = '\0';
	int rc = sshkey_parse_line(line, &k, err, sizeof err);
	if (rc != -1)
		fail_msg("'%.60s' accepted (rc %d)", line, rc);
	if (!strstr(err, why))
		fail_msg("'%.60s': message '%s' lacks '%s'", line, err, why);
}

static void test_fingerprints_match_ssh_keygen(void **state)
{
	char out[512];
	parse_ok(ED25519 " me@x\n");
	assert_string_equal(k.type, "ssh-ed25519");
	assert_string_equal(k.fingerprint, ED25519_FP);
	assert_string_equal(k.comment, "me@x");
	assert_int_equal(sshkey_format(&k, out, sizeof out), 0);
	assert_string_equal(out, "256 " ED25519_FP " me@x (ED25519)");

	parse_ok(ECDSA256 " root@vm");
	assert_int_equal(sshkey_format(&k, out, sizeof out), 0);
	assert_string_equal(out, "256 " ECDSA256_FP " root@vm (ECDSA)");

	parse_ok(RSA1024 " small\r\n");
	assert_int_equal(sshkey_format(&k, out, sizeof out), 0);
	assert_string_equal(out, "1024 " RSA1024_FP " small (RSA)");

	parse_ok(ECDSA521 " big ec");
	assert_string_equal(k.comment, "big ec");
	assert_int_equal(sshkey_format(&k, out, sizeof out), 0);
	assert_string_equal(out, "521 " ECDSA521_FP " big ec (ECDSA)");

	parse_ok(ED25519);
	assert_string_equal(k.comment, "");
	assert_int_equal(sshkey_format(&k, out, sizeof out), 0);
	assert_string_equal(out, "256 " ED25519_FP " no comment (ED25519)");
}

static void test_blank_and_comment_lines(void **state)
{
	assert_int_equal(sshkey_parse_line("", &k, err, sizeof err), 1);
	assert_int_equal(sshkey_parse_line("   \n", &k, err, sizeof err), 1);
	assert_int_equal(sshkey_parse_line("# a comment", &k, err, sizeof err),
			 1);
}

static void test_harmless_options_accepted(void **state)
{
	parse_ok("restrict,no-pty " ED25519 " opt");
	assert_string_equal(k.fingerprint, ED25519_FP);
	assert_string_equal(k.comment, "opt");
	parse_ok("no-port-forwarding,no-agent-forwarding,no-X11-"
		 "forwarding " ED25519);
	assert_string_equal(k.fingerprint, ED25519_FP);
}

static void test_unenforced_options_refused(void **state)
{
	parse_bad("from=\"10.0.0.0/8\" " ED25519, "from");
	parse_bad("command=\"echo hi there\",no-pty " ED25519, "command");
	parse_bad("no-pty,expiry-time=\"20300101\" " ED25519, "expiry-time");
	parse_bad("cert-authority " ED25519, "cert-authority");
	parse_bad("from=\"unterminated " ED25519, "quote");
}

static void test_bad_keys_refused(void **state)
{
	parse_bad("ssh-ed25519", "no key data");
	parse_bad("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILEc4LLB", "invalid");
	parse_bad("ssh-ed25519 !!!notbase64!!!", "invalid");
	/* An ed25519 blob under another type name. */
	parse_bad("ssh-rsa "
		  "AAAAC3NzaC1lZDI1NTE5AAAAILEc4LLBKnTAcgphX9wHAmYDB3xvsNVPFUsT"
		  "89Pquc3Y",
		  "rsa");
	parse_bad("ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5",
		  "certificates");
	parse_bad("hello world", "not an SSH public key");
	parse_bad("AAAAC3NzaC1lZDI1NTE5AAAAILEc4LLBKnTAcgphX9wHAmYDB3xvsNVPFUsT"
		  "89Pquc3Y",
		  "not an SSH public key");
	parse_bad("ssh-ed255l9 "
		  "AAAAC3NzaC1lZDI1NTE5AAAAILEc4LLBKnTAcgphX9wHAmYDB3xvsNVPFUsT"
		  "89Pquc3Y x",
		  "not an SSH public key");
	parse_bad("-----BEGIN OPENSSH PRIVATE KEY-----", "private key");
	parse_bad("---- BEGIN SSH2 PUBLIC KEY ----", "ssh-keygen -i");
	parse_bad(ED25519 " a\x01b", "control");
	char longc[600];
	snprintf(longc, sizeof longc, "%s %0400d", ED25519, 7);
	parse_bad(longc, "too long");
}

static void test_fingerprint_of_libssh_key(void **state)
{
	ssh_key key = NULL;
	assert_int_equal(
	    ssh_pki_import_pubkey_base64("AAAAC3NzaC1lZDI1NTE5AAAAILEc4LLBKnTAc"
					 "gphX9wHAmYDB3xvsNVPFUsT89Pquc3Y",
					 SSH_KEYTYPE_ED25519, &key),
	    SSH_OK);
	char fp[SSHKEY_FP_MAX];
	assert_int_equal(sshkey_fingerprint(key, fp, sizeof fp), 0);
	assert_string_equal(fp, ED25519_FP);
	char small[8];
	assert_int_equal(sshkey_fingerprint(key, small, sizeof small), -1);
	ssh_key_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fingerprints_match_ssh_keygen),
	    cmocka_unit_test(test_blank_and_comment_lines),
	    cmocka_unit_test(test_harmless_options_accepted),
	    cmocka_unit_test(test_unenforced_options_refused),
	    cmocka_unit_test(test_bad_keys_refused),
	    cmocka_unit_test(test_fingerprint_of_libssh_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
