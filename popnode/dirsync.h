/*
 * dirsync.h - the user directory across POPs.
 *
 * Every POP holds the whole directory (store.h, "directory across POPs":
 * versioned records, last writer wins, tombstones).  A POP pulls from
 * each peer what changed there since its watermark (GET /v1/dir), when
 * the link to the peer comes up, when the peer says it changed (POST
 * /v1/dir/changed, sent within DIRSYNC_NOTICE_MS of any change here), and
 * every DIRSYNC_PULL_EVERY seconds as a safety net.  Records a POP
 * applied get its own next local sequence, so they are relayed to POPs
 * that cannot reach their origin.  Wire format: docs/link.md.
 */
#ifndef POPNODE_DIRSYNC_H
#define POPNODE_DIRSYNC_H

#include <stdint.h>

struct node;

#define DIRSYNC_NOTICE_MS 200
#define DIRSYNC_PULL_EVERY 30
#define DIRSYNC_BATCH 2048	/* records per GET answer */

/* Register the handlers and start the timers.  0, or -1 (out of memory). */
int dirsync_init(struct node *n);
/* Stop: timers and streams go (before link_free). */
void dirsync_fini(struct node *n);
/* Free what is left (after store_close ran the last apply's callback). */
void dirsync_free(struct node *n);

/* For status: the peer's lseq up to which its records are applied here. */
uint64_t dirsync_peer_lseq(struct node *n, const char *peer);

#endif
