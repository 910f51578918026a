//! `tail [-f] [-n N] TARGET [stdout|stderr]`: the last output lines of one
//! process, and with `-f` what it writes next.

use super::{CommandSpec, Completion, check_target, is_option, words};
use crate::Code;
use crate::command::{Command, UsageError};
use crate::render::{self, Rendered};
use proto::Request;
use proto::Response;
use proto::TailRequest;
use proto::{OutputStream, Target};

pub const SPEC: CommandSpec = CommandSpec {
    name: "tail",
    usage: "tail [-f] [-n N] TARGET [stdout|stderr]",
    about: "print the last output lines of a process (-f: keep following)",
    aliases: &[],
    parse,
    request,
    render,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
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
    Ok(Command::Tail {
        target: target.to_string(),
        stream,
        lines,
        follow,
    })
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

fn request(command: &Command) -> Option<Request> {
    let Command::Tail {
        target,
        stream,
        lines,
        follow,
    } = command
    else {
        return None;
    };
    Some(
        TailRequest {
            target: target.clone(),
            stream: *stream,
            lines: *lines,
            follow: *follow,
        }
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use crate::command::Command;
    use crate::commands::test_support::{cmd, usage_err};
    use proto::OutputStream;

    #[test]
    fn tail_options() {
        assert_eq!(
            cmd("tail web"),
            Command::Tail {
                target: "web".into(),
                stream: OutputStream::Stdout,
                lines: 10,
                follow: false
            }
        );
        assert_eq!(
            cmd("tail -f -n 3 web:1 stderr"),
            Command::Tail {
                target: "web:1".into(),
                stream: OutputStream::Stderr,
                lines: 3,
                follow: true
            }
        );
        assert_eq!(
            cmd("tail web stdout -n5 --follow"),
            Command::Tail {
                target: "web".into(),
                stream: OutputStream::Stdout,
                lines: 5,
                follow: true
            }
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
