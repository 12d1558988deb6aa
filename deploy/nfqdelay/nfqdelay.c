/*
 * nfqdelay - hold every packet of one NFQUEUE queue for a fixed time, then
 * let it pass.  A one-way delay line for the lab (deploy/lab --netns) on
 * kernels without the netem qdisc.
 *
 *	iptables -t mangle -A POSTROUTING -o up0 \
 *		-j NFQUEUE --queue-num 1 --queue-bypass
 *	nfqdelay --queue 1 --delay-ms 10
 *
 * How it works.  The queue is bound in "meta" copy mode: the kernel keeps
 * the packet and sends only its id, so this program never copies packet
 * data.  Each id is put in a ring with its due time (arrival + delay); the
 * loop sleeps in ppoll() until the oldest one is due and then gives it
 * NF_ACCEPT.  The delay is the same for every packet, so due times are in
 * arrival order and packets leave in the order they came.
 *
 * Bounded memory.  The ring holds at most --limit packets (default 10000);
 * the kernel queue, which holds the packets themselves, is limited to that
 * plus 1024 (those sent to us but not read yet).  A packet that arrives
 * while the ring is full is not held: with --overflow accept (the default)
 * it passes at once, without delay (so it may overtake held ones); with
 * --overflow drop it is dropped, as netem drops beyond its limit.  With
 * accept the queue is also fail-open: a packet the kernel cannot hand to us
 * (queue or socket buffer full) passes instead of being dropped.  The
 * iptables rule should say --queue-bypass, so traffic flows while no
 * program is bound (before start, after exit or a crash).
 *
 * SIGTERM or SIGINT: every held packet is accepted at once, in order, the
 * queue is unbound, counters go to stderr, exit status 0.  Exit status 1 is
 * a start-up or run-time failure (message on stderr), 2 a usage error.
 *
 * Needs CAP_NET_ADMIN in the network namespace of the queue.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define DELAY_MAX_MS	60000
#define LIMIT_DEFAULT	10000
#define LIMIT_MAX	1000000
#define RCVBUF_MAX	(16u * 1024 * 1024)
#define KERNEL_HEADROOM	1024	/* kernel queue length beyond --limit */
#define READ_BATCH	256	/* messages read between two releases */

struct held {
	uint32_t	id;
	uint64_t	due_ns;
};

struct delayq {
	struct nfq_q_handle	*qh;
	struct held		*ring;
	uint32_t		 cap;
	uint32_t		 head;		/* oldest held packet */
	uint32_t		 count;
	uint64_t		 delay_ns;
	uint64_t		 now_ns;	/* arrival time of the batch being read */
	int			 overflow_verdict;	/* NF_ACCEPT or NF_DROP */
	/* counters, printed at exit */
	uint64_t		 delayed;
	uint64_t		 overflowed;
	uint64_t		 verdict_errors;
};

static const char usage_text[] =
    "usage: nfqdelay --queue Q --delay-ms MS [--limit N] [--overflow accept|drop]\n"
    "\n"
    "Holds every packet of NFQUEUE queue Q for MS milliseconds (0..60000),\n"
    "then accepts it; packets leave in the order they came.  At most N packets\n"
    "(default 10000, 1..1000000) are held; one more passes at once (accept, the\n"
    "default) or is dropped (drop).  SIGTERM: held packets are accepted, exit 0.\n"
    "Pair it with: iptables ... -j NFQUEUE --queue-num Q --queue-bypass\n";

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A decimal number in [min, max]; 0 on success, -1 if it is not one. */
static int
parse_num(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static void
verdict(struct delayq *dq, uint32_t id, int v)
{
	if (nfq_set_verdict(dq->qh, id, v, 0, NULL) < 0)
		dq->verdict_errors++;
}

/* Give the due packets (all of them if flush) their NF_ACCEPT. */
static void
release(struct delayq *dq, uint64_t now, int flush)
{
	while (dq->count > 0) {
		struct held *h = &dq->ring[dq->head];

		if (!flush && h->due_ns > now)
			break;
		verdict(dq, h->id, NF_ACCEPT);
		dq->head = (dq->head + 1) % dq->cap;
		dq->count--;
	}
}

/* libnetfilter_queue calls this for each packet of a message we read. */
static int
on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *arg)
{
	struct delayq *dq = arg;
	struct nfqnl_msg_packet_hdr *ph;
	uint32_t id;

	ph = nfq_get_msg_packet_hdr(nfa);
	if (ph == NULL)
		return 0;
	id = ntohl(ph->packet_id);
	if (dq->delay_ns == 0) {
		verdict(dq, id, NF_ACCEPT);
		dq->delayed++;
		return 0;
	}
	if (dq->count == dq->cap) {
		dq->overflowed++;
		verdict(dq, id, dq->overflow_verdict);
		return 0;
	}
	dq->ring[(dq->head + dq->count) % dq->cap] = (struct held){
		.id = id,
		.due_ns = dq->now_ns + dq->delay_ns,
	};
	dq->count++;
	dq->delayed++;
	return 0;
}

/* The ppoll() timeout until the oldest packet is due; NULL: none held. */
static struct timespec *
next_timeout(const struct delayq *dq, uint64_t now, struct timespec *ts)
{
	uint64_t wait;

	if (dq->count == 0)
		return NULL;
	wait = dq->ring[dq->head].due_ns > now ? dq->ring[dq->head].due_ns - now : 0;
	ts->tv_sec = (time_t)(wait / 1000000000u);
	ts->tv_nsec = (long)(wait % 1000000000u);
	return ts;
}

/* Read the queued messages, at most READ_BATCH, so that a flood cannot keep
 * due packets waiting.  0: go on; -1: a fatal error (logged). */
static int
read_packets(struct nfq_handle *h, int fd, struct delayq *dq, char *buf, size_t bufsz)
{
	for (int i = 0; i < READ_BATCH; i++) {
		ssize_t n = recv(fd, buf, bufsz, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR || errno == ENOBUFS)
				continue;	/* lost messages passed (fail-open) */
			fprintf(stderr, "nfqdelay: recv: %s\n", strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		dq->now_ns = now_ns();
		nfq_handle_packet(h, buf, (int)n);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "limit", required_argument, NULL, 'l' },
		{ "overflow", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct delayq dq = { .cap = LIMIT_DEFAULT, .overflow_verdict = NF_ACCEPT };
	unsigned long queue = ULONG_MAX, delay_ms = ULONG_MAX, v;
	struct nfq_handle *h;
	struct pollfd pfd[2];
	sigset_t sigs;
	char *buf;
	size_t bufsz = 65536;
	unsigned int rcvbuf;
	uint32_t flags;
	int c, fd, sfd, one = 1, status = 0;

	while ((c = getopt_long(argc, argv, "q:d:l:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			if (parse_num(optarg, 0, 65535, &queue) < 0) {
				fprintf(stderr, "nfqdelay: --queue: \"%s\" is not a number "
				    "from 0 to 65535\n", optarg);
				return 2;
			}
			break;
		case 'd':
			if (parse_num(optarg, 0, DELAY_MAX_MS, &delay_ms) < 0) {
				fprintf(stderr, "nfqdelay: --delay-ms: \"%s\" is not a number "
				    "from 0 to %d\n", optarg, DELAY_MAX_MS);
				return 2;
			}
			break;
		case 'l':
			if (parse_num(optarg, 1, LIMIT_MAX, &v) < 0) {
				fprintf(stderr, "nfqdelay: --limit: \"%s\" is not a number "
				    "from 1 to %d\n", optarg, LIMIT_MAX);
				return 2;
			}
			dq.cap = (uint32_t)v;
			break;
		case 'o':
			if (strcmp(optarg, "accept") == 0)
				dq.overflow_verdict = NF_ACCEPT;
			else if (strcmp(optarg, "drop") == 0)
				dq.overflow_verdict = NF_DROP;
			else {
				fprintf(stderr, "nfqdelay: --overflow: \"%s\" is neither "
				    "accept nor drop\n", optarg);
				return 2;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc || queue == ULONG_MAX || delay_ms == ULONG_MAX) {
		fputs(usage_text, stderr);
		return 2;
	}
	dq.delay_ns = (uint64_t)delay_ms * 1000000u;

	dq.ring = calloc(dq.cap, sizeof(*dq.ring));
	buf = malloc(bufsz);
	if (dq.ring == NULL || buf == NULL) {
		fprintf(stderr, "nfqdelay: out of memory\n");
		return 1;
	}

	/* SIGTERM and SIGINT arrive through a descriptor, between packets. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "nfqdelay: signalfd: %s\n", strerror(errno));
		return 1;
	}

	h = nfq_open();
	if (h == NULL) {
		fprintf(stderr, "nfqdelay: cannot open nfnetlink_queue: %s\n", strerror(errno));
		return 1;
	}
	/* Kernels before 3.8 want the families bound; later ones ignore it. */
	nfq_unbind_pf(h, AF_INET);
	nfq_bind_pf(h, AF_INET);
	nfq_unbind_pf(h, AF_INET6);
	nfq_bind_pf(h, AF_INET6);
	dq.qh = nfq_create_queue(h, (uint16_t)queue, on_packet, &dq);
	if (dq.qh == NULL) {
		fprintf(stderr, "nfqdelay: cannot bind queue %lu: %s (another program on it? "
		    "CAP_NET_ADMIN?)\n", queue, strerror(errno));
		nfq_close(h);
		return 1;
	}
	if (nfq_set_mode(dq.qh, NFQNL_COPY_META, 0) < 0) {
		fprintf(stderr, "nfqdelay: queue %lu: cannot set meta copy mode: %s\n", queue,
		    strerror(errno));
		status = 1;
		goto out;
	}
	/* The kernel's own limit is a backstop above ours (packets it has
	 * sent us but we have not read yet count there too). */
	if (nfq_set_queue_maxlen(dq.qh, dq.cap + KERNEL_HEADROOM) < 0)
		fprintf(stderr, "nfqdelay: queue %lu: cannot set the queue length: %s\n", queue,
		    strerror(errno));
	flags = NFQA_CFG_F_GSO;
	if (dq.overflow_verdict == NF_ACCEPT)
		flags |= NFQA_CFG_F_FAIL_OPEN;
	if (nfq_set_queue_flags(dq.qh, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO, flags) < 0)
		fprintf(stderr, "nfqdelay: queue %lu: cannot set the queue flags: %s\n",
		    queue, strerror(errno));

	fd = nfq_fd(h);
	/* Room for a full ring of notifications (a few hundred bytes each). */
	rcvbuf = dq.cap * 512u;		/* at most 512e6: no overflow */
	if (rcvbuf > RCVBUF_MAX)
		rcvbuf = RCVBUF_MAX;
	nfnl_rcvbufsiz(nfq_nfnlh(h), rcvbuf);
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));

	fprintf(stderr, "nfqdelay: queue=%lu delay_ms=%lu limit=%u overflow=%s: running\n",
	    queue, delay_ms, dq.cap, dq.overflow_verdict == NF_ACCEPT ? "accept" : "drop");

	pfd[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	for (;;) {
		struct timespec ts, *tsp;
		int n;

		tsp = next_timeout(&dq, now_ns(), &ts);
		n = ppoll(pfd, 2, tsp, NULL);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "nfqdelay: ppoll: %s\n", strerror(errno));
			status = 1;
			break;
		}
		if (n > 0 && pfd[1].revents != 0) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				fprintf(stderr, "nfqdelay: queue=%lu: %s, releasing %u held "
				    "packet(s)\n", queue, strsignal((int)si.ssi_signo), dq.count);
			break;
		}
		if (n > 0 && pfd[0].revents != 0 &&
		    read_packets(h, fd, &dq, buf, bufsz) < 0) {
			status = 1;
			break;
		}
		release(&dq, now_ns(), 0);
	}
out:
	release(&dq, 0, 1);
	nfq_destroy_queue(dq.qh);
	nfq_close(h);
	fprintf(stderr, "nfqdelay: queue=%lu delayed=%llu overflow=%llu verdict_errors=%llu: "
	    "exit\n", queue, (unsigned long long)dq.delayed, (unsigned long long)dq.overflowed,
	    (unsigned long long)dq.verdict_errors);
	free(dq.ring);
	free(buf);
	close(sfd);
	return status;
}
