//! Host capabilities (decoded `hw_info`) and the guest-visible ID registers a vSMMU may advertise.
//!
//! [`clamp`] is a pure function from host registers plus the VMM's profile to guest registers.
//! Per `include/uapi/linux/iommufd.h`, only these host fields are meaningful to userspace:
//! IDR0 ST_LEVEL, TERM_MODEL, STALL_MODEL, TTENDIAN, CD2L, ASID16, TTF; IDR1 SIDSIZE, SSIDSIZE;
//! IDR3 BBML, RIL; IDR5 VAX, GRAN64K, GRAN16K, GRAN4K, DS. S1P is implied by a working nested HWPT
//! and COHACC by iommufd itself. Every other advertised field is fixed by policy below.

use viommu_smmuv3::caps::IdRegs;
use viommu_smmuv3::spec::idr::{Idr0, Idr1, Idr3, Idr5, Oas, StLevel, StallModel, TtEndian, Ttf};

use crate::error::ClampError;
use crate::spec::hwinfo::{hw_cap, HwInfoArmSmmuv3, HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI};

/// An OAS code's address size in bits; reserved codes count as 32 bits.
fn oas_bits(oas: Oas) -> u8 {
    match oas.bits() {
        Some(b) => b as u8,
        None => 32,
    }
}

/// The largest OAS code whose size does not exceed `bits` (below 32 bits: the 32-bit code).
pub fn oas_at_most(bits: u8) -> Oas {
    (0..=6)
        .map(Oas)
        .rfind(|o| oas_bits(*o) <= bits)
        .unwrap_or(Oas::OAS_32)
}

/// What `IOMMU_GET_HW_INFO` told us about the host SMMUv3 behind one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCaps {
    /// The raw structure.
    pub raw: HwInfoArmSmmuv3,
    /// `out_max_pasid_log2` (0: no PASID support for this device).
    pub max_pasid_log2: u8,
    /// `out_capabilities` ([`hw_cap`]).
    pub capabilities: u64,
}

impl HostCaps {
    /// Decode.
    pub const fn new(raw: HwInfoArmSmmuv3, max_pasid_log2: u8, capabilities: u64) -> Self {
        Self {
            raw,
            max_pasid_log2,
            capabilities,
        }
    }
    /// Host SMMU_IDR0.
    pub const fn idr0(&self) -> Idr0 {
        Idr0::from_bits(self.raw.idr[0])
    }
    /// Host SMMU_IDR1.
    pub const fn idr1(&self) -> Idr1 {
        Idr1::from_bits(self.raw.idr[1])
    }
    /// Host SMMU_IDR3.
    pub const fn idr3(&self) -> Idr3 {
        Idr3::from_bits(self.raw.idr[3])
    }
    /// Host SMMU_IDR5.
    pub const fn idr5(&self) -> Idr5 {
        Idr5::from_bits(self.raw.idr[5])
    }
    /// The kernel asks for every TLBI/CFGI + SYNC twice (erratum T264-SMMU-3).
    pub const fn errata_repeat_tlbi_cfgi(&self) -> bool {
        self.raw.flags & HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI != 0
    }
    /// The device cannot use ATS.
    pub const fn ats_not_supported(&self) -> bool {
        self.capabilities & hw_cap::PCI_ATS_NOT_SUPPORTED != 0
    }
    /// PASID support usable by the guest: min(host SSIDSIZE, device max PASID width).
    pub fn pasid_bits(&self) -> u8 {
        self.idr1().ssidsize().min(self.max_pasid_log2)
    }
}

/// The VMM's choices for its vSMMU, the inputs to [`clamp`] that do not come from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestProfile {
    /// Guest IDR1.SIDSIZE (the virtual StreamID space; vSIDs are virtual, not host-bound).
    pub sid_bits: u8,
    /// Upper bound on advertised SSIDSIZE (further clamped by the host).
    pub max_ssid_bits: u8,
    /// The VM's IPA size in bits: the guest's stage-1 output size, which stage 2 must cover.
    pub ipa_bits: u8,
    /// Guest IDR1.EVENTQS / CMDQS (the emulated queues).
    pub eventqs: u8,
    /// Guest IDR1.CMDQS.
    pub cmdqs: u8,
    /// Advertise IDR0.MSI (the vSMMU emulates MSI writes).
    pub msi: bool,
    /// Advertise IDR0.ATS (only if the VMM describes ATS-capable devices in firmware tables).
    pub ats: bool,
}

impl Default for GuestProfile {
    fn default() -> Self {
        Self {
            sid_bits: 16,
            max_ssid_bits: 20,
            ipa_bits: 48,
            eventqs: 19,
            cmdqs: 19,
            msi: true,
            ats: false,
        }
    }
}

/// The guest-visible ID registers, frozen before the guest can read any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestIdrs {
    /// SMMU_IDR0..5.
    pub idr: [u32; 6],
    /// SMMU_IIDR.
    pub iidr: u32,
    /// SMMU_AIDR.
    pub aidr: u32,
}

impl GuestIdrs {
    /// IDR0, typed.
    pub const fn idr0(&self) -> Idr0 {
        Idr0::from_bits(self.idr[0])
    }
    /// IDR1, typed.
    pub const fn idr1(&self) -> Idr1 {
        Idr1::from_bits(self.idr[1])
    }
    /// IDR3, typed.
    pub const fn idr3(&self) -> Idr3 {
        Idr3::from_bits(self.idr[3])
    }
    /// IDR5, typed.
    pub const fn idr5(&self) -> Idr5 {
        Idr5::from_bits(self.idr[5])
    }
    /// Advertised output-address size in bits.
    pub fn oas_bits(&self) -> u8 {
        oas_bits(self.idr5().oas())
    }

    /// As the raw register set `viommu_smmuv3` builds a device from
    /// ([`SmmuConfig::from_id_regs`](viommu_smmuv3::caps::SmmuConfig::from_id_regs)).
    pub const fn id_regs(&self) -> IdRegs {
        IdRegs {
            idr0: self.idr[0],
            idr1: self.idr[1],
            idr2: self.idr[2],
            idr3: self.idr[3],
            idr4: self.idr[4],
            idr5: self.idr[5],
            iidr: self.iidr,
            aidr: self.aidr,
        }
    }
}

impl From<IdRegs> for GuestIdrs {
    fn from(r: IdRegs) -> Self {
        Self {
            idr: [r.idr0, r.idr1, r.idr2, r.idr3, r.idr4, r.idr5],
            iidr: r.iidr,
            aidr: r.aidr,
        }
    }
}

/// How much of a VMM-supplied register set must work on host-backed (passthrough) streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// Every advertised feature must work on every stream, host-backed ones included: no
    /// stage 2 (S2P, HYP), no HTTU, BTM, SEV, PRI, and terminate-only stalls. What [`clamp`]
    /// produces.
    #[default]
    Strict,
    /// Mixed mode: features only the emulated path implements (S2P, HYP, HTTU, PRI, the stall
    /// models) may be advertised for emulated endpoints. A host-backed stream whose STE asks
    /// for one gets C_BAD_STE (stage 2) or the host's own answer; everything the host walks
    /// for the guest (table format, granules, OAS, SSIDSIZE, CD2L, ASID16, RIL, VAX, BBML,
    /// TERM_MODEL) is still checked. Used to mirror an SMMU a trace was recorded on.
    Mixed,
}

/// Check a guest register set a VMM supplies (a stable profile, or the SMMU a trace was
/// recorded on) against the host: [`check_advertised`] under `mode`, then
/// [`check_compatible`]. The error names the first field that does not fit.
pub fn check_guest_idrs(
    guest: &GuestIdrs,
    host: &HostCaps,
    mode: Compat,
) -> Result<(), ClampError> {
    check_advertised(guest, mode)?;
    check_compatible(guest, host)
}

/// Features a host-backed stream can never provide, refused under [`Compat::Strict`]: the host
/// installs only the guest's stage 1 (nested over the VM's stage 2), keeps stall faults and
/// page requests to itself, and does no hardware table updates for nested domains.
pub fn check_advertised(guest: &GuestIdrs, mode: Compat) -> Result<(), ClampError> {
    if mode == Compat::Mixed {
        return Ok(());
    }
    let g0 = guest.idr0();
    let refuse = |field, value: u32| {
        if value != 0 {
            Err(ClampError::NotNestable { field, value })
        } else {
            Ok(())
        }
    };
    refuse("IDR0.S2P", g0.s2p().into())?;
    refuse("IDR0.HYP", g0.hyp().into())?;
    refuse("IDR0.HTTU", g0.httu().0.into())?;
    refuse("IDR0.BTM", g0.btm().into())?;
    refuse("IDR0.SEV", g0.sev().into())?;
    refuse("IDR0.PRI", g0.pri().into())?;
    if g0.stall_model() != StallModel::TERMINATE {
        return Err(ClampError::NotNestable {
            field: "IDR0.STALL_MODEL",
            value: g0.stall_model().0.into(),
        });
    }
    Ok(())
}

/// Compute the ID registers a vSMMU may advertise on top of this host (pure).
///
/// Policy, field by field:
/// - IDR0: S1P = 1; S2P, HYP, BTM, HTTU, SEV, ATOS, VATOS, PRI, VMW, NS1ATS, DORMHINT,
///   RME_IMPL, ATSRECERR = 0 (not supported for nesting or not emulated); TTF = AArch64; COHACC = 1;
///   TTENDIAN = LE; VMID16 = 0 (no stage 2 visible); ASID16, CD2L, ST_LEVEL, TERM_MODEL from the
///   host; STALL_MODEL = 1 (terminate only: stall faults stay with the host, which has no path to
///   the guest without a fault queue); MSI and ATS from the profile (ATS also needs host ATS).
/// - IDR1: SIDSIZE from the profile (vSIDs are virtual); SSIDSIZE = min(host SSIDSIZE, device
///   max PASID width, profile); PRIQS = 0; EVENTQS/CMDQS from the profile (capped at 19);
///   ATTR_*_OVR, REL, *_PRESET, ECMDQ = 0.
/// - IDR3: RIL and BBML from the host (the kernel validates range fields against the host);
///   every other bit 0 (HAD, XNX, FWB, STT, E0PD, PBHA, MPAM, DPT are not in the kernel's list).
/// - IDR5: GRAN4K/16K/64K and VAX from the host (the host walks the guest's tables, so the granule
///   sets must be equal); OAS = min(host OAS, profile IPA size); STALL_MAX = 0; DS = 0 (the
///   SMMUv3 model does not implement 52-bit addresses with 4K/16K granules, so it cannot present
///   DS; a guest told nothing of it builds ordinary descriptors, which the host walks as well).
/// - IDR2, IDR4, IIDR = 0 (IIDR must not claim MMU-600/700, whose errata drop nesting).
/// - AIDR = 0x2 (v3.2) when RIL or BBML is advertised (v3.2 features), else 0 (v3.0).
pub fn clamp(host: &HostCaps, profile: &GuestProfile) -> Result<GuestIdrs, ClampError> {
    let h0 = host.idr0();
    let h3 = host.idr3();
    let h5 = host.idr5();
    if h0.ttf().0 & 2 == 0 {
        return Err(ClampError::NoAarch64);
    }
    if h0.ttendian() != TtEndian::MIXED && h0.ttendian() != TtEndian::LE {
        return Err(ClampError::NotLittleEndian(h0.ttendian().0));
    }
    if !(h5.gran4k() || h5.gran16k() || h5.gran64k()) {
        return Err(ClampError::NoGranule);
    }
    let ats = profile.ats && !host.ats_not_supported();
    let idr0 = Idr0::new()
        .with_s1p(true)
        .with_ttf(Ttf::AARCH64)
        .with_cohacc(true)
        .with_ats(ats)
        .with_asid16(h0.asid16())
        .with_msi(profile.msi)
        .with_cd2l(h0.cd2l())
        .with_ttendian(TtEndian::LE)
        .with_stall_model(StallModel::TERMINATE)
        .with_term_model(h0.term_model())
        .with_st_level(StLevel(h0.st_level().0.min(1)));
    let ssid = host.pasid_bits().min(profile.max_ssid_bits).min(20);
    let idr1 = Idr1::new()
        .with_sidsize(profile.sid_bits.min(32))
        .with_ssidsize(ssid)
        .with_eventqs(profile.eventqs.min(19))
        .with_cmdqs(profile.cmdqs.clamp(7, 19));
    let idr3 = Idr3::new().with_ril(h3.ril()).with_bbml(h3.bbml());
    let host_oas = oas_bits(h5.oas());
    let oas = oas_at_most(host_oas.min(profile.ipa_bits));
    let idr5 = Idr5::new()
        .with_oas(oas)
        .with_gran4k(h5.gran4k())
        .with_gran16k(h5.gran16k())
        .with_gran64k(h5.gran64k())
        .with_vax(h5.vax().min(1));
    let aidr = if idr3.ril() || idr3.bbml() != 0 { 2 } else { 0 };
    Ok(GuestIdrs {
        idr: [
            idr0.into_bits(),
            idr1.into_bits(),
            0,
            idr3.into_bits(),
            0,
            idr5.into_bits(),
        ],
        iidr: 0,
        aidr,
    })
}

/// Check that a host SMMU can walk, for host-backed streams, everything a guest register set
/// lets the guest program: at creation (a VMM-supplied set) and for every hot-plugged device
/// (against the frozen set).
///
/// The rules are QEMU's where it has them (host SSIDSIZE, RIL, OAS ≥ guest), plus the other fields
/// the host hardware interprets in guest tables: AArch64 little-endian tables, CD2L, ASID16, VAX,
/// DS and BBML no more than the host, TERM_MODEL equal (it decides what CD.A means). Granules: the
/// guest's set must be a subset of the host's (the guest only builds tables with granules it is
/// told of; QEMU asks for equal sets, which pins a stable profile to one host type). The
/// per-device ATS capability is applied per endpoint ([`SteContext`](crate::SteContext)), not here.
pub fn check_compatible(frozen: &GuestIdrs, host: &HostCaps) -> Result<(), ClampError> {
    let g0 = frozen.idr0();
    let h0 = host.idr0();
    let g5 = frozen.idr5();
    let h5 = host.idr5();
    let mismatch = |field, host: u32, guest: u32| Err(ClampError::Mismatch { field, host, guest });
    if h0.ttf().0 & 2 == 0 {
        return Err(ClampError::NoAarch64);
    }
    if h0.ttendian() != TtEndian::MIXED && h0.ttendian() != TtEndian::LE {
        return Err(ClampError::NotLittleEndian(h0.ttendian().0));
    }
    if host.pasid_bits() < frozen.idr1().ssidsize() {
        return mismatch(
            "SSIDSIZE",
            host.pasid_bits().into(),
            frozen.idr1().ssidsize().into(),
        );
    }
    if frozen.idr3().ril() && !host.idr3().ril() {
        return mismatch("IDR3.RIL", 0, 1);
    }
    if frozen.idr3().bbml() > host.idr3().bbml() {
        return mismatch(
            "IDR3.BBML",
            host.idr3().bbml().into(),
            frozen.idr3().bbml().into(),
        );
    }
    if g0.cd2l() && !h0.cd2l() {
        return mismatch("IDR0.CD2L", 0, 1);
    }
    if g0.asid16() && !h0.asid16() {
        return mismatch("IDR0.ASID16", 0, 1);
    }
    if g0.term_model() != h0.term_model() {
        return mismatch(
            "IDR0.TERM_MODEL",
            h0.term_model().into(),
            g0.term_model().into(),
        );
    }
    let host_oas = oas_bits(h5.oas());
    if host_oas < frozen.oas_bits() {
        return mismatch("IDR5.OAS", host_oas.into(), frozen.oas_bits().into());
    }
    if g5.vax() > h5.vax() {
        return mismatch("IDR5.VAX", h5.vax().into(), g5.vax().into());
    }
    if g5.ds() && !h5.ds() {
        return mismatch("IDR5.DS", 0, 1);
    }
    let gran =
        |i: Idr5| u32::from(i.gran4k()) | u32::from(i.gran16k()) << 1 | u32::from(i.gran64k()) << 2;
    if gran(g5) & !gran(h5) != 0 {
        return mismatch("IDR5.GRAN*", gran(h5), gran(g5));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The testbed host (QEMU 10.0.2 virt,iommu=smmuv3 under Linux 7.3, sva/tests/kernel/).
    fn testbed() -> HostCaps {
        HostCaps::new(
            HwInfoArmSmmuv3 {
                flags: 0,
                reserved: 0,
                idr: [0x0d44_101b, 0x0273_0010, 0, 0x1414, 0, 0x74],
                iidr: 0,
                aidr: 1,
            },
            0,
            hw_cap::PCI_ATS_NOT_SUPPORTED,
        )
    }

    #[test]
    fn testbed_host_idr0_decodes_field_by_field() {
        // QEMU 10.0 virt,iommu=smmuv3 as seen through hw_info (sva/tests/kernel/)
        let i = Idr0::from_bits(0x0d44_101b);
        assert!(i.s2p() && i.s1p());
        assert_eq!(i.ttf(), Ttf::AARCH64);
        assert!(i.cohacc());
        assert!(!i.btm());
        assert_eq!(i.httu(), viommu_smmuv3::spec::idr::Httu::NONE);
        assert!(i.asid16() && i.vmid16() && !i.cd2l());
        assert!(!i.ats() && !i.pri() && !i.hyp());
        assert_eq!(i.ttendian(), TtEndian::LE);
        assert_eq!(i.stall_model(), StallModel::TERMINATE);
        assert!(i.term_model());
        assert_eq!(i.st_level(), StLevel::TWO_LEVEL);
    }

    #[test]
    fn idr_fields_sit_at_linux_positions() {
        assert_eq!(Idr0::new().with_st_level(StLevel(3)).into_bits(), 3 << 27);
        assert_eq!(
            Idr0::new().with_stall_model(StallModel(3)).into_bits(),
            3 << 24
        );
        assert_eq!(Idr0::new().with_ttendian(TtEndian(3)).into_bits(), 3 << 21);
        assert_eq!(Idr0::new().with_cd2l(true).into_bits(), 1 << 19);
        assert_eq!(Idr0::new().with_sev(true).into_bits(), 1 << 14);
        assert_eq!(Idr0::new().with_msi(true).into_bits(), 1 << 13);
        assert_eq!(Idr0::new().with_hyp(true).into_bits(), 1 << 9);
        assert_eq!(Idr1::new().with_ssidsize(0x1f).into_bits(), 0x1f << 6);
        assert_eq!(Idr1::new().with_cmdqs(0x1f).into_bits(), 0x1f << 21);
        assert_eq!(Idr1::new().with_eventqs(0x1f).into_bits(), 0x1f << 16);
        assert_eq!(Idr3::new().with_ril(true).into_bits(), 1 << 10);
        assert_eq!(Idr3::new().with_bbml(3).into_bits(), 3 << 11);
        assert_eq!(Idr3::new().with_fwb(true).into_bits(), 1 << 8);
        assert_eq!(Idr5::new().with_ds(true).into_bits(), 1 << 7);
        assert_eq!(Idr5::new().with_vax(3).into_bits(), 3 << 10);
        assert_eq!(Idr5::new().with_stall_max(0xffff).into_bits(), 0xffff_0000);
        let i1 = Idr1::from_bits(0x0273_0010);
        assert_eq!(
            (i1.sidsize(), i1.ssidsize(), i1.eventqs(), i1.cmdqs()),
            (16, 0, 19, 19)
        );
        let i3 = Idr3::from_bits(0x1414);
        assert!(i3.ril() && i3.had() && i3.xnx());
        assert_eq!(i3.bbml(), 2);
        let i5 = Idr5::from_bits(0x74);
        assert!(i5.gran4k() && i5.gran16k() && i5.gran64k() && !i5.ds());
        assert_eq!(oas_bits(i5.oas()), 44);
    }

    #[test]
    fn oas_encodings_round_down() {
        assert_eq!(oas_at_most(48), Oas::OAS_48);
        assert_eq!(oas_at_most(47), Oas::OAS_44);
        assert_eq!(oas_at_most(64), Oas::OAS_52);
        assert_eq!(oas_at_most(20), Oas::OAS_32);
        assert_eq!(Oas(7).bits(), None);
        assert_eq!(oas_bits(Oas(7)), 32);
    }

    #[test]
    fn testbed_host_clamps_to_an_s1_only_profile() {
        let g = clamp(&testbed(), &GuestProfile::default()).unwrap_or_else(|e| panic!("{e}"));
        // S1P | TTF=AArch64 | COHACC | ASID16 | MSI | (no CD2L: host has none) | TTENDIAN=LE | STALL_MODEL=1 | TERM_MODEL | ST_LEVEL=1
        assert_eq!(
            g.idr[0],
            0x2 | 0x8 | 0x10 | 0x1000 | 0x2000 | 0x40_0000 | 0x100_0000 | 0x400_0000 | 0x800_0000
        );
        // SIDSIZE 16, SSIDSIZE 0 (host has none), EVENTQS 19, CMDQS 19
        assert_eq!(g.idr[1], 16 | (19 << 16) | (19 << 21));
        assert_eq!(
            g.idr[3],
            0x400 | 0x1000,
            "RIL and BBML=2 only, HAD and XNX dropped"
        );
        // OAS 44 (host) < profile 48; 4K/16K/64K; VAX 0
        assert_eq!(g.idr[5], 0x74);
        assert_eq!((g.idr[2], g.idr[4], g.iidr, g.aidr), (0, 0, 0, 2));
    }

    #[test]
    fn never_advertises_stage2_hyp_or_httu() {
        let mut h = testbed();
        h.raw.idr[0] = !(3 << 21) & !(3 << 2) | (2 << 2) | (2 << 21);
        let g = clamp(&h, &GuestProfile::default()).unwrap_or_else(|e| panic!("{e}"));
        let i = g.idr0();
        assert!(i.s1p() && !i.s2p() && !i.hyp() && !i.btm() && !i.sev() && !i.pri() && !i.vmid16());
        assert_eq!(i.httu(), viommu_smmuv3::spec::idr::Httu::NONE);
        assert!(!i.ats(), "ATS only when the profile asks for it");
    }

    #[test]
    fn ssidsize_is_bounded_by_device_pasid_width() {
        let mut h = testbed();
        h.raw.idr[1] = Idr1::from_bits(h.raw.idr[1]).with_ssidsize(20).into_bits();
        h.max_pasid_log2 = 8;
        let g = clamp(&h, &GuestProfile::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.idr1().ssidsize(), 8);
    }

    #[test]
    fn oas_is_bounded_by_the_vm_ipa_size() {
        let mut h = testbed();
        h.raw.idr[5] = Idr5::from_bits(h.raw.idr[5])
            .with_oas(Oas::OAS_52)
            .with_ds(true)
            .into_bits();
        let p = GuestProfile {
            ipa_bits: 40,
            ..Default::default()
        };
        let g = clamp(&h, &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.oas_bits(), 40);
        assert!(!g.idr5().ds(), "DS only with a 52-bit OAS");
    }

    #[test]
    fn big_endian_only_or_aarch32_only_hosts_are_refused() {
        let mut h = testbed();
        h.raw.idr[0] = Idr0::from_bits(h.raw.idr[0])
            .with_ttendian(TtEndian::BE)
            .into_bits();
        assert_eq!(
            clamp(&h, &GuestProfile::default()),
            Err(ClampError::NotLittleEndian(3))
        );
        let mut h = testbed();
        h.raw.idr[0] = Idr0::from_bits(h.raw.idr[0])
            .with_ttf(Ttf::AARCH32)
            .into_bits();
        assert_eq!(
            clamp(&h, &GuestProfile::default()),
            Err(ClampError::NoAarch64)
        );
    }

    #[test]
    fn hotplugged_host_with_other_granules_is_incompatible() {
        let frozen = clamp(&testbed(), &GuestProfile::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_compatible(&frozen, &testbed()), Ok(()));
        let mut h = testbed();
        h.raw.idr[5] = Idr5::from_bits(h.raw.idr[5])
            .with_gran16k(false)
            .into_bits();
        assert!(matches!(
            check_compatible(&frozen, &h),
            Err(ClampError::Mismatch {
                field: "IDR5.GRAN*",
                ..
            })
        ));
        let mut h = testbed();
        h.raw.idr[3] = 0;
        assert!(matches!(
            check_compatible(&frozen, &h),
            Err(ClampError::Mismatch {
                field: "IDR3.RIL",
                ..
            })
        ));
    }

    #[test]
    fn clamped_profile_passes_its_own_strict_check_and_round_trips_through_id_regs() {
        let g = clamp(&testbed(), &GuestProfile::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_guest_idrs(&g, &testbed(), Compat::Strict), Ok(()));
        assert_eq!(GuestIdrs::from(g.id_regs()), g);
        assert!(viommu_smmuv3::caps::SmmuConfig::from_id_regs(g.id_regs()).is_ok());
    }

    #[test]
    fn supplied_sets_name_the_field_that_does_not_fit() {
        let base = clamp(&testbed(), &GuestProfile::default()).unwrap_or_else(|e| panic!("{e}"));
        let with0 = |f: fn(Idr0) -> Idr0| GuestIdrs {
            idr: [
                f(base.idr0()).into_bits(),
                base.idr[1],
                0,
                base.idr[3],
                0,
                base.idr[5],
            ],
            ..base
        };
        let strict = |g: &GuestIdrs| check_guest_idrs(g, &testbed(), Compat::Strict);
        let mixed = |g: &GuestIdrs| check_guest_idrs(g, &testbed(), Compat::Mixed);
        for (g, field) in [
            (with0(|i| i.with_s2p(true)), "IDR0.S2P"),
            (with0(|i| i.with_hyp(true)), "IDR0.HYP"),
            (
                with0(|i| i.with_httu(viommu_smmuv3::spec::idr::Httu(2))),
                "IDR0.HTTU",
            ),
            (with0(|i| i.with_pri(true)), "IDR0.PRI"),
            (
                with0(|i| i.with_stall_model(StallModel(0))),
                "IDR0.STALL_MODEL",
            ),
        ] {
            assert!(
                matches!(strict(&g), Err(ClampError::NotNestable { field: f, .. }) if f == field),
                "{field}: {:?}",
                strict(&g)
            );
            assert_eq!(mixed(&g), Ok(()), "{field} is fine for emulated streams");
        }
        // what the host walks for the guest is checked in both modes
        for (g, field) in [
            (with0(|i| i.with_cd2l(true)), "IDR0.CD2L"),
            (with0(|i| i.with_term_model(false)), "IDR0.TERM_MODEL"),
        ] {
            for r in [strict(&g), mixed(&g)] {
                assert!(
                    matches!(r, Err(ClampError::Mismatch { field: f, .. }) if f == field),
                    "{field}: {r:?}"
                );
            }
        }
        let mut big_oas = base;
        big_oas.idr[5] = base.idr5().with_oas(Oas::OAS_48).into_bits();
        assert!(matches!(
            mixed(&big_oas),
            Err(ClampError::Mismatch {
                field: "IDR5.OAS",
                host: 44,
                guest: 48
            })
        ));
        let mut vax = base;
        vax.idr[5] = base.idr5().with_vax(1).into_bits();
        assert!(matches!(
            strict(&vax),
            Err(ClampError::Mismatch {
                field: "IDR5.VAX",
                ..
            })
        ));
        let mut ssid = base;
        ssid.idr[1] = base.idr1().with_ssidsize(8).into_bits();
        assert!(matches!(
            strict(&ssid),
            Err(ClampError::Mismatch {
                field: "SSIDSIZE",
                host: 0,
                guest: 8
            })
        ));
        let e = strict(&with0(|i| i.with_s2p(true)))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("guest IDR0.S2P = 1 cannot be offered on host-backed streams")
        );
    }

    #[test]
    fn a_guest_granule_subset_is_compatible_and_a_superset_is_not() {
        let base = clamp(&testbed(), &GuestProfile::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut only4k = base;
        only4k.idr[5] = base
            .idr5()
            .with_gran16k(false)
            .with_gran64k(false)
            .into_bits();
        assert_eq!(check_compatible(&only4k, &testbed()), Ok(()));
        let mut host = testbed();
        host.raw.idr[5] = Idr5::from_bits(host.raw.idr[5])
            .with_gran64k(false)
            .into_bits();
        assert_eq!(check_compatible(&only4k, &host), Ok(()));
        assert!(matches!(
            check_compatible(&base, &host),
            Err(ClampError::Mismatch {
                field: "IDR5.GRAN*",
                host: 0b011,
                guest: 0b111
            })
        ));
    }

    #[test]
    fn a_52_bit_host_clamps_to_registers_the_model_presents() {
        let mut h = testbed();
        h.raw.idr[5] = Idr5::from_bits(h.raw.idr[5])
            .with_oas(Oas::OAS_52)
            .with_ds(true)
            .into_bits();
        let p = GuestProfile {
            ipa_bits: 52,
            ..Default::default()
        };
        let g = clamp(&h, &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.oas_bits(), 52);
        assert!(!g.idr5().ds());
        assert!(viommu_smmuv3::caps::SmmuConfig::from_id_regs(g.id_regs()).is_ok());
        assert_eq!(check_guest_idrs(&g, &h, Compat::Strict), Ok(()));
    }
}
