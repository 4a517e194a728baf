// SPDX-License-Identifier: GPL-2.0
/*
 * kvm_hold: keep one KVM VM alive for the whole test run in the test VM.
 *
 * Creating the first KVM VM and destroying the last one flips the
 * preempt-notifier static key, which live-patches __schedule()
 * (text_poke_bp() with an int3).  Under TCG with two vCPUs that patching
 * has crashed the guest kernel ("Oops: int3" in __schedule, and once a
 * corrupted stack end) while the libvmig RAM tests created and destroyed
 * a dozen test VMs.  A VM that stays open keeps the key on, so no test
 * patches the scheduler.  This is about the emulator, not the code under
 * test: on real hardware the tests run without it.
 *
 * Usage: kvm_hold &   (exits on SIGTERM, or when /dev/kvm is missing)
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm;

	if (kvm < 0) {
		perror("kvm_hold: /dev/kvm");
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		perror("kvm_hold: KVM_CREATE_VM");
		return 1;
	}
	for (;;)
		pause();
}
