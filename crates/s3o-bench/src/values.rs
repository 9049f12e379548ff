//! Parameter values recovered from captured statements.
//!
//! PostgreSQL: the engine's trace event carries each parameter's Rust `Debug` form (strings
//! quoted, `None`/`Some(..)`, integers, booleans, `SystemTime { .. }`), separated by U+001F.
//! SQLite: the event carries the statement text and `sqlite3_expanded_sql`, the same text with
//! every parameter inlined as an SQL literal; [`sqlite_params`] walks both side by side.

/// One parameter value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// SQL `NULL` (`None`).
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number, as written.
    Real(String),
    /// Text.
    Text(String),
    /// A boolean (PostgreSQL only; SQLite stores booleans as integers).
    Bool(bool),
    /// Bytes.
    Blob(Vec<u8>),
    /// A point in time: seconds and nanoseconds since the Unix epoch.
    Time(i64, u32),
    /// Anything else (arrays...), as written; cannot be replayed.
    Other(String),
}

impl Value {
    /// The value as pgbench passes it: text the server parses into the parameter's type.
    /// `None` for `NULL`, which pgbench cannot pass as a variable (it is inlined instead).
    pub(crate) fn pgbench_text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Int(i) => i.to_string(),
            Value::Real(r) => r.clone(),
            Value::Text(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Blob(b) => {
                let mut s = String::from("\\x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
            Value::Time(secs, nanos) => format_timestamp(*secs, *nanos),
            Value::Other(o) => o.clone(),
        })
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00` for a Unix time (UTC).
pub(crate) fn format_timestamp(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}+00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos / 1000
    )
}

/// Parses the `params` field of a PostgreSQL trace event.
pub(crate) fn pg_params(field: &str) -> Result<Vec<Value>, String> {
    if field.is_empty() {
        return Ok(Vec::new());
    }
    field
        .split(s3o_pg::SQL_TRACE_PARAM_SEP)
        .map(pg_value)
        .collect()
}

fn pg_value(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if s == "None" {
        return Ok(Value::Null);
    }
    if let Some(inner) = s.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')) {
        return pg_value(inner);
    }
    if s == "true" || s == "false" {
        return Ok(Value::Bool(s == "true"));
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    if s.parse::<f64>().is_ok() {
        return Ok(Value::Real(s.to_owned()));
    }
    if s.starts_with('"') {
        return unescape_debug(s).map(Value::Text);
    }
    if let Some(body) = s
        .strip_prefix("SystemTime {")
        .and_then(|r| r.strip_suffix('}'))
    {
        let mut secs = None;
        let mut nanos = None;
        for part in body.split(',') {
            let (k, v) = part
                .split_once(':')
                .ok_or_else(|| format!("bad SystemTime `{s}`"))?;
            let v = v.trim();
            match k.trim() {
                "tv_sec" => secs = v.parse::<i64>().ok(),
                "tv_nsec" => nanos = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        return match (secs, nanos) {
            (Some(a), Some(b)) => Ok(Value::Time(a, b)),
            _ => Err(format!("bad SystemTime `{s}`")),
        };
    }
    if let Some(body) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        // A byte slice prints as `[1, 2, 3]`; anything else stays opaque.
        let bytes: Result<Vec<u8>, _> = body
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.trim().parse::<u8>())
            .collect();
        if let Ok(b) = bytes {
            return Ok(Value::Blob(b));
        }
    }
    Ok(Value::Other(s.to_owned()))
}

/// Undoes Rust's `Debug` quoting of a string.
fn unescape_debug(s: &str) -> Result<String, String> {
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| format!("unterminated string `{s}`"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('u') => {
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let code = u32::from_str_radix(hex.trim_start_matches('{'), 16)
                    .map_err(|e| format!("bad escape in `{s}`: {e}"))?;
                out.push(char::from_u32(code).ok_or_else(|| format!("bad escape in `{s}`"))?);
            }
            other => return Err(format!("unknown escape {other:?} in `{s}`")),
        }
    }
    Ok(out)
}

/// How a SQLite statement names a parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// `?NNN`, or a bare `?` (numbered by SQLite's rule: one more than the largest so far).
    Index(usize),
    /// `:name`, `@name` or `$name`, with its sigil.
    Name(String),
}

/// Recovers each placeholder's bound value by walking `template` (the statement text) and
/// `expanded` (the same text with parameters inlined by `sqlite3_expanded_sql`) together.
/// Returns one entry per placeholder occurrence, in text order.
pub(crate) fn sqlite_params(
    template: &str,
    expanded: &str,
) -> Result<Vec<(Placeholder, Value)>, String> {
    let t = template.as_bytes();
    let e = expanded.as_bytes();
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let mut max_index = 0;
    let mismatch = |i: usize, j: usize| {
        format!(
            "statement and expanded text diverge at byte {i}/{j}: `{}` vs `{}`",
            &template[i.min(template.len())..],
            &expanded[j.min(expanded.len())..]
        )
    };
    while i < t.len() {
        match t[i] {
            b'\'' => {
                // A literal in the statement text: copied verbatim by SQLite.
                let end = literal_end(t, i).ok_or_else(|| mismatch(i, j))?;
                if e.get(j..j + (end - i)) != Some(&t[i..end]) {
                    return Err(mismatch(i, j));
                }
                j += end - i;
                i = end;
            }
            b'?' => {
                let start = i + 1;
                let mut k = start;
                while k < t.len() && t[k].is_ascii_digit() {
                    k += 1;
                }
                let idx = if k > start {
                    template[start..k]
                        .parse::<usize>()
                        .map_err(|e| e.to_string())?
                } else {
                    max_index + 1
                };
                max_index = max_index.max(idx);
                let (v, used) = sql_literal(&expanded[j..]).ok_or_else(|| mismatch(i, j))?;
                out.push((Placeholder::Index(idx), v));
                i = k;
                j += used;
            }
            b':' | b'@' | b'$'
                if t.get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') =>
            {
                let mut k = i + 1;
                while k < t.len() && (t[k].is_ascii_alphanumeric() || t[k] == b'_') {
                    k += 1;
                }
                let (v, used) = sql_literal(&expanded[j..]).ok_or_else(|| mismatch(i, j))?;
                out.push((Placeholder::Name(template[i..k].to_owned()), v));
                i = k;
                j += used;
            }
            c => {
                if e.get(j) != Some(&c) {
                    return Err(mismatch(i, j));
                }
                i += 1;
                j += 1;
            }
        }
    }
    if j != e.len() {
        return Err(mismatch(i, j));
    }
    Ok(out)
}

/// The index just past the quoted literal starting at `start` (`''` is an escaped quote).
fn literal_end(b: &[u8], start: usize) -> Option<usize> {
    let mut k = start + 1;
    while k < b.len() {
        if b[k] == b'\'' {
            if b.get(k + 1) == Some(&b'\'') {
                k += 2;
                continue;
            }
            return Some(k + 1);
        }
        k += 1;
    }
    None
}

/// Parses one SQL literal as `sqlite3_expanded_sql` writes it at the start of `s`: `NULL`,
/// an integer, a real, `'text'` or `x'hex'`. Returns the value and the bytes it spans.
fn sql_literal(s: &str) -> Option<(Value, usize)> {
    let b = s.as_bytes();
    if s.starts_with("NULL") {
        return Some((Value::Null, 4));
    }
    if (s.starts_with("x'") || s.starts_with("X'")) && b.len() > 2 {
        let end = literal_end(b, 1)?;
        let hex = &s[2..end - 1];
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|k| u8::from_str_radix(hex.get(k..k + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        return Some((Value::Blob(bytes), end));
    }
    if b.first() == Some(&b'\'') {
        let end = literal_end(b, 0)?;
        return Some((Value::Text(s[1..end - 1].replace("''", "'")), end));
    }
    let mut k = 0;
    if b.first() == Some(&b'-') {
        k = 1;
    }
    let digits_start = k;
    while k < b.len() && (b[k].is_ascii_digit() || matches!(b[k], b'.' | b'e' | b'E' | b'+')) {
        // A sign is part of the number only right after an exponent marker.
        if b[k] == b'+' && !matches!(b.get(k.wrapping_sub(1)), Some(b'e' | b'E')) {
            break;
        }
        k += 1;
    }
    if k == digits_start {
        return None;
    }
    let text = &s[..k];
    if let Ok(i) = text.parse::<i64>() {
        return Some((Value::Int(i), k));
    }
    text.parse::<f64>()
        .ok()
        .map(|_| (Value::Real(text.to_owned()), k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_debug_params_parse() {
        let sep = s3o_pg::SQL_TRACE_PARAM_SEP;
        let field = [
            "1932775243",
            "\"k\\\"1\\\\x\"",
            "None",
            "Some(\"abc\")",
            "false",
            "Some(SystemTime { tv_sec: 86401, tv_nsec: 5000 })",
            "Some(-3)",
            "[1, 255]",
            "[\"a\", \"b\"]",
        ]
        .join(&sep.to_string());
        let v = pg_params(&field).unwrap();
        assert_eq!(
            v,
            vec![
                Value::Int(1_932_775_243),
                Value::Text("k\"1\\x".into()),
                Value::Null,
                Value::Text("abc".into()),
                Value::Bool(false),
                Value::Time(86_401, 5000),
                Value::Int(-3),
                Value::Blob(vec![1, 255]),
                Value::Other("[\"a\", \"b\"]".into()),
            ]
        );
        assert!(pg_params("").unwrap().is_empty());
        assert_eq!(
            Value::Time(86_401, 5000).pgbench_text().unwrap(),
            "1970-01-02 00:00:01.000005+00"
        );
        assert_eq!(Value::Blob(vec![0, 171]).pgbench_text().unwrap(), "\\x00ab");
        assert_eq!(Value::Null.pgbench_text(), None);
    }

    #[test]
    fn timestamps_format_as_utc() {
        // 2024-02-29T12:34:56.789012Z
        assert_eq!(
            format_timestamp(1_709_210_096, 789_012_345),
            "2024-02-29 12:34:56.789012+00"
        );
        assert_eq!(format_timestamp(0, 0), "1970-01-01 00:00:00.000000+00");
    }

    #[test]
    fn sqlite_expanded_sql_yields_each_placeholder_value() {
        let t = "UPDATE q SET a = ?2, b = ?3, c = 'x?y' WHERE n = ?1 AND m = ?2 AND z = :name";
        let e = "UPDATE q SET a = -5, b = 'it''s', c = 'x?y' WHERE n = x'00ff' AND m = -5 \
                 AND z = NULL";
        let p = sqlite_params(t, e).unwrap();
        assert_eq!(
            p,
            vec![
                (Placeholder::Index(2), Value::Int(-5)),
                (Placeholder::Index(3), Value::Text("it's".into())),
                (Placeholder::Index(1), Value::Blob(vec![0, 255])),
                (Placeholder::Index(2), Value::Int(-5)),
                (Placeholder::Name(":name".into()), Value::Null),
            ]
        );
        // Bare `?` are numbered one past the largest index so far.
        let p = sqlite_params("SELECT ?, ?5, ?", "SELECT 1.5, 2, 3").unwrap();
        assert_eq!(
            p,
            vec![
                (Placeholder::Index(1), Value::Real("1.5".into())),
                (Placeholder::Index(5), Value::Int(2)),
                (Placeholder::Index(6), Value::Int(3)),
            ]
        );
        assert!(sqlite_params("SELECT ?1", "SELECT 1 ").is_err());
        assert!(sqlite_params("SELECT a FROM t", "SELECT b FROM t").is_err());
    }
}
