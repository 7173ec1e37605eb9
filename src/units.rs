//! Parsing of the human units used on the command line and in plan files.
//!
//! Durations and sizes are typed by people (`30s`, `4GiB`); parsing them in one place keeps
//! every flag and plan key consistent, and every error says what was expected.

use std::time::Duration;

/// Parses durations like `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!(
            "{s:?}: durations are positive; expected e.g. 30s, 500ms, 2m"
        ));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; expected e.g. 30s, 500ms, 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?}; expected ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too long a duration"))
}

/// Parses sizes like `512MiB`, `4GiB`, `100MB`, or a bare number of bytes.
pub fn bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; expected e.g. 512MiB, 4GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit {other:?}; expected B, KiB, MiB or GiB"
            ))
        }
    };
    Ok((n * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_their_units_and_refuse_negative_or_huge_values() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("-5s")
            .unwrap_err()
            .contains("durations are positive"));
        assert!(duration("99999999999999999999h")
            .unwrap_err()
            .contains("too long"));
        assert!(duration("abc").unwrap_err().contains("not a duration"));
    }
}
