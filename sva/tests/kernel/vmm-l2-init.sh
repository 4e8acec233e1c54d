#!/bin/busybox sh
# L2 guest of the live VMM test (runs inside examples/arm64_vmm): checks the virtio-blk disk
# behind the emulated SMMUv3 and prints L2-* markers that vmm.sh parses from the console.
# Parameters come on the kernel command line: vmmtest.mode=<run> vmmtest.sha=<sha256 of disk>.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
up() { cut -d' ' -f1 /proc/uptime; }
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^vmmtest\.$1=//p"; }
echo "L2-UP $(up)s mode=$(arg mode): $(cat /proc/cmdline)"
dmesg | grep -i -E 'smmu|iommu|virtio' | sed 's/^/L2-DMESG /'
[ -b /dev/vda ] || { echo "L2-CHECK disk FAIL no /dev/vda"; poweroff -f; }
for g in /sys/kernel/iommu_groups/*; do
	[ -d "$g/devices" ] && echo "L2-IOMMU-GROUP ${g##*/} type=$(cat $g/type) devices=$(ls $g/devices | tr '\n' ' ')"
done
bytes=$(( $(cat /sys/block/vda/size) * 512 ))

# read throughput: the whole disk, page cache dropped first
blockdev --flushbufs /dev/vda
t0=$(up)
dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null
t1=$(up)
echo "L2-READ bytes=$bytes start=$t0 end=$t1"

# whole-disk checksum against the host's
blockdev --flushbufs /dev/vda
sum=$(sha256sum /dev/vda | cut -d' ' -f1)
if [ "$sum" = "$(arg sha)" ]; then echo "L2-CHECK read PASS $sum"; else echo "L2-CHECK read FAIL got $sum want $(arg sha)"; fi

# write a pattern at 1 MiB, drop the cache, read it back
dd if=/dev/urandom of=/tmp/pattern bs=64k count=16 2>/dev/null
[ "$(wc -c < /tmp/pattern)" = 1048576 ] || echo "L2-CHECK write FAIL could not make a 1 MiB pattern"
dd if=/tmp/pattern of=/dev/vda bs=64k seek=16 conv=fsync 2>/dev/null
blockdev --flushbufs /dev/vda
want=$(sha256sum < /tmp/pattern | cut -d' ' -f1)
got=$(dd if=/dev/vda bs=64k skip=16 count=$(( $(wc -c < /tmp/pattern) / 65536 )) 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$got" = "$want" ]; then echo "L2-CHECK write PASS $got"; else echo "L2-CHECK write FAIL got $got want $want"; fi

dmesg | grep -i -E 'smmu|iommu' | grep -v -i -E 'adding device|probe' | tail -n 20 | sed 's/^/L2-DMESG-END /'
echo "L2-DONE $(up)s"
poweroff -f
