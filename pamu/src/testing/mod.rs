//! Test helpers (feature `test-utils`): a [`PaactBuilder`] that lays out raw entries in guest
//! memory, and a [`GuestDriver`] that programs a [`Pamu`] through MMIO and table memory the way
//! Linux's `fsl_pamu` driver does (probe, `setup_omt`, `setup_liodns`, the AV interrupt handler,
//! and the post-5.13 attach). Shared by unit tests, integration tests, benches and the demo.

use viommu_common::mem::{read_u32_be, write_bytes, write_u32_be, GuestRam, MemError};
use viommu_common::traits::MmioDevice;
use vm_memory::GuestMemoryBackend;

use crate::device::Pamu;
use crate::geometry::{Domain, Tables};
use crate::spec::paace::{eoe, ioe, Ap, Atm, Otm, PaaceW1, PaaceW2, PaaceW3, PaaceWin, PAACE_SIZE};
use crate::spec::regs::{Pc, Pics, Reg, INSTANCE_STRIDE};

/// Writes raw PAACE/SPAACE/OMT contents into guest memory.
pub struct PaactBuilder<'a, M: ?Sized> {
    mem: &'a M,
    /// The table layout entries are placed in.
    pub tables: Tables,
}

impl<'a, M: GuestMemoryBackend + ?Sized> PaactBuilder<'a, M> {
    /// A builder over `tables` in `mem`.
    pub fn new(mem: &'a M, tables: Tables) -> Self {
        Self { mem, tables }
    }

    /// Write an entry's eight window-mode words at `addr` (words 8-15 zeroed).
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn words_at(&self, addr: u64, w: [u32; 8]) -> Result<(), MemError> {
        for (i, v) in w.iter().enumerate() {
            write_u32_be(self.mem, addr + 4 * i as u64, *v)?;
        }
        write_bytes(self.mem, addr + 32, &[0u8; 32])
    }

    /// Write LIODN `liodn`'s PPAACE words.
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn ppaace(&self, liodn: u32, w: [u32; 8]) -> Result<(), MemError> {
        self.words_at(self.tables.ppba + u64::from(liodn) * PAACE_SIZE, w)
    }

    /// Write the words of `SPAACT[index]`.
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn spaace(&self, index: u32, w: [u32; 8]) -> Result<(), MemError> {
        self.words_at(self.tables.spaace_addr(index), w)
    }

    /// Read back an entry's eight words.
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn read_words(&self, addr: u64) -> Result<[u32; 8], MemError> {
        let mut w = [0u32; 8];
        for (i, v) in w.iter_mut().enumerate() {
            *v = read_u32_be(self.mem, addr + 4 * i as u64)?;
        }
        Ok(w)
    }

    /// Write OMT entry `omi` from `(inbound index, outbound op)` pairs (valid MOEs).
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn ome(&self, omi: u16, map: &[(u8, u8)]) -> Result<(), MemError> {
        let mut b = [0u8; 128];
        for &(i, o) in map {
            if let Some(slot) = b.get_mut(usize::from(i)) {
                *slot = 0x80 | (o & 0x7F);
            }
        }
        write_bytes(self.mem, self.tables.oba + u64::from(omi) * 128, &b)
    }
}

/// The device kinds `setup_liodns` distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtKind {
    /// Any other device.
    Plain,
    /// `fsl,qman-portal`: OMI 0, stash to L3.
    QmanPortal,
    /// `fsl,qman`: OMI 2, stash to L3, CR = 0.
    Qman,
    /// `fsl,bman`: CR = 0.
    Bman,
}

/// A device-tree node with `fsl,liodn`.
#[derive(Debug, Clone)]
pub struct DtDevice {
    /// Node name (for logs).
    pub name: &'static str,
    /// `fsl,liodn` values.
    pub liodns: Vec<u16>,
    /// Compatible class.
    pub kind: DtKind,
}

/// Which Linux the driver mimics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinuxVersion {
    /// Before 5.13: domains with geometry and windows.
    Pre513,
    /// 5.13 and later: identity gate; `addr_bits` 36, or 40 with the 2025 patch.
    Post513 {
        /// Window size log2 of `pamu_config_ppaace`.
        addr_bits: u8,
    },
}

/// One access violation the driver's ISR handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvReport {
    /// Instance.
    pub instance: u8,
    /// AVS1 as read.
    pub avs1: u32,
    /// AVAH:AVAL as read.
    pub ava: u64,
    /// The LIODN's entry had V = 0, so AV reporting was turned off on that PAMU (A-003638).
    pub av_disabled: bool,
}

/// Programs a [`Pamu`] like Linux's `fsl_pamu` driver: only MMIO and table memory.
pub struct GuestDriver<'a, M> {
    pamu: &'a Pamu<M>,
    /// The tables the driver allocated.
    pub tables: Tables,
    /// Which Linux.
    pub version: LinuxVersion,
    /// L3 stash ID from the device tree (for QMan).
    pub l3_stash_id: u8,
}

/// Stash ID Linux finds for the L3 cache in the test device trees.
pub const L3_STASH_ID: u8 = 0x1C;

impl<'a, M: GuestRam> GuestDriver<'a, M> {
    /// A driver that will put its tables at `table_base` (naturally aligned block).
    pub fn new(pamu: &'a Pamu<M>, table_base: u64, version: LinuxVersion) -> Self {
        Self {
            pamu,
            tables: Tables::linux(table_base),
            version,
            l3_stash_id: L3_STASH_ID,
        }
    }

    /// The current memory map (a fresh snapshot per driver operation, as the CPU would see it).
    fn mem(&self) -> M::Guard {
        self.pamu.ram()
    }

    /// `out_be32` to instance `inst`'s register `reg`.
    pub fn write(&self, inst: u8, reg: Reg, v: u32) {
        let off = u64::from(inst) * INSTANCE_STRIDE + reg.offset();
        // The offset is inside the device by construction; an error would be a test bug.
        let _ = self.pamu.mmio_write(off, &v.to_be_bytes());
    }

    /// `in_be32` from instance `inst`'s register `reg`.
    pub fn read(&self, inst: u8, reg: Reg) -> u32 {
        let off = u64::from(inst) * INSTANCE_STRIDE + reg.offset();
        let mut b = [0u8; 4];
        let _ = self.pamu.mmio_read(off, &mut b);
        u32::from_be_bytes(b)
    }

    /// `fsl_pamu_probe`: zero the tables, program every instance (base/limit registers, PICS =
    /// AVIE, PC = PE|OCE|SPCC|PPCC), clear the PAMUBYPENR bits, `setup_omt`. Returns the
    /// maximum subwindow count read from PC3.
    ///
    /// # Errors
    /// [`MemError`] if the tables are outside guest RAM.
    pub fn probe(&self) -> Result<u32, MemError> {
        let zero = vec![0u8; usize::try_from(self.tables.span()).unwrap_or(0)];
        write_bytes(&*self.mem(), self.tables.ppba, &zero)?;
        let pc3 = crate::spec::regs::Pc3::from_bits(self.read(0, Reg::Pc3));
        let max_sub = 1u32 << (pc3.mwce() + 1);
        let mut byp = self.pamu.bypass_register();
        for inst in 0..self.pamu.caps().instances {
            for (reg, v) in self.tables.register_values() {
                self.write(inst, reg, v);
            }
            self.write(inst, Reg::Pics, Pics::new().with_avie(true).into_bits());
            let pc = Pc::new()
                .with_pe(true)
                .with_oce(true)
                .with_spcc(true)
                .with_ppcc(true);
            self.write(inst, Reg::Pc, pc.into_bits());
            byp &= !(0x8000_0000u32 >> inst);
        }
        self.setup_omt()?;
        self.pamu.write_bypass_register(byp);
        Ok(max_sub)
    }

    /// `setup_omt`: OMI 0 QMan portal, 1 FMan, 2 QMan private, 3 CAAM.
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn setup_omt(&self) -> Result<(), MemError> {
        let ram = self.mem();
        let b = PaactBuilder::new(&*ram, self.tables.clone());
        b.ome(
            0,
            &[
                (ioe::READ, eoe::READ),
                (ioe::EREAD0, eoe::RSA),
                (ioe::WRITE, eoe::WRITE),
                (ioe::EWRITE0, eoe::WWSAO),
                (ioe::DIRECT0, eoe::LDEC),
                (ioe::DIRECT1, eoe::LDECPE),
            ],
        )?;
        b.ome(1, &[(ioe::READ, eoe::READI), (ioe::WRITE, eoe::WRITE)])?;
        b.ome(
            2,
            &[
                (ioe::READ, eoe::READ),
                (ioe::WRITE, eoe::WRITE),
                (ioe::EREAD0, eoe::RSA),
                (ioe::EWRITE0, eoe::WWSA),
            ],
        )?;
        b.ome(3, &[(ioe::READ, eoe::READI), (ioe::WRITE, eoe::WRITE)])
    }

    fn ppaace_addr(&self, liodn: u16) -> u64 {
        self.tables.ppba + u64::from(liodn) * PAACE_SIZE
    }

    fn load(&self, liodn: u16) -> Result<PaaceWin, MemError> {
        viommu_common::mem::read_obj(&*self.mem(), self.ppaace_addr(liodn))
    }

    fn store(&self, liodn: u16, e: &PaaceWin) -> Result<(), MemError> {
        // Like the driver: fields first, then (after a barrier) the word holding V.
        let a = self.ppaace_addr(liodn);
        let w = e.words();
        let ram = self.mem();
        for (i, v) in w.iter().enumerate().filter(|(i, _)| *i != 1) {
            write_u32_be(&*ram, a + 4 * i as u64, *v)?;
        }
        write_u32_be(&*ram, a + 4, w[1])
    }

    /// `setup_liodns`: every LIODN < 0x500 of every node gets the boot default (identity, full
    /// access, 64 GiB or 1 TiB window, ATM 0), with QMan/BMan specifics, then V = 1.
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn setup_liodns(&self, devices: &[DtDevice]) -> Result<(), MemError> {
        let wse = match self.version {
            LinuxVersion::Post513 { addr_bits } => addr_bits - 1,
            LinuxVersion::Pre513 => 35,
        };
        for d in devices {
            for &l in d
                .liodns
                .iter()
                .filter(|&&l| u32::from(l) < self.tables.ppaace_count)
            {
                let mut e = PaaceWin::default();
                let mut w1 = PaaceW1::new().with_wse(wse).with_ap(Ap::ALL);
                let mut w2 = PaaceW2::new().with_cr(true);
                let mut w3 = PaaceW3::new().with_atm(Atm::NONE);
                match d.kind {
                    DtKind::QmanPortal => {
                        w3 = w3.with_otm(Otm::INDEXED).with_cid(self.l3_stash_id);
                        e.w7 = 0.into();
                    }
                    DtKind::Qman => {
                        w3 = w3.with_otm(Otm::INDEXED).with_cid(self.l3_stash_id);
                        e.w7 = 2.into();
                        w2 = w2.with_cr(false);
                    }
                    DtKind::Bman => w2 = w2.with_cr(false),
                    DtKind::Plain => {}
                }
                e.set_pw1(w1);
                e.set_w2(w2);
                e.set_w3(w3);
                self.store(l, &e)?;
                w1.set_v(true);
                e.set_pw1(w1);
                self.store(l, &e)?;
            }
        }
        Ok(())
    }

    /// Post-5.13 attach (`pamu_set_liodn` + enable): disable; identity window of 2^addr_bits
    /// with ATM 1, TWBA 0, prot 0 then R|W; enable.
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn attach_identity(&self, liodn: u16, omi: Option<u16>) -> Result<(), MemError> {
        let bits = match self.version {
            LinuxVersion::Post513 { addr_bits } => addr_bits,
            LinuxVersion::Pre513 => 36,
        };
        let mut e = self.load(liodn)?;
        e.set_pw1(e.pw1().with_v(false));
        self.store(liodn, &e)?;
        for ap in [Ap::DENIED, Ap::ALL] {
            e.set_wba(0);
            e.set_pw1(
                e.pw1()
                    .with_wse(bits - 1)
                    .with_pt(false)
                    .with_mw(false)
                    .with_ap(ap),
            );
            e.set_w2(e.w2().with_cr(true));
            let mut w3 = e.w3().with_atm(Atm::WINDOW).with_wce(0);
            if let Some(o) = omi {
                w3.set_otm(Otm::INDEXED);
                e.w7 = u32::from(o).into();
            }
            e.set_w3(w3);
            e.set_twba(0);
            self.store(liodn, &e)?;
        }
        e.set_pw1(e.pw1().with_v(true));
        self.store(liodn, &e)
    }

    /// Set or clear V on LIODN `liodn`'s PPAACE (`pamu_enable_liodn` / `pamu_disable_liodn`).
    ///
    /// # Errors
    /// [`MemError`] outside guest RAM.
    pub fn set_liodn_valid(&self, liodn: u16, v: bool) -> Result<(), MemError> {
        let mut e = self.load(liodn)?;
        e.set_pw1(e.pw1().with_v(v));
        self.store(liodn, &e)
    }

    /// A new pre-5.13 domain on this PAMU (window maximum from PC3).
    pub fn new_domain(&self) -> Domain {
        Domain::new(self.pamu.caps().max_subwindows())
    }

    /// `pamu_av_isr`: for each instance with PICS.AVICS, read AVS1, dump the status registers,
    /// clear AVS1's flags, disable the LIODN (or, if it was already disabled, AV reporting on
    /// that PAMU), and write PICS back.
    ///
    /// # Errors
    /// [`MemError`] if the LIODN's entry is outside guest RAM.
    pub fn av_isr(&self) -> Result<Vec<AvReport>, MemError> {
        let mut out = Vec::new();
        for inst in 0..self.pamu.caps().instances {
            let mut pics = Pics::from_bits(self.read(inst, Reg::Pics));
            if !pics.avics() {
                continue;
            }
            let avs1 = self.read(inst, Reg::Avs1);
            for r in [
                Reg::Poes1,
                Reg::Poes2,
                Reg::Avs2,
                Reg::Avah,
                Reg::Aval,
                Reg::Udad,
                Reg::Poeah,
                Reg::Poeal,
            ] {
                self.read(inst, r);
            }
            let ava = (u64::from(self.read(inst, Reg::Avah)) << 32)
                | u64::from(self.read(inst, Reg::Aval));
            self.write(inst, Reg::Avs1, avs1 & crate::spec::regs::Avs1::FLAGS_MASK);
            let liodn = (avs1 >> 16) as u16;
            let mut av_disabled = false;
            // A LIODN without a PPAACE is treated like a disabled one.
            let valid = u32::from(liodn) < self.tables.ppaace_count && self.load(liodn)?.pw1().v();
            if valid {
                self.set_liodn_valid(liodn, false)?;
            } else {
                pics.set_avie(false);
                av_disabled = true;
            }
            self.write(inst, Reg::Pics, pics.into_bits());
            out.push(AvReport {
                instance: inst,
                avs1,
                ava,
                av_disabled,
            });
        }
        Ok(out)
    }
}

/// The guest memory of a [`Rig`]'s PAMU.
pub type RigMem = std::sync::Arc<vm_memory::GuestMemoryMmap<()>>;

/// A PAMU on test guest RAM with a recording interrupt sink and a trace log.
pub struct Rig {
    /// The device.
    pub pamu: std::sync::Arc<Pamu<RigMem>>,
    /// Interrupts raised.
    pub irq: std::sync::Arc<viommu_common::testing::RecordingIrq>,
    /// Trace lines (`PamuEvent` Display), when built with [`Rig::traced`].
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Guest RAM size of a [`Rig`]: 64 MiB at 0.
pub const RIG_RAM: usize = 0x400_0000;
/// Where a [`Rig`]'s driver puts its tables.
pub const RIG_TABLES: u64 = 0x100_0000;

impl Rig {
    /// A PAMU built from `config` on 64 MiB of RAM at 0.
    ///
    /// # Panics
    /// If `config` is invalid (a test bug).
    pub fn new(config: crate::caps::PamuConfig) -> Self {
        Self::build(config, false)
    }

    /// As [`Rig::new`], recording every [`crate::PamuEvent`] into `log`.
    ///
    /// # Panics
    /// If `config` is invalid (a test bug).
    pub fn traced(config: crate::caps::PamuConfig) -> Self {
        Self::build(config, true)
    }

    fn build(config: crate::caps::PamuConfig, traced: bool) -> Self {
        use std::sync::{Arc, Mutex};
        let mem = Arc::new(viommu_common::testing::guest_ram(0, RIG_RAM));
        let irq = Arc::new(viommu_common::testing::RecordingIrq::new());
        let log: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let mut pamu = Pamu::new(config, mem, irq.clone()).expect("valid test config");
        if traced {
            let l = log.clone();
            pamu = pamu.with_tracer(move |e| {
                l.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(e.to_string());
            });
        }
        Self {
            pamu: Arc::new(pamu),
            irq,
            log,
        }
    }

    /// The guest RAM the PAMU reads its tables from.
    pub fn mem(&self) -> &vm_memory::GuestMemoryMmap<()> {
        self.pamu.memory()
    }

    /// A Linux-shaped driver for this PAMU with tables at [`RIG_TABLES`].
    pub fn driver(&self, version: LinuxVersion) -> GuestDriver<'_, RigMem> {
        GuestDriver::new(&self.pamu, RIG_TABLES, version)
    }

    /// Take the trace lines recorded so far.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
