#!/usr/bin/env python3
"""Generate the PAMU replay scenarios tests/replay/pamu_*.jsonl (the test vectors of
pamu/README.md and a Linux-like bring-up). Entry words are written here from the PAACE field
definitions of Linux drivers/iommu/fsl_pamu.h, not by
the model, so the replays check the model independently. Run from the repository root."""
import json

TABLES = 0x100_0000
PPBA, SPBA, OBA = TABLES, TABLES + 0x14000, TABLES + 0x34000
PPLA, SPLA, OLA = PPBA + 0x14000, SPBA + 0x20000, OBA + 0x800
REGS = {"PPBAH": 0x0, "PPBAL": 0x4, "PPLAH": 0x8, "PPLAL": 0xC, "SPBAH": 0x10, "SPBAL": 0x14,
        "SPLAH": 0x18, "SPLAL": 0x1C, "OBAH": 0x20, "OBAL": 0x24, "OLAH": 0x28, "OLAL": 0x2C,
        "POES1": 0x40, "POES2": 0x44, "POEAH": 0x48, "POEAL": 0x4C, "AVS1": 0x50, "AVS2": 0x54,
        "AVAH": 0x58, "AVAL": 0x5C, "UDAD": 0x90, "PC2": 0xC04, "PC3": 0xC08, "PC": 0xC10,
        "PICS": 0xC1C}


class F:
    def __init__(self, title, config=None):
        self.ops = [{"op": "comment", "text": title},
                    {"op": "ram", "base": "0x0", "size": "0x4000000"},
                    {"op": "device", "name": "pamu", "kind": "pamu", "config": config or {}}]

    def c(self, text):
        self.ops.append({"op": "comment", "text": text})

    def w(self, inst, reg, v):
        self.ops.append({"op": "mmio_write", "dev": "pamu", "offset": hex(inst * 0x1000 + REGS[reg]),
                         "size": 4, "value": hex(v)})

    def r(self, inst, reg, expect=None, mask=None):
        o = {"op": "mmio_read", "dev": "pamu", "offset": hex(inst * 0x1000 + REGS[reg]), "size": 4}
        if expect is not None:
            o["expect"] = hex(expect)
        if mask is not None:
            o["mask"] = hex(mask)
        self.ops.append(o)

    def entry(self, addr, words):
        data = "".join("%08x" % x for x in (list(words) + [0] * 16)[:16])
        self.ops.append({"op": "write_mem", "addr": hex(addr), "data": data})

    def word(self, addr, v):
        self.ops.append({"op": "write_mem", "addr": hex(addr), "data": "%08x" % v})

    def read_word(self, addr, expect):
        self.ops.append({"op": "read_mem", "addr": hex(addr), "len": 4, "expect": "%08x" % expect})

    def dma(self, liodn, addr, access, expect, size=4):
        e = {"addr": hex(expect)} if isinstance(expect, int) else {"fault": expect}
        self.ops.append({"op": "dma", "dev": "pamu", "stream": hex(liodn), "addr": hex(addr),
                         "size": size, "access": access, "expect": e})

    def irq(self, line, count=None):
        o = {"op": "expect_irq", "dev": "pamu", "kind": "wired", "line": line}
        if count is not None:
            o["count"] = count
        self.ops.append(o)

    def probe(self, instances=5, pc3=0x00E00000):
        self.c("fsl_pamu_probe: PC3, then per instance PPBA/PPLA, SPBA/SPLA, OBA/OLA, PICS = AVIE, "
               "PC = PE|OCE|SPCC|PPCC (fsl_pamu.c setup_one_pamu)")
        self.r(0, "PC3", pc3)
        for i in range(instances):
            for reg, v in [("PPBAH", 0), ("PPBAL", PPBA), ("PPLAH", 0), ("PPLAL", PPLA),
                           ("SPBAH", 0), ("SPBAL", SPBA), ("SPLAH", 0), ("SPLAL", SPLA),
                           ("OBAH", 0), ("OBAL", OBA), ("OLAH", 0), ("OLAL", OLA)]:
                self.w(i, reg, v)
            self.w(i, "PICS", 0x4)
            self.w(i, "PC", 0x40001011)

    def av(self, inst, avs1, ava):
        """Check the capture, then clear it as the Linux ISR does (without touching the entry)."""
        self.r(inst, "PICS", 0xC)
        self.r(inst, "AVS1", avs1)
        self.r(inst, "AVAH", ava >> 32)
        self.r(inst, "AVAL", ava & 0xFFFFFFFF)
        self.w(inst, "AVS1", avs1 & 0x7FFF)
        self.w(inst, "PICS", 0xC)
        self.r(inst, "AVS1", avs1 & 0xFFFF0000)
        self.r(inst, "PICS", 0x4)

    def save(self, name):
        with open("tests/replay/%s.jsonl" % name, "w") as f:
            for o in self.ops:
                f.write(json.dumps(o) + "\n")


def ppaace(l):
    return PPBA + l * 64


def spaace(i):
    return SPBA + i * 64


def tv0():
    f = F("TV-0: capability and control registers after the Linux probe")
    f.c("reset: PE = 0, PICS = 0, capability registers from the P4080 profile")
    f.r(0, "PC", 0)
    f.r(0, "PICS", 0)
    f.r(4, "PC2", 0x0FFF0000)
    f.probe()
    for i in range(5):
        f.r(i, "PC", 0x40001011)
        f.r(i, "PICS", 0x4)
        f.r(i, "PPLAL", PPBA + 0x14000)
        f.r(i, "SPLAL", SPBA + 0x20000)
        f.r(i, "OLAL", OBA + 0x800)
    f.c("PC reserved bits read as zero")
    f.w(2, "PC", 0xFFFFFFFF)
    f.r(2, "PC", 0xC0001011)
    f.save("pamu_tv0_probe")
    g = F("TV-0: P4080 rev 1 advertises 16 subwindows (PC3.MWCE 3)", {"max_subwindows_log2": 4})
    g.r(0, "PC3", 0x00600000)
    g.r(0, "PC3", 0x00600000, mask=0x01E00000)
    g.save("pamu_tv0_rev1")


def tv1():
    f = F("TV-1: single translated window [0x8000_0000, 0x9000_0000) -> 0x1_2000_0000")
    f.probe()
    L = 0x30
    f.entry(ppaace(L), [0, 0x800006D9, 0x80, 4, 1, 0x20000000, 0, 0])
    f.dma(L, 0x80000000, "read", 0x120000000, size=1)
    f.dma(L, 0x81234568, "write", 0x121234568, size=1)
    f.dma(L, 0x8FFFFFFF, "read", 0x12FFFFFFF, size=1)
    f.dma(L, 0x90000000, "read", "AV_WINDOW", size=1)
    f.irq(0)
    f.av(0, (L << 16) | 0x81, 0x90000000)
    f.dma(L, 0x7FFFFFFF, "read", "AV_WINDOW", size=1)
    f.av(0, (L << 16) | 0x81, 0x7FFFFFFF)
    f.c("read-only variant: AP 1, word1 800006C9")
    f.word(ppaace(L) + 4, 0x800006C9)
    f.dma(L, 0x80001000, "read", 0x120001000)
    f.dma(L, 0x80001000, "write", "AV_PERMISSION")
    f.r(0, "AVS2", 1)
    f.av(0, (L << 16) | 0x09, 0x80001000)
    f.save("pamu_tv1_single_window")


def tv2():
    f = F("TV-2: 1 GiB aperture, 8 subwindows, FSPI 0x10, LIODN 0x21")
    f.probe()
    f.entry(ppaace(0x21), [0, 0x779, 0x80, 0x24, 2, 0x680, 0x10, 0])
    f.entry(spaace(0x10), [0, 0x0021000B, 0x80, 4, 1, 0x080003C0, 0, 0])
    for i in range(0x11, 0x16):
        f.entry(spaace(i), [0, 0x00210002, 0x80, 4, 0, 0x680, 0, 0])
    f.entry(spaace(0x16), [0, 0x00210013, 0x80, 4, 0xF, 0xFE0442C0, 0, 0])
    L = 0x21
    f.dma(L, 0x00001234, "read", 0x200001234)
    f.dma(L, 0x07FFFFFF, "read", 0x207FFFFFF, size=1)
    f.dma(L, 0x08000010, "read", 0x108000010)
    f.dma(L, 0x08000010, "write", "AV_PERMISSION")
    f.av(0, 0x00210009, 0x08000010)
    f.dma(L, 0x0800FFFF, "read", 0x10800FFFF, size=1)
    f.dma(L, 0x08010000, "read", "AV_WINDOW")
    f.av(0, 0x00210081, 0x08010000)
    f.dma(L, 0x10000000, "read", "AV_WINDOW")
    f.av(0, 0x00210081, 0x10000000)
    f.dma(L, 0x38000140, "write", 0xFFE044140)
    f.dma(L, 0x38000140, "read", "AV_PERMISSION")
    f.av(0, 0x00210009, 0x38000140)
    f.dma(L, 0x38001000, "write", "AV_WINDOW")
    f.av(0, 0x00210081, 0x38001000)
    f.dma(L, 0x40000000, "read", "AV_WINDOW")
    f.av(0, 0x00210081, 0x40000000)
    f.c("window_disable(0): primary AP = 0 (word1 00000761)")
    f.word(ppaace(L) + 4, 0x761)
    f.dma(L, 0x1234, "read", "AV_PERMISSION")
    f.av(0, 0x00210009, 0x1234)
    f.c("an access crossing from w0 into w1 is split at the 4 KiB boundary like a bus "
        "transaction: its first part translates through w0, the rest through w1")
    f.word(ppaace(L) + 4, 0x779)
    f.dma(L, 0x07FFFFFC, "read", 0x207FFFFFC, size=8)
    f.dma(L, 0x08000000, "read", 0x108000000, size=4)
    f.save("pamu_tv2_subwindows")


def tv3():
    f = F("TV-3: boot default (ATM 0) and post-5.13 identity (ATM 1, TWBA 0)")
    f.probe()
    L = 0x40
    f.c("setup_liodns: WSE 35, AP 3, CR, ATM 0, then V = 1")
    f.entry(ppaace(L), [0, 0x8D8, 0x80, 0, 0, 0, 0, 0])
    f.word(ppaace(L) + 4, 0x8D9)
    for a, acc in [(0, "write"), (0xFFE044140, "write"), (0xFFFFFFFFF, "read")]:
        f.dma(L, a, acc, a, size=1)
    f.dma(L, 0x1000000000, "read", "AV_WINDOW", size=1)
    f.av(0, 0x00400081, 0x1000000000)
    f.c("post-5.13 pamu_set_liodn: disable, identity window with ATM 1 and TWBA 0, enable")
    f.word(ppaace(L) + 4, 0x8D8)
    f.dma(L, 0x1000, "read", "AV_DISABLED")
    f.av(0, 0x00404001, 0x1000)
    f.entry(ppaace(L), [0, 0x8D8, 0x80, 4, 0, 0, 0, 0])
    f.word(ppaace(L) + 4, 0x8D9)
    f.dma(L, 0xFFE044140, "write", 0xFFE044140)
    f.dma(L, 0xFFFFFFFFF, "read", 0xFFFFFFFFF, size=1)
    f.dma(L, 0x1000000000, "read", "AV_WINDOW", size=1)
    f.save("pamu_tv3_identity")
    g = F("TV-3 with the 2025 40-bit patch on a T4240: WSE 39, window up to 1 TiB",
          {"instances": 6, "msi_banks": 4, "mpic_version": "4.3", "phys_addr_bits": 40})
    g.probe(instances=6)
    g.entry(ppaace(L), [0, 0x9D9, 0x80, 4, 0, 0, 0, 0])
    g.dma(L, 0xFFFFFFFFFF, "read", 0xFFFFFFFFFF, size=1)
    g.dma(L, 0x10000000000, "read", "AV_WINDOW", size=1)
    g.save("pamu_tv3_identity_40bit")


def tv4():
    f = F("TV-4: LIODN 0x500 is outside the PPAACT: AVS1 = 0x0500_0401")
    f.probe()
    f.dma(0x500, 0x1000, "read", "AV_LIODN")
    f.irq(0)
    f.r(0, "PICS", 0xC)
    f.r(0, "AVS1", 0x05000401)
    f.c("pamu_av_isr: write AVS1 & 0x7FFF, no PPAACE -> clear AVIE in the saved PICS, write it back")
    f.w(0, "AVS1", 0x0401)
    f.r(0, "AVS1", 0x05000000)
    f.w(0, "PICS", 0x8)
    f.r(0, "PICS", 0)
    f.c("a further violation latches but no longer interrupts")
    f.dma(0x7FF, 0x1000, "read", "AV_LIODN")
    f.r(0, "AVS1", 0x07FF0401)
    f.irq(0, count=0)
    f.save("pamu_tv4_liodn_outside")


def tv5():
    f = F("TV-5: VFIO geometry [0, 0x7FFF_FFFF], 256 windows of 8 MiB, MAP_DMA 0..1 GiB, "
          "MSI banks at windows 253-255 (test vector TV-5)")
    f.probe()
    L = 0x10
    ram = 0x100000000
    f.c("PPAACE: WSE 30 (2 GiB), MW, WCE 7, FSPI 0; subwindow 0 -> RAM, SWSE 22 (8 MiB), RW")
    f.entry(ppaace(L), [0, (30 << 6) | 0x20 | 0x18 | 1, 0x80, 0x74, ram >> 32, (22 << 6), 0, 0])
    for wnd in range(1, 256):
        idx = wnd - 1
        if wnd < 128:
            pa, swse, w1 = ram + wnd * 0x800000, 22, (L << 16) | 0x18 | 3
        elif wnd >= 253:
            pa, swse, w1 = 0xFFE044000 + (wnd - 253) * 0x1000, 11, (L << 16) | 0x10 | 3
        else:
            pa, swse, w1 = 0, 22, (L << 16) | 2
        f.entry(spaace(idx), [0, w1, 0x80, 4, pa >> 32, (pa & 0xFFFFF000) | (swse << 6), 0, 0])
    f.dma(L, 0, "read", ram)
    f.dma(L, 0x3FFFFFFF, "write", ram + 0x3FFFFFFF, size=1)
    f.dma(L, 0x00400000, "read", ram + 0x400000)
    f.dma(L, 0x40000000, "read", "AV_WINDOW")
    f.av(0, 0x00100081, 0x40000000)
    for b in range(3):
        iova = 0x7E800000 + b * 0x800000
        f.dma(L, iova + 0x140, "write", 0xFFE044140 + b * 0x1000)
    f.dma(L, 0x7E800140, "read", "AV_PERMISSION")
    f.av(0, 0x00100009, 0x7E800140)
    f.dma(L, 0x7E801000, "write", "AV_WINDOW")
    f.av(0, 0x00100081, 0x7E801000)
    f.dma(L, 0x80000000, "write", "AV_WINDOW")
    f.av(0, 0x00100081, 0x80000000)
    f.save("pamu_tv5_vfio_windows")


def bringup():
    f = F("Linux-like bring-up: probe, setup_omt, setup_liodns for a device-tree list, DMA, an "
          "access violation and pamu_av_isr; a malformed entry raising an operation error")
    f.probe()
    f.w(0, "PICS", 0x5)
    f.c("setup_omt: OMI 1 (FMan): read -> READI, write -> WRITE")
    f.ops.append({"op": "write_mem", "addr": hex(OBA + 128), "data": "9881"})
    dt = {"dma@100300": [0x48], "pcie@ffe200000": [0x10], "fman@400000": [0x20, 0x21, 0x22]}
    for name, liodns in dt.items():
        f.c("setup_liodns: %s fsl,liodn = %s" % (name, [hex(x) for x in liodns]))
        for l in liodns:
            f.entry(ppaace(l), [0, 0x8D8, 0x80, 0, 0, 0, 0, 0])
            f.word(ppaace(l) + 4, 0x8D9)
            f.read_word(ppaace(l) + 4, 0x8D9)
    f.c("fman LIODN 0x20 uses OMT indexing (OTM 2, OMI 1)")
    f.entry(ppaace(0x20), [0, 0x8D9, 0x80, 2, 0, 0, 0, 1])
    f.dma(0x48, 0x12345000, "write", 0x12345000, size=64)
    f.dma(0x10, 0xFFE044140, "write", 0xFFE044140)
    f.dma(0x20, 0x2000, "read", 0x2000)
    f.dma(0x21, 0x7FFF000, "read", 0x7FFF000, size=0x1000)
    f.c("device on LIODN 0x22 overruns 64 GiB: access violation, AV line")
    f.dma(0x22, 0xFFFFFFFF0, "write", 0xFFFFFFFF0, size=0x20)
    f.dma(0x22, 0x1000000000, "write", "AV_WINDOW", size=0x10)
    f.irq(0)
    f.c("pamu_av_isr: PICS, AVS1, dumps, clear, V = 0 on LIODN 0x22, PICS back")
    f.r(0, "PICS", 0xD)
    f.r(0, "AVS1", 0x00220081)
    for reg in ["POES1", "POES2", "AVS2", "AVAH", "AVAL", "UDAD", "POEAH", "POEAL"]:
        f.r(0, reg)
    f.r(0, "AVS2", 1)
    f.r(0, "AVAH", 0x10)
    f.r(0, "AVAL", 0)
    f.w(0, "AVS1", 0x0081)
    f.word(ppaace(0x22) + 4, 0x8D8)
    f.w(0, "PICS", 0xD)
    f.r(0, "PICS", 0x5)
    f.dma(0x22, 0x1000, "read", "AV_DISABLED")
    f.r(0, "AVS1", 0x00224001)
    f.w(0, "AVS1", 0x4001)
    f.w(0, "PICS", 0xD)
    f.c("malformed entry: ATM 2 (page translation) -> operation error, error line (POEIE set)")
    f.entry(ppaace(0x21), [0, 0x8D9, 0x80, 0x8, 0, 0, 0, 0])
    f.dma(0x21, 0x1000, "read", "OPERATION_ERROR")
    f.irq(1)
    f.r(0, "POES1", 1)
    f.r(0, "POEAL", ppaace(0x21))
    f.r(0, "PICS", 0x7)
    f.w(0, "POES1", 1)
    f.w(0, "PICS", 0x7)
    f.r(0, "PICS", 0x5)
    f.save("pamu_bringup")


if __name__ == "__main__":
    tv0(); tv1(); tv2(); tv3(); tv4(); tv5(); bringup()
