//! Connection URLs: parsing into the driver's config plus s3o's own parameters, secret
//! scrubbing, and the secret-free [`Target`] that logs and `Debug` show.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use s3o_core::{Result, StoreError};
use tokio_postgres::config::Host;

use crate::options::{PgOptions, Recycling};
use crate::tls::SslMode;

/// The accepted URL form, quoted in every URL error.
const URL_FORM: &str = "expected postgres://user[:password]@host[:port]/database\
[?sslmode=disable|prefer|require|verify-ca|verify-full&schema=NAME&pool_max_size=N\
&pool_wait_timeout_ms=N&pool_create_timeout_ms=N&pool_recycle_timeout_ms=N\
&pool_recycling=fast|verified|clean&lock_timeout_ms=N\
&instance_id=ID]";

/// Where a store connects, without secrets: what logs and `Debug` show.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) hosts: String,
    pub(crate) dbname: String,
    pub(crate) user: String,
    pub(crate) ssl: SslMode,
    pub(crate) schema: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}/{} (sslmode={}",
            self.user,
            self.hosts,
            self.dbname,
            self.ssl.as_str()
        )?;
        if let Some(s) = &self.schema {
            write!(f, ", schema={s}")?;
        }
        f.write_str(")")
    }
}

/// A connection URL split into the driver's config and s3o's own settings.
pub(crate) struct ParsedUrl {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) ssl: SslMode,
    pub(crate) root_cert: Option<String>,
    pub(crate) options: PgOptions,
}

impl fmt::Debug for ParsedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config's Debug already redacts the password.
        f.debug_struct("ParsedUrl")
            .field("config", &self.config)
            .field("ssl", &self.ssl)
            .field("root_cert", &self.root_cert)
            .field("options", &self.options)
            .finish()
    }
}

/// `pool_recycling=` of a URL.
fn parse_recycling(v: &str) -> Result<Recycling> {
    match v {
        "fast" => Ok(Recycling::Fast),
        "verified" => Ok(Recycling::Verified),
        "clean" => Ok(Recycling::Clean),
        _ => Err(url_err("pool_recycling must be fast, verified or clean")),
    }
}

pub(crate) fn url_err(why: impl Into<String>) -> StoreError {
    StoreError::invalid("database URL", format!("{}; {URL_FORM}", why.into()))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The raw passwords of a URL, to scrub them from driver messages: the userinfo's
/// (`user:password@`) and every `password=` query parameter's (libpq accepts both).
fn raw_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        return out;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, pw)) = userinfo.split_once(':')
        && !pw.is_empty()
    {
        out.push(pw.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some(("password", pw)) = pair.split_once('=')
                && !pw.is_empty()
            {
                out.push(pw.to_owned());
            }
        }
    }
    out
}

fn scrub(msg: String, url: &str) -> String {
    let mut secrets = Vec::new();
    for pw in raw_passwords(url) {
        if let Some(decoded) = percent_decode(&pw)
            && !decoded.is_empty()
        {
            secrets.push(decoded);
        }
        secrets.push(pw);
    }
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .iter()
        .fold(msg, |m, secret| m.replace(secret.as_str(), "***"))
}

fn valid_schema(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && !s.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "schema name",
            "must be 1 to 63 characters of lowercase letters, digits and `_`, not starting \
             with a digit",
        ))
    }
}

fn parse_ms(key: &str, v: &str) -> Result<Duration> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| url_err(format!("{key} must be a positive integer (milliseconds)")))
}

fn is_loopback(h: &Host) -> bool {
    match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
                || name == "[::1]"
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}

/// Splits `url` into the driver config and s3o settings, starting from `opts`.
pub(crate) fn parse_url(url: &str, mut opts: PgOptions) -> Result<ParsedUrl> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(url_err("the scheme must be postgres:// or postgresql://"));
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut ssl: Option<SslMode> = None;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || percent_decode(v).ok_or_else(|| url_err(format!("bad encoding of {k}")));
        match k {
            "sslmode" => ssl = Some(SslMode::parse(&value()?)?),
            "sslrootcert" => root_cert = Some(value()?),
            "schema" => opts.schema = Some(value()?),
            "instance_id" => opts.instance_id = Some(value()?),
            "pool_max_size" => {
                opts.max_size = value()?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| url_err("pool_max_size must be a positive integer"))?;
            }
            "pool_wait_timeout_ms" => opts.wait_timeout = parse_ms(k, &value()?)?,
            "pool_create_timeout_ms" => opts.create_timeout = parse_ms(k, &value()?)?,
            "pool_recycle_timeout_ms" => opts.recycle_timeout = parse_ms(k, &value()?)?,
            "pool_recycling" => opts.recycling = parse_recycling(&value()?)?,
            "lock_timeout_ms" => {
                // 0 waits forever, as PostgreSQL's own setting.
                opts.lock_timeout = match value()?.as_str() {
                    "0" => None,
                    v => Some(parse_ms(k, v)?),
                };
            }
            _ => kept.push(pair),
        }
    }
    if let Some(s) = &opts.schema {
        valid_schema(s)?;
    }
    if let Some(id) = &opts.instance_id {
        s3o_core::validate::text("instance id", id)?;
    }
    if opts.max_size == 0 {
        return Err(StoreError::invalid("pool max size", "must be at least 1"));
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rebuilt)
        .map_err(|e| url_err(scrub(e.to_string(), url)))?;
    if config.get_hosts().is_empty() {
        return Err(url_err("the URL names no host"));
    }
    if config.get_dbname().is_none() {
        return Err(url_err("the URL names no database"));
    }
    let ssl = ssl.unwrap_or_else(|| {
        if config.get_hosts().iter().all(is_loopback) {
            SslMode::Disable
        } else {
            SslMode::Prefer
        }
    });
    config.ssl_mode(ssl.driver_mode());
    config.connect_timeout(opts.create_timeout);
    if config.get_application_name().is_none() {
        config.application_name("s3o");
    }
    // Startup options, not SETs: they hold for the connection's whole life.
    let mut startup = Vec::new();
    if let Some(schema) = &opts.schema {
        startup.push(format!("-c search_path={schema}"));
    }
    if let Some(t) = opts.lock_timeout {
        // At least 1 ms: 0 would mean "no limit".
        startup.push(format!("-c lock_timeout={}", t.as_millis().max(1)));
    }
    if !startup.is_empty() {
        let opt = startup.join(" ");
        let merged = match config.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {opt}"),
            _ => opt,
        };
        config.options(&merged);
    }
    Ok(ParsedUrl {
        config,
        ssl,
        root_cert,
        options: opts,
    })
}

pub(crate) fn describe(
    config: &tokio_postgres::Config,
    ssl: SslMode,
    schema: Option<String>,
) -> Target {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let hosts = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => format!("{name}:{port}"),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    Target {
        hosts,
        dbname: config.get_dbname().unwrap_or_default().to_owned(),
        user: config.get_user().unwrap_or_default().to_owned(),
        ssl,
        schema,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<ParsedUrl> {
        parse_url(url, PgOptions::default())
    }

    #[test]
    fn tls_modes_parse_from_the_url() {
        use tokio_postgres::config::SslMode as Drv;
        let cases = [
            (
                "postgres://u@db.example.com/app",
                SslMode::Prefer,
                Drv::Prefer,
            ),
            ("postgres://u@127.0.0.1/app", SslMode::Disable, Drv::Disable),
            (
                "postgres://u@localhost:5433/app",
                SslMode::Disable,
                Drv::Disable,
            ),
            (
                "postgres://u@db.example.com/app?sslmode=require",
                SslMode::Require,
                Drv::Require,
            ),
            (
                "postgresql://u@db.example.com/app?sslmode=verify-full",
                SslMode::VerifyFull,
                Drv::Require,
            ),
            (
                "postgres://u@db.example.com/app?sslmode=verify-ca&connect_timeout=3",
                SslMode::VerifyCa,
                Drv::Require,
            ),
            (
                "postgres://u@127.0.0.1/app?sslmode=disable",
                SslMode::Disable,
                Drv::Disable,
            ),
            (
                "postgres://u@127.0.0.1/app?sslmode=require",
                SslMode::Require,
                Drv::Require,
            ),
        ];
        for (url, mode, drv) in cases {
            let p = parse(url).unwrap();
            assert_eq!(p.ssl, mode, "{url}");
            assert_eq!(p.config.get_ssl_mode(), drv, "{url}");
        }
        let p =
            parse("postgres://u@h/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca.pem"));
        let e = parse("postgres://u@h/app?sslmode=verify").unwrap_err();
        assert!(matches!(e, StoreError::InvalidInput { .. }));
        assert!(e.to_string().contains("verify-full"), "{e}");
    }

    #[test]
    fn s3o_parameters_are_stripped_and_applied() {
        let p = parse(
            "postgres://u:pw@h:6543/app?pool_max_size=7&schema=t_1&pool_wait_timeout_ms=250\
             &pool_create_timeout_ms=300&pool_recycle_timeout_ms=400&application_name=x",
        )
        .unwrap();
        assert_eq!(p.options.recycling, Recycling::Fast, "the default");
        for (v, want) in [
            ("fast", Recycling::Fast),
            ("verified", Recycling::Verified),
            ("clean", Recycling::Clean),
        ] {
            let q = parse(&format!("postgres://u@h/app?pool_recycling={v}")).unwrap();
            assert_eq!(q.options.recycling, want);
        }
        assert_eq!(p.options.max_size, 7);
        assert_eq!(p.options.schema.as_deref(), Some("t_1"));
        assert_eq!(p.options.wait_timeout, Duration::from_millis(250));
        assert_eq!(p.options.create_timeout, Duration::from_millis(300));
        assert_eq!(p.options.recycle_timeout, Duration::from_millis(400));
        assert_eq!(p.config.get_ports(), &[6543]);
        assert_eq!(p.config.get_dbname(), Some("app"));
        assert_eq!(p.config.get_application_name(), Some("x"));
        assert_eq!(
            p.config.get_options(),
            Some("-c search_path=t_1 -c lock_timeout=5000")
        );
        assert_eq!(
            p.config.get_connect_timeout(),
            Some(&Duration::from_millis(300))
        );
    }

    #[test]
    fn malformed_urls_name_the_accepted_form() {
        for url in [
            "mysql://u@h/db",
            "postgres://u@h/db?pool_max_size=zero",
            "postgres://u@h/db?pool_max_size=0",
            "postgres://u@h/db?pool_wait_timeout_ms=-1",
            "postgres://u@h/db?schema=Bad-Name",
            "postgres://u:pw@h:notaport/db",
            "postgres://u@h/db?no_such_option=1",
            "postgres://u@h/db?pool_recycling=sometimes",
            "postgres://u@/db",
        ] {
            let e = parse(url).unwrap_err();
            assert!(matches!(e, StoreError::InvalidInput { .. }), "{url}: {e:?}");
        }
        let e = parse("mysql://u@h/db").unwrap_err();
        assert!(e.to_string().contains("postgres://user"), "{e}");
    }

    #[test]
    fn password_never_appears_in_errors_or_debug() {
        let secret = "s3cr3t-Pa55";
        let bad = [
            format!("postgres://admin:{secret}@h:notaport/db"),
            format!("postgres://admin:{secret}@h/db?no_such_option=1"),
            format!("postgres://admin:{secret}@h/db?sslmode=bogus"),
            format!("postgres://admin:{secret}@h/db?pool_max_size=x"),
            format!("mysql://admin:{secret}@h/db"),
        ];
        for url in &bad {
            let e = parse(url).unwrap_err();
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!format!("{e:?}").contains(secret), "{e:?}");
        }
        let p = parse(&format!("postgres://admin:{secret}@db.example.com/app")).unwrap();
        assert_eq!(p.config.get_password(), Some(secret.as_bytes()));
        assert!(!format!("{p:?}").contains(secret));
        let t = describe(&p.config, p.ssl, None);
        assert!(!t.to_string().contains(secret));
        assert_eq!(
            t.to_string(),
            "postgres://admin@db.example.com:5432/app (sslmode=prefer)"
        );
        // Percent-encoded passwords are scrubbed in both spellings.
        assert_eq!(
            scrub("x p%40ss y p@ss".into(), "postgres://u:p%40ss@h/db"),
            "x *** y ***"
        );
        // A `password=` query parameter is a password too (libpq accepts it), alone or
        // alongside a userinfo one.
        assert_eq!(
            scrub(
                "a qp%21w b qp!w c".into(),
                "postgres://u@h/db?sslmode=disable&password=qp%21w"
            ),
            "a *** b *** c"
        );
        assert_eq!(
            scrub("one two".into(), "postgres://u:one@h/db?password=two"),
            "*** ***"
        );
        assert_eq!(scrub("x".into(), "postgres://u@h/db?password="), "x");
        for url in [
            format!("postgres://admin@h:notaport/db?password={secret}"),
            format!("postgres://admin@h/db?password={secret}&no_such_option=1"),
            format!("postgres://admin@h/db?password={secret}&sslmode=bogus"),
            format!("postgres://admin@h/db?no_such_option={secret}&password={secret}"),
        ] {
            let e = parse(&url).unwrap_err();
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!format!("{e:?}").contains(secret), "{e:?}");
        }
        let p = parse(&format!(
            "postgres://admin@db.example.com/app?password={secret}"
        ))
        .unwrap();
        assert_eq!(p.config.get_password(), Some(secret.as_bytes()));
        assert!(!format!("{p:?}").contains(secret));
    }
}
