#!/usr/bin/env python3
"""Generate the SMMUv3 I/O-page-fault replay scenarios tests/replay/smmuv3_stall_*.jsonl and
smmuv3_pri_*.jsonl (stall model and PRI; the replay extension documented in replay/src/iopf.rs).

Run from the repository root: `python3 tests/replay/gen_smmuv3_iopf.py`. Builds on
gen_smmuv3.py (same bring-up, queues and tables). Expected values come from
IHI 0070 (§7.3 event record, chapter 8 PRI record, §4.5.2 and §4.7 commands, §3.12.2 stall
model), never from running the model. STAGs are the
model's documented allocation order (0, 1, 2, ... on a fresh device).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_smmuv3 as g  # noqa: E402
from gen_smmuv3 import h, le64  # noqa: E402

PRIQ = 0x4012_0000
PRIQ_BASE, PRIQ_PROD, PRIQ_CONS = 0xC0, 0x100C8, 0x100CC
PRIQ_IRQ_CFG0, PRIQ_IRQ_CFG1, PRIQ_IRQ_CFG2 = 0xD0, 0xD8, 0xDC
PRIQ_MSI_DATA = 0x23
SID = 0x10


class Scenario(g.Scenario):
    """A scenario whose device advertises other ID register values than the default."""

    def __init__(self, name, title, config, idr0, idr1=0x0273_0510):
        self.idr = {g.IDR0: idr0, g.IDR1: idr1}
        super().__init__(name, title, config)

    def mr(self, off, expect, size=4, mask=None):
        # The probe reads IDR0 and IDR1 once each: expect this device's values there.
        if off in self.idr:
            expect = self.idr.pop(off)
        super().mr(off, expect, size, mask)

    def write(self, dirname):
        path = os.path.join(dirname, f"smmuv3_{self.name}.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")

    def stall_result(self, stag, expect, sid=SID):
        self.op("stall_result", dev="smmu0", stream=sid, stag=stag, expect=expect)

    def resume(self, stag, resp, sid=SID):
        """CMD_RESUME (IHI 0070 §4.7.1): Resp [13:12] (1 retry, 2 abort), SID [63:32], STAG in
        cmd1 [15:0]. Linux sends it without a CMD_SYNC (arm_smmu_page_response)."""
        self.cmd(0x44 | (resp << 12) | (sid << 32), stag)
        self.submit()

    def expect_stall_event(self, n, addr, stag, rnw=True):
        """Event record n of a stalled stage-1 F_TRANSLATION (IHI 0070 §7.3): w0 ID 0x10, SID;
        w1 STAG [15:0], Stall [31], RnW [35], CLASS = IN (2) [41:40]; w2 the input address."""
        rec = self.evt_addr(n)
        self.rmem(rec, le64(0x10 | (SID << 32)))
        w1 = stag | (1 << 31) | (2 << 40) | ((1 << 35) if rnw else 0)
        self.rmem(rec + 8, le64(w1))
        self.rmem(rec + 16, le64(addr))


def stall_sva():
    # IDR0 default 0x094C_301B with STALL_MODEL = 0 (clear 0x0100_0000, IDR0.STALL_MODEL).
    s = Scenario("stall_sva", "stall model: Linux SVA/IOPF flow on a dma-can-stall master "
                 "(CD.S = 1, STE.S1STALLD = 0): stall, map, RESUME retry; abort; STALL_TERM; "
                 "hostile RESUMEs; SMMUEN clear", {"stall_model": 0}, 0x084C_301B)
    s.bringup()
    s.tables = {}
    root = s.alloc_table()
    s.comment("CD 0 with S = 1 [44] (arm_smmu_make_sva_cd with stall_enabled); "
              "CD-table STE without S1STALLD (arm_smmu_make_cdtable_ste)")
    s.wmem(g.CDTAB, le64(g.cd_w0(1) | (1 << 44), root, 0, g.MAIR, 0, 0, 0, 0))
    s.write_ste(SID, [g.CDTAB | 0xB, 0xD6])

    s.comment("DMA to an unmapped page stalls: record with Stall = 1, STAG 0 (IHI 0070 §3.12.2)")
    s.dma(SID, 0x5000_0010, expect={"stalled": True})
    s.expect_stall_event(0, 0x5000_0010, 0)
    s.expect_msi(g.EVTQ_MSI_DATA)
    s.stall_result(0, {"stalled": True})
    s.comment("the OS maps the page and answers RESUME(Retry): the retried DMA translates")
    s.map(root, 0x5000_0000, g.DATA | g.S1_PAGE)
    s.resume(0, 1)
    s.mr(g.CMDQ_CONS, s.prod_reg(s.prod))
    s.stall_result(0, {"addr": h(g.DATA + 0x10)})

    s.comment("a write that the OS refuses: RESUME(Abort) -> the endpoint gets the fault")
    s.dma(SID, 0x5000_2000, access="write", expect={"stalled": True})
    s.expect_stall_event(1, 0x5000_2000, 1, rnw=False)
    s.resume(1, 2)
    s.stall_result(1, {"fault": "F_TRANSLATION"})

    s.comment("hostile RESUMEs: unknown STAG, STAG of another SID: no effect, no CERROR "
              "(IHI 0070 §4.7.1)")
    s.dma(SID, 0x5000_3000, expect={"stalled": True})
    s.expect_stall_event(2, 0x5000_3000, 2)
    s.resume(0x55, 1)
    s.resume(2, 2, sid=0x11)
    s.sync()
    s.mr(g.GERROR, 0)
    s.stall_result(2, {"stalled": True})
    s.comment("STALL_TERM(SID) + SYNC terminates it (IHI 0070 §4.7.2)")
    s.cmd(0x45 | (SID << 32))
    s.sync()
    s.stall_result(2, {"fault": "F_TRANSLATION"})

    s.comment("clearing SMMUEN terminates every stalled transaction (IHI 0070 §3.12.2)")
    s.dma(SID, 0x5000_4000, expect={"stalled": True})
    s.expect_stall_event(3, 0x5000_4000, 3)
    s.consume_events(4)
    s.mw(g.CR0, 0xC)
    s.mr(g.CR0ACK, 0xC)
    s.stall_result(3, {"fault": "F_TRANSLATION"})
    return s


def pri_roundtrip():
    # +ATS 0x400, +PRI 0x1_0000 (IDR0.ATS, IDR0.PRI); IDR1.PRIQS = 1 [15:11] (a 2-entry queue).
    s = Scenario("pri_roundtrip", "PRI: page request group to the guest's PRI queue, PRIQ MSI, "
                 "CMD_PRI_RESP back to the endpoint; overflow with automatic responses; "
                 "PRIQEN = 0", {"ats": True, "pri": True, "priq_log2": 1},
                 0x094D_341B, 0x0273_0D10)
    s.bringup()
    s.comment("PRI queue (arm_smmu_device_reset; LOG2SIZE 8 is clamped to PRIQS = 1), "
              "PRIQ MSI, IRQ_CTRL = 0x7, CR0 |= PRIQEN")
    s.mw(PRIQ_BASE, (1 << 62) | PRIQ | 8, size=8)
    s.mw(PRIQ_PROD, 0)
    s.mw(PRIQ_CONS, 0)
    s.mw(PRIQ_IRQ_CFG0, g.DOORBELL, size=8)
    s.mw(PRIQ_IRQ_CFG1, PRIQ_MSI_DATA)
    s.mw(PRIQ_IRQ_CFG2, 0x1)
    s.mw(g.IRQ_CTRL, 0x7)
    s.mr(g.IRQ_CTRLACK, 0x7)
    s.mw(g.CR0, 0xF)
    s.mr(g.CR0ACK, 0xF)

    def ppr(group, addr, last, expect, ssid=5):
        f = {"dev": "smmu0", "stream": SID}
        if ssid is not None:
            f["substream"] = ssid
        f.update(addr=h(addr), access="rw", last=last, group=group, expect=expect)
        s.op("page_request", **f)

    def pri_response(group, expect):
        s.op("pri_response", dev="smmu0", stream=SID, group=group, expect=expect)

    s.comment("a two-request group (PRGI 0x42, PASID 5)")
    ppr(0x42, 0x7000_1000, False, "queued")
    ppr(0x42, 0x7000_2000, True, "queued")
    s.comment("records (IHI 0070 chapter 8): w0 SID | SSID << 32 | READ 60 | WRITE 61 | LAST 62 | "
              "SSID_V 63; w1 PRG_INDEX | ADDR")
    s.rmem(PRIQ, le64(0xB000_0005_0000_0010, 0x7000_1042))
    s.rmem(PRIQ + 16, le64(0xF000_0005_0000_0010, 0x7000_2042))
    s.mr(PRIQ_PROD, 0x2)
    s.op("expect_irq", dev="smmu0", kind="msi", addr=h(g.DOORBELL), data=h(PRIQ_MSI_DATA),
         count=2)
    pri_response(0x42, "none")
    s.comment("CMD_PRI_RESP(SID, SSV, SSID 5, PRGI 0x42, Success = 2) + SYNC")
    s.cmd(0x41 | (1 << 11) | (5 << 12) | (SID << 32), 0x42 | (2 << 12))
    s.sync()
    pri_response(0x42, "success")

    s.comment("overflow (IHI 0070 §8.1): the 2-entry queue is full; Last = 0 dropped, OVFLG "
              "toggled; Last = 1 answered Success automatically")
    ppr(0x43, 0x7000_3000, False, "dropped")
    s.mr(PRIQ_PROD, 0x8000_0002)
    ppr(0x44, 0x7000_4000, True, "success")
    pri_response(0x44, "success")
    s.comment("consumed but not acknowledged: the active overflow still inhibits entries")
    s.mw(PRIQ_CONS, 0x2)
    ppr(0x45, 0x7000_5000, True, "success")
    s.comment("acknowledged (OVACKFLG = OVFLG): records are written again")
    s.mw(PRIQ_CONS, 0x8000_0002)
    ppr(0x46, 0x7000_6000, True, "queued", ssid=None)
    s.rmem(PRIQ, le64(0x7000_0000_0000_0010, 0x7000_6046))
    s.mr(PRIQ_PROD, 0x8000_0003)
    s.mr(g.GERROR, 0)
    s.comment("PRIQEN = 0: every request is answered Response Failure (IHI 0070 §8.2)")
    s.mw(g.CR0, 0xD)
    s.mr(g.CR0ACK, 0xD)
    ppr(0x47, 0x7000_7000, False, "failure")
    pri_response(0x47, "failure")
    return s


SCENARIOS = [stall_sva, pri_roundtrip]

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for make in SCENARIOS:
        make().write(here)
