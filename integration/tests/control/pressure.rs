//! Clients that push on the daemon's bounds: a `tail -f` client that stops
//! reading a program writing as fast as it can, a client that pipelines
//! requests and never reads the replies, a followed program that writes a
//! character in two pieces, and a flood of connections that never say hello.
//! The daemon stays small (VmRSS under 64 MiB), the client at fault loses
//! output or its connection (and the event log says why), and everyone else
//! is served: `status` answers, a killed child is restarted.

use crate::robust::{Raw, Read, hello};
use crate::{SOON, TestResult, supervision_goes_on};
use integration::{TestDaemon, procfs, wait_until_every};
use proto::{Request, Response, StatusRequest, TailRequest};
use serde_json::Value;
use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What the daemon may use, whatever a client does.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

const VICTIM: &str = "programs:\n  victim:\n    cmd: \"sleep 1000\"\n    starttime: 0\n";

/// The daemon's resident memory, in KiB.
fn rss(daemon: &TestDaemon) -> TestResult<u64> {
    procfs::rss_kib(daemon.pid()).ok_or_else(|| "cannot read the daemon's VmRSS".into())
}

/// A fresh authenticated client gets a `status` answer.
fn status_answers(daemon: &TestDaemon) -> TestResult {
    let mut client = daemon.client()?;
    client.set_read_timeout(Some(SOON))?;
    let reply = client.call(&Request::Status(StatusRequest::default()))?;
    assert!(matches!(reply, Response::Status(_)), "{reply:?}");
    Ok(())
}

/// A raw connection that has said hello and got its welcome.
fn authenticated(daemon: &TestDaemon) -> TestResult<Raw> {
    let mut raw = Raw::connect(daemon)?;
    raw.send(&hello(&daemon.token()?))?;
    match raw.read(SOON)? {
        Read::Line(l) if l.contains("\"welcome\"") => Ok(raw),
        other => Err(format!("no welcome: {other:?}").into()),
    }
}

/// Sends `tail -f TARGET` (no past lines) and reads the `tail` reply: from
/// then on, chunks follow.
fn follow(raw: &mut Raw, target: &str) -> TestResult {
    let request = Request::Tail(TailRequest {
        target: target.to_string(),
        stream: proto::OutputStream::Stdout,
        lines: 0,
        follow: true,
    });
    raw.send(&serde_json::to_string(&request)?)?;
    match raw.read(SOON)? {
        Read::Line(l) if l.contains("\"tail\"") => Ok(()),
        other => Err(format!("no tail reply: {other:?}").into()),
    }
}

/// The `data` of the next `tail_chunk` line (`None`: nothing within `timeout`).
fn next_chunk(raw: &mut Raw, timeout: Duration) -> TestResult<Option<String>> {
    match raw.read(timeout)? {
        Read::Line(line) => {
            let v: Value = serde_json::from_str(&line)?;
            if v["type"] != "tail_chunk" {
                return Err(format!("expected a tail_chunk, got {line}").into());
            }
            Ok(Some(
                v["data"]["data"].as_str().unwrap_or_default().to_string(),
            ))
        }
        Read::Silent => Ok(None),
        Read::Closed => Err("the daemon closed the tail -f connection".into()),
    }
}

/// The number at the start of the last complete line of `path`.
fn last_line_number(path: &std::path::Path) -> TestResult<u64> {
    let text = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&text);
    let last = text
        .rsplit('\n')
        .skip(1) // after the last newline: an incomplete line (or nothing)
        .find(|l| !l.is_empty())
        .ok_or("no complete line in the log yet")?;
    Ok(last.split(' ').next().unwrap_or_default().parse()?)
}

#[test]
fn a_tail_f_client_that_never_reads_keeps_the_daemon_small_then_skips_to_the_newest_output()
-> TestResult {
    let builder = TestDaemon::builder()?;
    // Fixed-width numbered lines, as fast as perl can print them.
    let script = builder.dir().join("firehose.pl");
    std::fs::write(
        &script,
        "my $i = 0; while (1) { printf \"%012d %s\\n\", $i++, 'x' x 100 }\n",
    )?;
    let daemon = builder
        .config(&format!(
            "{VICTIM}  firehose:\n    cmd: \"perl {}\"\n    starttime: 0\n    stdout: firehose.log\n",
            script.display()
        ))
        .start()?;
    daemon.running_pid("victim:0")?;
    daemon.running_pid("firehose:0")?;
    let log = daemon.path("firehose.log");
    let before = rss(&daemon)?;

    let mut stuck = authenticated(&daemon)?;
    follow(&mut stuck, "firehose:0")?;
    // The client reads nothing for 10 s. Meanwhile the daemon stays small,
    // and another client is served.
    let started = Instant::now();
    let mut peak = before;
    let mut checked_others = false;
    let mut failure = None;
    wait_until_every(Duration::from_secs(10), Duration::from_millis(100), || {
        // Keep the disk free: the log is opened for appending.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .and_then(|f| f.set_len(0));
        match rss(&daemon) {
            Ok(kib) => peak = peak.max(kib),
            Err(e) => failure = Some(e.to_string()),
        }
        if !checked_others && started.elapsed() > Duration::from_secs(3) {
            checked_others = true;
            if let Err(e) =
                status_answers(&daemon).and_then(|()| supervision_goes_on(&daemon, "victim:0"))
            {
                failure = Some(format!("another client was not served: {e}"));
            }
        }
        failure.is_some() || peak >= RSS_LIMIT_KIB
    });
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    assert!(
        peak < RSS_LIMIT_KIB,
        "daemon VmRSS grew from {before} KiB to {peak} KiB in {:?} for a client that does not read",
        started.elapsed()
    );
    assert!(checked_others, "the other client was never tried");

    // Now the client reads: old output first, then a marker of what was
    // skipped, then output written after it started reading.
    // (The log was just emptied: wait for a line.)
    let mut newest = None;
    integration::wait_until(SOON, || {
        newest = last_line_number(&log).ok();
        newest.is_some()
    });
    let newest = newest.ok_or("the program stopped writing")?;
    let mut received = String::new();
    let mut markers = Vec::new();
    let mut newest_after_marker = None;
    let deadline = Instant::now() + 3 * SOON;
    while newest_after_marker.is_none() && Instant::now() < deadline {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .and_then(|f| f.set_len(0));
        let Some(data) = next_chunk(&mut stuck, SOON)? else {
            break;
        };
        received.push_str(&data);
        // Judge complete lines only.
        let Some(end) = received.rfind('\n') else {
            continue;
        };
        let complete: String = received.drain(..=end).collect();
        let mut after_marker = !markers.is_empty();
        let mut lines = complete.lines().peekable();
        while let Some(line) = lines.next() {
            if line.starts_with("[… ") && line.ends_with(" skipped]") {
                markers.push(line.to_string());
                after_marker = true;
                // The next line starts wherever the skip ended: skip it too.
                lines.next();
                continue;
            }
            if after_marker
                && let Some(n) = line.split(' ').next().and_then(|n| n.parse::<u64>().ok())
                && n >= newest
            {
                newest_after_marker = Some(n);
                break;
            }
        }
    }
    assert!(
        !markers.is_empty(),
        "no skipped marker in what the client read"
    );
    assert!(
        markers.iter().all(|m| m.ends_with("B skipped]")),
        "a marker without a size: {markers:?}"
    );
    assert!(
        newest_after_marker.is_some(),
        "never reached the output written after the client started reading (line {newest}); markers {markers:?}"
    );
    status_answers(&daemon)?;
    Ok(())
}

#[test]
fn a_client_that_pipelines_requests_without_reading_is_disconnected_and_costs_little() -> TestResult
{
    // Thirty instances: each `status` reply is ~10 KB.
    let daemon = TestDaemon::start(&format!("{VICTIM}    numprocs: 30\n"))?;
    daemon.running_pid("victim:0")?;
    let before = rss(&daemon)?;
    let raw = authenticated(&daemon)?;
    let mut writer = raw.writer.try_clone()?;
    // Bounded, in case the daemon never disconnects it.
    writer.set_write_timeout(Some(Duration::from_secs(90)))?;
    // One request a millisecond: the daemon keeps up, so the requests it
    // queues stay under its 64, and only the replies pile up.
    let flood = std::thread::spawn(move || -> (u64, io::Error) {
        let request = serde_json::to_string(&Request::Status(StatusRequest::default()))
            .unwrap_or_default()
            + "\n";
        let mut sent = 0u64;
        loop {
            if let Err(e) = writer.write_all(request.as_bytes()) {
                return (sent, e);
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
    });

    let started = Instant::now();
    let mut peak = before;
    let mut checked_others = false;
    let mut failure = None;
    let disconnected =
        wait_until_every(Duration::from_secs(60), Duration::from_millis(100), || {
            match rss(&daemon) {
                Ok(kib) => peak = peak.max(kib),
                Err(e) => failure = Some(e.to_string()),
            }
            if !checked_others && started.elapsed() > Duration::from_secs(2) {
                checked_others = true;
                if let Err(e) =
                    status_answers(&daemon).and_then(|()| supervision_goes_on(&daemon, "victim:0"))
                {
                    failure = Some(format!("another client was not served: {e}"));
                }
            }
            failure.is_some() || peak >= RSS_LIMIT_KIB || flood.is_finished()
        });
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    assert!(
        peak < RSS_LIMIT_KIB,
        "daemon VmRSS grew from {before} KiB to {peak} KiB in {:?} for a client that does not read",
        started.elapsed()
    );
    assert!(
        disconnected,
        "still connected after {:?}\n{}",
        started.elapsed(),
        daemon.diagnostics()
    );
    let (sent, error) = flood.join().map_err(|_| "flood thread panicked")?;
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "the flood ended with {error} after {sent} requests, not a disconnection"
    );
    assert!(sent >= 1_000, "only {sent} requests sent");
    let log = daemon.event_log();
    assert!(
        log.contains("does not read its replies"),
        "the event log does not say why:\n{log}"
    );
    assert!(checked_others, "the other client was never tried");
    status_answers(&daemon)?;
    Ok(())
}

#[test]
fn tail_f_never_splits_a_character_written_in_two_pieces() -> TestResult {
    let builder = TestDaemon::builder()?;
    let dir = builder.dir().to_path_buf();
    // "a€b\n", the euro sign (e2 82 ac) cut after its second byte; each
    // piece waits for its go file.
    let script = dir.join("split.sh");
    std::fs::write(
        &script,
        format!(
            "cd {}\nwhile [ ! -e go1 ]; do sleep 0.02; done\nprintf 'a\\342\\202'\n\
             while [ ! -e go2 ]; do sleep 0.02; done\nprintf '\\254b\\n'\nexec sleep 1000\n",
            dir.display()
        ),
    )?;
    let daemon = builder
        .config(&format!(
            "programs:\n  split:\n    cmd: \"sh {}\"\n    starttime: 0\n    stdout: split.log\n",
            script.display()
        ))
        .start()?;
    daemon.running_pid("split:0")?;
    let mut raw = authenticated(&daemon)?;
    follow(&mut raw, "split:0")?;
    std::fs::write(dir.join("go1"), "")?;
    // The first piece is in the log, so the follower has it (the daemon
    // writes the file and hands the chunk to followers in one step).
    let log = daemon.path("split.log");
    assert!(
        integration::wait_until(SOON, || std::fs::metadata(&log).is_ok_and(|m| m.len() == 3)),
        "the first piece never arrived"
    );
    std::fs::write(dir.join("go2"), "")?;
    let mut received = String::new();
    let deadline = Instant::now() + SOON;
    while !received.ends_with('\n') && Instant::now() < deadline {
        match next_chunk(&mut raw, SOON)? {
            Some(data) => received.push_str(&data),
            None => break,
        }
    }
    assert_eq!(received, "a€b\n");
    assert_eq!(std::fs::read(&log)?, "a€b\n".as_bytes());
    Ok(())
}

#[test]
fn five_hundred_silent_connections_do_not_lock_the_operator_out() -> TestResult {
    let daemon = TestDaemon::start(VICTIM)?;
    daemon.running_pid("victim:0")?;
    let mut silent: Vec<TcpStream> = Vec::new();
    for round in 0..5 {
        // 500, then 100 more each round: the flood is renewed.
        let more = if round == 0 { 500 } else { 100 };
        for _ in 0..more {
            silent.push(TcpStream::connect(daemon.addr())?);
        }
        let asked = Instant::now();
        let out = daemon.ctl(["status"])?;
        let took = asked.elapsed();
        assert_eq!(
            out.code,
            Some(0),
            "round {round}: {}\n{}",
            out.combined(),
            daemon.diagnostics()
        );
        assert!(
            took < Duration::from_secs(2),
            "round {round}: status took {took:?}"
        );
    }
    // The oldest silent connections were dropped, the newest still wait.
    let mut oldest = std::io::BufReader::new(silent.remove(0));
    match crate::robust::read_line(&mut oldest, SOON)? {
        Read::Line(line) => {
            let v: Value = serde_json::from_str(&line)?;
            assert_eq!(v["data"]["kind"], "busy", "{line}");
        }
        other => return Err(format!("the oldest silent connection got {other:?}").into()),
    }
    let mut newest = std::io::BufReader::new(silent.pop().ok_or("no connection")?);
    assert!(
        matches!(
            crate::robust::read_line(&mut newest, Duration::from_millis(500))?,
            Read::Silent
        ),
        "the newest silent connection was dropped"
    );
    supervision_goes_on(&daemon, "victim:0")?;
    let log = daemon.event_log();
    assert!(
        log.contains("waiting to authenticate"),
        "the event log does not say connections were dropped:\n{log}"
    );
    Ok(())
}

#[test]
fn connections_with_a_wrong_token_count_as_unauthenticated_until_closed() -> TestResult {
    let daemon = TestDaemon::start(VICTIM)?;
    daemon.running_pid("victim:0")?;
    // 32 wrong tokens: each waits its 1 s before its `auth` reply.
    let mut guessers = Vec::new();
    for _ in 0..32 {
        let mut raw = Raw::connect(&daemon)?;
        raw.send(&hello("not-the-token"))?;
        guessers.push(raw);
    }
    // A round trip on the harness's session: the daemon has read them.
    daemon.status()?;
    // 32 newer connections take their places: the guessers are closed at
    // once, with `busy`, instead of lingering uncounted.
    let newer: Vec<TcpStream> = (0..32)
        .map(|_| TcpStream::connect(daemon.addr()))
        .collect::<Result<_, _>>()?;
    for mut guesser in guessers {
        let (kind, message) = guesser.error_kind(SOON)?;
        assert_eq!(kind, "busy", "{message}");
        assert!(guesser.closed()?, "the connection stayed open");
    }
    drop(newer);
    status_answers(&daemon)?;
    Ok(())
}
