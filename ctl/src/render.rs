//! Turns daemon replies into what the user sees: text for people, JSON for scripts.
//!
//! Pure functions from [`proto::Response`] to a [`Rendered`] (stdout text,
//! stderr text, exit code), so the whole output contract is unit-tested with
//! golden strings and no socket. The exit code is decided here too, because
//! it depends on the reply (a `start` whose outcome is not ok exits 1).
//!
//! What is shared lives here (errors, `--json`, the status/avail/pid tables,
//! the reload summary); which reply answers which verb, and how its
//! text is made from these pieces, is each verb's `render` in
//! [`crate::commands`].

use crate::Code;
use crate::command::{CommandSpec, UsageError};
use proto::{AvailEntry, ErrorReply, Outcome, PidEntry, ProcessInfo, ReloadSummary, Response};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// What one command prints, and how it exits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
    pub code: Code,
}

impl Rendered {
    /// Text on stdout.
    pub fn out(stdout: String, code: Code) -> Self {
        Self {
            stdout,
            stderr: String::new(),
            code,
        }
    }

    /// Text on stderr.
    pub fn err(stderr: String, code: Code) -> Self {
        Self {
            stdout: String::new(),
            stderr,
            code,
        }
    }
}

/// Renders the reply to a command of `spec`'s verb: errors and `--json` the same way for
/// every verb, text by the verb's own `render` (which also refuses a reply
/// that does not answer it: a daemon bug or a version skew, reported rather
/// than printed as if it fit).
pub fn response(spec: &CommandSpec, reply: &Response, json: bool) -> Rendered {
    let text = match reply {
        Response::Error(e) => Some(Rendered::err(error_text(e), Code::Failed)),
        _ => (spec.render)(reply),
    };
    let Some(text) = text else {
        let message = unexpected(reply);
        return if json {
            Rendered::out(error_json("protocol", message.trim_end()), Code::Failed)
        } else {
            Rendered::err(message, Code::Failed)
        };
    };
    if json { response_json(reply) } else { text }
}

/// A `start`/`stop`/`restart`/`signal`/`notify-test` result: one line per
/// outcome, exit 1 when one failed.
pub fn outcomes(outcomes: &[Outcome]) -> Rendered {
    let code = if outcomes.iter().all(|o| o.ok) {
        Code::Ok
    } else {
        Code::Failed
    };
    Rendered::out(outcomes_text(outcomes), code)
}

/// The daemon's one-line answer.
pub fn done(d: &proto::Done) -> Rendered {
    Rendered::out(format!("{}\n", d.message), Code::Ok)
}

fn response_json(reply: &Response) -> Rendered {
    let code = match reply {
        Response::Error(_) => Code::Failed,
        Response::Outcomes(o) if o.iter().any(|o| !o.ok) => Code::Failed,
        _ => Code::Ok,
    };
    let value = match reply {
        Response::Error(e) => json!({ "error": e }),
        Response::Version(v) => json!({
            "client_version": proto::SUITE_VERSION,
            "daemon_version": v.daemon_version,
            "protocol_version": v.protocol_version,
        }),
        // Every other reply is `{"type": .., "data": ..}` on the wire: print the data.
        other => match serde_json::to_value(other) {
            Ok(Value::Object(mut o)) => o.remove("data").unwrap_or(Value::Null),
            Ok(v) => v,
            Err(e) => json!({ "error": { "kind": "internal", "message": e.to_string() } }),
        },
    };
    Rendered::out(json_line(&value), code)
}

/// One JSON document and a newline.
pub fn json_line(value: &Value) -> String {
    let mut s = value.to_string();
    s.push('\n');
    s
}

/// A local error (usage, connection) as a JSON document for `--json`.
pub fn error_json(kind: &str, message: &str) -> String {
    json_line(&json!({ "error": { "kind": kind, "message": message, "details": [] } }))
}

/// `status`: aligned columns name, state, description, and the restart
/// count when not zero (a slow crash loop, each run outliving `starttime`,
/// would otherwise look healthy).
///
/// The description is the daemon's; what the readiness fields add to it is
/// shown only where the daemon's words do not already say it: the program's
/// own `STATUS=` text (quoted, escaped: a program's bytes never reach the
/// terminal raw) and a failing health check (`health failing`). A ready,
/// healthy RUNNING instance reads as before.
pub fn status_table(infos: &[ProcessInfo]) -> String {
    let name_w = infos.iter().map(|i| i.name.len()).max().unwrap_or(0);
    let state_w = infos
        .iter()
        .map(|i| i.state.name().len())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    for i in infos {
        let mut parts: Vec<String> = Vec::new();
        if !i.description.is_empty() {
            parts.push(i.description.clone());
        }
        if let Some(text) = i.status_text.as_deref()
            && !text.is_empty()
            && !i.description.contains(text)
        {
            parts.push(format!("{text:?}"));
        }
        if i.health.as_deref() == Some("failing") && !i.description.contains("health") {
            parts.push("health failing".to_string());
        }
        match i.restarts {
            0 => {}
            1 => parts.push("1 restart".to_string()),
            n => parts.push(format!("{n} restarts")),
        }
        let line = format!(
            "{:<name_w$}  {:<state_w$}  {}",
            i.name,
            i.state.name(),
            parts.join(", "),
        );
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// `web:0: started`, or `web:0: ERROR (why)` and the program's last lines.
pub fn outcomes_text(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    for o in outcomes {
        if o.ok {
            let _ = writeln!(s, "{}: {}", o.name, o.message);
        } else {
            let _ = writeln!(s, "{}: ERROR ({})", o.name, o.message);
            if !o.output_tail.is_empty() {
                let _ = writeln!(s, "  last output of {}:", o.name);
                for line in &o.output_tail {
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
    }
    s
}

/// `avail`: one line per configured program (`web  2 procs  autostart  cmd`).
pub fn avail_table(programs: &[AvailEntry]) -> String {
    let name_w = programs.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for p in programs {
        let procs = if p.numprocs == 1 { "proc" } else { "procs" };
        let start = if p.autostart { "autostart" } else { "manual" };
        let _ = writeln!(
            s,
            "{:<name_w$}  {:>3} {procs:<5}  {start:<9}  {}",
            p.name, p.numprocs, p.cmd
        );
    }
    s
}

/// `NAME:INDEX PID` lines, so a program's pids say whose they are; one entry
/// (the daemon, or one instance) is its bare pid, for `$(taskmasterctl pid
/// web:0)`. An instance without a process has pid 0, as in supervisorctl.
pub fn pids_text(pids: &[PidEntry]) -> String {
    let mut s = String::new();
    if let [only] = pids {
        let _ = writeln!(s, "{}", only.pid.unwrap_or(0));
        return s;
    }
    let width = pids.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in pids {
        let _ = writeln!(s, "{:<width$}  {}", p.name, p.pid.unwrap_or(0));
    }
    s
}

/// Lines, each ended by a newline.
pub fn lines_text(lines: &[String]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Counts and names per class, then the notes.
pub fn reload_text(r: &ReloadSummary) -> String {
    let mut s = String::new();
    let classes = [
        ("added", &r.added),
        ("removed", &r.removed),
        ("restarted", &r.restarted),
        ("scaled", &r.scaled),
        ("updated in place", &r.updated),
        ("unchanged", &r.unchanged),
    ];
    for (label, names) in classes {
        if names.is_empty() {
            let _ = writeln!(s, "{label}: 0");
        } else {
            let _ = writeln!(s, "{label}: {} ({})", names.len(), names.join(", "));
        }
    }
    for note in &r.notes {
        let _ = writeln!(s, "note: {note}");
    }
    s
}

/// An error reply on its own (e.g. one ending a `tail -f` stream).
pub fn error_reply(e: &ErrorReply, json: bool) -> Rendered {
    if json {
        Rendered::out(json_line(&json!({ "error": e })), Code::Failed)
    } else {
        Rendered::err(error_text(e), Code::Failed)
    }
}

/// `error: message`, then each detail line indented.
pub fn error_text(e: &ErrorReply) -> String {
    let mut s = format!("error: {}\n", e.message);
    for d in &e.details {
        let _ = writeln!(s, "  {d}");
    }
    s
}

fn unexpected(reply: &Response) -> String {
    format!("error: unexpected reply from taskmasterd: {reply:?}\n")
}

/// A usage error: the message and, when known, the command's usage line.
pub fn usage_error(e: &UsageError, json: bool) -> Rendered {
    // As every error: with --json only the document, on stdout.
    if json {
        return Rendered::out(error_json("usage", &e.message), Code::Usage);
    }
    let mut stderr = format!("error: {e}\n");
    match e.usage() {
        Some(u) => {
            let _ = writeln!(stderr, "usage: {u}");
        }
        None => stderr.push_str("type help for the list of commands\n"),
    }
    Rendered::err(stderr, Code::Usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{ErrorKind, ProcessState, TailReply, VersionInfo};

    fn info(name: &str, state: ProcessState, pid: Option<u32>, desc: &str) -> ProcessInfo {
        let (program, index) = name.split_once(':').unwrap_or((name, "0"));
        ProcessInfo {
            name: name.into(),
            program: program.into(),
            index: index.parse().unwrap_or(0),
            state,
            pid,
            uptime_s: 1.0,
            exitcode: None,
            restarts: 0,
            description: desc.into(),
            ready: false,
            health: None,
            status_text: None,
        }
    }

    /// The registry's entry for `name`, whose `render` answers its replies.
    fn verb(name: &str) -> &'static CommandSpec {
        match crate::command::spec(name) {
            Some(s) => s,
            None => panic!("no verb {name}"),
        }
    }

    fn status() -> &'static CommandSpec {
        verb("status")
    }

    fn start() -> &'static CommandSpec {
        verb("start")
    }

    #[test]
    fn status_shows_the_restart_count_when_not_zero() {
        let mut web = info(
            "web:0",
            ProcessState::Running,
            Some(123),
            "pid 123, uptime 0:01:02",
        );
        web.restarts = 4;
        let mut one = info(
            "db:0",
            ProcessState::Running,
            Some(7),
            "pid 7, uptime 0:00:09",
        );
        one.restarts = 1;
        let r = response(status(), &Response::Status(vec![web, one]), false);
        assert_eq!(
            r.stdout,
            "web:0  RUNNING  pid 123, uptime 0:01:02, 4 restarts\n\
             db:0   RUNNING  pid 7, uptime 0:00:09, 1 restart\n"
        );
    }

    #[test]
    fn status_shows_the_programs_status_text_and_a_failing_health_unless_the_description_says_them()
    {
        let mut api = info(
            "api:0",
            ProcessState::Running,
            Some(9),
            "pid 9, uptime 0:00:03",
        );
        api.status_text = Some("Listening on :8080".into());
        api.health = Some("ok".into());
        api.restarts = 2;
        let mut db = info(
            "db:0",
            ProcessState::Running,
            Some(8),
            "pid 8, uptime 0:01:00",
        );
        db.health = Some("failing".into());
        // The daemon already says both: nothing is repeated.
        let mut web = info(
            "web:0",
            ProcessState::Running,
            Some(7),
            "pid 7, uptime 0:00:09, health failing (1 of 3): connection refused",
        );
        web.health = Some("failing".into());
        web.status_text = Some("connection refused".into());
        // A program's text is quoted and escaped.
        let mut odd = info(
            "odd:0",
            ProcessState::Starting,
            Some(6),
            "pid 6, uptime 0:00:00",
        );
        odd.status_text = Some("a\x1b[2Jb".into());
        let r = response(status(), &Response::Status(vec![api, db, web, odd]), false);
        assert_eq!(
            r.stdout,
            "api:0  RUNNING   pid 9, uptime 0:00:03, \"Listening on :8080\", 2 restarts\n\
             db:0   RUNNING   pid 8, uptime 0:01:00, health failing\n\
             web:0  RUNNING   pid 7, uptime 0:00:09, health failing (1 of 3): connection refused\n\
             odd:0  STARTING  pid 6, uptime 0:00:00, \"a\\u{1b}[2Jb\"\n"
        );
    }

    #[test]
    fn status_columns_are_aligned() {
        let infos = [
            info(
                "web:0",
                ProcessState::Running,
                Some(12),
                "pid 12, uptime 0:00:01",
            ),
            info("worker:10", ProcessState::Fatal, None, "exited too quickly"),
            info("db:0", ProcessState::Stopped, None, ""),
        ];
        let r = response(status(), &Response::Status(infos.to_vec()), false);
        assert_eq!(
            r.stdout,
            "web:0      RUNNING  pid 12, uptime 0:00:01\n\
             worker:10  FATAL    exited too quickly\n\
             db:0       STOPPED\n"
        );
        assert_eq!(r.code, Code::Ok);
    }

    #[test]
    fn status_json_is_the_process_info_array() -> Result<(), serde_json::Error> {
        let infos = vec![info("web:0", ProcessState::Running, Some(12), "x")];
        let r = response(status(), &Response::Status(infos), true);
        let v: Value = serde_json::from_str(&r.stdout)?;
        assert_eq!(v[0]["name"], "web:0");
        assert_eq!(v[0]["state"], "RUNNING");
        assert_eq!(v[0]["pid"], 12);
        assert!(v[0]["exitcode"].is_null());
        assert_eq!(r.code, Code::Ok);
        Ok(())
    }

    #[test]
    fn failed_start_prints_reason_and_indented_output_and_exits_1() -> Result<(), serde_json::Error>
    {
        let outcomes = vec![
            Outcome {
                name: "web:0".into(),
                ok: true,
                state: ProcessState::Running,
                message: "started".into(),
                output_tail: vec![],
            },
            Outcome {
                name: "web:1".into(),
                ok: false,
                state: ProcessState::Fatal,
                message: "exited too quickly (exit status 1)".into(),
                output_tail: vec!["boom".into(), "bye".into()],
            },
        ];
        let r = response(start(), &Response::Outcomes(outcomes.clone()), false);
        assert_eq!(
            r.stdout,
            "web:0: started\n\
             web:1: ERROR (exited too quickly (exit status 1))\n  \
             last output of web:1:\n    boom\n    bye\n"
        );
        assert_eq!(r.code, Code::Failed);
        let ok = response(start(), &Response::Outcomes(outcomes[..1].to_vec()), false);
        assert_eq!(
            (ok.stdout.as_str(), ok.code),
            ("web:0: started\n", Code::Ok)
        );
        let j = response(start(), &Response::Outcomes(outcomes), true);
        assert_eq!(j.code, Code::Failed);
        let v: Value = serde_json::from_str(&j.stdout)?;
        assert_eq!(v[1]["name"], "web:1");
        assert_eq!(v[1]["ok"], false);
        assert_eq!(v[1]["output_tail"][0], "boom");
        Ok(())
    }

    #[test]
    fn errors_go_to_stderr_with_details_and_exit_1() {
        let reply = Response::Error(ErrorReply {
            kind: ErrorKind::Failed,
            message: "config is invalid".into(),
            details: vec!["a.yaml:3:5: programs.web.cmd: missing".into()],
        });
        let r = response(verb("reload"), &reply, false);
        assert_eq!(
            r.stderr,
            "error: config is invalid\n  a.yaml:3:5: programs.web.cmd: missing\n"
        );
        assert_eq!((r.stdout.as_str(), r.code), ("", Code::Failed));
        let j = response(verb("reload"), &reply, true);
        assert_eq!(
            j.stdout,
            "{\"error\":{\"details\":[\"a.yaml:3:5: programs.web.cmd: missing\"],\"kind\":\"failed\",\"message\":\"config is invalid\"}}\n"
        );
        let unknown = Response::error(ErrorKind::UnknownTarget, "no such process: x");
        assert_eq!(response(status(), &unknown, false).code, Code::Failed);
    }

    #[test]
    fn reload_summary_counts_and_names() {
        let s = ReloadSummary {
            added: vec!["a".into(), "b".into()],
            updated: vec!["c".into()],
            notes: vec!["server.listen changed: restart taskmasterd".into()],
            ..Default::default()
        };
        assert_eq!(
            response(verb("reload"), &Response::Reload(s), false).stdout,
            "added: 2 (a, b)\nremoved: 0\nrestarted: 0\nscaled: 0\n\
             updated in place: 1 (c)\nunchanged: 0\n\
             note: server.listen changed: restart taskmasterd\n"
        );
    }

    #[test]
    fn pids_tail_version_done() {
        let pids = Response::Pids(vec![
            PidEntry {
                name: "web:0".into(),
                pid: Some(42),
            },
            PidEntry {
                name: "web:1".into(),
                pid: None,
            },
        ]);
        let pid = verb("pid");
        assert_eq!(response(pid, &pids, false).stdout, "web:0  42\nweb:1  0\n");
        let one = Response::Pids(vec![PidEntry {
            name: "web:0".into(),
            pid: Some(42),
        }]);
        assert_eq!(response(pid, &one, false).stdout, "42\n");
        let tail = Response::Tail(TailReply {
            name: "web:0".into(),
            stream: proto::OutputStream::Stdout,
            path: "/tmp/x".into(),
            lines: vec!["one".into(), "two".into()],
        });
        assert_eq!(response(verb("tail"), &tail, false).stdout, "one\ntwo\n");
        assert_eq!(response(pid, &tail, false).code, Code::Failed);
        let v = Response::Version(VersionInfo {
            daemon_version: "9.9.9".into(),
            protocol_version: 1,
        });
        assert_eq!(
            response(verb("version"), &v, false).stdout,
            format!(
                "taskmasterctl {}\ntaskmasterd 9.9.9 (protocol 1)\n",
                proto::SUITE_VERSION
            )
        );
        let done = Response::Done(proto::Done {
            message: "taskmasterd stopped".into(),
        });
        assert_eq!(
            response(verb("shutdown"), &done, true).stdout,
            "{\"message\":\"taskmasterd stopped\"}\n"
        );
    }

    #[test]
    fn wrong_reply_type_is_an_error() {
        let r = response(status(), &Response::Pids(vec![]), false);
        assert_eq!(r.code, Code::Failed);
        assert!(r.stderr.contains("unexpected reply"), "{}", r.stderr);
        let j = response(status(), &Response::Pids(vec![]), true);
        assert_eq!(j.code, Code::Failed);
        assert!(j.stdout.contains("\"kind\":\"protocol\""), "{}", j.stdout);
    }
}
