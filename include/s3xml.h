/*
 * s3xml.h - the S3 replies we read, parsed from a byte buffer.
 *
 * A small XML reader of our own (no entity definitions, no DTDs, bounded
 * depth and text) and the few S3 documents built on it: ListObjectsV2
 * pages, <Error> bodies, InitiateMultipartUpload, CompleteMultipartUpload
 * and CopyObject/UploadPartCopy results. Every function is a pure function
 * of (buffer, length): nothing is read past LEN, the buffer need not be
 * NUL-terminated, and any malformed input is an error (-1), never a crash;
 * they are fuzz targets.
 */
#ifndef ASSETD_S3XML_H
#define ASSETD_S3XML_H

#include <stddef.h>
#include <stdint.h>

#define S3XML_TEXT_MAX 4096     /* longest text of one element (decoded) */
#define S3XML_DEPTH_MAX 16

/* An element's decoded text, reported when the element closes. PATH is the
 * element names from the root joined with '/' ("ListBucketResult/Contents/
 * Key"). Return non-zero to stop the walk with that value. */
typedef int (*s3xml_cb)(void *arg, const char *path, const char *text,
			size_t text_len);

/* Walk a whole document; returns 0, the callback's non-zero value, or -1
 * for a malformed document. ROOT_OUT (may be NULL, ROOT_CAP bytes) receives
 * the root element's name. */
int s3xml_walk(const char *buf, size_t len, s3xml_cb cb, void *arg,
	       char *root_out, size_t root_cap);

/* <Error><Code>..</Code><Message>..</Message></Error>. Returns 0 if BUF is
 * an Error document (code and message filled, possibly empty), else -1. */
int s3xml_parse_error(const char *buf, size_t len, char *code,
		      size_t code_cap, char *message, size_t message_cap);

struct s3xml_object {
	char *key;              /* decoded key (owned by the list) */
	uint64_t size;
	int64_t mtime;          /* LastModified, unix seconds */
	char etag[80];          /* without quotes */
};

/* One ListObjectsV2 page. */
struct s3xml_list {
	struct s3xml_object *objects;   /* Contents, in the reply's order */
	size_t n_objects;
	char **prefixes;                /* CommonPrefixes/Prefix */
	size_t n_prefixes;
	int truncated;                  /* IsTruncated was "true" */
	int url_encoded;                /* EncodingType was "url": keys and
					   prefixes are percent-encoded */
	char next_token[S3XML_TEXT_MAX]; /* NextContinuationToken or "" */
};

/* Parse a ListBucketResult. Returns 0 or -1 (malformed, not a listing, or
 * more than 10,000 entries); free with s3xml_list_free() in either case. */
int s3xml_parse_list(const char *buf, size_t len, struct s3xml_list *out);
void s3xml_list_free(struct s3xml_list *l);

/* Decode S in place the way S3 encodes listings with encoding-type=url
 * ("%2B" -> "+", "+" -> " "); -1 (S unchanged) if a '%' is
 * not followed by two hex digits or the result would hold a NUL. */
int s3xml_url_decode(char *s);

/* Undo one level of XML entity escaping in S, in place ("&amp;" -> "&"),
 * for servers that escape key names twice; -1 (S unchanged) if S has a
 * '&' that does not start a valid reference. */
int s3xml_unescape(char *s);

/* InitiateMultipartUploadResult/UploadId. 0 or -1. */
int s3xml_parse_upload_id(const char *buf, size_t len, char *out,
			  size_t cap);

/* A result document whose root must be ROOT ("CompleteMultipartUploadResult",
 * "CopyObjectResult", "CopyPartResult"); its ETag (unquoted) goes to ETAG.
 * Returns 0, or -1 when the root differs (an embedded <Error>: S3 may send
 * one with status 200) or the document is malformed. */
int s3xml_parse_result(const char *buf, size_t len, const char *root,
		       char *etag, size_t etag_cap);

/* "2026-11-25T19:40:01.000Z" -> unix seconds; -1 if malformed. */
int64_t s3xml_parse_time(const char *s);

#endif
