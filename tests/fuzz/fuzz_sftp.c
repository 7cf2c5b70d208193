/* fuzz_sftp.c - the SFTP request decoder, and the encoders over what it
 * decoded (a reply echoing the request's fields must fit or fail cleanly). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sftp.h"

static struct sftp_request rq;
static uint8_t out[SFTP_MAX_PACKET + 4];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > SFTP_MAX_PACKET)
		return 0;
	int rc = sftp_decode_request(data, size, &rq);
	if (rc != SFTP_DECODE_OK && rc != SFTP_DECODE_BAD &&
	    rc != SFTP_DECODE_FATAL)
		__builtin_trap();
	if (rc == SFTP_DECODE_FATAL)
		return 0;
	if (rq.handle_len > SFTP_HANDLE_MAX)
		__builtin_trap();
	if (rq.data && (rq.data < data || rq.data + rq.data_len > data + size))
		__builtin_trap(); /* WRITE payload must lie inside the packet */
	if (strlen(rq.path) >= SFTP_PATH_MAX || strlen(rq.path2) >= SFTP_PATH_MAX)
		__builtin_trap();

	struct sftp_out o = { out, sizeof out, 0, 0 };
	char longname[SFTP_PATH_MAX + 128];
	sftp_out_begin(&o, SFTP_NAME, rq.id);
	sftp_out_u32(&o, 1);
	sftp_out_cstring(&o, rq.path);
	sftp_longname(longname, sizeof longname, rq.path, &rq.attrs, "fuzz",
		      (int64_t)rq.attrs.atime);
	sftp_out_cstring(&o, longname);
	sftp_out_attrs(&o, &rq.attrs);
	if (sftp_out_end(&o) < 0)
		__builtin_trap(); /* one name always fits a packet */
	struct sftp_attrs a;
	(void)sftp_decode_attrs(data, size, &a);
	return 0;
}
