//! The SMMUv3's MSIs delivered into a real KVM VM (Linux x86_64): runs `examples/kvm_msi.rs`
//! and checks what KVM received. Without /dev/kvm the test fails with the reason; it never
//! passes silently.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

#[path = "../examples/kvm_msi.rs"]
#[expect(dead_code, reason = "the example's main is not called by the test")]
mod kvm_msi;

use kvm_msi::kvm::{self, Delivery};

/// The EVTQ MSI reaches KVM by KVM_SIGNAL_MSI and the GERROR MSI by irqfd routing.
#[test]
fn test_smmu_msis_delivered_into_kvm() {
    // The EVTQ MSI of a translation fault reaches KVM through KVM_SIGNAL_MSI (accepted by one
    // vCPU, vector pending in its local APIC), and the GERROR MSI of a command error through an
    // irqfd route.
    assert!(
        std::path::Path::new("/dev/kvm").exists(),
        "/dev/kvm is absent: this test needs KVM (CI machines provide it)"
    );
    let r = kvm::run().unwrap_or_else(|e| panic!("KVM delivery failed: {e}"));
    assert_eq!(r.events.len(), 1, "{:x?}", r.events);
    assert_eq!(r.events[0][0] & 0xff, 0x10, "F_TRANSLATION");
    assert_eq!(r.events[0][0] >> 32, 8, "StreamID");
    assert_eq!(
        r.deliveries,
        vec![
            Delivery::SignalMsi {
                addr: kvm::MSI_ADDR,
                data: kvm::EVTQ_VECTOR,
                ret: Ok(1),
            },
            Delivery::Irqfd {
                gsi: kvm::GERROR_GSI,
                ok: true,
            },
        ]
    );
    assert!(r.evtq_pending, "EVTQ vector not pending in the vCPU's IRR");
    assert!(
        r.gerror_pending,
        "GERROR vector not pending in the vCPU's IRR"
    );
}
