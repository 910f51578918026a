//! Hostile and broken clients on raw sockets: a wrong token, no hello, an
//! endless line, 300 authenticated sessions, a client that says nothing. Each
//! must get the documented error (or silence) and a close, while a good
//! client's `status` still answers and supervision goes on (a child killed
//! meanwhile is restarted with a new pid).

use crate::{SOON, TestResult, supervision_goes_on};
use integration::TestDaemon;
use proto::{Request, Response, StatusRequest};
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const FLEET: &str = "programs:\n  victim:\n    cmd: \"sleep 1000\"\n    starttime: 0\n";

/// A raw connection, read line by line.
pub(crate) struct Raw {
    pub(crate) reader: BufReader<TcpStream>,
    pub(crate) writer: TcpStream,
}

/// What one read gave.
#[derive(Debug)]
pub(crate) enum Read {
    Line(String),
    /// End of stream (or reset): the daemon closed the connection.
    Closed,
    /// Nothing within the timeout.
    Silent,
}

impl Raw {
    pub(crate) fn connect(daemon: &TestDaemon) -> io::Result<Raw> {
        let stream = TcpStream::connect(daemon.addr())?;
        stream.set_nodelay(true)?;
        Ok(Raw {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    pub(crate) fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")
    }

    pub(crate) fn read(&mut self, timeout: Duration) -> io::Result<Read> {
        read_line(&mut self.reader, timeout)
    }

    /// The next line, which must be an error reply; returns its kind.
    pub(crate) fn error_kind(&mut self, timeout: Duration) -> TestResult<(String, String)> {
        match self.read(timeout)? {
            Read::Line(line) => {
                let v: Value = serde_json::from_str(&line)?;
                if v["type"] != "error" {
                    return Err(format!("expected an error reply, got {line}").into());
                }
                let kind = v["data"]["kind"].as_str().unwrap_or_default().to_string();
                let message = v["data"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                Ok((kind, message))
            }
            other => Err(format!("expected an error reply, got {other:?}").into()),
        }
    }

    /// True when the daemon has closed the connection (within `SOON`).
    pub(crate) fn closed(&mut self) -> TestResult<bool> {
        Ok(matches!(self.read(SOON)?, Read::Closed))
    }
}

/// One line, the end of the stream, or silence for `timeout`.
pub(crate) fn read_line(reader: &mut BufReader<TcpStream>, timeout: Duration) -> io::Result<Read> {
    reader.get_ref().set_read_timeout(Some(timeout))?;
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Ok(Read::Closed),
        Ok(_) => Ok(Read::Line(line)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(Read::Silent)
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Read::Closed),
        Err(e) => Err(e),
    }
}

pub(crate) fn hello(token: &str) -> String {
    format!(
        r#"{{"type":"hello","data":{{"protocol_version":{},"token":"{token}"}}}}"#,
        proto::PROTOCOL_VERSION
    )
}

/// A fresh authenticated client gets a `status` answer.
pub(crate) fn good_status(daemon: &TestDaemon) -> TestResult {
    let mut client = daemon.client()?;
    client.set_read_timeout(Some(SOON))?;
    let reply = client.call(&Request::Status(StatusRequest::default()))?;
    assert!(
        matches!(&reply, Response::Status(list) if list.len() == 1),
        "{reply:?}"
    );
    Ok(())
}

#[test]
fn a_wrong_token_is_refused_after_a_delay_and_closed() -> TestResult {
    let daemon = TestDaemon::start(FLEET)?;
    daemon.running_pid("victim:0")?;
    let mut bad = Raw::connect(&daemon)?;
    bad.send(&hello("not-the-token"))?;
    let sent = Instant::now();
    // Meanwhile, nobody else waits for the rejection.
    good_status(&daemon)?;
    supervision_goes_on(&daemon, "victim:0")?;
    let (kind, message) = bad.error_kind(SOON)?;
    let took = sent.elapsed();
    assert_eq!(kind, "auth", "{message}");
    assert!(took >= Duration::from_millis(900), "refused after {took:?}");
    assert!(bad.closed()?, "the connection stayed open");
    good_status(&daemon)?;
    Ok(())
}

#[test]
fn a_request_without_hello_is_refused_and_closed() -> TestResult {
    let daemon = TestDaemon::start(FLEET)?;
    daemon.running_pid("victim:0")?;
    let mut bad = Raw::connect(&daemon)?;
    bad.send(r#"{"type":"stop","data":{"targets":["all"]}}"#)?;
    good_status(&daemon)?;
    supervision_goes_on(&daemon, "victim:0")?;
    let (kind, message) = bad.error_kind(SOON)?;
    assert_eq!(kind, "auth", "{message}");
    assert!(bad.closed()?, "the connection stayed open");
    // The stop was not executed.
    daemon.running_pid("victim:0")?;
    assert_eq!(daemon.count_events("victim:0", "stop"), 0);
    Ok(())
}

#[test]
fn a_1_mib_line_gets_too_large_and_a_close() -> TestResult {
    let daemon = TestDaemon::start(FLEET)?;
    daemon.running_pid("victim:0")?;
    let token = daemon.token()?;
    // Authenticated first, then unauthenticated: both are cut off.
    for authenticate in [true, false] {
        let mut bad = Raw::connect(&daemon)?;
        if authenticate {
            bad.send(&hello(&token))?;
            let welcome = bad.read(SOON)?;
            assert!(
                matches!(&welcome, Read::Line(l) if l.contains("\"welcome\"")),
                "{welcome:?}"
            );
        }
        let mut writer = bad.writer.try_clone()?;
        // The daemon stops reading after 64 KiB: the rest of the write fails.
        let flood = std::thread::spawn(move || {
            let _ = writer.write_all(&vec![b'a'; 1024 * 1024]);
        });
        good_status(&daemon)?;
        let (kind, message) = bad.error_kind(SOON)?;
        assert_eq!(kind, "too_large", "{message}");
        assert!(bad.closed()?, "the connection stayed open");
        drop(bad);
        flood.join().map_err(|_| "flood thread panicked")?;
    }
    supervision_goes_on(&daemon, "victim:0")?;
    good_status(&daemon)?;
    Ok(())
}

#[test]
fn authenticated_sessions_beyond_256_get_busy_not_a_hang() -> TestResult {
    let daemon = TestDaemon::start(FLEET)?;
    daemon.running_pid("victim:0")?;
    let token = daemon.token()?;
    // A good client connected before the flood keeps being served.
    let mut good = daemon.client()?;
    good.set_read_timeout(Some(SOON))?;
    // One after the other, each says hello and gets its first line: a
    // welcome (the session stays open) or `busy` and a close.
    let mut welcomed = Vec::new();
    let mut busy = 0;
    for _ in 0..300 {
        let mut raw = Raw::connect(&daemon)?;
        raw.send(&hello(&token))?;
        match raw.read(SOON)? {
            Read::Line(line) if line.contains("\"welcome\"") => welcomed.push(raw),
            Read::Line(line) => {
                let v: Value = serde_json::from_str(&line)?;
                assert_eq!(v["data"]["kind"], "busy", "{line}");
                assert!(raw.closed()?, "busy but not closed");
                busy += 1;
            }
            other => return Err(format!("no reply to a hello: {other:?}").into()),
        }
    }
    let reply = good.call(&Request::Status(StatusRequest::default()))?;
    assert!(matches!(reply, Response::Status(_)), "{reply:?}");
    supervision_goes_on(&daemon, "victim:0")?;
    // 256 sessions at most, the good client's (and the harness's) included.
    assert!(
        (250..=254).contains(&welcomed.len()),
        "{} welcomed, {busy} busy",
        welcomed.len()
    );
    assert_eq!(busy + welcomed.len(), 300);
    // A place freed is a place for the next one.
    drop(welcomed.pop());
    assert!(
        integration::wait_until(SOON, || good_status(&daemon).is_ok()),
        "no place for a new session after one closed"
    );
    let reply = good.call(&Request::Status(StatusRequest::default()))?;
    assert!(matches!(reply, Response::Status(_)), "{reply:?}");
    Ok(())
}

#[test]
fn the_control_socket_answers_when_the_fleet_holds_every_descriptor() -> TestResult {
    // 64 descriptors, ~20 for the daemon itself, 4 per captured instance
    // (two log files, two pipes): 30 instances cannot all start, and those
    // that do leave nothing free; the others fail to spawn, into BACKOFF.
    let daemon = integration::DaemonBuilder::new()?
        .fd_limit(64)
        .config(
            "programs:\n  hog:\n    cmd: \"sleep 1000\"\n    numprocs: 30\n    starttime: 0\n    \
             startretries: 1000\n",
        )
        .start()?;
    let starved = integration::wait_until(Duration::from_secs(10), || {
        daemon.events("hog", "Too many open files").len() >= 3
    });
    assert!(
        starved,
        "never ran out of descriptors\n{}",
        daemon.diagnostics()
    );
    // Still starved (spawns keep failing), yet the operator gets in: the
    // status lists every instance, some of them not running.
    let out = daemon.ctl(["status", "--json"])?;
    assert_eq!(
        out.code,
        Some(0),
        "{}\n{}",
        out.combined(),
        daemon.diagnostics()
    );
    let list: Vec<Value> = serde_json::from_str(&out.stdout)?;
    assert_eq!(list.len(), 30, "{}", out.stdout);
    let running = list.iter().filter(|p| p["state"] == "RUNNING").count();
    assert!(
        running > 0 && running < 30,
        "{running} running: {}",
        out.stdout
    );
    // ...and can act: stopping the fleet frees its descriptors.
    let out = daemon.ctl(["stop", "hog"])?;
    assert_eq!(
        out.code,
        Some(0),
        "{}\n{}",
        out.combined(),
        daemon.diagnostics()
    );
    let log = daemon.event_log();
    assert!(log.contains("using the reserved one"), "{log}");
    Ok(())
}

#[test]
fn a_silent_client_is_not_answered_then_timed_out_after_10_s() -> TestResult {
    let daemon = TestDaemon::start(FLEET)?;
    daemon.running_pid("victim:0")?;
    let connected = Instant::now();
    let mut silent = Raw::connect(&daemon)?;
    assert!(
        matches!(silent.read(Duration::from_secs(1))?, Read::Silent),
        "answered before saying anything"
    );
    good_status(&daemon)?;
    supervision_goes_on(&daemon, "victim:0")?;
    // Now the 10 s authentication timeout.
    let (kind, message) = silent.error_kind(Duration::from_secs(15))?;
    let took = connected.elapsed();
    assert_eq!(kind, "auth", "{message}");
    assert!(message.contains("timeout"), "{message}");
    assert!(
        took >= Duration::from_millis(9500) && took < Duration::from_secs(14),
        "timed out after {took:?}"
    );
    assert!(silent.closed()?, "the connection stayed open");
    good_status(&daemon)?;
    Ok(())
}
