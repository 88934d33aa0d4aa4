//! Upstream URLs: `postgres://USER:PASS@HOST:PORT/DB?sslmode=..` and `mysql://...`, the
//! short form of a route (`--upstream`, `upstreams = [..]`).

use super::config::ConfigError;
use crate::mux::{Protocol, UpstreamTls};

/// A parsed `postgres://USER:PASS@HOST:PORT/DB` or `mysql://...` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// The protocol the scheme names.
    pub protocol: Protocol,
    /// User name (decoded).
    pub user: String,
    /// Password (decoded; empty when absent).
    pub password: String,
    /// `host:port`, or the unix socket path when the host is a directory.
    pub target: String,
    /// Database name (decoded).
    pub database: String,
    /// `sslmode` (libpq's names; MySQL's `ssl-mode` names are accepted too).
    pub tls: UpstreamTls,
    /// `sslrootcert`: the CA file.
    pub tls_ca: Option<String>,
    /// `sslcert`: the client certificate file.
    pub tls_cert: Option<String>,
    /// `sslkey`: its key file.
    pub tls_key: Option<String>,
}

impl UpstreamUrl {
    /// Parses and percent-decodes an upstream URL.
    pub fn parse(url: &str) -> Result<UpstreamUrl, ConfigError> {
        let err = |reason: &str| ConfigError::UpstreamUrl {
            url: mask_password(url),
            reason: reason.to_string(),
        };
        let (protocol, rest) = if let Some(r) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        {
            (Protocol::Postgres, r)
        } else if let Some(r) = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
        {
            (Protocol::Mysql, r)
        } else {
            return Err(err(
                "scheme must be postgres://, postgresql://, mysql:// or mariadb://",
            ));
        };
        let default_port = match protocol {
            Protocol::Postgres => 5432,
            _ => 3306,
        };
        if rest.contains('#') {
            return Err(err("a fragment (#) is not supported"));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| err("missing /DATABASE"))?;
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| err("missing USER@"))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, p),
            None => (userinfo, ""),
        };
        let user = percent_decode(user).ok_or_else(|| err("bad percent-encoding in user"))?;
        let password =
            percent_decode(password).ok_or_else(|| err("bad percent-encoding in password"))?;
        let database =
            percent_decode(path).ok_or_else(|| err("bad percent-encoding in database"))?;
        if user.is_empty() {
            return Err(err("missing user"));
        }
        if database.is_empty() {
            return Err(err("missing database"));
        }
        let (host, port) =
            split_host_port(hostport, default_port).ok_or_else(|| err("bad HOST:PORT"))?;
        let host = percent_decode(host).ok_or_else(|| err("bad percent-encoding in host"))?;
        if host.is_empty() {
            return Err(err("missing host"));
        }
        let target = if host.starts_with('/') && protocol == Protocol::Mysql {
            host
        } else if host.starts_with('/') {
            format!("{}/.s.PGSQL.{port}", host.trim_end_matches('/'))
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut url = UpstreamUrl {
            protocol,
            user,
            password,
            target,
            database,
            tls: UpstreamTls::Disable,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        };
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            let value = percent_decode(value)
                .ok_or_else(|| err(&format!("bad percent-encoding in {key}")))?;
            match key {
                "sslmode" | "ssl-mode" | "ssl_mode" => {
                    url.tls = tls_mode(&value).ok_or_else(|| {
                        err(&format!(
                            "sslmode {value:?}: expected one of {}",
                            UpstreamTls::NAMES
                        ))
                    })?;
                }
                "sslrootcert" | "ssl-ca" => url.tls_ca = Some(value),
                "sslcert" | "ssl-cert" => url.tls_cert = Some(value),
                "sslkey" | "ssl-key" => url.tls_key = Some(value),
                _ => {
                    return Err(err(&format!(
                        "unknown query parameter {key:?} (known: sslmode, sslrootcert, sslcert, sslkey)"
                    )))
                }
            }
        }
        Ok(url)
    }
}

/// A TLS mode by libpq's `sslmode` name or MySQL's `--ssl-mode` name.
fn tls_mode(name: &str) -> Option<UpstreamTls> {
    UpstreamTls::from_name(name).or(match name.to_ascii_uppercase().as_str() {
        "DISABLED" => Some(UpstreamTls::Disable),
        "PREFERRED" => Some(UpstreamTls::Prefer),
        "REQUIRED" => Some(UpstreamTls::Require),
        "VERIFY_CA" => Some(UpstreamTls::VerifyCa),
        "VERIFY_IDENTITY" => Some(UpstreamTls::VerifyFull),
        _ => None,
    })
}

/// Splits `host`, `host:port` or `[v6]:port`; the port defaults to `default_port`.
fn split_host_port(s: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, p.parse().ok()?)),
            None if after.is_empty() => Some((host, default_port)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((s, default_port)),
    }
}

/// Decodes `%XX` escapes; `None` on a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with the password replaced by `***`, for error messages.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parses_and_decodes() {
        let u = UpstreamUrl::parse("postgres://us%40er:p%3Aw%2F@db.local:6543/my%20db").unwrap();
        assert_eq!(u.user, "us@er");
        assert_eq!(u.password, "p:w/");
        assert_eq!(u.target, "db.local:6543");
        assert_eq!(u.database, "my db");
    }

    #[test]
    fn url_defaults_and_special_hosts() {
        let u = UpstreamUrl::parse("postgresql://u@h/d").unwrap();
        assert_eq!((u.password.as_str(), u.target.as_str()), ("", "h:5432"));
        let u = UpstreamUrl::parse("postgres://u:p@[::1]:5433/d").unwrap();
        assert_eq!(u.target, "[::1]:5433");
        let u = UpstreamUrl::parse("postgres://u:p@%2Frun%2Fpg:5433/d").unwrap();
        assert_eq!(u.target, "/run/pg/.s.PGSQL.5433");
    }

    #[test]
    fn url_tls_parameters() {
        let u = UpstreamUrl::parse(
            "postgres://u:p@h/d?sslmode=verify-full&sslrootcert=%2Fca.pem&sslcert=c.pem&sslkey=k.pem",
        )
        .unwrap();
        assert_eq!(u.tls, UpstreamTls::VerifyFull);
        assert_eq!(u.tls_ca.as_deref(), Some("/ca.pem"));
        assert_eq!(
            (u.tls_cert.as_deref(), u.tls_key.as_deref()),
            (Some("c.pem"), Some("k.pem"))
        );
        let u =
            UpstreamUrl::parse("mysql://u:p@h/d?ssl-mode=VERIFY_IDENTITY&ssl-ca=ca.pem").unwrap();
        assert_eq!(u.tls, UpstreamTls::VerifyFull);
        assert_eq!(
            UpstreamUrl::parse("mysql://u@h/d").unwrap().tls,
            UpstreamTls::Disable
        );
    }

    #[test]
    fn url_errors_name_the_problem_and_mask_the_password() {
        let cases = [
            ("redis://u:p@h/d", "scheme"),
            ("postgres://u:secret@h:5432", "missing /DATABASE"),
            ("postgres://h:5432/d", "missing USER@"),
            ("postgres://u:secret@h:99999/d", "HOST:PORT"),
            ("postgres://u:secret@h/", "missing database"),
            ("postgres://u:secret@h/d?sslmode=maybe", "sslmode \"maybe\""),
            (
                "postgres://u:secret@h/d?ssl=true",
                "unknown query parameter \"ssl\"",
            ),
            ("postgres://u:secret@h/d#x", "fragment"),
            ("postgres://u:%zz@h/d", "percent-encoding in password"),
        ];
        for (url, want) in cases {
            let msg = UpstreamUrl::parse(url).unwrap_err().to_string();
            assert!(msg.contains(want), "{url}: {msg}");
            assert!(!msg.contains("secret"), "{url}: {msg}");
            assert!(!msg.contains('\n'));
        }
    }
}
