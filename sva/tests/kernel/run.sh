#!/usr/bin/env bash
# viommu-sva real-kernel harness.
#
# Builds a Linux test kernel with iommufd nested SMMUv3 support, an initramfs holding the crate's
# in-guest Rust scenarios (sva/examples/kernel_guest/), boots it in QEMU (virt, iommu=smmuv3,
# two `edu` DMA engines) and turns the guest's serial-console markers into pass/fail.
#
# Everything comes from Debian packages (the script installs them with apt-get; CI runs as root):
#   host:   gcc-aarch64-linux-gnu make flex bison bc libelf-dev libssl-dev cpio gzip xz-utils perl
#           qemu-system-arm >= 9.2 (bookworm-backports on bookworm hosts)
#   target: linux-source-7.3 and busybox-static from the trixie(-backports) arm64 archive,
#           downloaded with private apt state under the work directory. The only change to the
#           host's apt configuration is a <codename>-backports source when QEMU is too old.
# Build products are cached under target/sva-kernel (override with SVA_KERNEL_WORK); the guest
# binary is built into $CARGO_TARGET_DIR (default target/).
#
# Usage: run.sh [all|deps|fetch|kernel|guest|initramfs|boot]   (default: all)
#   JOBS=N          parallel kernel build jobs (default: nproc)
# A missing prerequisite is an error with a reason, never a skip.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
WORK=${SVA_KERNEL_WORK:-$REPO/target/sva-kernel}
JOBS=${JOBS:-$(nproc)}
KVER=7.3
SRC=$WORK/linux-source-$KVER
OBJ=$WORK/obj
IMAGE=$OBJ/arch/arm64/boot/Image
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
KMAKE=(make -C "$SRC" O="$OBJ" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
RUST_TARGET=aarch64-unknown-linux-gnu
GUEST_BIN=kernel_guest
EDIT_REV=1
mkdir -p "$WORK"

say() { printf '\n### [%s] %s\n' "$(date +%T)" "$*"; }
die() { printf 'sva kernel harness: FAILED: %s\n' "$*" >&2; exit 1; }

# The first Debian archive URI in the host's apt configuration (one-line or deb822 format).
debian_mirror() {
	local m
	m=$({ grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
	      grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -oE 'https?://[^ ]+'; } | grep -E '/debian/?$' | head -1 || true)
	echo "${m:-http://deb.debian.org/debian}"
}

qemu_new_enough() {
	command -v qemu-system-aarch64 >/dev/null 2>&1 || return 1
	local v
	v=$(qemu-system-aarch64 --version | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1)
	[ "$(printf '%s\n9.2\n' "$v" | sort -V | head -1)" = 9.2 ]
}

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" ||
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }
}

deps() {
	local want=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross make flex bison bc libelf-dev libssl-dev
		    cpio gzip xz-utils perl) missing=() p
	for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ]; then
		say "apt-get install ${missing[*]}"
		apt_install "${missing[@]}" || die "could not install host packages: ${missing[*]}"
	fi
	if ! qemu_new_enough; then
		# virt >= 9.2 with iommu=smmuv3 is the first QEMU whose SMMU offers stage=nested.
		local list=/etc/apt/sources.list.d/viommu-sva-backports.list
		. /etc/os-release
		[ -f "$list" ] || echo "deb $(debian_mirror) ${VERSION_CODENAME}-backports main" > "$list"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			-t "${VERSION_CODENAME}-backports" qemu-system-arm ipxe-qemu ||
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-arm ||
			die "could not install qemu-system-arm"
	fi
	qemu_new_enough || die "qemu-system-aarch64 >= 9.2 required, have: $(qemu-system-aarch64 --version 2>&1 | head -1)"
	qemu-system-aarch64 -device help 2>&1 | grep -q '"edu"' || die "this QEMU has no edu device"
	command -v rustup >/dev/null || die "rustup not found (needed for the $RUST_TARGET target)"
	rustup target list --installed | grep -qx "$RUST_TARGET" || rustup target add "$RUST_TARGET" ||
		die "rustup target add $RUST_TARGET failed"
}

# apt for the trixie arm64 archive with private state under $WORK/apt
TAPT=()
target_apt() {
	local a=$WORK/apt mirror
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
	mirror=$(debian_mirror)
	printf 'deb [arch=arm64] %s trixie main\ndeb [arch=arm64] %s trixie-backports main\n' \
		"$mirror" "$mirror" > "$a/sources.list"
	TAPT=(-o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
	      -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o APT::Architecture=arm64
	      -o APT::Architectures=arm64)
	ls "$a/lists/"*trixie*Packages* >/dev/null 2>&1 || apt-get "${TAPT[@]}" update ||
		die "apt-get update of the trixie arm64 archive failed"
}

fetch() {
	if [ -f "$SRC/Makefile" ] && [ -x "$WORK/busybox" ]; then return 0; fi
	target_apt
	mkdir -p "$WORK/debs"
	(cd "$WORK/debs" &&
	 { ls linux-source-${KVER}_*.deb >/dev/null 2>&1 || apt-get "${TAPT[@]}" download linux-source-$KVER; } &&
	 { ls busybox-static_*_arm64.deb >/dev/null 2>&1 || apt-get "${TAPT[@]}" download busybox-static:arm64; }) ||
		die "could not download linux-source-$KVER / busybox-static (arm64)"
	if [ ! -f "$SRC/Makefile" ]; then
		say "unpacking linux-source-$KVER"
		rm -rf "$WORK/x" "$SRC"
		dpkg-deb -x "$WORK"/debs/linux-source-${KVER}_*.deb "$WORK/x"
		tar -C "$WORK" -xf "$WORK/x/usr/src/linux-source-$KVER.tar.xz"
		rm -rf "$WORK/x"
	fi
	if [ ! -x "$WORK/busybox" ]; then
		rm -rf "$WORK/x"
		dpkg-deb -x "$WORK"/debs/busybox-static_*_arm64.deb "$WORK/x"
		install -m 0755 "$WORK/x/usr/bin/busybox" "$WORK/busybox"
		rm -rf "$WORK/x"
	fi
}

# Test kernels only: QEMU's SMMUv3 has no S2FWB and a device-tree boot cannot mark the root complex
# CANWBS, so the stock driver refuses IOMMU_VIOMMU_ALLOC with EOPNOTSUPP. The emulated root complex
# is coherent; a boot parameter arm_smmu_v3.force_canwbs=1 makes the driver's CANWBS predicate true.
# Scripted edit of the unpacked tree (the repository carries no kernel source).
force_canwbs_edit() {
	local dir=$SRC/drivers/iommu/arm/arm-smmu-v3
	grep -q 'viommu_sva_force_canwbs' "$dir/arm-smmu-v3.h" && return 0
	say "adding the arm_smmu_v3.force_canwbs test parameter"
	cat >> "$dir/arm-smmu-v3.c" <<-'C'

	/* viommu-sva test kernels: claim CANWBS for every master (QEMU's root complex is coherent). */
	bool viommu_sva_force_canwbs;
	module_param_named(force_canwbs, viommu_sva_force_canwbs, bool, 0444);
	MODULE_PARM_DESC(force_canwbs, "Test only: treat every master as CANWBS");
	C
	perl -0pi -e 's{(static inline bool arm_smmu_master_canwbs\(struct arm_smmu_master \*master\)\s*\{\s*return\s)}{extern bool viommu_sva_force_canwbs;\n$1viommu_sva_force_canwbs || }' \
		"$dir/arm-smmu-v3.h"
	grep -q 'return viommu_sva_force_canwbs ||' "$dir/arm-smmu-v3.h" ||
		die "the force_canwbs edit no longer matches arm_smmu_master_canwbs() in this kernel"
}

kernel() {
	fetch
	force_canwbs_edit
	local stamp=$WORK/kernel.stamp key
	# rebuild when the fragment or the source edit changes (bump EDIT_REV with force_canwbs_edit)
	key=$({ cat "$HERE/kernel.config"; echo "edit-rev $EDIT_REV"; } | sha256sum | cut -c1-16)
	if [ -f "$IMAGE" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
		say "kernel cached ($IMAGE)"; return 0
	fi
	mkdir -p "$OBJ"
	say "allnoconfig + kernel.config"
	"${KMAKE[@]}" KCONFIG_ALLCONFIG="$HERE/kernel.config" allnoconfig >/dev/null
	local bad=0 line
	while read -r line; do
		grep -qxF "$line" "$OBJ/.config" || { echo "config: '$line' did not stick" >&2; bad=1; }
	done < <(grep -E '^CONFIG_' "$HERE/kernel.config")
	[ $bad = 0 ] || die "kernel configuration incomplete"
	say "make -j$JOBS Image"
	local t0=$SECONDS
	"${KMAKE[@]}" -j"$JOBS" Image >"$WORK/kernel-build.log" 2>&1 ||
		{ tail -n 40 "$WORK/kernel-build.log"; die "kernel build failed"; }
	echo "kernel build: $((SECONDS - t0)) s"
	echo "$key" > "$stamp"
}

guest() {
	say "cross-compiling the in-guest scenarios for $RUST_TARGET"
	(cd "$REPO" &&
	 CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	 RUSTFLAGS="-C target-feature=+crt-static" \
	 cargo build --quiet -p viommu-sva --example "$GUEST_BIN" --target "$RUST_TARGET") ||
		die "cross-compiling $GUEST_BIN failed"
	local bin=$TARGET_DIR/$RUST_TARGET/debug/examples/$GUEST_BIN
	[ -x "$bin" ] || die "no guest binary at $bin"
	file "$bin" 2>/dev/null | grep -q 'statically linked' || ! command -v file >/dev/null ||
		die "$bin is not statically linked"
}

initramfs() {
	local root=$WORK/initramfs
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,tmp}
	install -m 0755 "$WORK/busybox" "$root/bin/busybox"
	install -m 0755 "$TARGET_DIR/$RUST_TARGET/debug/examples/$GUEST_BIN" "$root/$GUEST_BIN"
	install -m 0755 "$HERE/init.sh" "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.cpio.gz"
}

# boot NAME APPEND... : boots the guest, log in $WORK/NAME.log
boot_one() {
	local name=$1; shift
	say "booting guest ($name): $*"
	timeout 240 qemu-system-aarch64 \
		-M virt,gic-version=3,iommu=smmuv3 -cpu max,pauth-impdef=on -smp 1 -m 512M \
		-nographic -no-reboot -nic none \
		-kernel "$IMAGE" -initrd "$WORK/initramfs.cpio.gz" \
		-append "console=ttyAMA0 rdinit=/init panic=-1 $*" \
		-device edu -device edu </dev/null >"$WORK/$name.log" 2>&1 || true
	sed -e 's/\r$//' -e 's/^/  | /' "$WORK/$name.log" | grep -E 'SVA-|===|iommu|smmu|vfio|panic|Oops' | head -n 200
}

check_log() {
	local name=$1; shift
	local log=$WORK/$name.log bad=0 t
	grep -q 'SVA-GUEST DONE' "$log" || { echo "guest ($name) never finished; last lines:"; tail -n 30 "$log"; return 1; }
	for t in "$@"; do
		grep -q "SVA-TEST $t PASS" "$log" || { echo "MISSING or FAILED in $name: $t"; bad=1; }
	done
	grep -q 'SVA-TEST .* FAIL' "$log" && { grep 'SVA-TEST .* FAIL' "$log"; bad=1; }
	grep -q 'SVA-GUEST DONE failures=0' "$log" || bad=1
	return $bad
}

boot() {
	[ -f "$IMAGE" ] || die "no kernel image; run '$0 kernel' first"
	[ -f "$WORK/initramfs.cpio.gz" ] || die "no initramfs; run '$0 initramfs' first"
	local t0=$SECONDS rc=0
	boot_one nested arm_smmu_v3.force_canwbs=1
	boot_one stock
	check_log nested s2_only_dma_bypass_vste nested_s1_s2_dma_guest_cd_table remap_stale_until_tlbi_nh_va \
		unmapped_iova_gives_f_translation_with_vsid illegal_command_batch_reports_failing_index \
		two_devices_isolated_by_vsid replacements_during_dma_never_abort per_pasid_binding_vmm_cd_table \
		event_overflow_reports_exact_lost_count teardown_in_kernel_order || rc=1
	check_log stock viommu_alloc_without_canwbs_is_eopnotsupp || rc=1
	grep -h 'SVA-MEASURE' "$WORK/nested.log" | sed 's/\r$//' || true
	echo "boots: $((SECONDS - t0)) s"
	[ $rc = 0 ] || die "real-kernel scenarios failed (logs: $WORK/nested.log, $WORK/stock.log)"
	say "sva real-kernel scenarios: PASS"
}

T0=$SECONDS
case "${1:-all}" in
deps) deps ;;
fetch) deps; fetch ;;
kernel) deps; kernel ;;
guest) deps; guest ;;
initramfs) guest; initramfs ;;
boot) boot ;;
all) deps; kernel; guest; initramfs; boot; echo "sva kernel harness total: $((SECONDS - T0)) s" ;;
*) echo "usage: $0 [all|deps|fetch|kernel|guest|initramfs|boot]" >&2; exit 2 ;;
esac
