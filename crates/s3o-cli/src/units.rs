//! Sizes, durations and URLs as an operator types and reads them.

use std::time::Duration;

const UNITS: [(&str, u64); 10] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
];

/// Parses `123`, `123B`, `10GiB`, `1.5 TB`, `0` (0 means unlimited for quota limits).
pub(crate) fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    if num.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number with an optional unit like 10GiB"
        ));
    }
    let mult = match unit {
        "" | "B" | "b" => 1,
        u => UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(u))
            .map(|(_, m)| *m)
            .ok_or_else(|| format!("invalid size {s:?}: unknown unit {u:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"))?,
    };
    let value: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let bytes = value * mult as f64;
    if !(0.0..=i64::MAX as f64).contains(&bytes) {
        return Err(format!("invalid size {s:?}: out of range"));
    }
    Ok(bytes.round() as i64)
}

/// `1536` → `1.5 KiB`; raw bytes when `raw`.
/// The calendar month (UTC) of `micros` since the Unix epoch, as the ledger keys usage:
/// `YYYY-MM` (the civil-from-days conversion of the proleptic Gregorian calendar).
pub(crate) fn period_of(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

pub(crate) fn fmt_size(n: i64, raw: bool) -> String {
    if raw || n.abs() < 1024 {
        return n.to_string() + if raw { "" } else { " B" };
    }
    let mut v = n as f64;
    for unit in ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] {
        v /= 1024.0;
        if v.abs() < 1024.0 {
            return format!("{v:.1} {unit}");
        }
    }
    format!("{v:.1} EiB")
}

/// Parses `90s`, `15m`, `2h`, `7d` (a bare number is seconds).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split]
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 2h, 7d"))?;
    let secs = match &t[split..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        u => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {u:?} (use s, m, h, d)"
            ));
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// The URL with any password replaced by `***`, safe to print.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split(':').next().unwrap_or_default();
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_owned()
    };
    let tail = redact_query_password(tail);
    format!("{scheme}://{masked}@{host}{tail}")
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_months() {
        assert_eq!(period_of(0), "1970-01");
        // 2026-12-07T15:00:00Z, 2024-02-29T23:59:59.999999Z, 2000-03-01T00:00:00Z.
        assert_eq!(period_of(1_796_655_600_000_000), "2026-12");
        assert_eq!(period_of(1_709_251_199_999_999), "2024-02");
        assert_eq!(period_of(1_709_251_200_000_000), "2024-03");
        assert_eq!(period_of(951_868_800_000_000), "2000-03");
        assert_eq!(period_of(-1), "1969-12");
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("1.5 KiB"), Ok(1536));
        assert_eq!(parse_size("2gb"), Ok(2_000_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512B"), Ok(512));
        assert!(parse_size("-1GiB").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(fmt_size(1536, false), "1.5 KiB");
        assert_eq!(fmt_size(1536, true), "1536");
        assert_eq!(fmt_size(10, false), "10 B");
        assert_eq!(fmt_size(10 << 30, false), "10.0 GiB");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn passwords_never_printed() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example:5432/ledger?sslmode=require"),
            "postgres://app:***@db.example:5432/ledger?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app@h/db?password=s3cret&x=1"),
            "postgres://app@h/db?password=***&x=1"
        );
        assert_eq!(redact_url("sqlite://s3o.db"), "sqlite://s3o.db");
        assert!(!redact_url("postgresql://u:p%40ss@h/db").contains("p%40ss"));
    }
}
