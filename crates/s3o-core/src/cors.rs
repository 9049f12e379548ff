//! A bucket's CORS configuration (S3's `PutBucketCors` document), stored with the bucket row
//! and checked here once for both engines.
//!
//! The store keeps the rules as given (order matters: the first matching rule answers a
//! preflight); how a request is matched against them is the gateway's business.

use serde_json::{Value, json};

use crate::error::{Result, StoreError};

/// Most rules one configuration may hold (S3's limit).
pub const MAX_CORS_RULES: usize = 100;
/// Longest rule id, in characters (S3's limit).
pub const MAX_CORS_RULE_ID_CHARS: usize = 255;
/// Largest stored configuration, in bytes of its JSON form (S3 caps the XML at 64 KiB).
pub const MAX_CORS_CONFIG_BYTES: usize = 64 * 1024;
/// The methods a rule may allow (S3's list; case-sensitive).
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One CORS rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsRule {
    /// Optional rule id (at most [`MAX_CORS_RULE_ID_CHARS`] characters).
    pub id: Option<String>,
    /// Methods the rule allows, from [`CORS_METHODS`]; at least one.
    pub allowed_methods: Vec<String>,
    /// Origins the rule allows, each with at most one `*` wildcard; at least one.
    pub allowed_origins: Vec<String>,
    /// Request headers a preflight may ask for, each with at most one `*` wildcard.
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may expose to the page.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight answer, in seconds (non-negative).
    pub max_age_seconds: Option<i32>,
}

/// A bucket's CORS configuration: its rules, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsConfig {
    /// 1..=[`MAX_CORS_RULES`] rules.
    pub rules: Vec<CorsRule>,
}

impl CorsConfig {
    /// The stored form: a JSON object `{"rules": [...]}`.
    pub fn to_json(&self) -> String {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "allowed_methods": r.allowed_methods,
                    "allowed_origins": r.allowed_origins,
                    "allowed_headers": r.allowed_headers,
                    "expose_headers": r.expose_headers,
                    "max_age_seconds": r.max_age_seconds,
                })
            })
            .collect();
        json!({ "rules": rules }).to_string()
    }

    /// Reads the stored form back; `Err` names what is malformed.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let rules = v
            .get("rules")
            .and_then(Value::as_array)
            .ok_or("no rules array")?;
        let strings = |r: &Value, k: &str| -> std::result::Result<Vec<String>, String> {
            match r.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_owned)
                            .ok_or(format!("{k}: not text"))
                    })
                    .collect(),
                Some(_) => Err(format!("{k}: not an array")),
            }
        };
        let rules = rules
            .iter()
            .map(|r| {
                Ok(CorsRule {
                    id: r.get("id").and_then(Value::as_str).map(str::to_owned),
                    allowed_methods: strings(r, "allowed_methods")?,
                    allowed_origins: strings(r, "allowed_origins")?,
                    allowed_headers: strings(r, "allowed_headers")?,
                    expose_headers: strings(r, "expose_headers")?,
                    max_age_seconds: match r.get("max_age_seconds") {
                        None | Some(Value::Null) => None,
                        Some(n) => Some(
                            n.as_i64()
                                .and_then(|n| i32::try_from(n).ok())
                                .ok_or("max_age_seconds: not a 32-bit integer")?,
                        ),
                    },
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(CorsConfig { rules })
    }
}

/// Checks `c` against S3's rules for a CORS configuration; `InvalidInput` naming the first
/// broken rule. Runs before any SQL.
pub fn check(c: &CorsConfig) -> Result<()> {
    let bad = |why: String| Err(StoreError::invalid("CORS configuration", why));
    if c.rules.is_empty() {
        return bad("at least one rule is required".into());
    }
    if c.rules.len() > MAX_CORS_RULES {
        return bad(format!(
            "at most {MAX_CORS_RULES} rules (got {})",
            c.rules.len()
        ));
    }
    for (i, r) in c.rules.iter().enumerate() {
        let n = i + 1;
        if let Some(id) = &r.id
            && id.chars().count() > MAX_CORS_RULE_ID_CHARS
        {
            return bad(format!(
                "rule {n}: the id is longer than {MAX_CORS_RULE_ID_CHARS} characters"
            ));
        }
        if r.allowed_methods.is_empty() {
            return bad(format!("rule {n}: at least one AllowedMethod is required"));
        }
        if let Some(m) = r
            .allowed_methods
            .iter()
            .find(|m| !CORS_METHODS.contains(&m.as_str()))
        {
            return bad(format!(
                "rule {n}: unsupported method {m:?} (allowed: GET, PUT, HEAD, POST, DELETE)"
            ));
        }
        if r.allowed_origins.is_empty() {
            return bad(format!("rule {n}: at least one AllowedOrigin is required"));
        }
        if let Some(o) = r
            .allowed_origins
            .iter()
            .find(|o| o.matches('*').count() > 1)
        {
            return bad(format!(
                "rule {n}: the origin {o:?} has more than one \"*\" wildcard"
            ));
        }
        if let Some(h) = r
            .allowed_headers
            .iter()
            .find(|h| h.matches('*').count() > 1)
        {
            return bad(format!(
                "rule {n}: the header {h:?} has more than one \"*\" wildcard"
            ));
        }
        if r.max_age_seconds.is_some_and(|s| s < 0) {
            return bad(format!("rule {n}: MaxAgeSeconds must not be negative"));
        }
        let texts =
            r.id.iter()
                .chain(&r.allowed_methods)
                .chain(&r.allowed_origins)
                .chain(&r.allowed_headers)
                .chain(&r.expose_headers);
        for t in texts {
            if t.contains('\0') {
                return bad(format!("rule {n}: a value contains a NUL character"));
            }
        }
    }
    let size = c.to_json().len();
    if size > MAX_CORS_CONFIG_BYTES {
        return bad(format!(
            "the configuration is {size} bytes; at most {MAX_CORS_CONFIG_BYTES}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> CorsRule {
        CorsRule {
            id: Some("r1".into()),
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_origins: vec!["*.example.com".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["x-amz-meta-a".into()],
            max_age_seconds: Some(3000),
        }
    }

    #[test]
    fn json_round_trips() {
        let c = CorsConfig {
            rules: vec![rule(), CorsRule::default()],
        };
        assert_eq!(CorsConfig::from_json(&c.to_json()).unwrap(), c);
        assert!(CorsConfig::from_json("{}").is_err());
    }

    #[test]
    fn rules_are_checked() {
        let ok = CorsConfig {
            rules: vec![rule()],
        };
        assert!(check(&ok).is_ok());
        let with = |f: fn(&mut CorsRule)| {
            let mut r = rule();
            f(&mut r);
            check(&CorsConfig { rules: vec![r] })
        };
        assert!(with(|r| r.allowed_methods = vec!["get".into()]).is_err());
        assert!(with(|r| r.allowed_methods.clear()).is_err());
        assert!(with(|r| r.allowed_origins.clear()).is_err());
        assert!(with(|r| r.allowed_origins = vec!["*a*".into()]).is_err());
        assert!(with(|r| r.allowed_headers = vec!["**".into()]).is_err());
        assert!(with(|r| r.max_age_seconds = Some(-1)).is_err());
        assert!(with(|r| r.id = Some("x".repeat(256))).is_err());
        assert!(check(&CorsConfig::default()).is_err());
        let many = CorsConfig {
            rules: vec![rule(); MAX_CORS_RULES + 1],
        };
        assert!(check(&many).is_err());
        let full = CorsConfig {
            rules: vec![rule(); MAX_CORS_RULES],
        };
        assert!(check(&full).is_ok());
    }
}
