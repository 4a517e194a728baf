# SPDX-License-Identifier: GPL-2.0
#
# vfio-migsim top-level Makefile.
#
#   make              build the kernel module and everything in userspace
#   make deps         apt-get install whatever is missing (root or sudo)
#   make check        deps, build, host tests, VM tests, checkpatch;
#                     ends with one line "N passed, N failed"
#   make demo         deps, build, then run selftests/vm/demo.sh in the VM
#   make vm-test T=<prog> [ARGS='-t <test>']   run one test program in the VM
#   make vm-shell     a root shell in the test VM (leave with: exit)
#   make checkpatch   checkpatch.pl --strict over the driver and its uapi
#   make clean

PACKAGES := build-essential linux-image-6.12-amd64 linux-headers-6.12-amd64 \
	linux-source-6.12 qemu-system-x86 busybox-static cpio xz-utils kmod \
	liburing-dev libnl-3-dev libnl-genl-3-dev libzstd-dev nettle-dev pkg-config

# The Debian 6.12 kernel the module is built for and tested under (not the
# host's kernel).  Evaluated once; empty until "make deps" installed it.
ifeq ($(origin KVER),undefined)
KVER := $(shell ls /lib/modules 2>/dev/null | grep -E '^6\.12\..*-amd64$$' | sort -V | tail -1)
endif
KDIR ?= /lib/modules/$(KVER)/build

# Sources of generated files, all from installed Debian packages.
HDR_COMMON := $(firstword $(wildcard /usr/src/linux-headers-$(patsubst %-amd64,%,$(KVER))-common) \
	$(lastword $(sort $(wildcard /usr/src/linux-headers-6.12*-common))))
UNIFDEF := $(firstword $(wildcard $(KDIR)/scripts/unifdef /usr/lib/linux-kbuild-6.12*/scripts/unifdef))
LINUX_SRC_TAR := $(firstword $(wildcard /usr/src/linux-source-6.12.tar.xz) /usr/src/linux-source-6.12.tar.xz)

export TOP := $(CURDIR)
export BUILD := $(CURDIR)/build
export USER_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE \
	-I$(TOP)/include/uapi -I$(BUILD)/include -I$(TOP)/lib/libvmig/include
# kselftest.h and kselftest_harness.h (from linux-source-6.12).  Include them
# with $(KSELFTEST_CFLAGS): -isystem, as the 6.12 harness is not -Wextra clean.
export KSELFTEST_INC := $(BUILD)/kselftest
export KSELFTEST_CFLAGS := -isystem $(KSELFTEST_INC)

# Userspace parts; each is built only once its Makefile exists.
SUBDIR_LIB := $(if $(wildcard lib/libvmig/Makefile),lib/libvmig)
SUBDIRS_AFTER_LIB := $(patsubst %/Makefile,%,$(wildcard tools/vmigctl/Makefile \
	selftests/migsim/Makefile selftests/libvmig/Makefile selftests/vm/Makefile))
HAVE_MODULE_SRC := $(wildcard kernel/vfio-migsim/Kbuild kernel/vfio-migsim/Makefile)

# uapi headers newer than Debian 12's linux-libc-dev (6.1): build/include/
UAPI_HDRS := linux/vfio.h linux/kvm.h linux/userfaultfd.h linux/bits.h asm/kvm.h
GEN_HDRS := $(addprefix $(BUILD)/include/,$(UAPI_HDRS))
KSFT_HDRS := $(KSELFTEST_INC)/kselftest.h $(KSELFTEST_INC)/kselftest_harness.h
CHECKPATCH := $(BUILD)/checkpatch/checkpatch.pl
SRC_STAMP := $(BUILD)/linux-source/.extracted
SRC_FILES := tools/testing/selftests/kselftest.h \
	tools/testing/selftests/kselftest_harness.h \
	scripts/checkpatch.pl scripts/spelling.txt scripts/const_structs.checkpatch

CHECKPATCH_FILES = $(filter-out %.mod.c,$(wildcard kernel/vfio-migsim/*.[ch] include/uapi/linux/*.h))

VM := $(TOP)/selftests/vm/run-vm.sh
VM_ENV = KVER=$(KVER)

.PHONY: all module userspace headers deps check check-run demo demo-run \
	vm-shell vm-test checkpatch clean need-kernel $(SUBDIR_LIB) $(SUBDIRS_AFTER_LIB)

all: module userspace

need-kernel:
	@if [ -z "$(KVER)" ] || [ ! -d "$(KDIR)" ]; then \
		echo "error: no Debian 6.12 kernel + headers installed; run: make deps" >&2; exit 1; fi

# ---------------------------------------------------------------- kernel
module: need-kernel
ifneq ($(HAVE_MODULE_SRC),)
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules
else
	@echo "module: kernel/vfio-migsim/ has no Kbuild yet, skipped"
endif

# ---------------------------------------------------------------- headers
headers: $(GEN_HDRS) $(KSFT_HDRS)

$(BUILD)/include/linux/%.h: $(if $(HDR_COMMON),$(HDR_COMMON)/include/uapi/linux/%.h) | need-kernel
	@test -n "$(HDR_COMMON)" || { echo "error: no /usr/src/linux-headers-6.12*-common; run: make deps" >&2; exit 1; }
	@$(TOP)/scripts/uapi-header.sh $(UNIFDEF) $(HDR_COMMON)/include/uapi/linux/$*.h $@
	@echo "  GEN     $(@:$(TOP)/%=%)"

$(BUILD)/include/asm/%.h: $(if $(HDR_COMMON),$(HDR_COMMON)/arch/x86/include/uapi/asm/%.h) | need-kernel
	@test -n "$(HDR_COMMON)" || { echo "error: no /usr/src/linux-headers-6.12*-common; run: make deps" >&2; exit 1; }
	@$(TOP)/scripts/uapi-header.sh $(UNIFDEF) $(HDR_COMMON)/arch/x86/include/uapi/asm/$*.h $@
	@echo "  GEN     $(@:$(TOP)/%=%)"

# Extracting a few files from the .tar.xz takes 10-15 s: do it once.
$(SRC_STAMP): $(LINUX_SRC_TAR)
	@echo "  EXTRACT kselftest + checkpatch from $(notdir $<)"
	@rm -rf $(BUILD)/linux-source && mkdir -p $(BUILD)/linux-source
	@tar -xJf $< -C $(BUILD)/linux-source --strip-components=1 \
		$(addprefix linux-source-6.12/,$(SRC_FILES))
	@touch $@

$(KSELFTEST_INC)/%.h: $(SRC_STAMP)
	@mkdir -p $(@D)
	@cp $(BUILD)/linux-source/tools/testing/selftests/$*.h $@

$(BUILD)/checkpatch/%: $(SRC_STAMP)
	@mkdir -p $(@D)
	@cp $(BUILD)/linux-source/scripts/$* $@

# ---------------------------------------------------------------- userspace
userspace: $(SUBDIR_LIB) $(SUBDIRS_AFTER_LIB)

$(SUBDIR_LIB): headers
	$(MAKE) -C $@

$(SUBDIRS_AFTER_LIB): headers $(SUBDIR_LIB)
	$(MAKE) -C $@

# ---------------------------------------------------------------- checks
checkpatch: $(CHECKPATCH) $(BUILD)/checkpatch/spelling.txt $(BUILD)/checkpatch/const_structs.checkpatch
	@$(TOP)/scripts/checkpatch.sh $(CHECKPATCH) $(CHECKPATCH_FILES)

deps:
	@$(TOP)/scripts/install-deps.sh $(PACKAGES)

# Recursive so that KVER is looked up again after "make deps" installed it.
check:
	@$(MAKE) --no-print-directory deps || { echo "0 passed, 1 failed"; exit 1; }
	@$(MAKE) --no-print-directory check-run

check-run:
	@$(VM_ENV) MAKE="$(MAKE)" $(TOP)/selftests/run-all.sh

demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory demo-run

demo-run: all
	@$(VM_ENV) $(VM) --demo

vm-shell: all
	@$(VM_ENV) $(VM) --shell

ifeq ($(strip $(T)),)
vm-test:
	@echo "usage: make vm-test T=<program> [ARGS='<program arguments>']" >&2; exit 2
else
vm-test: all
	@$(VM_ENV) $(VM) --args "$(ARGS)" $(T)
endif

clean:
	-@for d in $(SUBDIR_LIB) $(SUBDIRS_AFTER_LIB); do $(MAKE) --no-print-directory -C $$d clean; done
	rm -rf $(BUILD)
ifneq ($(HAVE_MODULE_SRC),)
	-@test -d "$(KDIR)" && $(MAKE) -C $(KDIR) M=$(CURDIR) clean
endif
