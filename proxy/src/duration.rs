//! Human-friendly durations (`500ms`, `2s`, `1m`, `1h`) as used by the config file and the flags.
//!
//! A tiny parser of our own: the accepted forms are few, and a dependency for them would cost more
//! compile time than it saves.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: expected a number followed by a unit (ms, s, m, h), e.g. 500ms, 2s, 1m")]
pub struct DurationError {
    /// The text that could not be parsed.
    pub input: String,
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `1h` (also `2 s`, `us`). A bare number without a unit is refused
/// so that nobody has to guess whether it means seconds or milliseconds.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_owned(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(err)?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| err())?;
    let unit_secs = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hours" => 3600.0,
        _ => return Err(err()),
    };
    let secs = value * unit_secs;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Whole milliseconds of `duration`, saturating (for JSON fields and comparisons in ms).
pub fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whole microseconds of `duration`, saturating (for JSON fields in µs).
pub fn whole_micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Renders a duration the way [`parse_duration`] reads it (used in messages and docs).
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 1.5s "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2 s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn refuses_bare_numbers_and_garbage() {
        for bad in ["", "10", "s", "1x", "-1s", "1..2s", "1e400s", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
