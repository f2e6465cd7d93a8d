# barkeep — lend GPU VRAM windows (VFIO dma-bufs) to unprivileged software.
# make            build everything into build/
# make check      host unit tests (plain and ASan+UBSan), then the VM suites
# make demo       the whole flow in a VM, explained
# make SAN=1      sanitizer build into build-san/

PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?= 0
PKGS    := libevent libsystemd libdrm gbm inih

ifeq ($(SAN),1)
B       ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
B       ?= build
SANFLAGS :=
endif

CC      ?= gcc
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wformat-truncation \
	   -Wpointer-arith -Wmissing-prototypes -Wstrict-prototypes -Wundef \
	   -Wvla -Wcast-align -Wwrite-strings -Wno-missing-field-initializers \
	   -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -fPIC -D_GNU_SOURCE -I. $(SANFLAGS) \
	   $(shell pkg-config --cflags $(PKGS))
LDFLAGS += $(SANFLAGS)
LIBS    := $(shell pkg-config --libs $(PKGS)) -lpthread

SONAME  := libbarkeep.so.0
VERSION := 0.1.0

common_src := $(wildcard common/*.c) $(wildcard proto/*.c)
daemon_src := $(filter-out daemon/main.c,$(wildcard daemon/*.c daemon/backends/*.c daemon/transports/*.c))
lib_src    := $(wildcard client/lib/*.c)
ctl_src    := $(wildcard client/ctl/*.c)
testlib_src := $(wildcard tests/lib/*.c)
unit_src   := $(wildcard tests/unit/test_*.c)
vmprog_src := $(wildcard tests/vm/progs/*.c)
bench_src  := $(wildcard bench/*.c)
soak_src   := $(wildcard tests/soak/*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

common_obj := $(call obj,$(common_src))
daemon_obj := $(call obj,$(daemon_src))
lib_obj    := $(call obj,$(lib_src))
testlib_obj := $(call obj,$(testlib_src))

unit_bin   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(unit_src))
vmprog_bin := $(patsubst tests/vm/progs/%.c,$(B)/tests/vm/%,$(vmprog_src))
bench_bin  := $(patsubst bench/%.c,$(B)/bench/%,$(bench_src))

ALL := $(B)/barkeepd $(B)/$(SONAME) $(B)/barkeepctl $(unit_bin) $(vmprog_bin) $(bench_bin) \
       $(B)/tests/soak/soak \
       $(B)/libbarkeep.pc $(B)/barkeep-present

all: $(ALL)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libcommon.a: $(common_obj)
	$(AR) rcs $@ $^

$(B)/barkeepd: $(B)/obj/daemon/main.o $(daemon_obj) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/$(SONAME): $(lib_obj) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=client/lib/libbarkeep.map \
		-o $@ $(lib_obj) $(B)/libcommon.a $(LIBS)
	ln -sf $(SONAME) $(B)/libbarkeep.so

$(B)/barkeepctl: $(call obj,$(ctl_src)) $(B)/$(SONAME) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(ctl_src)) $(B)/libcommon.a -L$(B) -lbarkeep \
		-Wl,-rpath,'$$ORIGIN' $(LIBS)

# barkeep-present (client/present), the Wayland example: the protocol code
# comes from the host's wayland-protocols through wayland-scanner. It links
# libbarkeep's objects and only the libraries it uses, so that it also runs
# in the compositor suite's sid root, which has no libevent or inih.
WL_PROTOCOLS := $(shell pkg-config --variable=pkgdatadir wayland-protocols)
WL_SCANNER   := $(shell pkg-config --variable=wayland_scanner wayland-scanner)
wl_xml_linux-dmabuf-unstable-v1 := $(WL_PROTOCOLS)/unstable/linux-dmabuf/linux-dmabuf-unstable-v1.xml
wl_xml_xdg-shell := $(WL_PROTOCOLS)/stable/xdg-shell/xdg-shell.xml
present_proto := linux-dmabuf-unstable-v1 xdg-shell
present_hdr   := $(patsubst %,$(B)/gen/%-client-protocol.h,$(present_proto))
present_obj   := $(call obj,$(wildcard client/present/*.c)) \
		 $(patsubst %,$(B)/obj/gen/%-protocol.o,$(present_proto))
PRESENT_PKGS  := wayland-client libdrm gbm
.SECONDARY: $(patsubst %,$(B)/gen/%-protocol.c,$(present_proto))

.SECONDEXPANSION:
$(B)/gen/%-client-protocol.h: $$(wl_xml_$$*)
	@mkdir -p $(dir $@)
	$(WL_SCANNER) client-header $< $@
$(B)/gen/%-protocol.c: $$(wl_xml_$$*)
	@mkdir -p $(dir $@)
	$(WL_SCANNER) private-code $< $@
$(B)/obj/gen/%-protocol.o: $(B)/gen/%-protocol.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(B)/obj/client/present/%.o: CFLAGS += -I$(B)/gen $(shell pkg-config --cflags wayland-client)
$(call obj,$(wildcard client/present/*.c)): | $(present_hdr)

$(B)/barkeep-present: $(present_obj) $(lib_obj) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -Wl,--as-needed -o $@ $^ $(shell pkg-config --libs $(PRESENT_PKGS))

# Unit tests see every internal object: they drive the core directly.
$(B)/tests/%: $(B)/obj/tests/unit/%.o $(daemon_obj) $(lib_obj) $(testlib_obj) $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/vm/%: $(B)/obj/tests/vm/progs/%.o $(lib_obj) $(testlib_obj) $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The chaos soak (tests/soak): one program of several files, run in the guest.
$(B)/tests/soak/soak: $(call obj,$(soak_src)) $(lib_obj) $(testlib_obj) $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/bench/%: $(B)/obj/bench/%.o $(lib_obj) $(testlib_obj) $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/libbarkeep.pc: client/lib/libbarkeep.pc.in
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# ---- tests -------------------------------------------------------------
.PHONY: bench all check check-unit check-san check-vm vm-kernel kmod demo clean install

check-unit: $(unit_bin) $(B)/barkeepd
	@tests/run-unit $(unit_bin)
	@BARKEEP_BUILD=$(abspath $(B)) tests/check-units

check-san:
	$(MAKE) SAN=1 check-unit

check-vm: all
	tests/vm/fetch-kernel
	tests/kmod/build
	kernel-patches/build
	tests/vm/selftest
	tests/vm/run-suites

# The VM suites again with barkeepd, libbarkeep, barkeepctl and the guest
# programs from build-san/ (ASan+UBSan): a report fails the suite's checks.
.PHONY: check-vm-san
check-vm-san: all
	$(MAKE) SAN=1 all
	tests/vm/fetch-kernel
	tests/kmod/build
	kernel-patches/build
	BARKEEP_BUILD=$(abspath build-san) tests/vm/run-suites $(SAN_SUITES)

# make check runs the daemon's own suites a second time on the sanitizer
# build (check-vm-san runs them all); SAN_SUITES= (empty) means every suite.
CHECK_SAN_SUITES := 10-barkeepd 15-limits 20-reset 45-sharing 50-dbus 85-soak

# The daemon's suites with barkeepd under valgrind (memcheck): any error, a
# definite or possible leak, or an fd left open at exit fails the suite
# (tests/vm/lib.sh checks the report when it stops the daemon).
VALGRIND_SUITES ?= 10-barkeepd
VALGRIND_CMD    := valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
		   --errors-for-leak-kinds=definite,possible --track-fds=yes
.PHONY: check-vm-valgrind
check-vm-valgrind: all
	tests/vm/fetch-kernel
	tests/kmod/build
	BARKEEP_DAEMON_WRAPPER="$(VALGRIND_CMD)" tests/vm/run-suites $(VALGRIND_SUITES)

check:
	tests/install-deps
	$(MAKE) check-unit
	$(MAKE) check-san
	$(MAKE) check-fuzz
	$(MAKE) check-vm
	$(MAKE) check-vm-san SAN_SUITES="$(CHECK_SAN_SUITES)"
	$(MAKE) check-vm-valgrind

# Looks for the newest sid kernel; everything else uses the cached one.
vm-kernel:
	tests/vm/fetch-kernel --refresh

kmod:
	tests/vm/fetch-kernel
	tests/kmod/build

# The sid root suite 65-compositor chroots weston into, in ~/.cache/barkeep/sid-root
# (tests/vm/run-suites also builds it first, from the suite's vm-prepare line).
.PHONY: compositor-root
compositor-root:
	tests/compositor/mkroot

# vfio-pci-core.ko with the kernel-patches/ series, into build/kernel-patches/.
.PHONY: kernel-patches
kernel-patches:
	tests/vm/fetch-kernel
	kernel-patches/build

demo:
	tests/install-deps
	$(MAKE) all kmod
	tests/vm/demo

# Benchmarks run in the VM and print ratios against limits measured in the same run.
bench: all
	tests/vm/fetch-kernel
	BARKEEP_BUILD=$(abspath $(B)) tests/vm/run -- bench/run

# The chaos soak in a systemd guest for DURATION seconds (tests/soak/README.md);
# make check runs a short one as suite 85-soak.
DURATION ?= 600
.PHONY: soak
soak: all
	tests/vm/fetch-kernel
	tests/kmod/build
	BARKEEP_BUILD=$(abspath $(B)) tests/vm/run --systemd --timeout $$(($(DURATION) + 600)) \
		-- tests/vm/suites/85-soak.sh $(DURATION) --restarts

# ---- fuzzing: libFuzzer targets built with clang into build-fuzz/ ----------
# make fuzz runs each target FUZZ_SECONDS; check-fuzz is make check's short
# pass. Longer runs: tests/fuzz/README.md.
FUZZ_CC         ?= clang
FUZZ_SECONDS    ?= 60
FUZZ_CFLAGS     := -O1 -g -std=gnu11 $(filter-out -Wformat-truncation,$(WARN)) -D_GNU_SOURCE \
		   -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		   -fno-omit-frame-pointer
fuzz_proto_src  := $(wildcard proto/*.c)
fuzz_config_src := daemon/config.c common/log.c
fuzz_fdstore_src := daemon/fdstore.c daemon/config.c common/log.c
fuzz_bin        := build-fuzz/fuzz_proto build-fuzz/fuzz_config build-fuzz/fuzz_fdstore
.PHONY: fuzz check-fuzz

build-fuzz/fuzz_proto: tests/fuzz/fuzz_proto.c tests/fuzz/fuzz.h $(fuzz_proto_src) $(wildcard proto/*.h common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(fuzz_proto_src)

build-fuzz/fuzz_config: tests/fuzz/fuzz_config.c tests/fuzz/fuzz.h $(fuzz_config_src) daemon/config.h \
			$(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(shell pkg-config --cflags inih) -o $@ $< $(fuzz_config_src) \
		$(shell pkg-config --libs inih)

build-fuzz/fuzz_fdstore: tests/fuzz/fuzz_fdstore.c tests/fuzz/fuzz.h $(fuzz_fdstore_src) daemon/fdstore.h daemon/config.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
		$(shell pkg-config --cflags inih libsystemd) -o $@ $< $(fuzz_fdstore_src) \
		$(shell pkg-config --libs inih libsystemd)

fuzz: $(fuzz_bin)
	tests/fuzz/run $(FUZZ_SECONDS) proto config fdstore

check-fuzz: $(fuzz_bin)
	tests/fuzz/run 20 proto config fdstore

# ---- install: PREFIX (default /usr/local), DESTDIR for staging ------------
# The units' /usr paths are rewritten to PREFIX. The man pages are markdown:
# they go to share/doc/barkeep with the example configuration.
BINDIR        ?= $(PREFIX)/bin
LIBDIR        ?= $(PREFIX)/lib
INCLUDEDIR    ?= $(PREFIX)/include
DOCDIR        ?= $(PREFIX)/share/doc/barkeep
UNITDIR       ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR   ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR   ?= $(PREFIX)/lib/tmpfiles.d
UDEVRULESDIR  ?= $(PREFIX)/lib/udev/rules.d
DBUSDIR       ?= $(PREFIX)/share/dbus-1

install: $(B)/barkeepd $(B)/barkeepctl $(B)/$(SONAME) $(B)/libbarkeep.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(UDEVRULESDIR)
	install -m 0755 $(B)/barkeepd $(B)/barkeepctl $(DESTDIR)$(BINDIR)/
	install -m 0755 $(B)/$(SONAME) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libbarkeep.so
	install -m 0644 $(B)/libbarkeep.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 0644 client/lib/barkeep.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 doc/*.md systemd/barkeep.conf.example $(DESTDIR)$(DOCDIR)/
	for u in barkeepd.service barkeepd.socket; do \
		sed -e 's|=/usr/bin/|=$(BINDIR)/|' -e 's|file:/usr/share/doc/barkeep/|file:$(DOCDIR)/|g' \
			systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	install -m 0644 systemd/barkeep.sysusers $(DESTDIR)$(SYSUSERSDIR)/barkeep.conf
	install -m 0644 systemd/barkeep.tmpfiles $(DESTDIR)$(TMPFILESDIR)/barkeep.conf
	install -m 0644 systemd/70-barkeep-vfio.rules $(DESTDIR)$(UDEVRULESDIR)/
	install -D -m 0644 systemd/org.barkeep.Broker1.service \
		$(DESTDIR)$(DBUSDIR)/system-services/org.barkeep.Broker1.service
	install -D -m 0644 systemd/org.barkeep.Broker1.conf \
		$(DESTDIR)$(DBUSDIR)/system.d/org.barkeep.Broker1.conf
	install -D -m 0644 systemd/org.barkeep.Broker1.xml \
		$(DESTDIR)$(DBUSDIR)/interfaces/org.barkeep.Broker1.xml

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
