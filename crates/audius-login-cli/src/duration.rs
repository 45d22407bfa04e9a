//! The DURATION arguments: `300`, `300s`, `5m`, `1h`, `2d`.

use std::time::Duration;

/// The longest duration accepted: ten years. Longer values mean nothing for a token's age or a
/// timeout, and the cap keeps every later sum far from overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Parses a duration: a whole number of seconds, optionally followed by a unit `s`, `m`, `h` or
/// `d` (`300`, `300s`, `5m`, `1h`, `2d`). Zero is accepted; see [`parse_timeout`] for a value that
/// must be positive.
pub(crate) fn parse_duration(input: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {input:?}: expected a whole number of seconds, or a number followed \
             by s, m, h or d (for example 300, 300s, 5m, 1h)"
        )
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 20 {
        return Err(bad());
    }
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let scale: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(bad()),
    };
    let seconds = number
        .checked_mul(scale)
        .filter(|s| *s <= MAX_DURATION.as_secs())
        .ok_or_else(|| format!("duration {input:?} is too long: the most accepted is 3650d"))?;
    Ok(Duration::from_secs(seconds))
}

/// Parses a duration that must be positive (a timeout).
pub(crate) fn parse_timeout(input: &str) -> Result<Duration, String> {
    let duration = parse_duration(input)?;
    if duration.is_zero() {
        return Err(format!("a timeout must be longer than zero, got {input:?}"));
    }
    Ok(duration)
}

/// Shows a duration the way it can be given back: `300s`, `5m`, `1h`, `2d`.
pub(crate) fn show(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0 => "0s".to_owned(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("300", 300),
            ("300s", 300),
            ("5m", 300),
            ("1h", 3_600),
            ("2d", 172_800),
            ("0", 0),
            (" 7s ", 7),
            ("0010", 10),
            ("3650d", 3650 * 86_400),
        ];
        for (input, seconds) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_secs(seconds)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refused_forms() {
        for input in [
            "", " ", "s", "m5", "5 m", "5ms", "5M", "1.5h", "-5", "+5", "5mm", "1h30m", "٣",
            "5s\u{0}", "abc",
        ] {
            let err = parse_duration(input).expect_err(input);
            assert!(err.contains("invalid duration"), "{input:?}: {err}");
        }
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        for input in [
            "3651d",
            "99999999999999999999d",
            "18446744073709551615h",
            "18446744073709551616",
            "123456789012345678901234567890",
        ] {
            assert!(parse_duration(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn timeouts_must_be_positive() {
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("1"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn shown_back() {
        for (seconds, shown) in [
            (0, "0s"),
            (59, "59s"),
            (300, "5m"),
            (3_600, "1h"),
            (86_400, "1d"),
            (90, "90s"),
        ] {
            assert_eq!(show(Duration::from_secs(seconds)), shown);
            assert_eq!(parse_duration(shown), Ok(Duration::from_secs(seconds)));
        }
    }
}
