#!/bin/busybox sh
# L1 of the live VMM test: QEMU virt at EL2 with KVM. Runs the reference VMM (examples/arm64_vmm)
# once per scenario; each boots the same kernel as L2 with vmm-l2-init.sh and a fresh copy of a
# disk image of known content. vmm.sh parses the === VMM-RUN markers and what L2 and the VMM
# print in between.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "=== L1 up $(cut -d' ' -f1 /proc/uptime)s: $(cat /proc/cmdline)"
dmesg | grep -i kvm | sed 's/^/L1-DMESG /'
sha=$(cat /disk.sha256)
echo "=== VMM-RUN exitbench start"
/arm64_vmm --exit-bench 2000
echo "=== VMM-RUN exitbench exit code $?"
for mode in lazy strict noiommu unmapped; do
	flags="" extra="" timeout=900
	case $mode in
	strict) extra="iommu.strict=1" ;;
	noiommu) flags="--no-iommu" ;;
	unmapped) flags="--unmapped-disk" timeout=45 ;;
	esac
	cp /disk.img /tmp/disk.img
	echo "=== VMM-RUN $mode start $(cut -d' ' -f1 /proc/uptime)"
	/arm64_vmm --kernel /Image --initramfs /l2.cpio.gz --disk /tmp/disk.img --mem-mib 256 \
		--timeout "$timeout" --cmdline "rdinit=/init panic=-1 vmmtest.mode=$mode vmmtest.sha=$sha $extra" $flags
	echo "=== VMM-RUN $mode exit code $? at $(cut -d' ' -f1 /proc/uptime)"
done
echo "=== L1 done"
poweroff -f
