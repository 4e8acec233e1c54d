#!/bin/busybox sh
# viommu-sva test guest: bind every edu device to vfio-pci, run the scenarios, power off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "=== guest up $(cut -d' ' -f1 /proc/uptime)s: $(cat /proc/cmdline)"
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ]; then
		echo vfio-pci > $d/driver_override
		echo ${d##*/} > /sys/bus/pci/drivers_probe
		echo "=== edu ${d##*/} -> $(basename $(readlink $d/driver 2>/dev/null) 2>/dev/null)"
	fi
done
[ -e /dev/iommu ] || echo "=== /dev/iommu missing"
/kernel_guest
echo "=== kernel_guest exit code $?"
# The in-guest VMM: replay each trace through an accelerated vSMMU with an edu device as the
# passthrough endpoint (needs the vIOMMU, so only with the CANWBS test parameter).
if grep -q 'arm_smmu_v3.force_canwbs=1' /proc/cmdline; then
	for t in /traces/*; do
		[ -e "$t" ] || { echo "=== no traces in the initramfs"; break; }
		/accel_replay --measure $(cat /accel_replay.args) "$t"
		echo "=== accel_replay ${t##*/} exit code $?"
	done
fi
dmesg | grep -i -E 'smmu|iommufd|vfio' | tail -n 20
poweroff -f
