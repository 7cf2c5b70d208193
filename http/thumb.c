/*
 * thumb.c - thumbnails for /fileget?type=T with libvips.
 *
 * A thumbnail is no larger than S x S, keeps the aspect ratio and is never
 * enlarged (ImageMagick's "SxS>"). libvips' thumbnail operation loads at
 * reduced size where the format allows it (JPEG DCT scaling, PDF rendering
 * at the target scale, pyramid levels), which is what makes the first
 * thumbnail of a 24-megapixel JPEG cheap. PDFs give their first page on
 * white; pdf, tiff, heic and heif give a PNG; the other kinds keep their
 * format. The result is cached in the collection's thumbnails/ folder as
 * "<root>_<S><ext>" and served from there afterwards.
 *
 * Abuse bounds: S is clamped to MaxThumbnailScale (the cache holds one
 * file per (original, S) at most), at most ThumbnailConcurrency
 * generations run at once, and concurrent requests for the same thumbnail
 * wait for one generation instead of each doing it (single flight).
 *
 * The source is a file descriptor: the fs backend's own, or for S3 a spool
 * file the original is streamed into, because PDF, TIFF and HEIF loaders
 * need to seek and a pipe would make libvips buffer the whole file in
 * memory.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "http_proto.h"
#include "log.h"
#include "metrics.h"

/* libvips starts on the first thumbnail generation, not with the daemon:
 * vips_init loads its format modules (poppler, libheif, ImageMagick,
 * OpenSlide, JPEG XL) and their libraries, which an idle daemon, or one whose
 * thumbnails are all cached, never needs to hold. pthread_once makes the
 * first generations of several threads wait for one start; if it fails,
 * every generation answers 503 and the reason is logged once. */
static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_ok;

static void vips_setup(void)
{
	if (VIPS_INIT("assetd") != 0) {
		log_error("thumb_init", "error=%s", log_q(vips_error_buffer()));
		vips_error_clear();
		return;
	}
	/* Every thumbnail is generated once and then cached in the store:
	 * libvips' operation cache would only hold memory. */
	vips_cache_set_max(0);
	log_info("thumb_init", "vips=%s", log_q(vips_version_string()));
	vips_ok = 1;
}

/* Start libvips if this is the first generation; 1 if it is usable. */
static int vips_ready(void)
{
	pthread_once(&vips_once, vips_setup);
	return vips_ok;
}

/* Copy the whole of RD into a spool file; returns its fd or -1. */
static int spool_copy(struct http_req *rq, struct store_reader *rd)
{
	int fd = http_spool_open(rq);
	char *buf;
	if (fd < 0)
		return -1;
	buf = malloc(256 * 1024);
	if (buf == NULL) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = store_reader_read(rd, buf, 256 * 1024);
		if (n == 0)
			break;
		if (n < 0) {
			free(buf);
			close(fd);
			return -1;
		}
		for (ssize_t o = 0; o < n;) {
			ssize_t w = write(fd, buf + o, (size_t)(n - o));
			if (w <= 0) {
				free(buf);
				close(fd);
				return -1;
			}
			o += w;
		}
	}
	free(buf);
	return fd;
}

/* Make the thumbnail of SRCFD. 0 with *BUF (g_malloc'd) and *LEN, or -1
 * (the file cannot be thumbnailed; libvips' reason is logged). */
static int render(int srcfd, int kind, int scale, void **buf, size_t *len,
		  const char *name)
{
	VipsSource *src = NULL;
	VipsImage *img = NULL, *flat = NULL;
	int rc = -1;

	if (lseek(srcfd, 0, SEEK_SET) != 0)
		return -1;
	src = vips_source_new_from_descriptor(srcfd);
	if (src == NULL)
		goto out;
	if (vips_thumbnail_source(src, &img, scale, "height", scale, "size",
				  VIPS_SIZE_DOWN, NULL) != 0)
		goto out;
	if (kind == HTTP_THUMB_PDF && vips_image_hasalpha(img)) {
		/* a PDF page is transparent where nothing is drawn */
		VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
		int f = vips_flatten(img, &flat, "background", white, NULL);
		vips_area_unref(VIPS_AREA(white));
		if (f != 0)
			goto out;
		g_object_unref(img);
		img = flat;
		flat = NULL;
	}
	const char *fmt;
	switch (kind) {
	case HTTP_THUMB_JPEG: fmt = ".jpg[Q=85,strip]"; break;
	case HTTP_THUMB_GIF: fmt = ".gif"; break;
	default: fmt = ".png[strip]"; break;
	}
	if (vips_image_write_to_buffer(img, fmt, buf, len, NULL) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		log_warn("thumb_failed", "name=%s error=%s", log_q(name),
			 log_q(vips_error_buffer()));
		vips_error_clear();
	}
	if (flat)
		g_object_unref(flat);
	if (img)
		g_object_unref(img);
	if (src)
		g_object_unref(src);
	return rc;
}

/* ---- single flight -------------------------------------------------- */

/* Join or start the generation of KEY. Returns the entry and sets *LEADER
 * when this request must generate; a follower gets NULL after the leader
 * has finished (successfully or not). */
static struct http_inflight *flight_enter(struct http_server *srv,
					  const char *key, int *leader)
{
	pthread_mutex_lock(&srv->tlock);
	for (struct http_inflight *f = srv->inflight; f; f = f->next) {
		if (strcmp(f->key, key) != 0)
			continue;
		f->waiters++;
		while (!f->done)
			pthread_cond_wait(&srv->tcond, &srv->tlock);
		if (--f->waiters == 0 && f->done == 2)
			free(f); /* the leader has left: last one frees */
		pthread_mutex_unlock(&srv->tlock);
		*leader = 0;
		return NULL;
	}
	struct http_inflight *f = calloc(1, sizeof *f);
	if (f) {
		snprintf(f->key, sizeof f->key, "%s", key);
		f->next = srv->inflight;
		srv->inflight = f;
	}
	pthread_mutex_unlock(&srv->tlock);
	*leader = 1;
	return f;
}

static void flight_leave(struct http_server *srv, struct http_inflight *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&srv->tlock);
	for (struct http_inflight **pp = &srv->inflight; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	f->done = 2;
	pthread_cond_broadcast(&srv->tcond);
	if (f->waiters == 0)
		free(f);
	pthread_mutex_unlock(&srv->tlock);
}

static void gen_slot_take(struct http_server *srv)
{
	pthread_mutex_lock(&srv->tlock);
	while (srv->gen_running >= srv->gen_max)
		pthread_cond_wait(&srv->tcond, &srv->tlock);
	srv->gen_running++;
	pthread_mutex_unlock(&srv->tlock);
}

static void gen_slot_give(struct http_server *srv)
{
	pthread_mutex_lock(&srv->tlock);
	srv->gen_running--;
	pthread_cond_broadcast(&srv->tcond);
	pthread_mutex_unlock(&srv->tlock);
}

/* ---- the route ------------------------------------------------------ */

static enum MHD_Result reply_store_err(struct http_req *rq, int rc)
{
	unsigned st = http_status_of(rc);
	return http_reply_text(rq, st, st == 404 ? "File not found.\n"
					   : "Storage error.\n");
}

enum MHD_Result http_serve_thumbnail(struct http_req *rq,
				     const struct http_scope *sc,
				     const char *name, const char *scale_s)
{
	struct http_server *srv = rq->srv;
	char orig[STORE_NAME_MAX], tname[300], tobj[STORE_NAME_MAX];
	char key[sizeof ((struct http_inflight *)0)->key];
	struct store_stat ss;
	int scale, rc;

	if (scale_s == NULL)
		return http_reply_text(rq, 400, "Missing scale.\n");
	if (http_scale_parse(scale_s, &scale) != 0)
		return http_reply_text(rq, 400, "Invalid scale.\n");
	if (scale > rq->set.max_thumbnail_scale)
		scale = rq->set.max_thumbnail_scale;
	int kind = http_thumb_kind(name);
	if (http_object_name(sc, "originals", name, orig, sizeof orig) != 0)
		return http_reply_text(rq, 400, "Name too long.\n");
	if (kind == HTTP_THUMB_NONE) {
		rc = store_stat(sc->store, orig, &ss);
		if (rc != 0 || ss.is_dir)
			return reply_store_err(rq, rc ? rc : STORE_ENOENT);
		return http_reply_text(rq, 415,
				       "No thumbnail for this type of file.\n");
	}
	if (http_thumb_name(name, scale, tname, sizeof tname) != 0 ||
	    http_object_name(sc, "thumbnails", tname, tobj, sizeof tobj) != 0)
		return http_reply_text(rq, 400, "Name too long.\n");
	snprintf(key, sizeof key, "%s%s", store_url(sc->store), tobj);

	for (int round = 0;; round++) {
		rc = store_stat(sc->store, tobj, &ss);
		if (rc == 0 && !ss.is_dir) {
			metrics_add("assetd_thumbnails_total", 1,
				    METRICS_L("cached"));
			return http_serve_object(rq, sc->store, tobj, tname, NULL);
		}
		if (rc != STORE_ENOENT && rc != 0)
			return reply_store_err(rq, rc);
		if (round > 0)
			break; /* the other generation failed: try ourselves */
		int leader;
		struct http_inflight *f = flight_enter(srv, key, &leader);
		if (leader) {
			/* generate below, holding F */
			rc = 0;
			gen_slot_take(srv);
			void *buf = NULL;
			size_t len = 0;
			int status = 0;
			const char *unavailable = "Unavailable.\n";
			int vips_used = 0;
			struct store_reader *rd = NULL;
			struct store_stat os;
			int orc = store_reader_open(sc->store, orig, 0, UINT64_MAX,
						    &rd, &os);
			if (orc != 0) {
				status = (int)http_status_of(orc);
			} else if (!vips_ready()) {
				status = 503;
				unavailable = "Thumbnails are unavailable: the "
					      "image library failed to start.\n";
			} else {
				vips_used = 1;
				int fd = store_reader_fd(rd);
				int own = -1;
				if (fd < 0)
					fd = own = spool_copy(rq, rd);
				if (fd < 0)
					status = 503;
				else if (render(fd, kind, scale, &buf, &len, name))
					status = 415;
				if (own >= 0)
					close(own);
			}
			if (rd)
				store_reader_close(rd);
			if (vips_used)
				vips_thread_shutdown();
			gen_slot_give(srv);
			if (status == 0) {
				log_debug("thumb_generated", "name=%s scale=%d bytes=%zu",
					  log_q(tobj), scale, len);
				struct store_put_opts po;
				memset(&po, 0, sizeof po);
				po.size_hint = len;
				int prc = store_put(sc->store, tobj, buf, len, &po);
				if (prc != 0)
					log_warn("thumb_cache", "name=%s error=%s",
						 log_q(tobj),
						 log_q(store_strerror(prc)));
			}
			flight_leave(srv, f);
			metrics_add("assetd_thumbnails_total", 1,
				    METRICS_L(status ? "failed" : "generated"));
			if (status != 0) {
				return http_reply_text(rq, (unsigned)status,
					status == 404 ? "File not found.\n"
					: status == 415
					? "Cannot make a thumbnail of this file.\n"
					: unavailable);
			}
			struct MHD_Response *r =
				MHD_create_response_from_buffer_with_free_callback(
					len, buf, g_free);
			if (r == NULL) {
				g_free(buf);
				return MHD_NO;
			}
			MHD_add_response_header(r, "Content-Type",
						store_content_type(tname));
			rq->bytes_out = len;
			return http_reply(rq, 200, r);
		}
		/* a follower: the leader is done; look at the cache again */
	}
	/* Two rounds without a cached thumbnail: the original is missing or
	 * cannot be thumbnailed. Say which. */
	rc = store_stat(sc->store, orig, &ss);
	if (rc != 0 || ss.is_dir)
		return reply_store_err(rq, rc ? rc : STORE_ENOENT);
	return http_reply_text(rq, 415, "Cannot make a thumbnail of this file.\n");
}
