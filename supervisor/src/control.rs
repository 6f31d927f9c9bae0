//! The supervisor's control socket, both ends: `ngram-ids exec` announces an exec process
//! ([`Request::AttachTree`]) before libcontainer starts it, and the supervisor answers once it
//! traces it ([`Response`]). One line each way: `attach-tree PID`, then `ok` or
//! `error MESSAGE` (docs/decisions.md, decision 14).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The socket's name in the container's state directory.
pub const SOCKET: &str = "supervisor.sock";

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Trace the exec process about to start among the descendants of this runtime pid.
    AttachTree { runtime_pid: u32 },
    /// The container's guard: it keeps the connection open while it watches the supervisor
    /// ([`crate::guard`]).
    Guard,
}

/// What the supervisor answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The exec process is traced.
    Ok,
    /// It is not, and why (the process was killed: it must not run untraced).
    Error(String),
    /// To the guard: the supervisor is done (everything flushed) and exits now.
    Done,
}

/// Errors of the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("control socket: bad request {0:?}")]
    BadRequest(String),
    #[error("control socket: no answer (connection closed)")]
    Closed,
}

impl Request {
    fn line(&self) -> String {
        match self {
            Self::AttachTree { runtime_pid } => format!("attach-tree {runtime_pid}\n"),
            Self::Guard => "guard\n".to_owned(),
        }
    }

    fn parse(line: &str) -> Result<Self, ControlError> {
        if line.trim() == "guard" {
            return Ok(Self::Guard);
        }
        line.trim()
            .strip_prefix("attach-tree ")
            .and_then(|p| p.parse().ok())
            .map(|runtime_pid| Self::AttachTree { runtime_pid })
            .ok_or_else(|| ControlError::BadRequest(line.trim().to_owned()))
    }
}

impl Response {
    fn line(&self) -> String {
        match self {
            Self::Ok => "ok\n".to_owned(),
            Self::Done => "done\n".to_owned(),
            // One line: a message never breaks the framing.
            Self::Error(m) => format!("error {}\n", m.replace('\n', " ")),
        }
    }

    fn parse(line: &str) -> Self {
        match line.trim() {
            "ok" => Self::Ok,
            "done" => Self::Done,
            other => Self::Error(other.strip_prefix("error ").unwrap_or(other).to_owned()),
        }
    }
}

fn read_line(stream: &UnixStream, timeout: Duration) -> Result<String, ControlError> {
    stream.set_read_timeout(Some(timeout))?;
    let mut line = String::new();
    if BufReader::new(stream).read_line(&mut line)? == 0 {
        return Err(ControlError::Closed);
    }
    Ok(line)
}

/// Client: send `req` on `stream`.
pub fn send(mut stream: &UnixStream, req: &Request) -> Result<(), ControlError> {
    stream.write_all(req.line().as_bytes())?;
    Ok(())
}

/// Client: wait up to `timeout` for the answer.
pub fn answer(stream: &UnixStream, timeout: Duration) -> Result<Response, ControlError> {
    Ok(Response::parse(&read_line(stream, timeout)?))
}

/// Parse one answer line (e.g. read by the guard).
pub fn parse_response(line: &str) -> Response {
    Response::parse(line)
}

/// Supervisor: read one request, waiting up to `timeout`.
pub fn receive(stream: &UnixStream, timeout: Duration) -> Result<Request, ControlError> {
    stream.set_nonblocking(false)?;
    Request::parse(&read_line(stream, timeout)?)
}

/// Supervisor: answer.
pub fn reply(mut stream: &UnixStream, resp: &Response) -> Result<(), ControlError> {
    stream.write_all(resp.line().as_bytes())?;
    Ok(())
}

/// A path to the socket of `state_dir` short enough for `sun_path` (state directories can be
/// long): `/proc/self/fd/N/supervisor.sock` through an open handle of the directory, which
/// the caller keeps open while it uses the path.
pub fn socket_path(state_dir: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(state_dir)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", dir.as_raw_fd()));
    Ok((dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_cross_a_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        for req in [Request::AttachTree { runtime_pid: 4242 }, Request::Guard] {
            send(&a, &req).unwrap();
            assert_eq!(receive(&b, Duration::from_secs(1)).unwrap(), req);
        }
        for resp in [
            Response::Ok,
            Response::Done,
            Response::Error("no listener\nin tree".to_owned()),
        ] {
            reply(&b, &resp).unwrap();
            let got = answer(&a, Duration::from_secs(1)).unwrap();
            match resp {
                Response::Ok | Response::Done => assert_eq!(got, resp),
                Response::Error(_) => {
                    assert_eq!(got, Response::Error("no listener in tree".to_owned()))
                }
            }
        }
    }

    #[test]
    fn bad_requests_and_closed_sockets_are_errors() {
        assert!(matches!(
            Request::parse("attach-tree x"),
            Err(ControlError::BadRequest(_))
        ));
        assert!(Request::parse("detach 1").is_err());
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!(matches!(
            answer(&a, Duration::from_secs(1)),
            Err(ControlError::Closed)
        ));
    }
}
