# popnode - one non-recursive Makefile.  Run ./configure first.
#
#   make            bin/popnode and bin/popctl
#   make check      unit tests (cmocka), integration tests (pytest), fuzz smoke
#   make unit | integration | fuzz
#   make run        start a dev node with state in ./dev
#   make bench      benchmark table (LMTP, POP3, IMAP, memory; Dovecot side by side if installed),
#                   then the roaming table (two POPs: direct at the home POP vs through another),
#                   then anycast convergence (root: the netns lab with BIRD; skipped otherwise),
#                   then replication (mirror lag under load, catch-up, snapshot; netns as root)
#   make bench-roaming  the roaming table alone
#   make bench-anycast  the anycast convergence table alone
#   make bench-replication  the replication tables alone
#   make install    binaries, docs, example config, systemd unit under $(PREFIX)

-include config.mk
ifeq ($(CFLAGS),)
$(error config.mk missing or empty: run ./configure first)
endif

O := build/obj
BIN := bin

# Every module source except the two programs' entry points goes into one
# static library; programs and tests link it, so each test pulls in only
# the objects it uses.
LIB_SRCS := $(filter-out popnode/main.c popnode/popctl.c,$(wildcard popnode/*.c imapproxy/*.c replicator/*.c anycast/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)
LIB := build/libpopnode.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

INC := -Ipopnode -Iimapproxy -Ireplicator -Ianycast

all: $(BIN)/popnode $(BIN)/popctl

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN)/popnode: $(O)/popnode/main.o $(LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BIN)/popctl: $(O)/popnode/popctl.o $(LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# deploy/nfqdelay: the lab's packet-delay tool (NFQUEUE).  Part of "all"
# only where configure found libnetfilter_queue (HAVE_NFQ=1 in config.mk).
ifeq ($(HAVE_NFQ),1)
all: $(BIN)/nfqdelay
endif

nfqdelay: $(BIN)/nfqdelay

$(BIN)/nfqdelay: deploy/nfqdelay/nfqdelay.c config.mk
ifneq ($(HAVE_NFQ),1)
	@echo "nfqdelay needs libnetfilter_queue (Debian libnetfilter-queue-dev), which" \
		"configure did not find: ./configure --install-deps" >&2; exit 1
endif
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(NFQ_CFLAGS) $(LDFLAGS) -o $@ $< $(NFQ_LIBS)

.PHONY: nfqdelay

build/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CMOCKA_CFLAGS) $(INC) -o $@ $< $(LIB) $(LDFLAGS) $(LIBS) $(CMOCKA_LIBS)

# Helper programs the integration tests drive (tests/integration/*.c).
INTEG_BINS := build/integration/anycast_addr_probe build/integration/bird_probe

build/integration/%: tests/integration/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC) -o $@ $< $(LIB) $(LDFLAGS) $(LIBS)

# ---- tests ---------------------------------------------------------------

PYTEST ?= pytest-3
PYTEST_ARGS ?=

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; \
	if [ $$fail -ne 0 ]; then echo "unit tests FAILED"; exit 1; fi

integration: all $(INTEG_BINS)
	POPNODE_BIN=$(CURDIR)/$(BIN)/popnode POPCTL_BIN=$(CURDIR)/$(BIN)/popctl \
		$(PYTEST) -p no:cacheprovider -q $(PYTEST_ARGS) tests/integration

# libFuzzer targets: each fuzz_NAME.c is built with clang against the
# parser sources listed here, then run for FUZZ_SECONDS from its corpus.
FUZZ_SECONDS ?= 15
FUZZ_TARGETS := lmtp pop3 config imap mime dirwire bird repl decode noc forward
FUZZ_lmtp_SRCS := popnode/lmtp_parse.c
FUZZ_pop3_SRCS := imapproxy/pop3_parse.c
FUZZ_bird_SRCS := anycast/bird_parse.c anycast/bird_parse_cmd.c anycast/bird_parse_reply.c
FUZZ_repl_SRCS := replicator/repl_wire.c
FUZZ_noc_SRCS := replicator/repl_noc_wire.c popnode/control_proto.c popnode/directory.c
FUZZ_noc_LIBS := -levent -lcrypt -lcrypto
FUZZ_config_SRCS := popnode/config.c popnode/config_check.c popnode/config_util.c \
	popnode/log.c anycast/prefix.c
FUZZ_mime_SRCS := popnode/mime_parse.c popnode/mime_value.c popnode/mime_addr.c \
	popnode/mime_blob.c imapproxy/imap_body.c
FUZZ_dirwire_SRCS := popnode/dir_wire.c popnode/directory.c
FUZZ_dirwire_LIBS := -lcrypt -lcrypto
FUZZ_forward_SRCS := popnode/forward_wire.c popnode/directory.c
FUZZ_forward_LIBS := -lcrypt -lcrypto
FUZZ_imap_SRCS := imapproxy/imap_arena.c imapproxy/imap_utf7.c imapproxy/imap_seqset.c \
	imapproxy/imap_date.c imapproxy/imap_reader.c imapproxy/imap_parse.c \
	imapproxy/imap_parse_tok.c imapproxy/imap_parse_cmd.c imapproxy/imap_fetch_parse.c \
	imapproxy/imap_search_parse.c imapproxy/imap_search.c imapproxy/imap_decode.c
FUZZ_decode_SRCS := imapproxy/imap_decode.c imapproxy/imap_search.c imapproxy/imap_arena.c \
	imapproxy/imap_seqset.c imapproxy/imap_date.c popnode/mime_parse.c popnode/mime_value.c \
	popnode/mime_addr.c popnode/mime_blob.c
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $(INC)

.SECONDEXPANSION:
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_$$*_SRCS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_$*_SRCS) $(FUZZ_$*_LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t ($(FUZZ_SECONDS)s)"; mkdir -p build/fuzz/corpus_$$t; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=0 \
			build/fuzz/corpus_$$t tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log \
			|| { tail -40 build/fuzz/$$t.log; exit 1; }; \
		tail -1 build/fuzz/$$t.log; \
	done

check: all unit integration fuzz

# ---- running -------------------------------------------------------------

run: all
	$(BIN)/popnode --dev dev

bench: all
	/usr/bin/python3 tests/bench/bench.py --popnode $(BIN)/popnode --popctl $(BIN)/popctl
	/usr/bin/python3 tests/bench/roaming.py --popnode $(BIN)/popnode --popctl $(BIN)/popctl
	/usr/bin/python3 tests/bench/anycast.py --popnode $(BIN)/popnode --popctl $(BIN)/popctl
	/usr/bin/python3 tests/bench/replication.py --popnode $(BIN)/popnode --popctl $(BIN)/popctl

bench-roaming: all
	/usr/bin/python3 tests/bench/roaming.py --popnode $(BIN)/popnode --popctl $(BIN)/popctl

bench-anycast: all
	/usr/bin/python3 tests/bench/anycast.py --popnode $(BIN)/popnode --popctl $(BIN)/popctl

bench-replication: all
	/usr/bin/python3 tests/bench/replication.py --popnode $(BIN)/popnode --popctl $(BIN)/popctl

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/doc/popnode $(DESTDIR)$(PREFIX)/share/popnode \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BIN)/popnode $(DESTDIR)$(PREFIX)/sbin/popnode
	install -m 755 $(BIN)/popctl $(DESTDIR)$(PREFIX)/bin/popctl
	install -m 644 docs/*.md README.md $(DESTDIR)$(PREFIX)/share/doc/popnode/
	install -m 644 deploy/examples/popnode.conf $(DESTDIR)$(PREFIX)/share/popnode/popnode.conf.example
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' deploy/systemd/popnode.service.in \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/popnode.service

clean:
	rm -rf build $(BIN)

.PHONY: all unit integration fuzz check run bench bench-roaming bench-anycast bench-replication \
	install clean
.SECONDARY:

-include $(LIB_OBJS:.o=.d) $(O)/popnode/main.d $(O)/popnode/popctl.d
