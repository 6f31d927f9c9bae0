//! Who may ask: the listen address's rule (loopback, or else a token) and each request's
//! check (the token from `Authorization: Bearer …` or `?token=…`; without a token, only
//! requests that name a loopback host, so a web page elsewhere cannot reach the dashboard
//! through a DNS name rebound to 127.0.0.1).

use std::net::SocketAddr;

use anyhow::{bail, Result};

/// Where the dashboard listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8740";
/// The environment variable that may hold the token.
pub const TOKEN_ENV: &str = "NGRAM_IDS_DASHBOARD_TOKEN";

/// `--listen`'s parser.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an ADDRESS:PORT: use e.g. {DEFAULT_LISTEN}, [::1]:8740 or 0.0.0.0:8740 (with --token)")
    })
}

/// What each request must show.
#[derive(Clone)]
pub struct Access {
    token: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A request's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No token, or the wrong one.
    BadToken,
    /// No token is configured and the request's Host is not a loopback name.
    ForeignHost,
}

impl Access {
    /// The rule for a dashboard listening on `listen`: any address but loopback needs a token.
    pub fn new(listen: SocketAddr, token: Option<String>) -> Result<Self> {
        match token {
            Some(t) if t.trim().is_empty() => {
                bail!("the dashboard token is empty: give a non-empty --token or {TOKEN_ENV}")
            }
            None if !listen.ip().is_loopback() => bail!(
                "--listen {listen} is reachable from other hosts: give --token TOKEN (or set {TOKEN_ENV}), or listen on {DEFAULT_LISTEN}"
            ),
            token => Ok(Self { token }),
        }
    }

    /// Is a token required?
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Check one request: its `Authorization` header, its `token` query parameter and its
    /// `Host` header.
    pub fn check(
        &self,
        authorization: Option<&str>,
        query_token: Option<&str>,
        host: Option<&str>,
    ) -> Verdict {
        match &self.token {
            Some(want) => {
                let bearer = authorization.and_then(|h| h.strip_prefix("Bearer "));
                let given = bearer.or(query_token);
                if given.is_some_and(|g| same(g.trim().as_bytes(), want.as_bytes())) {
                    Verdict::Allowed
                } else {
                    Verdict::BadToken
                }
            }
            None if host.is_some_and(is_loopback_host) => Verdict::Allowed,
            None => Verdict::ForeignHost,
        }
    }
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        parse_listen(s).unwrap()
    }

    #[test]
    fn listen_addresses_parse_or_say_what_to_give() {
        assert_eq!(addr(DEFAULT_LISTEN).port(), 8740);
        assert!(addr("[::1]:1").ip().is_loopback());
        let e = parse_listen("localhost").unwrap_err();
        assert!(
            e.contains("ADDRESS:PORT") && e.contains("127.0.0.1:8740"),
            "{e}"
        );
    }

    #[test]
    fn other_addresses_than_loopback_need_a_token() {
        assert!(Access::new(addr("127.0.0.1:1"), None).is_ok());
        assert!(Access::new(addr("[::1]:1"), None).is_ok());
        let e = Access::new(addr("0.0.0.0:8740"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--token") && e.contains(TOKEN_ENV), "{e}");
        assert!(!e.contains('\n'));
        assert!(Access::new(addr("0.0.0.0:8740"), Some("s3cret".into())).is_ok());
        let e = Access::new(addr("0.0.0.0:8740"), Some(" ".into())).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn a_token_is_checked_from_the_header_or_the_query() {
        let a = Access::new(addr("0.0.0.0:1"), Some("s3cret".into())).unwrap();
        assert!(a.has_token());
        assert_eq!(a.check(Some("Bearer s3cret"), None, None), Verdict::Allowed);
        assert_eq!(
            a.check(None, Some("s3cret"), Some("evil.example")),
            Verdict::Allowed
        );
        assert_eq!(
            a.check(Some("Bearer s3creT"), None, None),
            Verdict::BadToken
        );
        assert_eq!(a.check(Some("s3cret"), None, None), Verdict::BadToken);
        assert_eq!(a.check(None, Some("s3cre"), None), Verdict::BadToken);
        assert_eq!(a.check(None, None, Some("localhost")), Verdict::BadToken);
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn without_a_token_only_loopback_hosts_are_served() {
        let a = Access::new(addr("127.0.0.1:8740"), None).unwrap();
        for host in [
            "127.0.0.1:8740",
            "localhost:8740",
            "LOCALHOST",
            "[::1]:8740",
            "127.3.2.1",
        ] {
            assert_eq!(a.check(None, None, Some(host)), Verdict::Allowed, "{host}");
        }
        for host in ["rebound.example:8740", "10.0.0.1:8740", "[fe80::1]:1"] {
            assert_eq!(
                a.check(None, None, Some(host)),
                Verdict::ForeignHost,
                "{host}"
            );
        }
        assert_eq!(a.check(None, None, None), Verdict::ForeignHost);
    }
}
