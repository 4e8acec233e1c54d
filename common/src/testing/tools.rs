//! External programs and trees that some tests need (`dtc`, `dt-validate`, `iasl`, a Linux
//! source tree): such a test checks for them first and returns early when one is missing,
//! unless `VIOMMU_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs them) makes that a failure.

use std::process::Command;

/// Whether a test prerequisite `what` is present (`ok`). If not, prints why (`why`) and how to
/// get it (`hint`) on stderr and returns false.
///
/// # Panics
/// If it is missing and `VIOMMU_REQUIRE_TOOLS=1`.
pub fn prerequisite(what: &str, ok: bool, why: &str, hint: &str) -> bool {
    if ok {
        return true;
    }
    let msg = format!("{what} not available ({why}); {hint} or see .ci/run");
    assert!(
        std::env::var("VIOMMU_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "{msg} [VIOMMU_REQUIRE_TOOLS=1]"
    );
    eprintln!("skipping: {msg}");
    false
}

/// Whether the program `name` is on PATH, as a [`prerequisite`] with `hint`.
///
/// # Panics
/// If it is missing and `VIOMMU_REQUIRE_TOOLS=1`.
pub fn on_path(name: &str, hint: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    prerequisite(name, found, "not on PATH", hint)
}
