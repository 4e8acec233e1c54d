//! Typed events and their one encoder into event-queue records (IHI 0070 §7.3).
//!
//! Decoders and the translation pipeline produce an [`Event`]; [`Event::encode`] is the only
//! place that writes an [`EvtEntry`]. Walker faults convert with [`Event::from_walk_fault`].
//!
//! Fields a record does not define are RES0 and written as zero (IHI 0070 §7.3): IPA for
//! stage-1 faults, TTRnW unless CLASS = TT, STAG unless the transaction stalled.

use core::fmt;

use viommu_common::access::{AccessKind, DmaRequest};
use viommu_common::fault::Smmuv3FaultId;
use viommu_common::id::{StreamId, SubstreamId};
use viommu_common::traits::FaultKind;
use viommu_common::walk::{FaultClass, Stage, WalkFault, WalkFaultKind};

use crate::spec::evt::{EventId, EvtClass, EvtEntry, EvtW0, EvtW1, EvtW2, EvtW3};

/// The stream (and substream) a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventSource {
    /// StreamID.
    pub sid: StreamId,
    /// SubstreamID, if the transaction carried one (SSV = 1).
    pub ssid: Option<SubstreamId>,
}

impl EventSource {
    /// A source without a substream.
    pub const fn stream(sid: u32) -> Self {
        Self {
            sid: StreamId(sid),
            ssid: None,
        }
    }

    /// The source of a DMA request.
    pub const fn of(req: &DmaRequest) -> Self {
        Self {
            sid: req.stream,
            ssid: req.substream,
        }
    }
}

/// The faulting transaction's address and attributes (InputAddr, RnW, InD, PnU).
///
/// InD and PnU are the post-STE-override values (PRIVCFG/INSTCFG), except in F_UUT, which
/// records the incoming ones (IHI 0070 §7.3.2); InD is 0 for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventAccess {
    /// InputAddr: the full input address, tag bits included.
    pub addr: u64,
    /// RnW: a read (instruction fetches are reads).
    pub read: bool,
    /// InD: an instruction fetch.
    pub instr: bool,
    /// PnU: privileged.
    pub privileged: bool,
}

impl EventAccess {
    /// The access of a DMA request (after any STE INSTCFG/PRIVCFG override the caller applied).
    pub const fn of(req: &DmaRequest) -> Self {
        Self {
            addr: req.addr,
            read: !matches!(req.access, AccessKind::Write),
            instr: matches!(req.access, AccessKind::Exec),
            privileged: req.privileged,
        }
    }
}

/// The fields shared by F_TRANSLATION, F_ADDR_SIZE, F_ACCESS and F_PERMISSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TranslationFault {
    /// Stream and substream.
    pub src: EventSource,
    /// The transaction.
    pub access: EventAccess,
    /// `Some(STAG)` if the transaction is stalled (Stall = 1).
    pub stall: Option<u16>,
    /// S2: the fault is a stage-2 fault.
    pub s2: bool,
    /// CLASS: what was being translated.
    pub class: EvtClass,
    /// TTRnW (CLASS = TT): the stage-1 descriptor access was a read.
    pub ttrnw: bool,
    /// IPA of a stage-2 fault (0 for stage 1).
    pub ipa: u64,
}

/// An event the SMMU records, one variant per event number with its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// F_UUT (0x01): unsupported upstream transaction.
    Uut {
        /// Stream.
        src: EventSource,
        /// Transaction.
        access: EventAccess,
    },
    /// C_BAD_STREAMID (0x02): StreamID beyond the stream table.
    BadStreamId {
        /// Stream.
        src: EventSource,
    },
    /// F_STE_FETCH (0x03): abort fetching an STE or L1 stream descriptor.
    SteFetch {
        /// Stream.
        src: EventSource,
        /// FetchAddr: the address read.
        fetch_addr: u64,
    },
    /// C_BAD_STE (0x04): V = 0 or an illegal STE.
    BadSte {
        /// Stream.
        src: EventSource,
    },
    /// F_BAD_ATS_TREQ (0x05): ATS translation request not allowed.
    BadAtsTreq {
        /// Stream.
        src: EventSource,
        /// Transaction.
        access: EventAccess,
    },
    /// F_STREAM_DISABLED (0x06): non-substream traffic with S1DSS = terminate.
    StreamDisabled {
        /// Stream.
        src: EventSource,
    },
    /// F_TRANSL_FORBIDDEN (0x07): ATS-translated traffic not allowed.
    TranslForbidden {
        /// Stream.
        src: EventSource,
        /// Transaction.
        access: EventAccess,
    },
    /// C_BAD_SUBSTREAMID (0x08): SubstreamID out of range or not allowed.
    BadSubstreamId {
        /// Stream.
        src: EventSource,
    },
    /// F_CD_FETCH (0x09): abort fetching a CD or L1 CD descriptor.
    CdFetch {
        /// Stream.
        src: EventSource,
        /// `Some(STAG)` if stalled.
        stall: Option<u16>,
        /// FetchAddr: the (physical) address read.
        fetch_addr: u64,
    },
    /// C_BAD_CD (0x0A): V = 0 or an illegal CD.
    BadCd {
        /// Stream.
        src: EventSource,
    },
    /// F_WALK_EABT (0x0B): abort on a translation table read.
    WalkEabt {
        /// Stream.
        src: EventSource,
        /// Transaction.
        access: EventAccess,
        /// `Some(STAG)` if stalled.
        stall: Option<u16>,
        /// S2: the aborting read was part of a stage-2 walk.
        s2: bool,
        /// CLASS.
        class: EvtClass,
        /// FetchAddr: the descriptor address that aborted.
        fetch_addr: u64,
    },
    /// F_TRANSLATION (0x10).
    Translation(TranslationFault),
    /// F_ADDR_SIZE (0x11).
    AddrSize(TranslationFault),
    /// F_ACCESS (0x12).
    Access(TranslationFault),
    /// F_PERMISSION (0x13).
    Permission(TranslationFault),
    /// F_TLB_CONFLICT (0x20): never raised by this model (no conflicting TLB entries exist).
    TlbConflict {
        /// Stream.
        src: EventSource,
        /// Transaction.
        access: EventAccess,
    },
    /// F_CFG_CONFLICT (0x21): never raised by this model.
    CfgConflict {
        /// Stream.
        src: EventSource,
    },
    /// E_PAGE_REQUEST (0x24): speculative page-request hint.
    PageRequest {
        /// Stream.
        src: EventSource,
        /// Transaction.
        access: EventAccess,
    },
    /// F_VMS_FETCH (0x25): abort fetching a VMS.
    VmsFetch {
        /// Stream.
        src: EventSource,
        /// FetchAddr.
        fetch_addr: u64,
    },
}

const fn class_of(c: FaultClass) -> EvtClass {
    match c {
        FaultClass::Cd => EvtClass::CD,
        FaultClass::Tt => EvtClass::TT,
        FaultClass::In => EvtClass::IN,
    }
}

impl Event {
    /// The event for a walker fault.
    ///
    /// Stage, CLASS and IPA come from the fault: a stage-2 fault sets S2 = 1 and records the
    /// IPA; a stage-2 fault on a stage-1 descriptor access is CLASS = TT with TTRnW = 1 for a
    /// read; a CD fetch through stage 2 is CLASS = CD (the caller sets it with
    /// [`WalkFault::with_class`]). An external abort is F_WALK_EABT with FetchAddr. An
    /// `InvalidConfig` fault (which validated configurations never produce) maps to C_BAD_CD for
    /// stage 1 and C_BAD_STE for stage 2.
    pub fn from_walk_fault(
        fault: &WalkFault,
        src: EventSource,
        access: EventAccess,
        stall: Option<u16>,
    ) -> Event {
        let s2 = matches!(fault.stage, Stage::S2);
        let class = match fault.kind {
            // A stage-1 walk that aborts reading a descriptor is S2 = 0, CLASS = TT (IHI 0070
            // §7.3.12), unlike the other stage-1 faults (CLASS = IN).
            WalkFaultKind::ExternalAbort { .. } if !s2 => EvtClass::TT,
            _ => class_of(fault.class),
        };
        let t = TranslationFault {
            src,
            access,
            stall,
            s2,
            class,
            ttrnw: matches!(fault.class, FaultClass::Tt) && !fault.desc_write,
            ipa: if s2 { fault.ipa.unwrap_or(0) } else { 0 },
        };
        match fault.kind {
            WalkFaultKind::Translation => Event::Translation(t),
            WalkFaultKind::AddressSize => Event::AddrSize(t),
            WalkFaultKind::AccessFlag => Event::Access(t),
            WalkFaultKind::Permission => Event::Permission(t),
            WalkFaultKind::ExternalAbort { fetch_addr } => Event::WalkEabt {
                src,
                access,
                stall,
                s2,
                class,
                fetch_addr,
            },
            WalkFaultKind::InvalidConfig(_) => {
                if s2 {
                    Event::BadSte { src }
                } else {
                    Event::BadCd { src }
                }
            }
        }
    }

    /// The event number.
    pub const fn id(&self) -> EventId {
        match self {
            Event::Uut { .. } => EventId::F_UUT,
            Event::BadStreamId { .. } => EventId::C_BAD_STREAMID,
            Event::SteFetch { .. } => EventId::F_STE_FETCH,
            Event::BadSte { .. } => EventId::C_BAD_STE,
            Event::BadAtsTreq { .. } => EventId::F_BAD_ATS_TREQ,
            Event::StreamDisabled { .. } => EventId::F_STREAM_DISABLED,
            Event::TranslForbidden { .. } => EventId::F_TRANSL_FORBIDDEN,
            Event::BadSubstreamId { .. } => EventId::C_BAD_SUBSTREAMID,
            Event::CdFetch { .. } => EventId::F_CD_FETCH,
            Event::BadCd { .. } => EventId::C_BAD_CD,
            Event::WalkEabt { .. } => EventId::F_WALK_EABT,
            Event::Translation(_) => EventId::F_TRANSLATION,
            Event::AddrSize(_) => EventId::F_ADDR_SIZE,
            Event::Access(_) => EventId::F_ACCESS,
            Event::Permission(_) => EventId::F_PERMISSION,
            Event::TlbConflict { .. } => EventId::F_TLB_CONFLICT,
            Event::CfgConflict { .. } => EventId::F_CFG_CONFLICT,
            Event::PageRequest { .. } => EventId::E_PAGE_REQUEST,
            Event::VmsFetch { .. } => EventId::F_VMS_FETCH,
        }
    }

    /// The manual's name (`"F_TRANSLATION"`, `"C_BAD_STE"`, ...), as logs and replay files
    /// spell it.
    pub fn name(&self) -> &'static str {
        self.id().name().unwrap_or("UNKNOWN")
    }

    /// The stream and substream the event is about.
    pub const fn source(&self) -> EventSource {
        match *self {
            Event::Uut { src, .. }
            | Event::BadStreamId { src }
            | Event::SteFetch { src, .. }
            | Event::BadSte { src }
            | Event::BadAtsTreq { src, .. }
            | Event::StreamDisabled { src }
            | Event::TranslForbidden { src, .. }
            | Event::BadSubstreamId { src }
            | Event::CdFetch { src, .. }
            | Event::BadCd { src }
            | Event::WalkEabt { src, .. }
            | Event::TlbConflict { src, .. }
            | Event::CfgConflict { src }
            | Event::PageRequest { src, .. }
            | Event::VmsFetch { src, .. } => src,
            Event::Translation(t)
            | Event::AddrSize(t)
            | Event::Access(t)
            | Event::Permission(t) => t.src,
        }
    }

    /// The transaction's access, for events that record one.
    pub const fn access(&self) -> Option<EventAccess> {
        match *self {
            Event::Uut { access, .. }
            | Event::BadAtsTreq { access, .. }
            | Event::TranslForbidden { access, .. }
            | Event::WalkEabt { access, .. }
            | Event::TlbConflict { access, .. }
            | Event::PageRequest { access, .. } => Some(access),
            Event::Translation(t)
            | Event::AddrSize(t)
            | Event::Access(t)
            | Event::Permission(t) => Some(t.access),
            _ => None,
        }
    }

    /// `Some(STAG)` if the event reports a stalled transaction.
    pub const fn stall_tag(&self) -> Option<u16> {
        match *self {
            Event::CdFetch { stall, .. } | Event::WalkEabt { stall, .. } => stall,
            Event::Translation(t)
            | Event::AddrSize(t)
            | Event::Access(t)
            | Event::Permission(t) => t.stall,
            _ => None,
        }
    }

    /// The fault identity a [`viommu_common::DmaFault`] reports for this event (named as
    /// [`Event::name`]).
    pub const fn fault_id(&self) -> Smmuv3FaultId {
        match self {
            Event::Uut { .. } => Smmuv3FaultId::Uut,
            Event::BadStreamId { .. } => Smmuv3FaultId::BadStreamId,
            Event::SteFetch { .. } => Smmuv3FaultId::SteFetch,
            Event::BadSte { .. } => Smmuv3FaultId::BadSte,
            Event::BadAtsTreq { .. } => Smmuv3FaultId::BadAtsTreq,
            Event::StreamDisabled { .. } => Smmuv3FaultId::StreamDisabled,
            Event::TranslForbidden { .. } => Smmuv3FaultId::TranslForbidden,
            Event::BadSubstreamId { .. } => Smmuv3FaultId::BadSubstreamId,
            Event::CdFetch { .. } => Smmuv3FaultId::CdFetch,
            Event::BadCd { .. } => Smmuv3FaultId::BadCd,
            Event::WalkEabt { .. } => Smmuv3FaultId::WalkEabt,
            Event::Translation(_) => Smmuv3FaultId::Translation,
            Event::AddrSize(_) => Smmuv3FaultId::AddrSize,
            Event::Access(_) => Smmuv3FaultId::Access,
            Event::Permission(_) => Smmuv3FaultId::Permission,
            Event::TlbConflict { .. } => Smmuv3FaultId::TlbConflict,
            Event::CfgConflict { .. } => Smmuv3FaultId::CfgConflict,
            Event::PageRequest { .. } => Smmuv3FaultId::PageRequest,
            Event::VmsFetch { .. } => Smmuv3FaultId::VmsFetch,
        }
    }

    /// The architecture-neutral fault class, for [`viommu_common::DmaFault`].
    pub const fn fault_kind(&self) -> FaultKind {
        if self.stall_tag().is_some() {
            return FaultKind::Stalled;
        }
        match self {
            Event::Translation(_) | Event::StreamDisabled { .. } => FaultKind::Translation,
            Event::AddrSize(_) => FaultKind::AddressSize,
            Event::Access(_) => FaultKind::AccessFlag,
            Event::Permission(_) => FaultKind::Permission,
            Event::SteFetch { .. }
            | Event::CdFetch { .. }
            | Event::WalkEabt { .. }
            | Event::VmsFetch { .. } => FaultKind::ExternalAbort,
            _ => FaultKind::Configuration,
        }
    }

    /// Encode the event-queue record (the only writer of [`EvtEntry`]).
    pub fn encode(&self) -> EvtEntry {
        let src = self.source();
        let w0 = EvtW0::new()
            .with_event_id(self.id())
            .with_ssv(src.ssid.is_some())
            .with_ssid(src.ssid.map_or(0, |s| s.0 & 0xF_FFFF))
            .with_sid(src.sid.0);
        let mut w1 = EvtW1::new();
        let mut w2 = EvtW2::new();
        if let Some(a) = self.access() {
            w1 = w1.with_rnw(a.read).with_ind(a.instr).with_pnu(a.privileged);
            w2 = w2.with_input_addr(a.addr);
        }
        if let Some(stag) = self.stall_tag() {
            w1 = w1.with_stall(true).with_stag(stag);
        }
        let w3 = match *self {
            Event::SteFetch { fetch_addr, .. }
            | Event::CdFetch { fetch_addr, .. }
            | Event::VmsFetch { fetch_addr, .. } => EvtW3::from_fetch_addr(fetch_addr),
            Event::WalkEabt {
                s2,
                class,
                fetch_addr,
                ..
            } => {
                w1 = w1.with_s2(s2).with_class(class);
                EvtW3::from_fetch_addr(fetch_addr)
            }
            Event::Translation(t)
            | Event::AddrSize(t)
            | Event::Access(t)
            | Event::Permission(t) => {
                // Policy: TTRnW is written for all four translation-fault records when
                // CLASS = TT (IHI 0070 §7.3). IHI 0070 §7.3.16 defines it explicitly for
                // F_PERMISSION; Linux reads it only there.
                w1 = w1
                    .with_s2(t.s2)
                    .with_class(EvtClass(t.class.0 & 3))
                    .with_ttrnw(t.ttrnw && t.class == EvtClass::TT);
                EvtW3::from_ipa(if t.s2 { t.ipa } else { 0 })
            }
            _ => EvtW3::new(),
        };
        EvtEntry { w0, w1, w2, w3 }
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SID={}", self.sid)?;
        if let Some(s) = self.ssid {
            write!(f, " SSID={s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for EventAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InputAddr={:#x} RnW={} InD={} PnU={}",
            self.addr,
            u8::from(self.read),
            u8::from(self.instr),
            u8::from(self.privileged)
        )
    }
}

impl fmt::Display for Event {
    /// One line with the manual's names, e.g.
    /// `F_TRANSLATION SID=0x10 InputAddr=0x1000 RnW=1 InD=0 PnU=0 S2=0 CLASS=IN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name(), self.source())?;
        if let Some(a) = self.access() {
            write!(f, " {a}")?;
        }
        if let Some(stag) = self.stall_tag() {
            write!(f, " Stall=1 STAG={stag:#x}")?;
        }
        match *self {
            Event::SteFetch { fetch_addr, .. }
            | Event::CdFetch { fetch_addr, .. }
            | Event::VmsFetch { fetch_addr, .. } => write!(f, " FetchAddr={fetch_addr:#x}"),
            Event::WalkEabt {
                s2,
                class,
                fetch_addr,
                ..
            } => write!(
                f,
                " S2={} CLASS={class} FetchAddr={fetch_addr:#x}",
                u8::from(s2)
            ),
            Event::Translation(t)
            | Event::AddrSize(t)
            | Event::Access(t)
            | Event::Permission(t) => {
                write!(f, " S2={} CLASS={}", u8::from(t.s2), t.class)?;
                if t.class == EvtClass::TT {
                    write!(f, " TTRnW={}", u8::from(t.ttrnw))?;
                }
                if t.s2 {
                    write!(f, " IPA={:#x}", t.ipa)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_at(addr: u64) -> EventAccess {
        EventAccess {
            addr,
            read: true,
            instr: false,
            privileged: false,
        }
    }

    fn src(sid: u32, ssid: Option<u32>) -> EventSource {
        EventSource {
            sid: StreamId(sid),
            ssid: ssid.map(SubstreamId),
        }
    }

    /// Every event number's manual name is a fault identity of the same spelling, so
    /// [`Event::fault_id`] and [`Event::name`] agree.
    #[test]
    fn test_event_names_are_fault_ids() {
        for v in 0..=u8::MAX {
            if let Some(name) = EventId(v).name() {
                let id: Smmuv3FaultId = name.parse().unwrap();
                assert_eq!(id.name(), name);
            }
        }
        let e = Event::BadSte { src: src(1, None) };
        assert_eq!(e.fault_id().name(), e.name());
    }

    /// A stage-2 translation fault (CLASS IN) with SSID: every field at the bit Linux's
    /// `EVTQ_0_*`/`EVTQ_1_*`/`EVTQ_3_IPA` masks read it from.
    #[test]
    fn test_event_encode_s2_translation_fields() {
        let e = Event::Translation(TranslationFault {
            src: src(0x10, Some(5)),
            access: read_at(0x1234_5678),
            stall: None,
            s2: true,
            class: EvtClass::IN,
            ttrnw: false,
            ipa: 0x8000_1000,
        });
        // ID 0x10 [7:0], SSV [11], SSID 5 [31:12], SID 0x10 [63:32].
        // RnW [35], S2 [39], CLASS 2 [41:40]; IPA [51:12].
        assert_eq!(
            e.encode().words(),
            [
                0x0000_0010_0000_5810,
                0x0000_0288_0000_0000,
                0x1234_5678,
                0x8000_1000
            ]
        );
        assert_eq!(
            e.to_string(),
            "F_TRANSLATION SID=0x10 SSID=0x5 InputAddr=0x12345678 RnW=1 InD=0 PnU=0 S2=1 \
             CLASS=IN IPA=0x80001000"
        );
    }

    /// A stalled stage-1 permission fault on a privileged instruction fetch: Stall \[31\], STAG
    /// \[15:0\], PnU \[33\], InD \[34\], RnW \[35\]; no IPA for stage 1.
    #[test]
    fn test_event_encode_stalled_permission_fault() {
        let e = Event::Permission(TranslationFault {
            src: src(7, None),
            access: EventAccess {
                addr: 0xFFFF_0000_0000_1000,
                read: true,
                instr: true,
                privileged: true,
            },
            stall: Some(0xBEEF),
            s2: false,
            class: EvtClass::IN,
            ttrnw: true,
            ipa: 0x5000,
        });
        let w = e.encode().words();
        assert_eq!(w[0], 0x0000_0007_0000_0013);
        assert_eq!(w[1], 0x0000_020E_8000_BEEF);
        assert_eq!(w[2], 0xFFFF_0000_0000_1000);
        assert_eq!(
            w[3], 0,
            "stage-1 faults carry no IPA; TTRnW only with CLASS TT"
        );
        assert_eq!(e.fault_kind(), FaultKind::Stalled);
    }

    /// A stage-2 permission fault on a stage-1 descriptor read under nesting: CLASS TT
    /// \[41:40\] = 1, TTRnW \[44\] = 1, IPA = the descriptor's IPA; a write (HTTU) access leaves
    /// TTRnW 0; F_TRANSLATION with CLASS TT records it too (policy).
    #[test]
    fn test_event_encode_class_tt_ttrnw() {
        let f = WalkFault::new(WalkFaultKind::Permission, Stage::S2, 2)
            .with_class(FaultClass::Tt)
            .with_ipa(0x4_0000_2000);
        let e = Event::from_walk_fault(&f, src(3, None), read_at(0x1000), None);
        assert_eq!(e.encode().words()[1], 0x0000_1188_0000_0000);
        assert_eq!(e.encode().words()[3], 0x4_0000_2000);
        let mut w = f;
        w.desc_write = true;
        let e = Event::from_walk_fault(&w, src(3, None), read_at(0x1000), None);
        assert!(!e.encode().w1.ttrnw());
        let mut t = f;
        t.kind = WalkFaultKind::Translation;
        let e = Event::from_walk_fault(&t, src(3, None), read_at(0x1000), None);
        assert_eq!(e.encode().words()[1], 0x0000_1188_0000_0000);
    }

    /// F_WALK_EABT carries FetchAddr \[55:3\], S2 and CLASS (a stage-1 walk abort is S2 = 0,
    /// CLASS = TT, IHI 0070 §7.3.12); F_STE_FETCH / F_CD_FETCH carry FetchAddr.
    #[test]
    fn test_event_encode_fetch_aborts() {
        let f = WalkFault::new(
            WalkFaultKind::ExternalAbort {
                fetch_addr: 0xF_0000_0008,
            },
            Stage::S1,
            1,
        );
        let e = Event::from_walk_fault(&f, src(1, None), read_at(0x2000), None);
        assert_eq!(e.name(), "F_WALK_EABT");
        let w = e.encode().words();
        assert_eq!(w[0], 0x0000_0001_0000_000B);
        // S2 = 0, CLASS = TT (1), RnW.
        assert_eq!(w[1], 0x0000_0108_0000_0000);
        assert_eq!(w[3], 0xF_0000_0008);
        let e = Event::SteFetch {
            src: src(0x20, None),
            fetch_addr: 0x1_0000_0840,
        };
        assert_eq!(
            e.encode().words(),
            [0x0000_0020_0000_0003, 0, 0, 0x1_0000_0840]
        );
        let e = Event::CdFetch {
            src: src(0x20, Some(0xF_FFFF)),
            stall: None,
            fetch_addr: 0xFFFF_FFFF_FFFF_FFFF,
        };
        let w = e.encode().words();
        assert_eq!(w[0], 0x0000_0020_FFFF_F809);
        assert_eq!(w[3], 0x00FF_FFFF_FFFF_FFF8);
        assert_eq!(e.fault_kind(), FaultKind::ExternalAbort);
    }

    /// Configuration events carry only the stream: C_BAD_STE, C_BAD_CD, C_BAD_STREAMID,
    /// C_BAD_SUBSTREAMID, F_STREAM_DISABLED.
    #[test]
    fn test_event_encode_config_events() {
        let cases = [
            (
                Event::BadStreamId {
                    src: src(0xFFFF_FFFF, None),
                },
                0xFFFF_FFFF_0000_0002u64,
            ),
            (
                Event::BadSte {
                    src: src(0x10, None),
                },
                0x0000_0010_0000_0004,
            ),
            (
                Event::StreamDisabled {
                    src: src(0x10, None),
                },
                0x0000_0010_0000_0006,
            ),
            (
                Event::BadSubstreamId {
                    src: src(0x10, Some(0x400)),
                },
                0x0000_0010_0040_0808,
            ),
            (
                Event::BadCd {
                    src: src(0x10, Some(1)),
                },
                0x0000_0010_0000_180A,
            ),
        ];
        for (e, w0) in cases {
            assert_eq!(e.encode().words(), [w0, 0, 0, 0], "{e}");
            assert_eq!(
                e.fault_kind() == FaultKind::Translation,
                e.name() == "F_STREAM_DISABLED"
            );
        }
    }

    /// Walk-fault kinds map to F_TRANSLATION / F_ADDR_SIZE / F_ACCESS / F_PERMISSION; stage 1 has
    /// no IPA even if one is present; invalid configuration maps to C_BAD_CD / C_BAD_STE.
    #[test]
    fn test_event_from_walk_fault_kinds() {
        let s = src(9, Some(2));
        let a = read_at(0x9000);
        for (kind, name) in [
            (WalkFaultKind::Translation, "F_TRANSLATION"),
            (WalkFaultKind::AddressSize, "F_ADDR_SIZE"),
            (WalkFaultKind::AccessFlag, "F_ACCESS"),
            (WalkFaultKind::Permission, "F_PERMISSION"),
        ] {
            let e = Event::from_walk_fault(
                &WalkFault::new(kind, Stage::S1, 3).with_ipa(0x7000),
                s,
                a,
                None,
            );
            assert_eq!(e.name(), name);
            assert_eq!(e.encode().words()[3], 0);
            assert!(!e.encode().w1.s2());
            assert_eq!(e.encode().w1.class(), EvtClass::IN);
        }
        let cfg = viommu_common::walk::ConfigError::InputSize {
            txsz: 70,
            granule: viommu_common::Granule::K4,
        };
        let e = Event::from_walk_fault(
            &WalkFault::new(WalkFaultKind::InvalidConfig(cfg), Stage::S2, 0),
            s,
            a,
            None,
        );
        assert_eq!(e.name(), "C_BAD_STE");
    }

    /// A CD fetch through stage 2 that faults: S2 = 1, CLASS = CD, IPA = the CD address.
    #[test]
    fn test_event_nested_cd_fetch_fault() {
        let f = WalkFault::new(WalkFaultKind::Translation, Stage::S2, 1)
            .with_class(FaultClass::Cd)
            .with_ipa(0x8_0000_0040);
        let e = Event::from_walk_fault(&f, src(4, None), read_at(0x1000), None);
        let w = e.encode();
        assert!(w.w1.s2());
        assert_eq!(w.w1.class(), EvtClass::CD);
        assert_eq!(w.w3.ipa(), 0x8_0000_0000);
        assert_eq!(w.words()[3], 0x8_0000_0000);
    }

    /// Every event id is named, and the record's event number is the variant's.
    #[test]
    fn test_event_ids_and_names() {
        let s = src(1, None);
        let a = read_at(0);
        let all = [
            (Event::Uut { src: s, access: a }, 0x01),
            (Event::BadAtsTreq { src: s, access: a }, 0x05),
            (Event::TranslForbidden { src: s, access: a }, 0x07),
            (Event::TlbConflict { src: s, access: a }, 0x20),
            (Event::CfgConflict { src: s }, 0x21),
            (Event::PageRequest { src: s, access: a }, 0x24),
            (
                Event::VmsFetch {
                    src: s,
                    fetch_addr: 8,
                },
                0x25,
            ),
        ];
        for (e, id) in all {
            assert_eq!(e.encode().w0.event_id(), EventId(id));
            assert_eq!(e.id().name(), Some(e.name()));
        }
        let w = Event::Uut {
            src: s,
            access: EventAccess {
                addr: 0x44,
                read: false,
                instr: false,
                privileged: true,
            },
        }
        .encode()
        .words();
        assert_eq!(w[1], 1 << 33);
        assert_eq!(w[2], 0x44);
    }

    /// `EventAccess::of` maps a write to RnW = 0 and an instruction fetch to InD = 1, RnW = 1.
    #[test]
    fn test_event_access_from_request() {
        let w = EventAccess::of(&DmaRequest::write(1, 0x10, 4));
        assert!(!w.read && !w.instr && !w.privileged);
        let x = EventAccess::of(&DmaRequest::new(1, 0x10, 4, AccessKind::Exec).privileged());
        assert!(x.read && x.instr && x.privileged);
        let r = DmaRequest::read(3, 0, 1).with_substream(7);
        assert_eq!(EventSource::of(&r), src(3, Some(7)));
    }
}
