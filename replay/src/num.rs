//! Numbers and byte strings as replay files spell them.
//!
//! A number is a JSON unsigned integer, or a string holding a hexadecimal (`"0x1f"`, `"0X1F"`) or
//! decimal (`"31"`) value. Byte strings (`data`, `read_mem.expect`) are hex digits, two per byte,
//! in memory order.
//!
//! The serde helpers ([`de`], [`opt`], [`bytes`], [`opt_bytes`], [`access`], [`access_size`])
//! are used with `#[serde(deserialize_with = ...)]` on the typed operations.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use viommu_common::AccessKind;

/// A replay number as it appears in a file, before conversion.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
    Other(Value),
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Number::deserialize(d)? {
        Number::Int(n) => Ok(n),
        Number::Text(s) => parse_u64_str(&s),
        Number::Other(v) => parse_u64(&v),
    }
    .map_err(D::Error::custom)
}

/// Deserialize a replay number into any unsigned integer type it fits in.
///
/// # Errors
/// Not a number, or too large for `T`.
pub fn de<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = number(d)?;
    T::try_from(n).map_err(|_| {
        D::Error::custom(format!(
            "{n:#x} does not fit in {} bits",
            std::mem::size_of::<T>() * 8
        ))
    })
}

/// [`de`] for an optional field (absent or `null`: `None`; use with `#[serde(default)]`).
///
/// # Errors
/// As [`de`].
pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "number")] u64);
    match Option::<Wrap>::deserialize(d)? {
        None => Ok(None),
        Some(Wrap(n)) => T::try_from(n).map(Some).map_err(|_| {
            D::Error::custom(format!(
                "{n:#x} does not fit in {} bits",
                std::mem::size_of::<T>() * 8
            ))
        }),
    }
}

/// Deserialize a hex byte string.
///
/// # Errors
/// Not a string, odd length, or a non-hex character.
pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    parse_hex_bytes(&s).map_err(D::Error::custom)
}

/// [`bytes`] for an optional field (use with `#[serde(default)]`).
///
/// # Errors
/// As [`bytes`].
pub fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_hex_bytes(&s).map_err(D::Error::custom))
        .transpose()
}

/// Deserialize an access kind: `"read"`, `"write"` or `"exec"`.
///
/// # Errors
/// Any other value.
pub fn access<'de, D: Deserializer<'de>>(d: D) -> Result<AccessKind, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "read" => Ok(AccessKind::Read),
        "write" => Ok(AccessKind::Write),
        "exec" => Ok(AccessKind::Exec),
        other => Err(D::Error::custom(format!(
            "must be \"read\", \"write\" or \"exec\", not {other:?}"
        ))),
    }
}

/// Deserialize an MMIO access size: 1, 2, 4 or 8 bytes.
///
/// # Errors
/// Any other number.
pub fn access_size<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    match number(d)? {
        1 => Ok(1),
        2 => Ok(2),
        4 => Ok(4),
        8 => Ok(8),
        other => Err(D::Error::custom(format!(
            "must be 1, 2, 4 or 8, not {other}"
        ))),
    }
}

/// Parse a replay number (JSON integer, or hex/decimal string) into a `u64`.
///
/// # Errors
/// A human-readable reason when `v` is not a non-negative integer that fits in 64 bits.
pub fn parse_u64(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{n} is not an unsigned 64-bit integer")),
        Value::String(s) => parse_u64_str(s),
        other => Err(format!(
            "expected a number or a hex/decimal string, found {}",
            kind_of(other)
        )),
    }
}

/// Parse a hex (`0x`) or decimal number string.
///
/// # Errors
/// Not a number, or too large for 64 bits.
pub fn parse_u64_str(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let parsed = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{s:?} is not a hex number"));
        }
        u64::from_str_radix(hex, 16)
    } else {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not a decimal or 0x-prefixed hex number"));
        }
        t.parse::<u64>()
    };
    parsed.map_err(|_| format!("{s:?} does not fit in 64 bits"))
}

/// Decode a string of hex digit pairs into bytes (memory order).
///
/// # Errors
/// When the string has an odd length or a character that is not a hex digit.
pub fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err(format!(
            "hex byte string has an odd number of digits ({})",
            b.len()
        ));
    }
    b.chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(h), Some(l)) => Ok((h << 4) | l),
            _ => Err(format!(
                "hex byte string has a non-hex character in byte {i}"
            )),
        })
        .collect()
}

fn hex_digit(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Encode bytes as lowercase hex digit pairs (the inverse of [`parse_hex_bytes`]).
pub fn hex_bytes(data: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Format a value the way output lines show numbers: `0x`-prefixed lowercase hex.
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// A short name of a JSON value's type, for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Integers, hex strings (either case of prefix and digits) and decimal strings all parse.
    #[test]
    fn test_number_formats_accepted() {
        assert_eq!(parse_u64(&json!(31)), Ok(31));
        assert_eq!(parse_u64(&json!("0x1f")), Ok(31));
        assert_eq!(parse_u64(&json!("0X1F")), Ok(31));
        assert_eq!(parse_u64(&json!("31")), Ok(31));
        assert_eq!(parse_u64(&json!("0xffffffffffffffff")), Ok(u64::MAX));
        assert_eq!(parse_u64(&json!(u64::MAX)), Ok(u64::MAX));
    }

    /// Negative, fractional, overflowing, empty and non-numeric values are rejected.
    #[test]
    fn test_number_formats_rejected() {
        for bad in [
            json!(-1),
            json!(1.5),
            json!("0x"),
            json!(""),
            json!("0x1g"),
            json!("-3"),
            json!("0x10000000000000000"),
            json!("18446744073709551616"),
            json!(true),
            json!(null),
            json!([1]),
        ] {
            assert!(parse_u64(&bad).is_err(), "{bad} accepted");
        }
    }

    /// Hex byte strings decode in memory order and reject odd lengths and non-hex characters.
    #[test]
    fn test_hex_bytes() {
        assert_eq!(
            parse_hex_bytes("0900465b"),
            Ok(vec![0x09, 0x00, 0x46, 0x5b])
        );
        assert_eq!(parse_hex_bytes("ABcd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(parse_hex_bytes(""), Ok(vec![]));
        assert!(parse_hex_bytes("abc").is_err());
        assert!(parse_hex_bytes("zz").is_err());
        assert!(parse_hex_bytes("+1").is_err());
        assert_eq!(hex_bytes(&[0x09, 0xab]), "09ab");
    }
}
