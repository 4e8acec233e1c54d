//! The resource limits a replay file is held to.
//!
//! A replay file is untrusted input: whatever it asks for, the replay must not run out of memory.
//! Every quantity a file controls and the engine would otherwise allocate in proportion to is
//! bounded here, and a file over a limit is rejected as malformed (exit status 2) on the line
//! that crosses it, before anything runs:
//!
//! - the text read (after decompression), so an xz or gzip bomb stops after
//!   [`Limits::max_input_bytes`];
//! - the length of one line, so a file without newlines (binary garbage) is not read whole;
//! - the number of operations kept in memory between parsing and running;
//! - the total guest RAM the `ram` lines declare (mapped lazily with `MAP_NORESERVE`, so this
//!   bounds address space; resident memory is only what the operations touch, and they are
//!   bounded by the input);
//! - the number of devices, and the size of a device's `config` ([`MAX_CONFIG_VALUES`]);
//! - `read_mem.len` ([`crate::parse::MAX_READ_LEN`], fixed).
//!
//! At run time, the interrupts a device raised and no `expect_irq` has looked at yet are kept
//! up to [`MAX_PENDING_IRQS`] per device (the oldest are dropped beyond that); every interrupt is
//! still reported to the observer as it happens. The invalidations a stream's ATC received and
//! no `expect_atc_inv` has looked at yet are kept up to
//! [`MAX_RECORDED_ATC_INVS`](crate::smmuv3::MAX_RECORDED_ATC_INVS) (beyond that the check fails
//! with an error).

/// Default of [`Limits::max_input_bytes`]: 256 MiB of (decompressed) text.
pub const MAX_INPUT_BYTES: u64 = 256 << 20;

/// Default of [`Limits::max_line_bytes`]: 1 MiB per line.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Default of [`Limits::max_ops`]: about one million operations.
pub const MAX_OPS: usize = 1 << 20;

/// Default of [`Limits::max_total_ram`]: 4 GiB of guest RAM.
pub const MAX_TOTAL_RAM: u64 = 4 << 30;

/// Default of [`Limits::max_devices`].
pub const MAX_DEVICES: usize = 64;

/// Most JSON values (objects, arrays and scalars, nested ones included) a `device.config` may
/// hold: it is kept as a JSON tree until the device is created, and a tree costs far more
/// memory than its text. The richest real configuration has a few dozen.
pub const MAX_CONFIG_VALUES: usize = 1024;

/// Whether `config` holds at most [`MAX_CONFIG_VALUES`] JSON values.
pub(crate) fn config_within_limit(config: &serde_json::Map<String, serde_json::Value>) -> bool {
    use serde_json::Value;
    let mut count = 0usize;
    let mut stack: Vec<&Value> = config.values().collect();
    while let Some(v) = stack.pop() {
        count += 1;
        if count > MAX_CONFIG_VALUES {
            return false;
        }
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    true
}

/// Interrupts kept per device for the next `expect_irq` window (older ones are dropped).
pub const MAX_PENDING_IRQS: usize = 1 << 16;

/// Resource limits of one replay (see the module documentation). [`Limits::default`] holds the
/// `MAX_*` constants of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of text read from the file (after decompression), blank and `#` lines included.
    pub max_input_bytes: u64,
    /// Bytes in one line, its newline included.
    pub max_line_bytes: usize,
    /// Operations in the file (blank and `#` lines do not count).
    pub max_ops: usize,
    /// Total size of the `ram` regions.
    pub max_total_ram: u64,
    /// `device` lines.
    pub max_devices: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: MAX_INPUT_BYTES,
            max_line_bytes: MAX_LINE_BYTES,
            max_ops: MAX_OPS,
            max_total_ram: MAX_TOTAL_RAM,
            max_devices: MAX_DEVICES,
        }
    }
}
