#!/usr/bin/env bash
# Live test of viommu's SMMUv3 inside a real KVM VMM (examples/arm64_vmm).
#
# QEMU (virt, virtualization=on, TCG) boots L1: the test kernel (kernel.config + vmm.config) with
# KVM at EL2. L1's init runs the reference VMM, which boots the same kernel as L2 with a busybox
# initramfs, a 16550 console and a virtio-mmio disk of known content behind our emulated SMMUv3.
# L2's arm-smmu-v3 driver probes the SMMU, takes its interrupts and maps the disk's DMA; the L2
# init checks the disk and prints markers that this script parses, the VMM prints its stats.
#
# One L1 boot (log: $WORK/live.log) measures the MMIO exit round trip (arm64_vmm --exit-bench), then
# runs the VMM per scenario: lazy (the default DMA domain), strict (iommu.strict=1), noiommu (the
# same device without the SMMU, the baseline of the throughput ratios) and unmapped (the disk left
# out of the device tree's SMMU mapping while its DMA still goes through the SMMU: the driver
# must log the event our SMMU records).
#
# The Linux source tree and busybox come from the viommu-sva harness (run.sh, same Debian
# packages, same cache); this kernel is built beside it under target/vmm-kernel.
#
# Usage: vmm.sh [all|deps|kernel|vmm|initramfs|boot|check]   (default: all)
#   JOBS=N   parallel kernel build jobs (default: nproc)
# A missing prerequisite is an error with a reason, never a skip; so is KVM refusing to run in L1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
export SVA_KERNEL_WORK=${SVA_KERNEL_WORK:-$REPO/target/sva-kernel}
WORK=${VMM_KERNEL_WORK:-$REPO/target/vmm-kernel}
JOBS=${JOBS:-$(nproc)}
SRC=$SVA_KERNEL_WORK/linux-source-7.3
OBJ=$WORK/obj
IMAGE=$OBJ/arch/arm64/boot/Image
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
KMAKE=(make -C "$SRC" O="$OBJ" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
RUST_TARGET=aarch64-unknown-linux-gnu
VMM_BIN=$TARGET_DIR/$RUST_TARGET/release/examples/arm64_vmm
mkdir -p "$WORK"
T0=$SECONDS

say() { printf '\n### [%s] %s\n' "$(date +%T)" "$*"; }
die() { printf 'live VMM test: FAILED: %s\n' "$*" >&2; exit 1; }

deps() {
	# host packages, QEMU >= 9.2, the Rust target, the Linux source and busybox
	"$HERE/run.sh" fetch || die "prerequisites (run.sh fetch) failed"
	[ -f "$SRC/Makefile" ] || die "no Linux source at $SRC"
	[ -x "$SVA_KERNEL_WORK/busybox" ] || die "no busybox at $SVA_KERNEL_WORK/busybox"
}

kernel() {
	local cfg=$WORK/kernel.config stamp=$WORK/kernel.stamp key
	cat "$HERE/kernel.config" "$HERE/vmm.config" > "$cfg"
	key=$(sha256sum < "$cfg" | cut -c1-16)
	if [ -f "$IMAGE" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
		say "kernel cached ($IMAGE)"; return 0
	fi
	mkdir -p "$OBJ"
	say "allnoconfig + kernel.config + vmm.config"
	"${KMAKE[@]}" KCONFIG_ALLCONFIG="$cfg" allnoconfig >/dev/null
	# every symbol's last setting in the fragments must stick
	local bad=0 line sym
	while read -r sym; do
		line=$(grep -E "^$sym=" "$cfg" | tail -n1)
		grep -qxF "$line" "$OBJ/.config" || { echo "config: '$line' did not stick" >&2; bad=1; }
	done < <(grep -oE '^CONFIG_[A-Z0-9_]+' "$cfg" | sort -u)
	[ $bad = 0 ] || die "kernel configuration incomplete"
	say "make -j$JOBS Image"
	local t0=$SECONDS
	"${KMAKE[@]}" -j"$JOBS" Image >"$WORK/kernel-build.log" 2>&1 ||
		{ tail -n 40 "$WORK/kernel-build.log"; die "kernel build failed"; }
	echo "kernel build: $((SECONDS - t0)) s"
	echo "$key" > "$stamp"
}

vmm() {
	say "cross-compiling examples/arm64_vmm for $RUST_TARGET (release, static)"
	(cd "$REPO" &&
	 CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	 RUSTFLAGS="-C target-feature=+crt-static" \
	 cargo build --quiet --release --example arm64_vmm --target "$RUST_TARGET") ||
		die "cross-compiling arm64_vmm failed"
	[ -x "$VMM_BIN" ] || die "no VMM binary at $VMM_BIN"
	file "$VMM_BIN" 2>/dev/null | grep -q 'statically linked' || ! command -v file >/dev/null ||
		die "$VMM_BIN is not statically linked"
}

# cpio ROOT OUT: a gzip'd newc archive of ROOT
cpio_gz() { (cd "$1" && find . | cpio -o -H newc --quiet | gzip -1) > "$2"; }

initramfs() {
	[ -f "$IMAGE" ] || die "no kernel image; run '$0 kernel' first"
	[ -x "$VMM_BIN" ] || die "no VMM binary; run '$0 vmm' first"
	local l2=$WORK/l2 l1=$WORK/l1
	rm -rf "$l2" "$l1"
	mkdir -p "$l2"/{bin,dev,proc,sys,tmp} "$l1"/{bin,dev,proc,sys,tmp}
	install -m 0755 "$SVA_KERNEL_WORK/busybox" "$l2/bin/busybox"
	install -m 0755 "$HERE/vmm-l2-init.sh" "$l2/init"
	cpio_gz "$l2" "$l1/l2.cpio.gz"
	install -m 0755 "$SVA_KERNEL_WORK/busybox" "$l1/bin/busybox"
	install -m 0755 "$HERE/vmm-l1-init.sh" "$l1/init"
	install -m 0755 "$VMM_BIN" "$l1/arm64_vmm"
	cp "$IMAGE" "$l1/Image"
	# the disk: 32 MiB of numbered 16-byte lines (known content, compresses well)
	seq -f '%015g' 0 2097151 > "$l1/disk.img"
	sha256sum < "$l1/disk.img" | cut -d' ' -f1 > "$l1/disk.sha256"
	cpio_gz "$l1" "$WORK/l1.cpio.gz"
}

boot() {
	[ -f "$WORK/l1.cpio.gz" ] || die "no initramfs; run '$0 initramfs' first"
	say "booting L1 (QEMU virt, virtualization=on) running the reference VMM"
	local t0=$SECONDS
	timeout "${VMM_BOOT_TIMEOUT:-2400}" qemu-system-aarch64 \
		-M virt,gic-version=3,virtualization=on -cpu max,pauth-impdef=on -smp 1 -m 1G \
		-nographic -no-reboot -nic none \
		-kernel "$IMAGE" -initrd "$WORK/l1.cpio.gz" \
		-append "console=ttyAMA0 rdinit=/init panic=-1" </dev/null >"$WORK/live.log" 2>&1 || true
	sed -i 's/\r$//' "$WORK/live.log"
	echo "L1 boot: $((SECONDS - t0)) s (log: $WORK/live.log)"
	check
}

# run NAME: the part of the log between the run's start and exit markers
run_log() { sed -n "/^=== VMM-RUN $1 start/,/^=== VMM-RUN $1 exit code/p" "$WORK/live.log"; }

# vstat RUN KEY: the numeric value of KEY= in the run's VMM-STATS lines
vstat() { run_log "$1" | grep '^VMM-STATS' | grep -oE "(^| )$2=[0-9]+" | head -n1 | cut -d= -f2; }

check() {
	local log=$WORK/live.log bad=0 m
	grep -q '^=== L1 up' "$log" || { tail -n 40 "$log"; die "L1 never reached its init"; }
	if ! grep -q '^=== VMM-RUN exitbench exit code 0' "$log"; then
		grep -E 'arm64_vmm|L1-DMESG' "$log" | head -n 20
		die "the VMM cannot run KVM in L1 (see the error above)"
	fi
	fail() { echo "CHECK FAILED: $*"; bad=1; }
	for m in lazy strict noiommu; do
		run_log "$m" > "$WORK/run-$m.log"
		grep -q "^=== VMM-RUN $m exit code 0" "$WORK/run-$m.log" || fail "$m: the VMM did not exit cleanly"
		grep -q 'VMM-STATS exit: guest powered off' "$WORK/run-$m.log" || fail "$m: L2 did not power off"
		grep -q '^L2-CHECK read PASS' "$WORK/run-$m.log" || fail "$m: whole-disk checksum"
		grep -q '^L2-CHECK write PASS' "$WORK/run-$m.log" || fail "$m: pattern write/read-back"
		grep -q 'L2-CHECK .* FAIL' "$WORK/run-$m.log" && fail "$m: $(grep 'L2-CHECK .* FAIL' "$WORK/run-$m.log")"
		[ "$(vstat "$m" written_bytes)" -ge 1048576 ] 2>/dev/null || fail "$m: the pattern never reached the disk"
		[ "$m" = noiommu ] && continue
		grep -qE 'L2-DMESG .*arm-smmu-v3 .*oas [0-9]+-bit \(features 0x[0-9a-f]+\)' "$WORK/run-$m.log" ||
			fail "$m: no arm-smmu-v3 probe line in L2's dmesg"
		[ "$(vstat "$m" translations)" -gt 0 ] 2>/dev/null || fail "$m: no translations through the SMMU"
		run_log "$m" | grep -q 'smmu-commands .*CMD_SYNC=[1-9]' || fail "$m: no CMD_SYNC"
		run_log "$m" | grep -qE 'smmu-commands .*TLBI_[A-Z0-9_]+=[1-9]' || fail "$m: no TLBI"
		[ "$(vstat "$m" events)" = 0 ] || fail "$m: unexpected SMMU events"
		[ "$(vstat "$m" dma_faults)" = 0 ] || fail "$m: DMA faults"
	done
	# the disk's IOMMU group: a flush-queue (lazy) DMA domain by default, a strict one with
	# iommu.strict=1
	grep -qE '^L2-IOMMU-GROUP .* type=DMA-FQ devices=.*virtio_mmio' "$WORK/run-lazy.log" ||
		fail "lazy: the disk is not in a lazy (DMA-FQ) domain"
	grep -qE '^L2-IOMMU-GROUP .* type=DMA devices=.*virtio_mmio' "$WORK/run-strict.log" ||
		fail "strict: the disk is not in a strict (DMA) domain"
	run_log unmapped > "$WORK/run-unmapped.log"
	[ "$(vstat unmapped events)" -gt 0 ] 2>/dev/null || fail "unmapped: no event in the SMMU's queue"
	grep -qE 'arm-smmu-v3 .*event 0x[0-9a-f]+ received' "$WORK/run-unmapped.log" ||
		fail "unmapped: L2's driver logged no event"
	grep -q '^L2-CHECK read PASS' "$WORK/run-unmapped.log" && fail "unmapped: the disk was read despite the fault"
	measure
	[ $bad = 0 ] || die "live VMM checks failed (log: $log)"
	say "live VMM test: PASS"
}

measure() {
	local m rate base=""
	grep -h 'VMM-EXIT-BENCH' "$WORK/live.log" | sed 's/^/MEASURE /'
	for m in noiommu lazy strict; do
		rate=$(grep '^L2-READ' "$WORK/run-$m.log" | awk '{split($2,b,"=");split($3,s,"=");split($4,e,"=");
			d=e[2]-s[2]; if (d<=0) d=0.01; printf "%.2f", b[2]/d/1048576}')
		echo "MEASURE $m: L2 up at $(grep -oE '^L2-UP [0-9.]+' "$WORK/run-$m.log" | cut -d' ' -f2)s, disk read ${rate} MiB/s, $(grep 'VMM-STATS exits' "$WORK/run-$m.log" | cut -d' ' -f3-)"
		[ "$m" = noiommu ] && base=$rate
		[ -n "$base" ] && [ "$m" != noiommu ] &&
			echo "MEASURE $m/noiommu read throughput ratio: $(awk -v a="$rate" -v b="$base" 'BEGIN{printf "%.2f", (b>0)?a/b:0}')"
		grep -h '^VMM-STATS smmu' "$WORK/run-$m.log" | sed "s/^/MEASURE $m /"
	done
	grep -h '^VMM-STATS smmu' "$WORK/run-unmapped.log" | sed 's/^/MEASURE unmapped /'
}

case "${1:-all}" in
deps) deps ;;
kernel) deps; kernel ;;
vmm) deps; vmm ;;
initramfs) initramfs ;;
boot) boot ;;
check) check ;;
all) deps; kernel; vmm; initramfs; boot; echo "live VMM test total: $((SECONDS - T0)) s" ;;
*) echo "usage: $0 [all|deps|kernel|vmm|initramfs|boot|check]" >&2; exit 2 ;;
esac
