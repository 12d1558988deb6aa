/*
 * store_upgrade.c - bringing an environment written by an older popnode
 * up to the current format, at open, in the same write transaction that
 * opens the sub-databases (so an interrupted upgrade leaves the old
 * format intact, and the next open simply does it again).
 *
 * Format 1 -> 2 (IMAP): mailbox records gain an unseen counter and lose
 * the subscribed byte, which becomes an entry of the new `subs`
 * database.  The new databases (subs, keywords, vanished, bodymeta) are
 * created empty by the open; unseen is counted from the message records.
 *
 * Format 2 -> 3 (directory across POPs): the dirrecs and dirseq databases
 * are created empty by the open; every user without a directory record
 * gets one with version 1 and this node as origin, so the users it
 * already had are shared with its peers (a tie between two POPs that
 * both had the name goes to the greater POP id, as any tie does).
 *
 * Generation (no format change: an added meta key, which older code
 * ignores): every store has meta "generation", 16 random bytes, written
 * when the store is created (docs/replication.md "Generation and the
 * lost disk").  A store of an older popnode gets one at its next open,
 * except a mirror store (it has "applied/<origin>"): the generation of
 * the data it holds is its origin's, which it learns from the origin's
 * next stream, so it stays unknown until then.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "store_private.h"

/* Messages of (userid, mboxid) without \Seen. */
static int count_unseen(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
			uint32_t *unseen_r)
{
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	MDB_cursor_op how = MDB_SET_RANGE;
	MDB_cursor *cur;
	struct store_msg m;
	uint32_t n = 0;
	int rc;

	msg_key(kb, userid, mboxid, 0);
	if ((rc = mdb_cursor_open(txn, st->dbi[DBI_MESSAGES], &cur)) != 0)
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if (k.mv_size != MSG_KEY_LEN || memcmp(k.mv_data, kb, 8) != 0)
			break;
		if (msg_rec_decode(&v, &m, NULL, NULL) != STORE_OK) {
			rc = -1;
			break;
		}
		if (!(m.flags & STORE_F_SEEN))
			n++;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	*unseen_r = n;
	return 0;
}

/* The smallest 8-byte big-endian key above key; false if none. */
static bool key_next(uint8_t key[MBOX_KEY_LEN])
{
	int i;

	for (i = MBOX_KEY_LEN - 1; i >= 0; i--) {
		if (++key[i] != 0)
			return true;
	}
	return false;
}

static int upgrade_1_to_2(struct store *st, MDB_txn *txn, const char **error_r)
{
	uint8_t seek[MBOX_KEY_LEN], rec[MBOX_REC_MAX], nk[MBOXNAME_KEY_MAX];
	uint8_t sub[1 + STORE_MBOX_MAX];
	MDB_val k, v;
	MDB_cursor *cur;
	struct store_mailbox mb;
	unsigned done = 0;
	int rc;

	memset(seek, 0, sizeof(seek));
	/* Every step seeks with a fresh cursor, closed before the writes:
	 * a cursor's cached page is not trusted across puts made through
	 * another path (LMDB 0.9 returned stale keys here). */
	for (;;) {
		uint32_t userid;
		size_t len, nklen;
		bool v2;

		if ((rc = mdb_cursor_open(txn, st->dbi[DBI_MAILBOXES], &cur)) != 0)
			break;
		k.mv_size = sizeof(seek);
		k.mv_data = seek;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size != MBOX_KEY_LEN)
			rc = -1;
		if (rc == 0) {
			memcpy(seek, k.mv_data, sizeof(seek));
			v2 = v.mv_size > 0 && *(const uint8_t *)v.mv_data == STORE_REC_V2;
			if (!v2 && mbox_rec_decode_v1(&v, &mb) != STORE_OK)
				rc = -1;
		}
		mdb_cursor_close(cur);
		if (rc != 0)
			break;
		if (v2)
			goto next;	/* already converted */
		userid = be32_get(seek);
		if ((rc = count_unseen(st, txn, userid, mb.id, &mb.unseen)) != 0)
			break;
		len = mbox_rec_encode(&mb, rec);
		k.mv_size = sizeof(seek);
		k.mv_data = seek;
		v.mv_size = len;
		v.mv_data = rec;
		if ((rc = mdb_put(txn, st->dbi[DBI_MAILBOXES], &k, &v, 0)) != 0)
			break;
		if (mb.subscribed) {
			nklen = mboxname_key(nk, userid, mb.name);
			len = strlen(mb.name);
			sub[0] = STORE_REC_V1;
			memcpy(sub + 1, mb.name, len);
			k.mv_size = nklen;
			k.mv_data = nk;
			v.mv_size = 1 + len;
			v.mv_data = sub;
			if (nklen == 0 || (rc = mdb_put(txn, st->dbi[DBI_SUBS], &k, &v, 0)) != 0) {
				rc = rc != 0 ? rc : -1;
				break;
			}
		}
		done++;
next:
		if (!key_next(seek)) {
			rc = MDB_NOTFOUND;
			break;
		}
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc == -1)
		*error_r = "store: corrupt mailbox record during format upgrade";
	if (rc == 0)
		log_info("store.upgrade", "from=1 to=2 mailboxes=%u", done);
	return rc;
}

static int upgrade_2_to_3(struct store *st, MDB_txn *txn, const char **error_r)
{
	char name[STORE_NAME_MAX];
	struct store_dirrec d;
	MDB_cursor *cur;
	MDB_val k, v;
	unsigned done = 0;
	size_t len = 0;
	int rc, err;

	/* As above: a fresh cursor per step, closed before the writes. */
	for (;;) {
		if ((rc = mdb_cursor_open(txn, st->dbi[DBI_USERS], &cur)) != 0)
			return rc;
		if (len == 0) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		} else {
			k.mv_size = len;
			k.mv_data = name;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			if (rc == 0 && k.mv_size == len && memcmp(k.mv_data, name, len) == 0)
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		if (rc == 0 && (k.mv_size == 0 || k.mv_size >= sizeof(name)))
			rc = -1;
		if (rc == 0) {
			len = k.mv_size;
			memcpy(name, k.mv_data, len);
			name[len] = '\0';
		}
		mdb_cursor_close(cur);
		if (rc != 0)
			break;
		err = store_dir_load(st, txn, name, &d);
		if (err == STORE_OK)
			continue;	/* already has one */
		if (err == STORE_NOTFOUND) {
			struct store_user u;

			memset(&d, 0, sizeof(d));
			d.version = 1;
			memcpy(d.origin, st->origin, st->origin_len);
			err = store_load_user(st, txn, name, &u);
			if (err == STORE_OK) {
				memcpy(d.home, u.home, sizeof(d.home));
				err = store_dir_put(st, txn, name, &d);
			}
		}
		if (err != STORE_OK) {
			rc = -1;
			break;
		}
		done++;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc == -1)
		*error_r = "store: cannot write directory records during format upgrade";
	if (rc == 0)
		log_info("store.upgrade", "from=2 to=3 users=%u", done);
	return rc;
}

int store_upgrade(struct store *st, MDB_txn *txn, unsigned from, const char **error_r)
{
	int rc = 0;

	if (from < 1 || from > 2) {
		*error_r = "store: unknown data format";
		return -1;
	}
	if (from == 1)
		rc = upgrade_1_to_2(st, txn, error_r);
	if (rc == 0)
		rc = upgrade_2_to_3(st, txn, error_r);
	return rc;
}

int store_generation_init(struct store *st, MDB_txn *txn, bool fresh)
{
	MDB_val k = { .mv_size = strlen(META_GENERATION), .mv_data = META_GENERATION }, v;
	char ak[APPLIED_KEY_MAX];
	size_t plen = sizeof(META_APPLIED_PREFIX) - 1;
	uint8_t gen[STORE_GEN_LEN];
	size_t got = 0;
	int rc;

	rc = mdb_get(txn, st->dbi[DBI_META], &k, &v);
	if (rc != MDB_NOTFOUND)
		return rc;	/* has one (or a read error) */
	if (!fresh) {
		MDB_val ka = { .mv_data = ak };

		memcpy(ak, META_APPLIED_PREFIX, plen);
		memcpy(ak + plen, st->origin, st->origin_len);
		ka.mv_size = plen + st->origin_len;
		rc = mdb_get(txn, st->dbi[DBI_META], &ka, &v);
		if (rc == 0)
			return 0;	/* a mirror: unknown until its origin says */
		if (rc != MDB_NOTFOUND)
			return rc;
	}
	while (got < sizeof(gen)) {
		ssize_t r = getrandom(gen + got, sizeof(gen) - got, 0);

		if (r < 0 && errno != EINTR)
			return EIO;
		if (r > 0)
			got += (size_t)r;
	}
	v.mv_size = sizeof(gen);
	v.mv_data = gen;
	rc = mdb_put(txn, st->dbi[DBI_META], &k, &v, 0);
	if (rc == 0 && !fresh)
		log_info("store.generation", "origin=%s created=existing_store", st->origin);
	return rc;
}
