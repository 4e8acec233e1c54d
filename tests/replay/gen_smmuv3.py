#!/usr/bin/env python3
"""Generate the SMMUv3 replay scenarios tests/replay/smmuv3_*.jsonl.

Run from the repository root: `python3 tests/replay/gen_smmuv3.py`. The generated files are
committed; this script documents how every value in them was derived. Each expected value comes
from Arm IHI 0070 (architecture) and the Linux arm-smmu-v3 driver (what Linux 6.x writes, in
drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c), never from running our model: the source is cited
next to the value.

The scenarios drive the device the way the Linux arm-smmu-v3 driver does (arm_smmu_device_reset):
probe reads, reset writes and polls, 2-level stream table, MSI-polled CMD_SYNC (the default
configuration advertises MSI and coherency, so Linux uses MSIPOLL), EVTQ/GERROR MSIs.
"""

import json
import os

RAM_BASE = 0x4000_0000
RAM_SIZE = 0x0100_0000

STRTAB = 0x4000_0000  # L1 stream table: 256 descriptors (SIDSIZE 16, SPLIT 8)
L2_BASE = 0x4001_0000  # L2 tables, 16 KiB each (256 STEs, Span 9)
CMDQ = 0x4010_0000
CMDQ_LOG2 = 8
EVTQ = 0x4011_0000
EVTQ_LOG2 = 7
CDTAB = 0x4020_0000
PT_POOL = 0x4030_0000
DATA = 0x4080_0000

DOORBELL = 0x0802_0040  # a GIC ITS GITS_TRANSLATER-like doorbell outside RAM
EVTQ_MSI_DATA = 0x21
GERROR_MSI_DATA = 0x22

# Register offsets (IHI 0070 §6.2)
IDR0, IDR1, IDR3, IDR5, IIDR = 0x00, 0x04, 0x0C, 0x14, 0x18
CR0, CR0ACK, CR1, CR2 = 0x20, 0x24, 0x28, 0x2C
GBPA = 0x44
IRQ_CTRL, IRQ_CTRLACK = 0x50, 0x54
GERROR, GERRORN = 0x60, 0x64
GERROR_IRQ_CFG0, GERROR_IRQ_CFG1, GERROR_IRQ_CFG2 = 0x68, 0x70, 0x74
STRTAB_BASE, STRTAB_BASE_CFG = 0x80, 0x88
CMDQ_BASE, CMDQ_PROD, CMDQ_CONS = 0x90, 0x98, 0x9C
EVTQ_BASE = 0xA0
EVTQ_PROD, EVTQ_CONS = 0x100A8, 0x100AC  # page 1 (arm-smmu-v3.h ARM_SMMU_EVTQ_PROD)
EVTQ_IRQ_CFG0, EVTQ_IRQ_CFG1, EVTQ_IRQ_CFG2 = 0xB0, 0xB8, 0xBC

# Commands (IHI 0070 chapter 4, arm_smmu_cmdq_build_cmd)
SYNC_MSIPOLL = 0x0FC0_1046  # CS = SIG_IRQ, MSH = ISH, MSIAttr = 0xF, MSIData = 0
SYNC_SEV = 0x0FC0_2046  # CS = SIG_SEV

# STE / CD values (arm_smmu_make_*_ste, arm_smmu_make_s1_cd)
STE_ABORT = 0x1
STE_BYPASS = 0x9
CD_W0_ASID1 = 0x0001_E205_C000_3510  # 4K, ias = oas = 48, coherent, ASID 1 (arm_smmu_make_s1_cd)
MAIR = 0x0000_0000_F404_FF44  # io-pgtable MAIR (arm_64_lpae_alloc_pgtable_s1)
# io-pgtable leaves (arm_lpae_prot_to_pte): R|W|NOEXEC|CACHE
S1_PAGE = 0x0060_0000_0000_0F47
S1_BLOCK = 0x0060_0000_0000_0F45
S1_RDONLY = 0x80  # AP[2]
S2_PAGE = 0x0060_0000_0000_07FF
TABLE = 0x3
VTCR_4K_48 = 0x53590  # arm_smmu_make_s2_domain_ste


def h(v):
    return hex(v)


def le64(*words):
    return b"".join(w.to_bytes(8, "little") for w in words)


def cd_w0(asid):
    return (CD_W0_ASID1 & ~(0xFFFF << 48)) | (asid << 48)


class Scenario:
    """One replay file, plus a model of the guest driver's queue state."""

    def __init__(self, name, title, config=None):
        self.name = name
        self.lines = []
        self.prod = 0  # CMDQ producer, index + wrap (2^CMDQ_LOG2 entries)
        self.evt_cons = 0
        self.gbpa = 0x1000  # reset value (IMPLEMENTATION DEFINED; our default)
        self.pt_next = PT_POOL
        self.comment(title)
        self.op("ram", base=h(RAM_BASE), size=h(RAM_SIZE))
        if config is None:
            self.op("device", name="smmu0", kind="smmuv3")
        else:
            self.op("device", name="smmu0", kind="smmuv3", config=config)

    # -- raw operations -----------------------------------------------------------------
    def op(self, op, **fields):
        self.lines.append(json.dumps({"op": op, **fields}))

    def comment(self, text):
        self.op("comment", text=text)

    def wmem(self, addr, data):
        self.op("write_mem", addr=h(addr), data=data.hex())

    def wq(self, addr, value):
        """One 64-bit guest store (Linux writes STE/CD words with WRITE_ONCE)."""
        self.wmem(addr, le64(value))

    def rmem(self, addr, expect):
        self.op("read_mem", addr=h(addr), len=len(expect), expect=expect.hex())

    def mw(self, off, value, size=4):
        self.op("mmio_write", dev="smmu0", offset=h(off), size=size, value=h(value))

    def mr(self, off, expect, size=4, mask=None):
        f = {"dev": "smmu0", "offset": h(off), "size": size, "expect": h(expect)}
        if mask is not None:
            f["mask"] = h(mask)
        self.op("mmio_read", **f)

    def dma(self, sid, addr, access="read", expect=None, ssid=None, size=4):
        f = {"dev": "smmu0", "stream": sid}
        if ssid is not None:
            f["substream"] = ssid
        f.update(addr=h(addr), size=size, access=access)
        if expect is not None:
            f["expect"] = expect
        self.op("dma", **f)

    def dma_ok(self, sid, addr, out, **kw):
        self.dma(sid, addr, expect={"addr": h(out)}, **kw)

    def dma_fault(self, sid, addr, name=True, **kw):
        self.dma(sid, addr, expect={"fault": name}, **kw)

    def expect_msi(self, data, count=None):
        f = {"dev": "smmu0", "kind": "msi", "addr": h(DOORBELL), "data": h(data)}
        if count is not None:
            f["count"] = count
        self.op("expect_irq", **f)

    # -- command queue, as arm_smmu_cmdq_issue_cmdlist -----------------------------------
    def slot(self, prod):
        return CMDQ + 16 * (prod % (1 << CMDQ_LOG2))

    def prod_reg(self, prod):
        return prod % (1 << (CMDQ_LOG2 + 1))

    def cmd(self, c0, c1=0):
        self.wmem(self.slot(self.prod), le64(c0, c1))
        self.prod += 1

    def submit(self):
        self.mw(CMDQ_PROD, self.prod_reg(self.prod))

    def sync(self):
        """CMD_SYNC with MSIPOLL (MSI + coherent, __arm_smmu_cmdq_poll_until_msi): the device
        writes MSIData = 0 over the first word of the SYNC's own slot."""
        slot = self.slot(self.prod)
        self.cmd(SYNC_MSIPOLL, slot)
        self.submit()
        self.rmem(slot, bytes(4))
        self.mr(CMDQ_CONS, self.prod_reg(self.prod))

    # -- driver operations ----------------------------------------------------------------
    def bringup(self, cr0=0):
        """arm_smmu_device_hw_probe reads and the arm_smmu_device_reset sequence, default config.
        `cr0` is what the first CR0 read returns (0xD for a kexec'd kernel finding the SMMU
        enabled: then GBPA is first switched to abort)."""
        self.prod = 0
        self.comment("probe: ID registers of the default profile (README.md)")
        self.mr(IDR0, 0x094C_301B)
        self.mr(IDR1, 0x0273_0510)
        self.mr(IDR3, 0x0000_0404)
        self.mr(IDR5, 0x0000_0075)
        self.mr(IIDR, 0)
        self.comment("reset (arm_smmu_device_reset)")
        self.mr(CR0, cr0)
        if cr0 & 1:
            self.comment("SMMU currently enabled! Resetting...: GBPA update to ABORT (SMMU_GBPA)")
            self.mr(GBPA, 0, mask=1 << 31)
            self.gbpa = self.gbpa | (1 << 20)
            self.mw(GBPA, self.gbpa | (1 << 31))
            self.mr(GBPA, self.gbpa)
        self.mw(CR0, 0)
        self.mr(CR0ACK, 0)
        self.mw(CR1, 0xD75)
        self.mw(CR2, 0x6)
        # L1 descriptor for SIDs 0..255: Span 9 (256 STEs) | L2Ptr; STEs abort (arm_smmu_init_l2_strtab)
        self.wmem(L2_BASE, le64(*([STE_ABORT] + [0] * 7)) * 256)
        self.wq(STRTAB, L2_BASE | 9)
        self.mw(STRTAB_BASE, (1 << 62) | STRTAB, size=8)
        self.mw(STRTAB_BASE_CFG, 0x0001_0210)
        self.mw(CMDQ_BASE, (1 << 62) | CMDQ | CMDQ_LOG2, size=8)
        self.mw(CMDQ_PROD, 0)
        self.mw(CMDQ_CONS, 0)
        self.mw(CR0, 0x8)
        self.mr(CR0ACK, 0x8)
        self.cmd(0x4, 0x1F)  # CFGI_ALL
        self.sync()
        self.cmd(0x30)  # TLBI_NSNH_ALL
        self.sync()
        self.mw(EVTQ_BASE, (1 << 62) | EVTQ | EVTQ_LOG2, size=8)
        self.mw(EVTQ_PROD, 0)
        self.mw(EVTQ_CONS, 0)
        self.mw(CR0, 0xC)
        self.mr(CR0ACK, 0xC)
        self.mw(IRQ_CTRL, 0)
        self.mr(IRQ_CTRLACK, 0)
        self.mw(GERROR_IRQ_CFG0, 0, size=8)
        self.mw(EVTQ_IRQ_CFG0, 0, size=8)
        # MSI write_msg (arm_smmu_write_msi_msg): doorbell, data, Device-nGnRE
        self.mw(EVTQ_IRQ_CFG0, DOORBELL, size=8)
        self.mw(EVTQ_IRQ_CFG1, EVTQ_MSI_DATA)
        self.mw(EVTQ_IRQ_CFG2, 0x1)
        self.mw(GERROR_IRQ_CFG0, DOORBELL, size=8)
        self.mw(GERROR_IRQ_CFG1, GERROR_MSI_DATA)
        self.mw(GERROR_IRQ_CFG2, 0x1)
        self.mw(IRQ_CTRL, 0x5)
        self.mr(IRQ_CTRLACK, 0x5)
        self.mw(CR0, 0xD)
        self.mr(CR0ACK, 0xD)
        self.mr(GERROR, 0)

    def ste_addr(self, sid):
        assert sid < 256
        return L2_BASE + 64 * sid

    def ste_sync(self, sid):
        self.cmd(0x3 | (sid << 32), 1)  # CFGI_STE leaf
        self.sync()

    def write_ste(self, sid, words):
        """A whole-entry write into an entry that is not live (then CFGI + SYNC +
        PREFETCH_CFG, as arm_smmu_write_ste does)."""
        self.wmem(self.ste_addr(sid), le64(*(list(words) + [0] * (8 - len(words)))))
        self.ste_sync(sid)
        self.cmd(0x1 | (sid << 32))  # PREFETCH_CFG, no SYNC
        self.submit()

    def write_ste_word(self, sid, i, value):
        self.wq(self.ste_addr(sid) + 8 * i, value)

    def write_cd(self, addr, asid, ttb0):
        self.wmem(addr, le64(cd_w0(asid), ttb0, 0, MAIR, 0, 0, 0, 0))

    def cd_sync(self, sid, ssid=0):
        self.cmd(0x5 | (ssid << 12) | (sid << 32), 1)  # CFGI_CD leaf
        self.sync()

    def alloc_table(self):
        t = self.pt_next
        self.pt_next += 0x1000
        return t

    def map(self, root, va, desc, level=3, tables=None):
        """Install leaf `desc` for `va` at `level` in the 4K 4-level tables under `root`
        (Arm ARM D8.2: shifts 39/30/21/12)."""
        tables = tables if tables is not None else self.tables
        t = root
        for lvl in range(0, level):
            idx = (va >> (39 - 9 * lvl)) & 511
            key = (t, idx)
            if key not in tables:
                nt = self.alloc_table()
                tables[key] = nt
                self.wq(t + 8 * idx, nt | TABLE)
            t = tables[key]
        idx = (va >> (39 - 9 * level)) & 511
        self.wq(t + 8 * idx, desc)
        return t + 8 * idx

    def evt_addr(self, n):
        return EVTQ + 32 * (n % (1 << EVTQ_LOG2))

    def expect_event(self, n, event_id, sid, addr, rnw=True, ssid=None):
        """Check the fields of event record n that IHI 0070 §7.3 fixes: w0 (ID, SSV, SSID,
        SID), w1 bits [39:32] (PnU, InD, RnW, S2 for a stage-1 unprivileged data access) and
        w2 (input address)."""
        rec = self.evt_addr(n)
        w0 = event_id | (sid << 32)
        if ssid is not None:
            w0 |= (1 << 11) | (ssid << 12)
        self.rmem(rec, le64(w0))
        self.rmem(rec + 12, bytes([0x08 if rnw else 0x00]))
        self.rmem(rec + 16, le64(addr))

    def consume_events(self, upto):
        """The EVTQ thread: read PROD, consume, write CONS (arm_smmu_evtq_thread)."""
        wrap = 1 << (EVTQ_LOG2 + 1)
        self.mr(EVTQ_PROD, upto % wrap, mask=0x7FFF_FFFF)
        self.evt_cons = upto
        self.mw(EVTQ_CONS, upto % wrap)

    def write(self, dirname):
        path = os.path.join(dirname, f"smmuv3_{self.name}.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def linux_bringup():
    s = Scenario("linux_bringup", "Linux arm-smmu-v3 probe + reset on the default profile; "
                 "a bypass STE for an RMR-like device; C_BAD_STREAMID for an SID without L2")
    s.bringup()
    s.comment("SID 8: abort STE from the initial table: terminated, no event (IHI 0070 §5.2)")
    s.dma_fault(8, 0x1234_5000)
    s.mr(EVTQ_PROD, 0)
    s.expect_msi(EVTQ_MSI_DATA, count=0)
    s.comment("SID 8 gets a bypass STE (w0 = 0x9, arm_smmu_make_bypass_ste): DMA is untranslated")
    s.write_ste(8, [STE_BYPASS])
    s.dma_ok(8, 0x1234_5678, 0x1234_5678)
    s.dma_ok(8, 0x4080_0000, 0x4080_0000, access="write")
    s.comment("SID 0x300: L1 descriptor 3 has Span 0 -> C_BAD_STREAMID, recorded because "
              "CR2.RECINVSID = 1 (IHI 0070 §7.3 C_BAD_STREAMID), EVTQ MSI sent (IHI 0070 §3.18)")
    s.dma_fault(0x300, 0x1000, "C_BAD_STREAMID")
    s.rmem(s.evt_addr(0), le64(0x02 | (0x300 << 32)))
    s.mr(EVTQ_PROD, 1, mask=0x7FFF_FFFF)
    s.expect_msi(EVTQ_MSI_DATA)
    s.consume_events(1)
    return s


def attach_s1(s, sid=0x10, asid=1):
    """Attach a PCI device the way arm_smmu_attach_dev does for an S1 domain: page tables,
    CD 0, then a CD-table STE with S1CDMax = 0 (arm_smmu_make_cdtable_ste)."""
    s.tables = {}
    root = s.alloc_table()
    s.root = root
    cd = CDTAB
    s.write_cd(cd, asid, root)
    # STE: V | Config S1 (5) | S1Fmt linear | S1ContextPtr | S1CDMax 0; w1 = S1DSS SSID0 | 0xD4
    s.write_ste(sid, [cd | 0xB, 0xD6])
    return root


def attach_s1_dma():
    s = Scenario("attach_s1_dma", "attach a PCI device (SID 0x10) with a CD and io-pgtable "
                 "stage-1 tables, DMA through them, unmap with TLBI_NH_VA + CMD_SYNC")
    s.bringup()
    sid = 0x10
    root = attach_s1(s, sid)
    s.comment("io-pgtable mappings (arm_lpae_prot_to_pte): two 4K pages and a 2M block")
    s.map(root, 0x1000_0000, (DATA + 0x0000) | S1_PAGE)
    s.map(root, 0x1000_1000, (DATA + 0x1000) | S1_PAGE | S1_RDONLY)
    s.map(root, 0x4000_0000, 0x4060_0000 | S1_BLOCK, level=2)
    s.dma_ok(sid, 0x1000_0042, DATA + 0x42)
    s.dma_ok(sid, 0x1000_0ffc, DATA + 0xffc, access="write")
    s.dma_ok(sid, 0x1000_1010, DATA + 0x1010)
    s.dma_ok(sid, 0x401f_fff0, 0x407f_fff0)
    s.comment("write to the read-only page: F_PERMISSION, recorded (CD.R = 1)")
    s.dma_fault(sid, 0x1000_1000, "F_PERMISSION", access="write")
    s.expect_event(0, 0x13, sid, 0x1000_1000, rnw=False)
    s.comment("NOEXEC mapping: an instruction fetch faults F_PERMISSION")
    s.dma_fault(sid, 0x1000_0000, "F_PERMISSION", access="exec")
    s.comment("unmapped IOVA: F_TRANSLATION")
    s.dma_fault(sid, 0x2000_0000, "F_TRANSLATION")
    s.expect_event(2, 0x10, sid, 0x2000_0000)
    s.expect_msi(EVTQ_MSI_DATA)
    s.consume_events(3)
    s.comment("unmap page 0x1000_0000: clear the PTE, TLBI_NH_VA (RIL form: 1 page, TG 4K, "
              "TTL 3, leaf; __arm_smmu_tlb_inv_range) + CMD_SYNC")
    s.map(root, 0x1000_0000, 0)
    s.cmd(0x12 | (1 << 48), 0x1000_0000 | 0x701)
    s.sync()
    s.dma_fault(sid, 0x1000_0000, "F_TRANSLATION")
    s.expect_event(3, 0x10, sid, 0x1000_0000)
    s.expect_msi(EVTQ_MSI_DATA)
    s.dma_ok(sid, 0x1000_1004, DATA + 0x1004)
    s.consume_events(4)
    s.comment("detach: abort STE (hitless, 2 syncs) then TLBI_NH_ASID + SYNC; DMA terminated "
              "silently")
    s.write_ste_word(sid, 0, STE_ABORT)
    s.ste_sync(sid)
    s.write_ste_word(sid, 1, 0)
    s.ste_sync(sid)
    s.cmd(0x11 | (1 << 48))
    s.sync()
    s.dma_fault(sid, 0x1000_1004)
    s.mr(EVTQ_PROD, 4, mask=0x7FFF_FFFF)
    return s


def hitless():
    s = Scenario("hitless", "STE/CD updates as arm_smmu_write_entry performs them "
                 "(arm_smmu_write_entry): DMA checked after every CFGI + SYNC step")
    s.bringup()
    sid = 0x20
    s.tables = {}
    root = s.alloc_table()
    s.map(root, 0x1000_0000, DATA | S1_PAGE)
    # CD table of 2 CDs (S1CDMax 1) at CDTAB: CD 0 ASID 778 and CD 1 ASID 5, same tables
    s.write_cd(CDTAB, 778, root)
    s.write_cd(CDTAB + 64, 5, root)
    cdtab_w0 = CDTAB | 0xB | (1 << 59)  # S1CDMax = 1
    w1_ssid0 = 0xD6  # S1DSS = SSID0 (2) | CIR/COR WBRA, CSH ISH
    w1_bypass = 0xD5  # S1DSS = BYPASS (1)
    identity, xlate = 0x1000_0000, DATA

    s.comment("abort -> bypass (hitless: only w0 is used by either)")
    s.dma_fault(sid, 0x1000_0000)
    s.write_ste_word(sid, 0, STE_BYPASS)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, identity)

    s.comment("bypass -> CD table, S1DSS = SSID0 (hitless, 3 syncs: w1 first, then w0)")
    s.write_ste_word(sid, 1, w1_ssid0)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, identity)  # still bypass: Config 4 ignores S1DSS
    s.write_ste_word(sid, 0, cdtab_w0)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, xlate)  # non-SSID traffic uses CD 0
    s.dma_ok(sid, 0x1000_0000, xlate, ssid=1)
    s.ste_sync(sid)  # step 3: nothing left to clear
    s.dma_ok(sid, 0x1000_0000, xlate)

    s.comment("CD table S1DSS SSID0 -> BYPASS (hitless, 1 sync): non-SSID traffic "
              "becomes identity, SSID 1 still translates")
    s.write_ste_word(sid, 1, w1_bypass)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, identity)
    s.dma_ok(sid, 0x1000_0000, xlate, ssid=1)
    s.comment("and back")
    s.write_ste_word(sid, 1, w1_ssid0)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, xlate)

    s.comment("CD 0 ASID 778 -> 1997 (hitless, 1 sync, as in arm-smmu-v3-test.c)")
    s.wq(CDTAB, cd_w0(1997))
    s.cd_sync(sid, 0)
    s.dma_ok(sid, 0x1000_0000, xlate)

    s.comment("CD table (ptr A, SSID0) -> CD table (ptr B, BYPASS): breaking, V = 0 first "
              "(NH, 3 syncs); traffic in between gets C_BAD_STE")
    cdb = CDTAB + 0x1000
    s.write_cd(cdb + 64, 6, root)
    s.write_ste_word(sid, 0, cdtab_w0 & ~1)
    s.ste_sync(sid)
    s.dma_fault(sid, 0x1000_0000, "C_BAD_STE")
    s.write_ste_word(sid, 1, w1_bypass)
    s.ste_sync(sid)
    s.dma_fault(sid, 0x1000_0000, "C_BAD_STE")
    s.write_ste_word(sid, 0, cdb | 0xB | (1 << 59))
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, identity)
    s.dma_ok(sid, 0x1000_0000, xlate, ssid=1)

    s.comment("CD table -> abort (hitless, 2 syncs)")
    s.write_ste_word(sid, 0, STE_ABORT)
    s.ste_sync(sid)
    s.dma_fault(sid, 0x1000_0000)
    s.write_ste_word(sid, 1, 0)
    s.ste_sync(sid)
    s.dma_fault(sid, 0x1000_0000, ssid=1)
    s.comment("the two C_BAD_STE events of the breaking step are in the queue (a C_BAD_STE "
              "record carries StreamID/SSV/SSID only, so only w0 is checked)")
    s.rmem(s.evt_addr(0), le64(0x04 | (sid << 32)))
    s.rmem(s.evt_addr(1), le64(0x04 | (sid << 32)))
    s.consume_events(2)

    s.comment("S1 (VMID 0) -> S2 (VMID 0, VTCR 4K/48-bit): hitless, 3 syncs (w2/w3 first)")
    s.write_ste_word(sid, 1, w1_ssid0)
    s.write_ste_word(sid, 0, CDTAB | 0xB)  # CD-table STE, S1CDMax 0: CD 0 (ASID 1997)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, xlate)
    s2_tables = {}
    s2root = s.alloc_table()
    # IPA 0x1000_0000 -> DATA + 0x2000 at stage 2
    s.map(s2root, 0x1000_0000, (DATA + 0x2000) | S2_PAGE, tables=s2_tables)
    w2 = (VTCR_4K_48 << 32) | (1 << 51) | (1 << 54) | (1 << 58)  # S2AA64 | S2PTW | S2R
    s.write_ste_word(sid, 2, w2)
    s.write_ste_word(sid, 3, s2root)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, xlate)  # still S1: w2/w3 unused but VMID (0) unchanged
    s.write_ste_word(sid, 0, 0xD)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0000, DATA + 0x2000)
    s.write_ste_word(sid, 1, 0)
    s.ste_sync(sid)
    s.dma_ok(sid, 0x1000_0004, DATA + 0x2004)
    s.dma_fault(sid, 0x1000_1000, "F_TRANSLATION")
    s.mr(EVTQ_PROD, 3, mask=0x7FFF_FFFF)
    return s


def range_invalidation():
    s = Scenario("range_invalidation", "range TLBI batches as __arm_smmu_tlb_inv_range "
                 "issues them with RIL (__arm_smmu_tlb_inv_range; IHI 0070 §4.4.1.1)")
    s.bringup()
    sid = 0x30
    asid = 5
    s.tables = {}
    root = s.alloc_table()
    s.write_cd(CDTAB, asid, root)
    s.write_ste(sid, [CDTAB | 0xB, 0xD6])
    base = 0x1000_0000
    s.comment("map 40 pages at 0x1000_0000 and three 2M blocks at 0x4000_0000")
    for i in range(40):
        s.map(root, base + i * 0x1000, (DATA + i * 0x1000) | S1_PAGE)
    for i in range(3):
        s.map(root, 0x4000_0000 + i * 0x20_0000, (0x4020_0000 + i * 0x20_0000) | S1_BLOCK,
              level=2)
    for i in (0, 4, 5, 36, 37, 39):
        s.dma_ok(sid, base + i * 0x1000 + 8, DATA + i * 0x1000 + 8)
    for i in range(3):
        s.dma_ok(sid, 0x4000_0000 + i * 0x20_0000 + 0x10, 0x4020_0000 + i * 0x20_0000 + 0x10)
    s.comment("unmap 37 pages: clear PTEs, two RIL commands (NUM 4/SCALE 0, NUM 0/SCALE 5) + SYNC")
    for i in range(37):
        s.map(root, base + i * 0x1000, 0)
    s.cmd(0x0005_0000_0000_4012, 0x0000_0000_1000_0701)  # NUM 4, SCALE 0: 5 pages
    s.cmd(0x0005_0000_0050_0012, 0x0000_0000_1000_5701)  # NUM 0, SCALE 5: 32 pages
    s.sync()
    for i in (0, 4, 5, 20, 36):
        s.dma_fault(sid, base + i * 0x1000, "F_TRANSLATION")
    for i in (37, 39):
        s.dma_ok(sid, base + i * 0x1000, DATA + i * 0x1000)
    s.consume_events(5)
    s.comment("unmap the three 2M blocks: SCALE 9, NUM 2, TTL 2 (IHI 0070 §4.4.1.1)")
    for i in range(3):
        s.map(root, 0x4000_0000 + i * 0x20_0000, 0, level=2)
    s.cmd(0x0005_0000_0090_2012, 0x0000_0000_4000_0601)
    s.sync()
    for i in range(3):
        s.dma_fault(sid, 0x4000_0000 + i * 0x20_0000 + 0x10, "F_TRANSLATION")
    s.consume_events(8)
    s.comment("non-RIL form (TG = 0): one command per page")
    s.map(root, base + 37 * 0x1000, 0)
    s.map(root, base + 38 * 0x1000, 0)
    s.cmd(0x12 | (asid << 48), (base + 37 * 0x1000) | 1)
    s.cmd(0x12 | (asid << 48), (base + 38 * 0x1000) | 1)
    s.sync()
    s.dma_fault(sid, base + 37 * 0x1000, "F_TRANSLATION")
    s.dma_fault(sid, base + 38 * 0x1000, "F_TRANSLATION")
    s.dma_ok(sid, base + 39 * 0x1000, DATA + 39 * 0x1000)
    s.consume_events(10)
    return s


def command_errors():
    s = Scenario("command_errors", "command errors: CERROR_ILL stops the queue, toggles "
                 "GERROR.CMDQ_ERR with a GERROR MSI, and resumes at CONS after the GERRORN "
                 "acknowledge (IHI 0070 §7.1, __arm_smmu_cmdq_skip_err)")
    s.bringup()

    def illegal(c0, c1, why):
        s.comment(why)
        bad = s.prod
        s.cmd(c0, c1)
        s.cmd(SYNC_SEV)  # a SYNC behind it must not complete while the error is active
        s.submit()
        idx = s.prod_reg(bad)
        s.mr(CMDQ_CONS, (1 << 24) | idx)  # ERR = CERROR_ILL, CONS at the failing command
        return bad, idx

    def recover(bad, idx, gerror):
        s.mr(GERROR, gerror)
        s.expect_msi(GERROR_MSI_DATA)
        s.comment("arm_smmu_cmdq_skip_err: overwrite the slot with a CMD_SYNC, ack GERRORN")
        s.wmem(s.slot(bad), le64(SYNC_SEV, 0))
        s.mw(GERRORN, gerror)
        s.mr(CMDQ_CONS, s.prod_reg(s.prod))
        s.mr(GERROR, gerror)
        s.mr(GERRORN, gerror)

    bad, idx = illegal(0x7F, 0, "unknown opcode 0x7F -> CERROR_ILL")
    s.mr(GERROR, 0x1)
    s.comment("queue stopped: more commands are not consumed while CMDQ_ERR is active")
    s.cmd(0x30)
    s.submit()
    s.mr(CMDQ_CONS, (1 << 24) | idx)
    recover(bad, idx, 0x1)

    bad, idx = illegal(0x0FC0_3046, 0, "CMD_SYNC with CS = 0b11 (reserved) -> CERROR_ILL; "
                       "GERROR.CMDQ_ERR toggles back to 0 (active while GERROR != GERRORN)")
    recover(bad, idx, 0x0)

    bad, idx = illegal(0x20, 0, "TLBI_EL2_ALL without IDR0.HYP -> CERROR_ILL")
    recover(bad, idx, 0x1)

    bad, idx = illegal(0x07, 0, "opcode 0x07 is not CFGI_ALL (IHI 0070 §4.3) -> CERROR_ILL")
    recover(bad, idx, 0x0)

    s.comment("a stray GERRORN write with no active error fabricates nothing (policy; IHI 0070 §7.5)")
    s.mw(GERRORN, 0x1)
    s.mr(GERROR, 0x0)
    s.mr(GERRORN, 0x0)
    s.expect_msi(GERROR_MSI_DATA, count=0)
    s.comment("the queue works normally afterwards")
    s.cmd(0x11 | (1 << 48))
    s.sync()
    return s


def dma_fault_event():
    s = Scenario("dma_fault_event", "a faulting DMA writes an event record (read back from "
                 "the queue) and sends the EVTQ MSI; the driver consumes it through EVTQ_CONS")
    s.bringup()
    sid = 0x18
    s.tables = {}
    root = s.alloc_table()
    s.write_cd(CDTAB, 1, root)
    s.write_ste(sid, [CDTAB | 0xB, 0xD6])
    s.map(root, 0x8000_0000, DATA | S1_PAGE)
    s.dma_ok(sid, 0x8000_0010, DATA + 0x10)
    s.expect_msi(EVTQ_MSI_DATA, count=0)
    s.comment("read fault at an unmapped IOVA: F_TRANSLATION (0x10) record 0")
    s.dma_fault(sid, 0x8000_3008, "F_TRANSLATION")
    s.expect_event(0, 0x10, sid, 0x8000_3008)
    s.mr(EVTQ_PROD, 1, mask=0x7FFF_FFFF)
    s.expect_msi(EVTQ_MSI_DATA, count=1)
    s.comment("write fault: record 1, RnW = 0")
    s.dma_fault(sid, 0x9000_0000, "F_TRANSLATION", access="write")
    s.expect_event(1, 0x10, sid, 0x9000_0000, rnw=False)
    s.expect_msi(EVTQ_MSI_DATA)
    s.consume_events(2)
    s.comment("an SSID on a stream whose STE has S1CDMax = 0: C_BAD_SUBSTREAMID (IHI 0070 §7.3)")
    s.dma_fault(sid, 0x8000_0010, "C_BAD_SUBSTREAMID", ssid=3)
    s.rmem(s.evt_addr(2), le64(0x08 | (1 << 11) | (3 << 12) | (sid << 32)))
    s.expect_msi(EVTQ_MSI_DATA)
    s.consume_events(3)
    s.comment("with EVTQ interrupts disabled the record is still written, no MSI (SMMU_IRQ_CTRL)")
    s.mw(IRQ_CTRL, 0x1)
    s.mr(IRQ_CTRLACK, 0x1)
    s.dma_fault(sid, 0xA000_0000, "F_TRANSLATION")
    s.expect_event(3, 0x10, sid, 0xA000_0000)
    s.mr(EVTQ_PROD, 4, mask=0x7FFF_FFFF)
    s.expect_msi(EVTQ_MSI_DATA, count=0)

    s.comment("overflow (IHI 0070 §7.4): a 2-entry queue, reprogrammed with EVENTQEN = 0")
    evtq2 = EVTQ + 0x1000
    s.mw(CR0, 0x9)
    s.mr(CR0ACK, 0x9)
    s.mw(EVTQ_BASE, (1 << 62) | evtq2 | 1, size=8)
    s.mw(EVTQ_PROD, 0)
    s.mw(EVTQ_CONS, 0)
    s.mw(CR0, 0xD)
    s.mr(CR0ACK, 0xD)
    for i in range(3):
        s.dma_fault(sid, 0xB000_0000 + i * 0x1000, "F_TRANSLATION")
    s.comment("two records written, the third dropped: PROD = wrap 1, index 0, OVFLG toggled; "
              "a full queue is not EVENTQ_ABT_ERR")
    s.rmem(evtq2 + 16, le64(0xB000_0000))
    s.rmem(evtq2 + 32 + 16, le64(0xB000_1000))
    s.mr(EVTQ_PROD, 0x8000_0002)
    s.mr(GERROR, 0)
    s.comment("the driver drains and acknowledges: CONS = PROD index/wrap | OVACKFLG copied")
    s.mw(EVTQ_CONS, 0x8000_0002)
    s.dma_fault(sid, 0xB000_4000, "F_TRANSLATION")
    s.rmem(evtq2 + 16, le64(0xB000_4000))
    s.mr(EVTQ_PROD, 0x8000_0003)
    return s


def pasid_cd2l():
    s = Scenario("pasid_cd2l", "PASIDs through a 2-level CD table (S1Fmt = 64K leaves, "
                 "S1CDMax = 11), installed the way Linux does (CFGI_CD leaf 0 after the L1 "
                 "descriptor; IHI 0070 §5.3, arm_smmu_write_cd_l1_desc)")
    s.bringup()
    sid = 0x28
    s.tables = {}
    root0 = s.alloc_table()
    root1 = s.alloc_table()
    s.map(root0, 0x1000_0000, DATA | S1_PAGE)
    s.map(root1, 0x1000_0000, (DATA + 0x5000) | S1_PAGE)
    l1 = CDTAB + 0x1_0000
    leaf0, leaf1 = CDTAB + 0x2_0000, CDTAB + 0x3_0000  # 64 KiB leaves of 1024 CDs
    s.write_cd(leaf0, 1, root0)  # CD 0 (RID domain)
    s.wq(l1, leaf0 | 1)  # L1CD: V | L2Ptr
    # STE: V | S1 | S1Fmt 2 | S1ContextPtr = L1 table | S1CDMax 11; S1DSS = SSID0
    s.write_ste(sid, [l1 | 0x20 | 0xB | (11 << 59), 0xD6])
    s.dma_ok(sid, 0x1000_0010, DATA + 0x10)
    s.comment("PASID 1025 = leaf 1, index 1: write the CD, then the L1 descriptor, then "
              "CFGI_CD(leaf 0) + SYNC")
    s.write_cd(leaf1 + 64, 7, root1)
    s.wq(l1 + 8, leaf1 | 1)
    s.cmd(0x5 | (1025 << 12) | (sid << 32), 0)
    s.sync()
    s.dma_ok(sid, 0x1000_0020, DATA + 0x5020, ssid=1025)
    s.dma_ok(sid, 0x1000_0020, DATA + 0x20)
    s.comment("PASID 1500: leaf 1 index 476 holds no valid CD -> C_BAD_CD")
    s.dma_fault(sid, 0x1000_0020, "C_BAD_CD", ssid=1500)
    s.comment("PASID 2048 >= 2^S1CDMax -> C_BAD_SUBSTREAMID (IHI 0070 §7.3)")
    s.dma_fault(sid, 0x1000_0020, "C_BAD_SUBSTREAMID", ssid=2048)
    s.rmem(s.evt_addr(0), le64(0x0A | (1 << 11) | (1500 << 12) | (sid << 32)))
    s.rmem(s.evt_addr(1), le64(0x08 | (1 << 11) | (2048 << 12) | (sid << 32)))
    s.consume_events(2)
    s.comment("PASID teardown: clear the CD (V = 0), CFGI_CD leaf 1 + SYNC -> C_BAD_CD")
    s.wq(leaf1 + 64, 0)
    s.cd_sync(sid, 1025)
    s.dma_fault(sid, 0x1000_0020, "C_BAD_CD", ssid=1025)
    s.dma_ok(sid, 0x1000_0020, DATA + 0x20)
    return s


def nested():
    s = Scenario("nested", "nested translation (STE Config 7): CD, stage-1 tables and output "
                 "are IPAs translated by stage 2 (IHI 0070 §5.2 Config 0b111); stage-2 faults report S2, "
                 "CLASS and the IPA")
    s.bringup()
    sid = 0x38
    s.tables = {}
    s2t = {}
    s2root = s.alloc_table()
    # Stage 2: IPA [0x4000_0000, 0x8000_0000) identity as a 1 GiB block (RAM, where the CD and
    # the stage-1 tables live); IPA 0x8000_0000 -> DATA + 0x3000 (a page).
    s.map(s2root, 0x4000_0000, 0x4000_0000 | (S2_PAGE & ~0x2), level=1, tables=s2t)
    s.map(s2root, 0x8000_0000, (DATA + 0x3000) | S2_PAGE, tables=s2t)
    s1root = s.alloc_table()
    s.map(s1root, 0x1000_0000, 0x8000_0000 | S1_PAGE)
    s.map(s1root, 0x1000_1000, 0x9000_0000 | S1_PAGE)
    # VA 0x1020_0000: its level-3 table is at IPA 0xA000_0000, which stage 2 does not map
    l2 = s.tables[(s.tables[(s1root, 0)], 0)]
    s.wq(l2 + 8 * 0x81, 0xA000_0000 | TABLE)
    s.write_cd(CDTAB, 1, s1root)
    w2 = 1 | (VTCR_4K_48 << 32) | (1 << 51) | (1 << 54) | (1 << 58)  # VMID 1, S2AA64/PTW/R
    s.write_ste(sid, [CDTAB | 0xF, 0xD6, w2, s2root])
    s.dma_ok(sid, 0x1000_0010, DATA + 0x3010)
    s.comment("S1 output IPA 0x9000_0000 unmapped at stage 2: F_TRANSLATION, S2 = 1, "
              "CLASS = IN, IPA reported")
    s.dma_fault(sid, 0x1000_1000, "F_TRANSLATION")
    rec = s.evt_addr(0)
    s.rmem(rec, le64(0x10 | (sid << 32)))
    s.rmem(rec + 12, bytes([0x88, 0x02]))  # RnW | S2; CLASS = IN (2)
    s.rmem(rec + 16, le64(0x1000_1000))
    s.rmem(rec + 24, le64(0x9000_0000))
    s.comment("stage-1 table at IPA 0xA000_0000 unmapped at stage 2: CLASS = TT, TTRnW")
    s.dma_fault(sid, 0x1020_0000, "F_TRANSLATION")
    rec = s.evt_addr(1)
    s.rmem(rec + 12, bytes([0x88, 0x11]))  # RnW | S2; CLASS = TT (1) | TTRnW
    s.rmem(rec + 16, le64(0x1020_0000))
    s.rmem(rec + 24, le64(0xA000_0000))
    s.expect_msi(EVTQ_MSI_DATA)
    s.consume_events(2)
    s.comment("stage-2 unmap of IPA 0x8000_0000: TLBI_S2_IPA + SYNC, then TLBI_NH_ALL(vmid) + "
              "SYNC as Linux does for nest parents (arm_smmu_tlb_inv_range_domain)")
    s.map(s2root, 0x8000_0000, 0, tables=s2t)
    s.cmd(0x2A | (1 << 32), 0x8000_0000 | 1)
    s.sync()
    s.cmd(0x10 | (1 << 32))
    s.sync()
    s.dma_fault(sid, 0x1000_0010, "F_TRANSLATION")
    return s


def gbpa():
    s = Scenario("gbpa", "SMMUEN = 0 routes traffic by GBPA (IHI 0070 §6.3, SMMU_GBPA): bypass at reset, "
                 "the UPDATE protocol, and a kexec'd kernel resetting an enabled SMMU")
    sid = 5
    s.comment("reset value 0x1000 (policy): bypass with SHCFG = incoming")
    s.mr(GBPA, 0x1000)
    s.dma_ok(sid, 0x4080_0010, 0x4080_0010)
    s.comment("a write without UPDATE is ignored (policy)")
    s.mw(GBPA, 0x0010_1000)
    s.mr(GBPA, 0x1000)
    s.dma_ok(sid, 0x4080_0010, 0x4080_0010)
    s.comment("first kernel: full bring-up; SID 5 keeps its abort STE")
    s.bringup()
    s.dma_fault(sid, 0x4080_0010)
    s.comment("kexec: the new kernel finds SMMUEN = 1")
    s.bringup(cr0=0xD)
    s.mr(GBPA, 0x0010_1000)
    s.dma_fault(sid, 0x4080_0010)
    s.comment("with SMMUEN = 0 and GBPA.ABORT = 1 all traffic is terminated")
    s.mw(CR0, 0xC)
    s.mr(CR0ACK, 0xC)
    s.dma_fault(sid, 0x4080_0010)
    s.dma_fault(0x300, 0x4080_0010)
    s.comment("GBPA back to bypass through the UPDATE protocol")
    s.mw(GBPA, 0x8000_1000)
    s.mr(GBPA, 0x1000)
    s.dma_ok(sid, 0x4080_0010, 0x4080_0010)
    s.mr(EVTQ_PROD, 0, mask=0x7FFF_FFFF)
    return s


def batch_limit():
    s = Scenario("batch_limit", "cmdq_batch_limit = 1: each MMIO access consumes one command; "
                 "the rest is finished before the guest observes CONS (replay settle rule)",
                 config={"cmdq_batch_limit": 1})
    s.bringup()
    for asid in range(1, 9):
        s.cmd(0x11 | (asid << 48))
    s.sync()
    return s


SCENARIOS = [linux_bringup, attach_s1_dma, hitless, range_invalidation, command_errors,
             dma_fault_event, pasid_cd2l, nested, gbpa, batch_limit]


# -- stage-1-only profile of an accelerated vSMMU over a nesting host -------------------------
# The guest-visible ID registers viommu_sva::caps::clamp derives from the testbed host (QEMU 10
# virt,iommu=smmuv3 seen through IOMMU_GET_HW_INFO: IDR0 0x0d44101b, IDR1 0x02730010, IDR3 0x1414,
# IDR5 0x74) with the default guest profile: S1P only (no S2P, VMID16, HTTU), TTF AArch64,
# COHACC, ASID16, MSI, TTENDIAN LE, STALL_MODEL terminate, TERM_MODEL, ST_LEVEL 2-level;
# SIDSIZE 16, SSIDSIZE 0 (so every STE has S1CDMax = 0), EVENTQS = CMDQS = 19; IDR3 RIL and
# BBML 2 only; IDR5 OAS 44 bits, 4K/16K/64K granules. AIDR 2 (SMMUv3.2: RIL/BBML).
ACCEL_IDR0 = 0x0D40_301A
ACCEL_IDR1 = 0x0273_0010
ACCEL_IDR3 = 0x0000_1400
ACCEL_IDR5 = 0x0000_0074
ACCEL_AIDR = 0x2
# The same profile with a linear stream table (IDR0.ST_LEVEL = 0), an 8-bit StreamID space and
# no range invalidation (IDR3.RIL = 0): what a VMM may present instead of the clamped set; Linux
# then uses a 256-entry linear table and one TLBI_NH_VA per page.
ACCEL_LINEAR_IDR0 = ACCEL_IDR0 & ~(3 << 27)
ACCEL_LINEAR_IDR1 = (ACCEL_IDR1 & ~0x3F) | 8
ACCEL_LINEAR_IDR3 = 0x0000_1000
ACCEL_LINEAR_AIDR = 0x2  # BBML is still a v3.2 feature
# Guest-side layout, chosen for a real DMA engine behind a real SMMU (QEMU's edu on the kernel
# testbed): stage-1 input addresses below 256 MiB (edu's default 28-bit DMA mask) and clear of
# 0x0800_0000 + 1 MiB, where Linux puts its software MSI window; DMA sizes within one page and
# at most the 4 KiB edu buffer. RAM (IOVA = GPA at stage 2) stays at RAM_BASE.
ACCEL_IOVA = 0x0200_0000
ACCEL_IOVA_UNMAPPED = 0x0300_0000
CD_IPS_44 = 4  # Linux sets CD.IPS from the SMMU's OAS (44 bits here)


def cd_w0_accel(asid):
    return (cd_w0(asid) & ~(7 << 32)) | (CD_IPS_44 << 32)


class AccelScenario(Scenario):
    """A scenario on the stage-1-only profile of an accelerated vSMMU; `linear` selects the
    linear-stream-table variant of the profile."""

    def __init__(self, name, title, linear=False):
        self.linear = linear
        regs = {
            "idr0": h(ACCEL_LINEAR_IDR0 if linear else ACCEL_IDR0),
            "idr1": h(ACCEL_LINEAR_IDR1 if linear else ACCEL_IDR1),
            "idr3": h(ACCEL_LINEAR_IDR3 if linear else ACCEL_IDR3),
            "idr5": h(ACCEL_IDR5),
            "iidr": h(0),
            "aidr": h(ACCEL_LINEAR_AIDR if linear else ACCEL_AIDR),
        }
        super().__init__(name, title, config={"id_regs": regs})

    def bringup(self, cr0=0):
        """The Linux probe + reset of Scenario.bringup on this profile: the ID registers read
        back exactly as configured, and the stream table follows IDR0.ST_LEVEL (2-level with
        SPLIT 8 for SIDSIZE 16, else linear with LOG2SIZE = SIDSIZE)."""
        assert cr0 == 0
        self.prod = 0
        self.comment("probe: the stage-1-only ID registers (S1P, no S2P/VMID16/HTTU; "
                     "SSIDSIZE 0; OAS 44)")
        self.mr(IDR0, ACCEL_LINEAR_IDR0 if self.linear else ACCEL_IDR0)
        self.mr(IDR1, ACCEL_LINEAR_IDR1 if self.linear else ACCEL_IDR1)
        self.mr(IDR3, ACCEL_LINEAR_IDR3 if self.linear else ACCEL_IDR3)
        self.mr(IDR5, ACCEL_IDR5)
        self.mr(IIDR, 0)
        self.comment("reset, as arm_smmu_device_reset() does it")
        self.mr(CR0, 0)
        self.mw(CR0, 0)
        self.mr(CR0ACK, 0)
        self.mw(CR1, 0xD75)
        self.mw(CR2, 0x6)
        if self.linear:
            # 256 STEs (SIDSIZE 8), all abort; STRTAB_BASE_CFG FMT linear, LOG2SIZE 8
            self.wmem(STRTAB, le64(*([STE_ABORT] + [0] * 7)) * 256)
            self.mw(STRTAB_BASE, (1 << 62) | STRTAB, size=8)
            self.mw(STRTAB_BASE_CFG, 0x8)
        else:
            self.wmem(L2_BASE, le64(*([STE_ABORT] + [0] * 7)) * 256)
            self.wq(STRTAB, L2_BASE | 9)
            self.mw(STRTAB_BASE, (1 << 62) | STRTAB, size=8)
            self.mw(STRTAB_BASE_CFG, 0x0001_0210)
        self.mw(CMDQ_BASE, (1 << 62) | CMDQ | CMDQ_LOG2, size=8)
        self.mw(CMDQ_PROD, 0)
        self.mw(CMDQ_CONS, 0)
        self.mw(CR0, 0x8)
        self.mr(CR0ACK, 0x8)
        self.cmd(0x4, 0x1F)  # CFGI_ALL
        self.sync()
        self.cmd(0x30)  # TLBI_NSNH_ALL
        self.sync()
        self.mw(EVTQ_BASE, (1 << 62) | EVTQ | EVTQ_LOG2, size=8)
        self.mw(EVTQ_PROD, 0)
        self.mw(EVTQ_CONS, 0)
        self.mw(CR0, 0xC)
        self.mr(CR0ACK, 0xC)
        self.mw(IRQ_CTRL, 0)
        self.mr(IRQ_CTRLACK, 0)
        self.mw(GERROR_IRQ_CFG0, 0, size=8)
        self.mw(EVTQ_IRQ_CFG0, 0, size=8)
        self.mw(EVTQ_IRQ_CFG0, DOORBELL, size=8)
        self.mw(EVTQ_IRQ_CFG1, EVTQ_MSI_DATA)
        self.mw(EVTQ_IRQ_CFG2, 0x1)
        self.mw(GERROR_IRQ_CFG0, DOORBELL, size=8)
        self.mw(GERROR_IRQ_CFG1, GERROR_MSI_DATA)
        self.mw(GERROR_IRQ_CFG2, 0x1)
        self.mw(IRQ_CTRL, 0x5)
        self.mr(IRQ_CTRLACK, 0x5)
        self.mw(CR0, 0xD)
        self.mr(CR0ACK, 0xD)
        self.mr(GERROR, 0)

    def ste_addr(self, sid):
        if self.linear:
            assert sid < 256
            return STRTAB + 64 * sid
        return super().ste_addr(sid)

    def write_cd(self, addr, asid, ttb0):
        self.wmem(addr, le64(cd_w0_accel(asid), ttb0, 0, MAIR, 0, 0, 0, 0))

    def fill(self, addr, seed, n):
        """Known bytes in RAM for a DMA to read (and for the test VMM to compare)."""
        self.wmem(addr, bytes((i * 31 + seed) & 0xFF for i in range(n)))

    def fault_event(self, n, sid, addr):
        """An F_TRANSLATION record n for `sid` at `addr`: w0 (ID, StreamID, no SSV) and w2
        (input address), the fields a real SMMU and the model both fix; the direction is
        checked by the caller's `dma` access."""
        self.rmem(self.evt_addr(n), le64(0x10 | (sid << 32)))
        self.rmem(self.evt_addr(n) + 16, le64(addr))


def accel_s1_dma(name="accel_s1_dma", linear=False):
    layout = "linear stream table, no RIL" if linear else "2-level stream table, RIL"
    s = AccelScenario(name, "stage-1-only accelerated vSMMU profile (" + layout + "): Linux "
                      "bring-up, attach SID 0x10 with a CD and 4-level 4K io-pgtable tables, "
                      "DMA reads and writes, a fault with its event, then unmap + TLBI_NH_VA + "
                      "CMD_SYNC and a fault at the old IOVA", linear=linear)
    s.bringup()
    sid = 0x10
    asid = 3 if linear else 1
    s.tables = {}
    root = s.alloc_table()
    s.write_cd(CDTAB, asid, root)
    s.comment("STE: V | Config S1 | S1Fmt linear | S1ContextPtr | S1CDMax 0 (SSIDSIZE 0); "
              "w1 S1DSS SSID0 | CIR/COR WBRA | CSH ISH")
    s.write_ste(sid, [CDTAB | 0xB, 0xD6])
    a, b = ACCEL_IOVA, ACCEL_IOVA + 0x1000
    s.comment("two 4K pages, read/write (io-pgtable leaves)")
    s.map(root, a, DATA | S1_PAGE)
    s.map(root, b, (DATA + 0x1000) | S1_PAGE)
    extra = []
    if linear:
        # a second pair far up the 48-bit input space (level-0 index 1): needs edu's full
        # DMA mask on the testbed
        hi = 0x0000_0080_1234_5000
        s.map(root, hi, (DATA + 0x2000) | S1_PAGE)
        extra = [(hi + 0x80, DATA + 0x2080)]
    s.fill(DATA + 0x40, 0x11, 256)
    s.comment("DMA read at page A + 0x40 (256 bytes) and write at page B + 0x100 (256 bytes)")
    s.dma_ok(sid, a + 0x40, DATA + 0x40, size=256)
    s.dma_ok(sid, b + 0x100, DATA + 0x1100, access="write", size=256)
    s.dma_ok(sid, b + 0xF00, DATA + 0x1F00, size=0x100)
    for iova, out in extra:
        s.fill(out, 0x22, 64)
        s.dma_ok(sid, iova, out, size=64)
        s.dma_ok(sid, iova, out, access="write", size=64)
    s.mr(EVTQ_PROD, 0, mask=0x7FFF_FFFF)
    s.comment("read at an unmapped IOVA: F_TRANSLATION, one record carrying SID 0x10")
    s.dma_fault(sid, ACCEL_IOVA_UNMAPPED + 0x20, "F_TRANSLATION")
    s.fault_event(0, sid, ACCEL_IOVA_UNMAPPED + 0x20)
    s.mr(EVTQ_PROD, 1, mask=0x7FFF_FFFF)
    s.expect_msi(EVTQ_MSI_DATA)
    s.consume_events(1)
    s.comment("unmap page A: clear the PTE, TLBI_NH_VA + CMD_SYNC")
    s.map(root, a, 0)
    if linear:
        s.cmd(0x12 | (asid << 48), a | 1)  # no RIL: address | leaf
    else:
        s.cmd(0x12 | (asid << 48), a | 0x701)  # RIL: 1 page, TG 4K, TTL 3, leaf
    s.sync()
    s.comment("the old IOVA faults (write this time); page B still translates")
    s.dma_fault(sid, a + 0x40, "F_TRANSLATION", access="write")
    s.fault_event(1, sid, a + 0x40)
    s.mr(EVTQ_PROD, 2, mask=0x7FFF_FFFF)
    s.expect_msi(EVTQ_MSI_DATA)
    s.dma_ok(sid, b + 0x200, DATA + 0x1200, size=64)
    s.consume_events(2)
    return s


def accel_s1_linear():
    return accel_s1_dma("accel_s1_linear", linear=True)


SCENARIOS += [accel_s1_dma, accel_s1_linear]


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                    help="output directory (default: this script's directory)")
    ap.add_argument("names", nargs="*", help="scenario names to write (default: all)")
    args = ap.parse_args()
    here = args.out
    wanted = set(args.names)
    for make in SCENARIOS:
        sc = make()
        if not wanted or sc.name in wanted:
            sc.write(here)
