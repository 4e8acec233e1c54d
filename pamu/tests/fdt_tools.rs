//! The PAMU's device-tree nodes, decompiled by `dtc -I dtb -O dts` and checked property by
//! property. (The `fsl,pamu` binding is a text binding, so there is no schema for dt-validate.)
//!
//! A missing `dtc` prints why and the test returns early, unless `VIOMMU_REQUIRE_TOOLS=1` (set
//! by `.ci/run`, which installs it), in which case the test fails.
#![cfg(feature = "fdt")]

use std::process::Command;

use viommu_pamu::fdt::{add_iommu_parent, add_liodn, GutsNode, PamuNode};
use viommu_pamu::PamuConfig;
use vm_fdt::FdtWriter;

fn dtc_present() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v dtc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let msg = "dtc not available (not on PATH); install device-tree-compiler or see .ci/run";
        assert!(
            std::env::var("VIOMMU_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{msg} [VIOMMU_REQUIRE_TOOLS=1]"
        );
        eprintln!("skipping: {msg}");
    }
    found
}

fn qoriq_tree() -> Vec<u8> {
    let mut f = FdtWriter::new().unwrap();
    let root = f.begin_node("").unwrap();
    f.property_string("compatible", "fsl,T4240RDB").unwrap();
    f.property_string("model", "viommu T4240-like").unwrap();
    f.property_u32("#address-cells", 2).unwrap();
    f.property_u32("#size-cells", 2).unwrap();
    let soc = f.begin_node("soc@ffe000000").unwrap();
    f.property_u32("#address-cells", 1).unwrap();
    f.property_u32("#size-cells", 1).unwrap();
    f.property_array_u32("ranges", &[0, 0xf, 0xfe00_0000, 0x100_0000])
        .unwrap();
    let pamu = PamuNode::from_config(&PamuConfig::t4240(), &[24, 2, 0, 0], &[16, 2, 1, 30])
        .with_child_phandles(0x20);
    pamu.write(&mut f).unwrap();
    GutsNode {
        version2: true,
        ..GutsNode::default()
    }
    .write(&mut f)
    .unwrap();
    let dma = f.begin_node("dma@100300").unwrap();
    add_liodn(&mut f, &[0x93]).unwrap();
    add_iommu_parent(&mut f, pamu.child_phandle(1).unwrap()).unwrap();
    f.end_node(dma).unwrap();
    f.end_node(soc).unwrap();
    f.end_node(root).unwrap();
    f.finish().unwrap()
}

#[test]
fn dtc_decompiles_the_pamu_nodes() {
    if !dtc_present() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pamu_fdt_tools");
    std::fs::create_dir_all(&dir).unwrap();
    let dtb = dir.join("qoriq.dtb");
    std::fs::write(&dtb, qoriq_tree()).unwrap();
    let out = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&dtb)
        .output()
        .unwrap();
    // dtc versions differ in how they print string lists: "a\0b" or "a", "b".
    let dts = String::from_utf8_lossy(&out.stdout).replace("\\0", "\", \"");
    assert!(
        out.status.success(),
        "dtc failed:\n{dts}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expect = [
        "iommu@20000 {",
        "compatible = \"fsl,pamu-v1.0\", \"fsl,pamu\";",
        "reg = <0x20000 0x6000>;",
        "ranges = <0x00 0x20000 0x6000>;",
        "#address-cells = <0x01>;",
        "interrupts = <0x18 0x02 0x00 0x00 0x10 0x02 0x01 0x1e>;",
        "pamu@5000 {",
        "reg = <0x5000 0x1000>;",
        "fsl,primary-cache-geometry = <0x20 0x01>;",
        "fsl,secondary-cache-geometry = <0x80 0x02>;",
        "phandle = <0x25>;",
        "global-utilities@e0000 {",
        "compatible = \"fsl,qoriq-device-config-2.0\";",
        "fsl,liodn-bits = <0x0c>;",
        "fsl,liodn = <0x93>;",
        "fsl,iommu-parent = <0x21>;",
    ];
    for line in expect {
        assert!(dts.contains(line), "missing `{line}` in:\n{dts}");
    }
    assert!(!dts.contains("pamu@6000"));
}
