//! Where a shipper sends alert lines: an HTTP endpoint (a webhook, Falcosidekick) by POST of the
//! line as it is (Falco's JSON shape), or syslog (RFC 5424 over UDP, or the local `/dev/log`).

use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// How long one HTTP request may take, connection included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A destination, parsed from `--alerts-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `http://HOST[:PORT]/PATH`.
    Http(String),
    /// `syslog://HOST[:PORT]` (UDP, port 514 by default).
    SyslogUdp(String),
    /// `syslog:` or `syslog:///PATH` (a local datagram socket, `/dev/log` by default).
    SyslogLocal(PathBuf),
}

/// Why a destination is not understood.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("--alerts-to {0:?}: use http://HOST[:PORT]/PATH, syslog://HOST[:PORT] (UDP) or syslog:///dev/log (https needs a TLS proxy in front)")]
    Unknown(String),
}

impl std::str::FromStr for Destination {
    type Err = DestinationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DestinationError::Unknown(s.to_owned());
        if let Some(rest) = s.strip_prefix("http://") {
            let host = rest.split('/').next().unwrap_or("");
            if host.is_empty() || s.chars().any(char::is_whitespace) {
                return Err(bad());
            }
            return Ok(Self::Http(s.to_owned()));
        }
        if s == "syslog:" || s == "syslog://" {
            return Ok(Self::SyslogLocal(PathBuf::from("/dev/log")));
        }
        if let Some(path) = s.strip_prefix("syslog://").filter(|p| p.starts_with('/')) {
            return Ok(Self::SyslogLocal(PathBuf::from(path)));
        }
        if let Some(host) = s.strip_prefix("syslog://") {
            if host.is_empty() || host.contains('/') {
                return Err(bad());
            }
            let with_port = if host
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                host.to_owned()
            } else {
                format!("{host}:514")
            };
            return Ok(Self::SyslogUdp(with_port));
        }
        Err(bad())
    }
}

/// Why a line was not sent.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later (unreachable, timeout, 408, 429, 5xx, a full socket).
    Retry(String),
    /// The destination refused this line (another 4xx): sending it again will not help.
    Refused(String),
}

/// An open destination.
#[derive(Debug)]
pub struct Sink {
    dest: Destination,
    agent: ureq::Agent,
    udp: Option<UdpSocket>,
    local: Option<UnixDatagram>,
}

impl Sink {
    pub fn new(dest: Destination) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(HTTP_TIMEOUT))
            .http_status_as_error(false)
            .user_agent("ngram-ids")
            .build()
            .into();
        Self {
            dest,
            agent,
            udp: None,
            local: None,
        }
    }

    /// Send one alert line (JSON, Falco's shape, without its newline); `id` names the line
    /// (`X-Ngram-Ids-Line`, for a receiver that wants to drop a repeat).
    pub fn send(&mut self, line: &str, id: &str) -> Result<(), SendError> {
        match &self.dest {
            Destination::Http(url) => {
                let resp = self
                    .agent
                    .post(url.as_str())
                    .header("Content-Type", "application/json")
                    .header("X-Ngram-Ids-Line", id)
                    .send(line)
                    .map_err(|e| SendError::Retry(e.to_string()))?;
                let status = resp.status().as_u16();
                // Read the answer to its end, so the connection is kept for the next line.
                let _ = resp.into_body().read_to_vec();
                match status {
                    200..=299 => Ok(()),
                    408 | 429 | 500..=599 => Err(SendError::Retry(format!("HTTP {status}"))),
                    _ => Err(SendError::Refused(format!("HTTP {status}"))),
                }
            }
            Destination::SyslogUdp(addr) => {
                let msg = syslog_message(line);
                if self.udp.is_none() {
                    let to = addr
                        .to_socket_addrs()
                        .map_err(|e| SendError::Retry(format!("{addr}: {e}")))?
                        .next()
                        .ok_or_else(|| SendError::Retry(format!("{addr}: no address")))?;
                    let bind = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
                    let s = UdpSocket::bind(bind).map_err(|e| SendError::Retry(e.to_string()))?;
                    s.connect(to).map_err(|e| SendError::Retry(e.to_string()))?;
                    self.udp = Some(s);
                }
                let sent = self.udp.as_ref().map(|s| s.send(msg.as_bytes()));
                match sent {
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => {
                        self.udp = None;
                        Err(SendError::Retry(e.to_string()))
                    }
                    None => Err(SendError::Retry("no socket".into())),
                }
            }
            Destination::SyslogLocal(path) => {
                let msg = syslog_message(line);
                if self.local.is_none() {
                    let s = UnixDatagram::unbound().map_err(|e| SendError::Retry(e.to_string()))?;
                    s.connect(path)
                        .map_err(|e| SendError::Retry(format!("{}: {e}", path.display())))?;
                    self.local = Some(s);
                }
                let sent = self.local.as_ref().map(|s| s.send(msg.as_bytes()));
                match sent {
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => {
                        self.local = None;
                        Err(SendError::Retry(e.to_string()))
                    }
                    None => Err(SendError::Retry("no socket".into())),
                }
            }
        }
    }
}

/// An RFC 5424 message: facility authpriv (10), the severity from the line's Falco priority,
/// its time and host name, app `ngram-ids`, and the JSON line as the message.
pub fn syslog_message(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_owned();
    let severity = match field("priority").to_ascii_lowercase().as_str() {
        "emergency" => 0,
        "alert" => 1,
        "critical" => 2,
        "error" => 3,
        "warning" => 4,
        "notice" => 5,
        "informational" | "info" => 6,
        "debug" => 7,
        _ => 4,
    };
    let host = match field("hostname") {
        h if h.is_empty() => "-".to_owned(),
        h => h,
    };
    format!(
        "<{}>1 {} {host} ngram-ids {} - - {line}",
        10 * 8 + severity,
        field("time"),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let p = |s: &str| s.parse::<Destination>();
        assert_eq!(
            p("http://falcosidekick:2801/").unwrap(),
            Destination::Http("http://falcosidekick:2801/".into())
        );
        assert_eq!(
            p("syslog://10.0.0.1").unwrap(),
            Destination::SyslogUdp("10.0.0.1:514".into())
        );
        assert_eq!(
            p("syslog://logs:1514").unwrap(),
            Destination::SyslogUdp("logs:1514".into())
        );
        assert_eq!(
            p("syslog:").unwrap(),
            Destination::SyslogLocal("/dev/log".into())
        );
        assert_eq!(
            p("syslog:///run/x.sock").unwrap(),
            Destination::SyslogLocal("/run/x.sock".into())
        );
        for bad in ["https://x/", "http://", "ftp://x", "x", "http:// x/"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn syslog_lines_carry_the_severity_and_the_json() {
        let line = r#"{"priority":"Critical","time":"2026-12-05T00:00:00.000000001Z","hostname":"h1","rule":"r"}"#;
        let m = syslog_message(line);
        assert!(
            m.starts_with("<82>1 2026-12-05T00:00:00.000000001Z h1 ngram-ids "),
            "{m}"
        );
        assert!(m.ends_with(line));
    }

    #[test]
    fn udp_syslog_delivers() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = format!("syslog://{}", rx.local_addr().unwrap())
            .parse()
            .unwrap();
        let mut s = Sink::new(dest);
        s.send(r#"{"priority":"Warning"}"#, "1").unwrap();
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("<84>1 "));
    }
}
