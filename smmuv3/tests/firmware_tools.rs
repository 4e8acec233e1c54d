//! The generated firmware description, checked by the external tools firmware authors use:
//! - `dtc -I dtb -O dts` decompiles a whole minimal arm64 device tree (GICv3 + ITS, our SMMU,
//!   a virtio-mmio master with `iommus`, an ECAM PCIe host with `iommu-map`), and the decompiled
//!   properties are checked;
//! - `dt-validate` (dtschema) checks the same DTB against Linux's own bindings
//!   (`arm,smmu-v3.yaml`, `virtio/mmio.yaml`, `host-generic-pci.yaml`, `arm,gic-v3.yaml`) from
//!   the Linux source tree named by `VIOMMU_LINUX_SRC` (default: the kernel harness's
//!   `target/sva-kernel/linux-source-7.3`);
//! - `iasl -d` disassembles the IORT without errors, and the disassembled fields are checked.
//!
//! A missing tool (or Linux tree) prints why and the test returns early, unless
//! `VIOMMU_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs them), in which case it fails.
#![cfg(all(feature = "fdt", feature = "acpi"))]

use std::path::{Path, PathBuf};
use std::process::Command;

use viommu_common::topology::{IdMap, IdMapRange};
use viommu_smmuv3::fdt::{add_iommu_map, add_iommus, SmmuIrq, SmmuV3Node};
use viommu_smmuv3::iort::{Iort, IortItsGroup, IortRootComplex, IortSmmuV3};
use vm_fdt::FdtWriter;

const GIC: u32 = 1;
const ITS: u32 = 2;
const SMMU: u32 = 3;
const SMMU_BASE: u64 = 0x0905_0000;
const GIC_SPI: u32 = 0;
const EDGE_RISING: u32 = 1;

/// Whether a prerequisite is present; if not, explain, and fail only when CI requires tools.
fn available(what: &str, ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    let msg = format!("{what} not available ({why}); install it or see .ci/run");
    assert!(
        std::env::var("VIOMMU_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "{msg} [VIOMMU_REQUIRE_TOOLS=1]"
    );
    eprintln!("skipping: {msg}");
    false
}

fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    available(name, found, "not on PATH")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("spawn tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("firmware_tools");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The PCIe host's map: bus 0 identity, a bypass range, then a gap, and bus 1 at StreamID 0x100.
fn pcie_map() -> IdMap {
    let mut map = IdMap::new();
    map.map(IdMapRange {
        rid_base: 0,
        out_base: 0,
        len: 0x100,
    })
    .unwrap();
    map.bypass(0x100, 0x8).unwrap();
    map.map(IdMapRange {
        rid_base: 0x200,
        out_base: 0x100,
        len: 0x100,
    })
    .unwrap();
    map
}

/// A whole minimal arm64 tree around the SMMU, as a VMM would write it.
fn minimal_tree() -> Vec<u8> {
    let mut f = FdtWriter::new().unwrap();
    let root = f.begin_node("").unwrap();
    f.property_string("compatible", "linux,dummy-virt").unwrap();
    f.property_string("model", "viommu minimal virt").unwrap();
    f.property_u32("#address-cells", 2).unwrap();
    f.property_u32("#size-cells", 2).unwrap();
    f.property_u32("interrupt-parent", GIC).unwrap();

    let gic = f.begin_node("interrupt-controller@8000000").unwrap();
    f.property_string("compatible", "arm,gic-v3").unwrap();
    f.property_array_u64("reg", &[0x0800_0000, 0x1_0000, 0x080a_0000, 0xf6_0000])
        .unwrap();
    f.property_null("interrupt-controller").unwrap();
    f.property_u32("#interrupt-cells", 3).unwrap();
    f.property_u32("#address-cells", 2).unwrap();
    f.property_u32("#size-cells", 2).unwrap();
    f.property_null("ranges").unwrap();
    f.property_phandle(GIC).unwrap();
    let its = f.begin_node("msi-controller@8080000").unwrap();
    f.property_string("compatible", "arm,gic-v3-its").unwrap();
    f.property_array_u64("reg", &[0x0808_0000, 0x2_0000])
        .unwrap();
    f.property_null("msi-controller").unwrap();
    f.property_u32("#msi-cells", 1).unwrap();
    f.property_phandle(ITS).unwrap();
    f.end_node(its).unwrap();
    f.end_node(gic).unwrap();

    SmmuV3Node::new(SMMU_BASE, SMMU)
        .with_interrupt(SmmuIrq::EventQ, &[GIC_SPI, 74, EDGE_RISING])
        .with_interrupt(SmmuIrq::PriQ, &[GIC_SPI, 75, EDGE_RISING])
        .with_interrupt(SmmuIrq::CmdqSync, &[GIC_SPI, 76, EDGE_RISING])
        .with_interrupt(SmmuIrq::Gerror, &[GIC_SPI, 77, EDGE_RISING])
        .with_msi_parent(ITS, &[0x1_0000])
        .with_dma_coherent(true)
        .write(&mut f)
        .unwrap();

    let blk = f.begin_node("virtio_mmio@a000000").unwrap();
    f.property_string("compatible", "virtio,mmio").unwrap();
    f.property_array_u64("reg", &[0x0a00_0000, 0x200]).unwrap();
    f.property_array_u32("interrupts", &[GIC_SPI, 16, EDGE_RISING])
        .unwrap();
    f.property_null("dma-coherent").unwrap();
    add_iommus(&mut f, SMMU, &[0x1000]).unwrap();
    f.end_node(blk).unwrap();

    let pcie = f.begin_node("pcie@4010000000").unwrap();
    f.property_string("compatible", "pci-host-ecam-generic")
        .unwrap();
    f.property_string("device_type", "pci").unwrap();
    f.property_array_u64("reg", &[0x40_1000_0000, 0x1000_0000])
        .unwrap();
    f.property_array_u32("bus-range", &[0, 0xff]).unwrap();
    f.property_u32("linux,pci-domain", 0).unwrap();
    f.property_u32("#address-cells", 3).unwrap();
    f.property_u32("#size-cells", 2).unwrap();
    // One 32-bit non-prefetchable MMIO window, identity mapped.
    f.property_array_u32(
        "ranges",
        &[0x0200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 0x2eff_0000],
    )
    .unwrap();
    f.property_null("dma-coherent").unwrap();
    f.property_array_u32("msi-map", &[0, ITS, 0, 0x1_0000])
        .unwrap();
    add_iommu_map(&mut f, &pcie_map(), SMMU, None).unwrap();
    f.end_node(pcie).unwrap();

    f.end_node(root).unwrap();
    f.finish().unwrap()
}

#[test]
fn dtc_decompiles_the_tree() {
    if !tool("dtc") {
        return;
    }
    let dtb = scratch("virt.dtb");
    std::fs::write(&dtb, minimal_tree()).unwrap();
    let (ok, dts) = run(Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&dtb));
    assert!(ok, "dtc failed:\n{dts}");
    // dtc versions differ in how they print string lists: "a\0b" or "a", "b".
    let dts = dts.replace("\\0", "\", \"");
    let expect = [
        "iommu@9050000 {",
        "compatible = \"arm,smmu-v3\";",
        "reg = <0x00 0x9050000 0x00 0x20000>;",
        "interrupts = <0x00 0x4a 0x01 0x00 0x4b 0x01 0x00 0x4c 0x01 0x00 0x4d 0x01>;",
        "interrupt-names = \"eventq\", \"priq\", \"cmdq-sync\", \"gerror\";",
        "msi-parent = <0x02 0x10000>;",
        "#iommu-cells = <0x01>;",
        "dma-coherent;",
        "phandle = <0x03>;",
        "iommus = <0x03 0x1000>;",
        // The bypass range (RIDs 0x100..0x107) and the gaps have no entry.
        "iommu-map = <0x00 0x03 0x00 0x100 0x200 0x03 0x100 0x100>;",
    ];
    for line in expect {
        assert!(dts.contains(line), "missing `{line}` in:\n{dts}");
    }
    assert!(!dts.contains("iommu-map-mask"));
}

/// The Linux tree whose bindings dt-validate checks against.
fn linux_src() -> Option<PathBuf> {
    let path = std::env::var_os("VIOMMU_LINUX_SRC").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sva-kernel/linux-source-7.3"),
        PathBuf::from,
    );
    let bindings = path.join("Documentation/devicetree/bindings");
    let ok = bindings.join("iommu/arm,smmu-v3.yaml").is_file();
    available(
        "Linux device-tree bindings",
        ok,
        &format!(
            "{} has no iommu/arm,smmu-v3.yaml; set VIOMMU_LINUX_SRC or run \
             sva/tests/kernel/run.sh fetch",
            bindings.display()
        ),
    )
    .then_some(bindings)
}

#[test]
fn dt_validate_accepts_the_tree_against_linux_bindings() {
    if !tool("dt-validate") || !tool("dt-mk-schema") {
        return;
    }
    let Some(bindings) = linux_src() else {
        return;
    };
    let schema = scratch("processed-schema.json");
    let files = [
        "iommu/arm,smmu-v3.yaml",
        "virtio/mmio.yaml",
        "pci/host-generic-pci.yaml",
        "interrupt-controller/arm,gic-v3.yaml",
        "arm/linux,dummy-virt.yaml",
    ];
    let mut mk = Command::new("dt-mk-schema");
    mk.arg("-o").arg(&schema);
    for f in files {
        mk.arg(bindings.join(f));
    }
    let (ok, out) = run(&mut mk);
    assert!(ok, "dt-mk-schema failed:\n{out}");

    let dtb = scratch("virt-validate.dtb");
    std::fs::write(&dtb, minimal_tree()).unwrap();
    let (ok, out) = run(Command::new("dt-validate").arg("-s").arg(&schema).arg(&dtb));
    assert!(ok, "dt-validate failed:\n{out}");
    // dt-validate reports schema violations on its output without failing the exit status.
    assert!(out.trim().is_empty(), "dt-validate found problems:\n{out}");
}

fn iort() -> Vec<u8> {
    let smmu = IortSmmuV3 {
        event_gsiv: Some(106),
        pri_gsiv: Some(107),
        gerr_gsiv: Some(109),
        sync_gsiv: Some(108),
        msi_device_id: Some(0x1_0000),
        ..IortSmmuV3::new(SMMU_BASE)
    };
    Iort::new(smmu)
        .with_its(IortItsGroup { its_ids: vec![0] })
        .with_root_complex(IortRootComplex::new(0, pcie_map()))
        .to_bytes()
        .unwrap()
}

#[test]
fn iasl_disassembles_the_iort() {
    if !tool("iasl") {
        return;
    }
    let aml = scratch("iort.dat");
    std::fs::write(&aml, iort()).unwrap();
    let dsl = aml.with_extension("dsl");
    let _ = std::fs::remove_file(&dsl);
    let (ok, out) = run(Command::new("iasl").arg("-d").arg(&aml));
    assert!(ok, "iasl -d failed:\n{out}");
    assert!(
        !out.contains("Error") && !out.contains("Warning"),
        "iasl reported problems:\n{out}"
    );
    let text = std::fs::read_to_string(&dsl).unwrap();
    let norm: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, r)| r))
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let has = |needle: &str| norm.iter().any(|l| l == needle);
    let expect = [
        "Signature : \"IORT\" [IO Remapping Table]",
        "Node Count : 00000003",
        // ITS group, SMMUv3, root complex.
        "Type : 00",
        "Type : 04",
        "Type : 02",
        "Base Address : 0000000009050000",
        "Event GSIV : 0000006A",
        "PRI GSIV : 0000006B",
        "GERR GSIV : 0000006D",
        "Sync GSIV : 0000006C",
        // Root complex: RIDs 0x200..0x2ff -> StreamIDs 0x100.. (count minus one).
        "Input base : 00000200",
        "ID Count : 000000FF",
        "Output Base : 00000100",
        // Bypass RIDs 0x100..0x107 go straight to the ITS.
        "Input base : 00000100",
        "ID Count : 00000007",
        // The SMMU's own single-mapping DeviceID.
        "Output Base : 00010000",
    ];
    for line in expect {
        assert!(has(line), "missing `{line}` in:\n{text}");
    }
    assert!(
        !text.contains("**** Unknown"),
        "iasl could not decode:\n{text}"
    );
}
