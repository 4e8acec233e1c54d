//! Used-bits of STEs and CDs (Linux `arm_smmu_get_ste_used`, `arm_smmu_get_cd_used`):
//! what decides whether an update is hitless.

/// The used-bits masks of an STE (Linux `arm_smmu_get_ste_used`).
pub fn ste_used(w: &[u64; 8]) -> [u64; 8] {
    let mut u = [0u64; 8];
    u[0] = 1;
    if w[0] & 1 == 0 {
        return u;
    }
    u[0] |= 0xE;
    let cfg = (w[0] >> 1) & 7;
    const SHCFG: u64 = 3 << 44;
    if cfg & 1 != 0 {
        u[0] |= 0x30 | 0x000F_FFFF_FFFF_FFC0 | 0xF800_0000_0000_0000;
        u[1] |= 0x3 | 0xC | 0x30 | 0xC0 | 1 << 27 | 3 << 30 | 3 << 28 | 1 << 19;
        u[2] |= 0xFFFF;
        if w[1] & 3 == 1 {
            u[1] |= SHCFG;
        }
    }
    if cfg & 2 != 0 {
        u[1] |= 3 << 28 | SHCFG | 1 << 25 | 1 << 19;
        u[2] |= 0xFFFF | 0x0007_FFFF_0000_0000 | 1 << 51 | 1 << 52 | 1 << 54 | 1 << 57 | 1 << 58;
        u[3] |= 0x000F_FFFF_FFFF_FFF0;
    }
    if cfg == 4 {
        u[1] |= SHCFG;
    }
    u
}

/// The used-bits masks of a CD (`arm_smmu_get_cd_used`).
pub fn cd_used(w: &[u64; 8]) -> [u64; 8] {
    const V: u64 = 1 << 31;
    if w[0] & V == 0 {
        return [V, 0, 0, 0, 0, 0, 0, 0];
    }
    let mut u = [u64::MAX; 8];
    if w[0] & (1 << 14) != 0 {
        u[0] &= !0x3FFF; // T0SZ, TG0, IRGN0, ORGN0, SH0
        u[1] &= !0x000F_FFFF_FFFF_FFF0; // TTB0
    }
    u
}
