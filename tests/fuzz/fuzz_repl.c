/*
 * fuzz_repl.c - libFuzzer target for replicator/repl_wire.c, the framing
 * of the replication stream a mirror reads from its origin
 * (docs/replication.md "Wire format").
 *
 * The input is taken as a stream of frames, as the mirror sees it
 * (records and heartbeats, or a snapshot's bodies, items and end).  Each
 * frame is decoded from an exact-size heap copy (a read past the end is
 * caught); a frame that decodes must encode again to exactly the same
 * bytes (the format has one encoding per frame), and every shorter
 * prefix of it must ask for more bytes.  The bytes after the first
 * malformed frame are also read as response lines.  Any violation
 * aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_wire.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct repl_limits lim = { .body_max = 2048, .meta_max = 512 };

static void lines(const uint8_t *p, size_t len)
{
	while (len > 0) {
		const uint8_t *nl = memchr(p, '\n', len);
		size_t ll = nl != NULL ? (size_t)(nl - p) : len;
		char *copy = malloc(ll + 1);
		uint64_t seq;
		const char *t;
		size_t tl;

		if (copy == NULL)
			return;
		memcpy(copy, p, ll);
		switch (repl_wire_parse_line(copy, ll, &seq, &t, &tl)) {
		case REPL_LINE_ERROR:
			CHECK(t == copy + 6 && tl == ll - 6);
			break;
		case REPL_LINE_APPLIED:
		case REPL_LINE_PROGRESS:
		case REPL_LINE_LOADED: {
			char again[32];
			enum repl_line k = repl_wire_parse_line(copy, ll, &seq, &t, &tl);

			snprintf(again, sizeof(again), "%s %llu",
				 k == REPL_LINE_APPLIED ? "applied"
				 : k == REPL_LINE_PROGRESS ? "progress" : "loaded",
				 (unsigned long long)seq);
			CHECK(strlen(again) == ll && memcmp(again, copy, ll) == 0);
			break;
		}
		default:
			break;
		}
		free(copy);
		p += ll + (nl != NULL);
		len -= ll + (nl != NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		size_t len = size - off, used;
		uint8_t *copy = malloc(len);
		struct repl_frame f;
		const char *why;
		int rc;

		if (copy == NULL)
			return 0;
		memcpy(copy, data + off, len);
		rc = repl_wire_decode(copy, len, &lim, &f, &used, &why);
		if (rc <= 0) {
			CHECK(used == 0);
			CHECK(rc == 0 || why != NULL);
			free(copy);
			if (rc < 0)
				lines(data + off, size - off);
			return 0;
		}
		CHECK(used >= REPL_FRAME_HDR && used <= len);
		CHECK(repl_wire_frame_size(copy, used, &lim) == used);
		if (f.kind == REPL_RECORD) {
			uint8_t *enc = malloc(used);

			CHECK(enc != NULL);
			CHECK(repl_wire_record_size(&f.rec) == used);
			CHECK(repl_wire_record_encode(&f.rec, enc, used) == used);
			CHECK(memcmp(enc, copy, used) == 0);
			free(enc);
		} else if (f.kind == REPL_SNAP_BODY || f.kind == REPL_SNAP_ITEM) {
			uint8_t *enc = malloc(used);

			CHECK(enc != NULL);
			CHECK((f.kind == REPL_SNAP_BODY) == (f.snap.type == REPL_SNAP_T_BODY));
			CHECK(f.snap.body_len <= lim.body_max && f.snap.meta_len <= lim.meta_max);
			CHECK(repl_wire_snap_size(&f.snap) == used);
			CHECK(repl_wire_snap_encode(&f.snap, enc, used) == used);
			CHECK(memcmp(enc, copy, used) == 0);
			free(enc);
		} else if (f.kind == REPL_SNAP_END) {
			uint8_t e[REPL_SNAPEND_SIZE];

			CHECK(used == REPL_SNAPEND_SIZE);
			repl_wire_snapend_encode(&f.end, e);
			CHECK(memcmp(e, copy, used) == 0);
		} else {
			uint8_t hb[REPL_HEARTBEAT_SIZE];

			CHECK(f.kind == REPL_HEARTBEAT && used == REPL_HEARTBEAT_SIZE);
			repl_wire_heartbeat_encode(f.last_seq, f.time_ms, hb);
			CHECK(memcmp(hb, copy, used) == 0);
		}
		for (size_t k = 0; k < used && k < 64; k++) {
			struct repl_frame g;
			size_t u2;

			CHECK(repl_wire_decode(copy, k, &lim, &g, &u2, &why) == 0);
		}
		free(copy);
		off += used;
	}
	return 0;
}
