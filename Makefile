# postern build. `make` builds build/postern; `make test` builds an
# ASan+UBSan variant under build/asan and runs every test; `make run` starts
# the server on the embedded default configuration under ./run/.

CC ?= cc
PKGS := openssl sqlite3 zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lssl -lcrypto -lsqlite3 -lz)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE -Isrc $(WARN) $(PKG_CFLAGS) -MMD -MP
LIBS := $(PKG_LIBS) -lcrypt -largon2 -lpthread

RELEASE_CFLAGS := -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_CFLAGS := -O1 -g $(SAN_FLAGS)

LIB_SRC := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
IMAPLOAD_SRC := bench/imapload.c bench/genmail.c $(wildcard bench/il_*.c)
BENCH_SRC := $(filter-out $(IMAPLOAD_SRC),$(wildcard bench/*.c))

REL_OBJ := $(LIB_SRC:%.c=build/obj/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=build/asan/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

.PHONY: all test unit run fuzz clean install bench
# Keep test objects: make would otherwise delete them after the run and
# print its rm line after the summary.
.SECONDARY:

all: build/postern

build/postern: build/obj/src/main.o build/libpostern.a
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS)

build/libpostern.a: $(REL_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

build/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/postern: build/asan/obj/src/main.o build/asan/libpostern.a
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

build/asan/libpostern.a: $(ASAN_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

build/asan/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/tests/%: build/asan/obj/tests/unit/%.o build/asan/libpostern.a
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

unit: $(UNIT_BIN)

# Benchmarks: built by `make bench`, run by hand (never by tests).
BENCH_BIN := $(BENCH_SRC:bench/%.c=build/bench/%)
build/bench/%: bench/%.c build/libpostern.a
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(CFLAGS) -o $@ $^ $(LIBS)

# The load generator: a client only, it links none of the server.
build/imapload: $(IMAPLOAD_SRC) bench/il.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(CFLAGS) -o $@ $(IMAPLOAD_SRC) $(PKG_LIBS)

# Side by side with Dovecot; writes bench/RESULTS.md (see bench/compare.sh).
bench: $(BENCH_BIN) build/postern build/imapload
	bash bench/compare.sh

# Every test: C unit tests, protocol tests against a live server, interop
# tests with real clients. Ends with the line "N passed, M failed".
test: build/asan/postern $(UNIT_BIN)
	python3 tests/run.py --build build/asan

run: build/postern
	sh scripts/run-demo.sh build/postern

FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_LIB_SRC := $(filter-out src/cli/% src/main.c,$(LIB_SRC))

build/fuzz/%: fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(@D)
	clang -std=c17 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
		name=$$(basename $$f); mkdir -p build/fuzz/corpus-$$name; \
		echo "fuzzing $$name for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 build/fuzz/corpus-$$name fuzz/corpus/$$name || exit 1; \
	done

# `make install PREFIX=/usr DESTDIR=/tmp/pkg`: the binary, the systemd unit
# (ExecStart pointing at the installed binary), the man pages, the docs
# and the Grafana dashboard and Prometheus alerts. INSTALL_BIN picks which
# build to install (tests install build/asan/postern into a temporary
# DESTDIR).
PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/postern
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL_BIN ?= build/postern
install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(SBINDIR)/postern
	install -m 0644 man/postern.8 $(DESTDIR)$(MANDIR)/man8/postern.8
	install -m 0644 man/postern.conf.5 $(DESTDIR)$(MANDIR)/man5/postern.conf.5
	sed 's|/usr/local/sbin/postern|$(SBINDIR)/postern|' dist/postern.service > $(DESTDIR)$(UNITDIR)/postern.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/postern.service
	install -m 0644 README.md docs/*.md dist/grafana-dashboard.json dist/prometheus-alerts.yml $(DESTDIR)$(DOCDIR)/

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
