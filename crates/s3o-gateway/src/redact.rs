//! Making URLs safe to print: a password in the userinfo or in a `password=` query
//! parameter is replaced by `***` before any URL reaches an error message or a log line.

/// `url` with its password (if any) masked; the scheme, user, host, path and every other
/// query parameter are kept so the message still says which server was meant.
pub(crate) fn url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        // Not a URL: it may still be a key=value connection string.
        None => return mask_params(url, ' '),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        // The userinfo ends at the last '@': a password may itself contain '@'.
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => format!("{path}?{}", mask_params(query, '&')),
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Masks the value of every `password`/`secret`/`token`-like `key=value` item of a list
/// separated by `sep`.
fn mask_params(list: &str, sep: char) -> String {
    list.split(sep)
        .map(|item| match item.split_once('=') {
            Some((k, _)) if is_secret_name(k) => format!("{k}=***"),
            _ => item.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

fn is_secret_name(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase();
    [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "sslpassword",
        "x-amz-signature",
    ]
    .iter()
    .any(|s| k == *s || k.ends_with(&format!("_{s}")))
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            url("postgres://bob:s3cr@t@db.example:5432/app?sslmode=require"),
            "postgres://bob:***@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            url("postgres://bob@db/app?password=hunter2&x=1"),
            "postgres://bob@db/app?password=***&x=1"
        );
        assert_eq!(url("sqlite:///tmp/l.db"), "sqlite:///tmp/l.db");
        assert_eq!(url("http://k:v@host:9000"), "http://k:***@host:9000");
        assert_eq!(
            url("host=db user=bob password=hunter2"),
            "host=db user=bob password=***"
        );
    }
}
