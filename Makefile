# assetd - build, run, test, install.
#
#   make            build assetd and assetctl
#   make run        install what is missing, build, start the embedded demo
#   make check      install what the tests need, build, run every test
#   make bench      run the benchmarks beside their peers (tests/bench)
#   make fuzz       run each fuzz target for FUZZ_SECONDS
#   make valgrind   the daemon under valgrind, one session of each protocol
#   make install    PREFIX=/usr/local DESTDIR=
#
# Every .c under store/, http/, sshd/ goes into libassetd.a; new files need
# no change here. SANITIZE=1 builds with ASan and UBSan.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
SBINDIR = $(PREFIX)/sbin
MANDIR = $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system

CC ?= cc
PKGS = libssh libcurl libcrypto sqlite3 libarchive liblzma libzstd zlib libmicrohttpd vips libexif
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN = -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2
HARDEN = -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fPIE
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DASSETD_VERSION='"$(VERSION)"' \
	-DASSETD_SYSCONFDIR='"$(SYSCONFDIR)"' \
	-Iinclude $(WARN) $(HARDEN) $(CFLAGS) $(PKG_CFLAGS) -pthread
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now -pthread $(LDFLAGS)
LIBS = $(PKG_LIBS) -lm

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
ALL_LDFLAGS += -fsanitize=address,undefined
BUILD = build/san
else
BUILD = build/rel
endif

LIB_SRC := $(sort $(wildcard store/*.c http/*.c sshd/*.c sshd/rsync/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all run check unit tools deps deps-test deps-bench install clean bench fuzz fuzz-build valgrind

all: assetd assetctl

assetd: $(BUILD)/assetd
	ln -sf $< $@
assetctl: $(BUILD)/assetctl
	ln -sf $< $@

$(BUILD)/%.o: %.c $(wildcard include/*.h store/*.h http/*.h sshd/*.h sshd/rsync/*.h) | $(BUILD)/.dirs
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/.dirs:
	@mkdir -p $(BUILD)/tests $(BUILD)/tools
	@touch $@

$(BUILD)/libassetd.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/assetd: $(BUILD)/assetd.o $(BUILD)/libassetd.a
	@echo "  LD      $@"
	@$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/assetctl: $(BUILD)/assetctl.o $(BUILD)/libassetd.a
	@echo "  LD      $@"
	@$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libassetd.a | $(BUILD)/.dirs
	@echo "  TEST    $@"
	@$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libassetd.a | $(BUILD)/.dirs
	@echo "  TOOL    $@"
	@$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

unit: $(UNIT_BIN)
tools: $(TOOL_BIN)

# ---- dependencies -----------------------------------------------------
deps:
	@sh etc/deps.sh build
deps-test:
	@sh etc/deps.sh test
deps-bench:
	@sh etc/deps.sh bench

# ---- the two commands ---------------------------------------------------
run: deps
	@$(MAKE) --no-print-directory all
	@sh etc/run-demo.sh

check: deps-test
	@$(MAKE) --no-print-directory all unit tools fuzz-build
	@BUILD=$(BUILD) FUZZ_BUILD=$(FUZZ_BUILD) sh tests/run.sh

bench: deps-bench
	@$(MAKE) --no-print-directory all tools
	@ASSETD_BUILD=$(BUILD) ONLY=$(ONLY) QUICK=$(QUICK) \
		/usr/bin/python3 tests/bench/bench.py

# ---- fuzzing (libFuzzer): the library rebuilt with clang, instrumented --
FUZZ_SECONDS ?= 60
FUZZ_BUILD = build/fuzz
FUZZ_CC = clang
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -DASSETD_VERSION='"$(VERSION)"' \
	-DASSETD_FUZZ -Iinclude -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
	-fsanitize=fuzzer-no-link $(PKG_CFLAGS) -pthread
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)

$(FUZZ_BUILD)/%.o: %.c $(wildcard include/*.h store/*.h http/*.h sshd/*.h sshd/rsync/*.h)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/libassetd.a: $(FUZZ_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libassetd.a
	@echo "  FUZZ    $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: deps-test
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh

# ---- valgrind: not in check (minutes under valgrind) ----------------------
valgrind: deps-test
	@$(MAKE) --no-print-directory all tools
	@ASSETD_BUILD=$(BUILD) /usr/bin/python3 -m pytest -q -s \
		-p no:cacheprovider tests/valgrind

# ---- install ------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(SYSCONFDIR)/assetd $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BUILD)/assetd $(DESTDIR)$(SBINDIR)/assetd
	install -m 0755 $(BUILD)/assetctl $(DESTDIR)$(BINDIR)/assetctl
	install -m 0644 man/assetd.8 man/assetctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/assetd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 etc/assetd.conf.sample $(DESTDIR)$(SYSCONFDIR)/assetd/
	sed 's|@SBINDIR@|$(SBINDIR)|g' etc/assetd.service \
		>$(DESTDIR)$(UNITDIR)/assetd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/assetd.service

clean:
	rm -rf build assetd assetctl
