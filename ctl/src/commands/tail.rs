//! `tail [-f] [-n N] TARGET [stdout|stderr]`: the last output lines of one
//! process, and with `-f` what it writes next, until Ctrl-C (shell) or the
//! daemon ends the stream (it stopped: exit 3; the program was removed:
//! exit 1; said on stderr, or as a JSON error with `--json`).

use super::{CommandSpec, Completion, Parsed, Verb, check_target, is_option, words};
use crate::Code;
use crate::command::UsageError;
use crate::render::{self, Rendered};
use crate::run::{CallError, Context, Wait};
use proto::{ClientError, OutputStream, Request, Response, TailRequest, Target};
use serde_json::json;
use std::io;

pub const SPEC: CommandSpec = CommandSpec {
    name: "tail",
    usage: "tail [-f] [-n N] TARGET [stdout|stderr]",
    about: "print the last output lines of a process (-f: keep following)",
    aliases: &[],
    parse,
    render,
    complete,
};

/// `tail`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    pub target: String,
    pub stream: OutputStream,
    pub lines: usize,
    pub follow: bool,
}

fn parse(args: &[&str]) -> Parsed {
    let err = |m: String| UsageError::new(SPEC.name, m);
    let mut follow = false;
    let mut lines = 10usize;
    let mut positional = Vec::new();
    let mut it = args.iter();
    let parse_n = |v: &str| {
        v.parse::<usize>()
            .map_err(|_| err(format!("-n wants a number of lines, got {v:?}")))
    };
    while let Some(a) = it.next() {
        match *a {
            "-f" | "--follow" => follow = true,
            "-n" | "--lines" => {
                let v = it.next().ok_or_else(|| err("-n wants a number".into()))?;
                lines = parse_n(v)?;
            }
            a if a.starts_with("--lines=") => lines = parse_n(&a["--lines=".len()..])?,
            a if a.starts_with("-n") && a.len() > 2 => lines = parse_n(&a[2..])?,
            a if is_option(a) => return Err(err(format!("unknown option {a:?}"))),
            a => positional.push(a),
        }
    }
    let (target, stream) = match positional.as_slice() {
        [] => return Err(err("missing target".into())),
        [t] => (*t, OutputStream::Stdout),
        [t, "stdout"] => (*t, OutputStream::Stdout),
        [t, "stderr"] => (*t, OutputStream::Stderr),
        [_, s] => return Err(err(format!("unknown stream {s:?} (stdout or stderr)"))),
        _ => return Err(err("tail takes one target".into())),
    };
    if check_target(target).map_err(err)? == Target::All {
        return Err(err("tail needs one process, not all".into()));
    }
    Ok(Box::new(Tail {
        target: target.to_string(),
        stream,
        lines,
        follow,
    }))
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    const WITH_VALUE: &[&str] = &["-n", "--lines"];
    if c.args.last().is_some_and(|a| WITH_VALUE.contains(a)) {
        return Vec::new(); // a number comes next
    }
    if c.option() {
        return words(&["-f", "-n"]);
    }
    match c.positional(WITH_VALUE) {
        0 => c.names.targets(false),
        1 => words(&["stdout", "stderr"]),
        _ => Vec::new(),
    }
}

fn render(reply: &Response) -> Option<Rendered> {
    match reply {
        Response::Tail(t) => Some(Rendered::out(render::lines_text(&t.lines), Code::Ok)),
        Response::TailChunk(c) => Some(Rendered::out(c.data.clone(), Code::Ok)),
        _ => None,
    }
}

impl Tail {
    fn to_request(&self) -> Request {
        TailRequest {
            target: self.target.clone(),
            stream: self.stream,
            lines: self.lines,
            follow: self.follow,
        }
        .into()
    }
}

impl Verb for Tail {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(self.to_request())
    }

    fn wait(&self) -> Wait<'_> {
        if self.follow { Wait::Long } else { Wait::Quick }
    }

    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        let reply = match cx.call(&self.to_request(), self.wait()) {
            Ok(reply) => reply,
            Err(e) => return cx.report(&e),
        };
        let code = cx.reply(&SPEC, &reply)?;
        match reply {
            Response::Tail(_) if self.follow => follow(cx),
            _ => Ok(code),
        }
    }
}

/// Prints `tail -f` chunks until the daemon closes, or Ctrl-C (shell).
fn follow(cx: &mut Context<'_>) -> io::Result<Code> {
    cx.out.flush()?;
    let result = loop {
        match cx.next_message() {
            Ok(Response::TailChunk(c)) => {
                if cx.json {
                    cx.out.write_all(render::json_line(&json!(c)).as_bytes())?;
                } else {
                    cx.out.write_all(c.data.as_bytes())?;
                }
                cx.out.flush()?;
            }
            Ok(Response::Error(e)) => break cx.emit(&render::error_reply(&e, cx.json)),
            Ok(other) => {
                let _ = writeln!(
                    cx.err,
                    "error: unexpected reply from taskmasterd: {other:?}"
                );
                break Ok(Code::Failed);
            }
            Err(CallError::Interrupted(_)) => break Ok(Code::Ok),
            // The daemon ended the stream: it stopped, or the program was
            // removed by a reload. A new connection tells which.
            Err(CallError::Lost(ClientError::Closed)) => {
                let (why, kind, code) = if cx.reachable() {
                    (
                        "taskmasterd is still running: the program was removed",
                        "stream_ended",
                        Code::Failed,
                    )
                } else {
                    ("taskmasterd stopped", "unreachable", Code::Unreachable)
                };
                let why = format!("the daemon closed the stream: {why}");
                if cx.json {
                    cx.out
                        .write_all(render::error_json(kind, &why).as_bytes())?;
                } else {
                    let _ = writeln!(cx.err, "{why}");
                }
                break Ok(code);
            }
            Err(e) => break cx.report(&e),
        }
    };
    // The connection is still streaming: it cannot carry another request.
    cx.disconnect();
    result
}

#[cfg(test)]
mod tests {
    use super::Tail;
    use crate::commands::test_support::{parses, usage_err};
    use proto::OutputStream;

    #[test]
    fn tail_options() {
        parses(
            "tail web",
            Tail {
                target: "web".into(),
                stream: OutputStream::Stdout,
                lines: 10,
                follow: false,
            },
        );
        parses(
            "tail -f -n 3 web:1 stderr",
            Tail {
                target: "web:1".into(),
                stream: OutputStream::Stderr,
                lines: 3,
                follow: true,
            },
        );
        parses(
            "tail web stdout -n5 --follow",
            Tail {
                target: "web".into(),
                stream: OutputStream::Stdout,
                lines: 5,
                follow: true,
            },
        );
        assert!(usage_err("tail").message.contains("missing target"));
        assert!(usage_err("tail -n x web").message.contains("number"));
        assert!(usage_err("tail -n").message.contains("number"));
        assert!(
            usage_err("tail web stdlog")
                .message
                .contains("unknown stream")
        );
        assert!(usage_err("tail -x web").message.contains("unknown option"));
        assert!(usage_err("tail all").message.contains("one process"));
        assert!(usage_err("tail a stdout b").message.contains("one target"));
    }
}
