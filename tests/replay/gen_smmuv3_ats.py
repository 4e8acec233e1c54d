#!/usr/bin/env python3
"""Generate the SMMUv3 ATS replay scenario tests/replay/smmuv3_ats.jsonl (the replay ATS
extension documented in replay/src/ats.rs: ats_request, translated, expect_atc_inv).

Run from the repository root: `python3 tests/replay/gen_smmuv3_ats.py`. Builds on
gen_smmuv3.py / gen_smmuv3_iopf.py (same bring-up, queues and tables). Expected values come from
IHI 0070 (§5.2 STE.EATS, §4.5.1 CMD_ATC_INV, §7.3 event records, §3.9.1 ATS) and
IHI 0070 §3.9 (Translation Completions: the translated address is the output of the walk, the
permissions those of the page, W withheld when NW = 1; an unmapped page answers R = W = 0;
EATS = 0 answers UR with F_BAD_ATS_TREQ; Translated traffic passes unchecked with CR0.ATSCHK = 0,
is checked against STE.EATS with ATSCHK = 1 and forbidden with SMMUEN = 0), never from running
the model.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_smmuv3 as g  # noqa: E402
from gen_smmuv3 import h, le64  # noqa: E402
from gen_smmuv3_iopf import Scenario  # noqa: E402

ATS_SID = 0x10  # STE.EATS = 0b01 (full ATS)
PLAIN_SID = 0x11  # STE.EATS = 0b00
IOVA = 0x5000_0000


def ats():
    # IDR0 default 0x094C_301B + ATS 0x400 (IDR0.ATS).
    s = Scenario("ats", "ATS: Translation Requests (full ATS, NW, read-only page, unmapped page, "
                 "EATS = 0), Translated transactions with ATSCHK = 0/1 and SMMUEN = 0, "
                 "unmap + TLBI + CMD_ATC_INV + SYNC reaching the endpoint's ATC",
                 {"ats": True}, 0x094C_341B)
    s.bringup()
    s.tables = {}
    root = s.alloc_table()
    s.comment("CD 0 (ASID 1) over io-pgtable tables: IOVA page 0 -> DATA read-write, page 1 -> "
              "DATA + 0x1000 read-only (AP[2])")
    s.write_cd(g.CDTAB, 1, root)
    s.map(root, IOVA, g.DATA | g.S1_PAGE)
    s.map(root, IOVA + 0x1000, (g.DATA + 0x1000) | g.S1_PAGE | g.S1_RDONLY)
    s.comment("CD-table STEs (arm_smmu_make_cdtable_ste); SID 0x10 with EATS = 0b01 [29:28] of "
              "word 1 (arm_smmu_enable_ats), SID 0x11 without")
    s.write_ste(ATS_SID, [g.CDTAB | 0xB, 0xD6 | (1 << 28)])
    s.write_ste(PLAIN_SID, [g.CDTAB | 0xB, 0xD6])

    def req(addr, expect, sid=ATS_SID, **kw):
        s.op("ats_request", dev="smmu0", stream=sid, addr=h(addr), **kw, expect=expect)

    def translated(addr, expect, sid=ATS_SID, access="read"):
        s.op("translated", dev="smmu0", stream=sid, addr=h(addr), size=4, access=access,
             expect=expect)

    s.comment("Translation Requests (IHI 0070 §3.9.1): the completion carries the walk's output "
              "and the page's permissions; NW = 1 withholds W; a read-only page grants R only")
    req(IOVA + 0x123, {"addr": h(g.DATA + 0x123), "perms": "rw"})
    req(IOVA + 0x123, {"addr": h(g.DATA + 0x123), "perms": "r"}, read_only=True)
    req(IOVA + 0x1040, {"addr": h(g.DATA + 0x1040), "perms": "r"})
    s.comment("an unmapped page: successful completion with R = W = 0 (the endpoint may then "
              "issue a page request), no event")
    req(IOVA + 0x5000, {"perms": ""})
    s.comment("EATS = 0: Unsupported Request and F_BAD_ATS_TREQ (0x05) recorded (IHI 0070 §7.3, "
              "§3.9.1)")
    req(IOVA, {"error": "UR"}, sid=PLAIN_SID)
    s.rmem(s.evt_addr(0), le64(0x05 | (PLAIN_SID << 32)))
    s.expect_msi(g.EVTQ_MSI_DATA)

    s.comment("Translated transactions with CR0.ATSCHK = 0 (0xD): not checked, the address is "
              "used as is, whatever the stream's EATS")
    translated(g.DATA + 0x123, {"addr": h(g.DATA + 0x123)}, access="write")
    translated(g.DATA + 0x2000, {"addr": h(g.DATA + 0x2000)}, sid=PLAIN_SID)

    s.comment("the guest unmaps IOVA page 0 (arm_smmu_tlb_inv_range + arm_smmu_atc_inv_domain): "
              "clear the PTE, TLBI_NH_VA (ASID 1, leaf), CMD_ATC_INV(SID 0x10, Size 0, page "
              "address) and CMD_SYNC")
    s.map(root, IOVA, 0)
    s.cmd(0x12 | (1 << 48), IOVA | 0x1)
    s.cmd(0x40 | (ATS_SID << 32), IOVA | 0)
    s.sync()
    s.comment("the endpoint's ATC received exactly that 4 KiB range (no PASID, not global)")
    s.op("expect_atc_inv", dev="smmu0", stream=ATS_SID,
         expect=[{"start": h(IOVA), "last": h(IOVA + 0xFFF), "global": False}])
    s.comment("its next Translation Request for the page misses: R = W = 0")
    req(IOVA + 0x123, {"perms": ""})
    s.comment("CMD_ATC_INV with Global [9], SSV = 0, Size = 52 (everything) and a PASID form "
              "(SSV [11], SSID 5 [31:12], Size 1: 8 KiB aligned down)")
    s.cmd(0x40 | (1 << 9) | (ATS_SID << 32), 52)
    s.cmd(0x40 | (1 << 11) | (5 << 12) | (ATS_SID << 32), (IOVA + 0x1000) | 1)
    s.sync()
    s.op("expect_atc_inv", dev="smmu0", stream=ATS_SID,
         expect=[{"start": 0, "last": h((1 << 64) - 1), "global": True},
                 {"start": h(IOVA), "last": h(IOVA + 0x1FFF), "ssid": 5, "global": False}])
    s.op("expect_atc_inv", dev="smmu0", stream=ATS_SID, expect=[])
    s.mr(g.GERROR, 0)

    s.comment("SMMUEN = 0: Translated traffic is forbidden (IHI 0070 §3.9.1.3; no record while "
              "SMMUEN = 0)")
    s.mw(g.CR0, 0xC)
    s.mr(g.CR0ACK, 0xC)
    translated(g.DATA, {"fault": "F_TRANSL_FORBIDDEN"})
    s.comment("re-enabled with CR0.ATSCHK = 1 (0x1D, Linux's value with ATS): checked against "
              "the STE: EATS = 0b01 passes, EATS = 0 is F_TRANSL_FORBIDDEN (0x07) with a record")
    s.mw(g.CR0, 0x1D)
    s.mr(g.CR0ACK, 0x1D)
    translated(g.DATA + 0x10, {"addr": h(g.DATA + 0x10)})
    translated(g.DATA + 0x10, {"fault": "F_TRANSL_FORBIDDEN"}, sid=PLAIN_SID)
    s.rmem(s.evt_addr(1), le64(0x07 | (PLAIN_SID << 32)))
    return s


if __name__ == "__main__":
    ats().write(os.path.dirname(os.path.abspath(__file__)))
