/*
 * awscred.h - AWS credentials, found the way AWS's own tools find them.
 *
 * Order (the AWS CLI's, minus the parts assetd does not need):
 *  1. a profile named in the configuration (struct store_opts.profile):
 *     only the shared credentials file, that profile, nothing else;
 *  2. the environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
 *     (+ AWS_SESSION_TOKEN);
 *  3. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
 *     ~/.aws/credentials), profile AWS_PROFILE or "default";
 *  4. the EC2 instance role through IMDSv2 (a session token from
 *     PUT /latest/api/token, then /latest/meta-data/iam/security-
 *     credentials/ROLE), refreshed five minutes before it expires; skipped
 *     when AWS_EC2_METADATA_DISABLED=true. The endpoint is
 *     AWS_EC2_METADATA_SERVICE_ENDPOINT, default http://169.254.169.254.
 *
 * A source is resolved on first use and cached; only instance-role
 * credentials are fetched again, and those are kept once per process
 * (shared by every location). Thread-safe.
 */
#ifndef ASSETD_AWSCRED_H
#define ASSETD_AWSCRED_H

#include <stddef.h>
#include <stdint.h>

struct awscred {
	char access_key[128];
	char secret_key[128];
	char session_token[4096];       /* "" when none */
	int64_t expires;                /* unix seconds; 0 = never */
	const char *source;             /* "profile", "env", "file", "imds" */
};

struct awscred_source;

/* PROFILE may be NULL (then the AWS order above applies). */
int awscred_source_new(const char *profile, struct awscred_source **out);
void awscred_source_free(struct awscred_source *s);

/* Current credentials into OUT. Returns 0, or STORE_EAUTH when no source
 * has any (or STORE_ENOMEM). */
int awscred_get(struct awscred_source *s, struct awscred *out);

/* Read PROFILE from the INI file PATH (aws_access_key_id,
 * aws_secret_access_key, aws_session_token). 0, or -1 when the file or
 * the profile or its keys are missing. Exposed for the unit tests. */
int awscred_read_file(const char *path, const char *profile,
		      struct awscred *out);

/* Find the string value of "NAME" in a flat JSON object (the IMDS reply).
 * 0 or -1. Exposed for the unit tests and the fuzzer. */
int awscred_json_string(const char *json, size_t len, const char *name,
			char *out, size_t cap);

#endif
