//! One description of the programs a scenario runs, rendered as either
//! daemon's config: taskmaster's YAML or supervisord's INI sections.
//!
//! Both renderings mean the same thing: `starttime`/`startsecs` 0 (a process
//! counts as started once spawned), TERM then KILL after 10 s, exit code 0
//! expected, and no output rotation (taskmaster does not rotate, so
//! supervisord's `*_logfile_maxbytes` is 0). Instance `I` of program `P` is
//! `P:I` in taskmaster and process `P_I` of group `P` in supervisord.

use std::path::PathBuf;

/// When an instance that exited is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Never,
    /// When the exit code is not 0.
    Unexpected,
}

/// Where an output stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The daemon's default: one captured file per instance.
    Default,
    /// Discarded.
    Null,
    /// This file.
    File(PathBuf),
}

/// One program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub argv: Vec<String>,
    pub numprocs: u32,
    pub autostart: bool,
    pub restart: Restart,
    pub stdout: Output,
    pub stderr: Output,
    /// taskmaster-only keys (e.g. `ready:`, `health:`), YAML lines at the
    /// program's level, appended as they are; supervisord has no
    /// equivalent, so the scenarios that set this run taskmaster only.
    pub taskmaster_extra: String,
}

impl Program {
    /// `numprocs` copies of `argv`, started with the daemon, restarted on an
    /// unexpected exit, output captured to the default files.
    pub fn new(name: impl Into<String>, argv: &[&str], numprocs: u32) -> Self {
        Program {
            name: name.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            numprocs,
            autostart: true,
            restart: Restart::Unexpected,
            stdout: Output::Default,
            stderr: Output::Default,
            taskmaster_extra: String::new(),
        }
    }

    /// The command line, quoted for a shell-like splitter (both daemons
    /// split `cmd`/`command` with shlex rules).
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The whole set of programs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    pub programs: Vec<Program>,
}

impl Fleet {
    pub fn new(programs: Vec<Program>) -> Self {
        Fleet { programs }
    }

    /// Instances in total.
    pub fn instances(&self) -> usize {
        self.programs.iter().map(|p| p.numprocs as usize).sum()
    }

    /// taskmaster's config, control socket on 127.0.0.1 port 0.
    pub fn taskmaster_yaml(&self) -> String {
        let mut y = String::from("programs:\n");
        for p in &self.programs {
            y.push_str(&format!("  {}:\n", p.name));
            y.push_str(&format!("    cmd: {}\n", yaml_string(&p.command_line())));
            y.push_str(&format!("    numprocs: {}\n", p.numprocs));
            y.push_str(&format!("    autostart: {}\n", p.autostart));
            let restart = match p.restart {
                Restart::Never => "never",
                Restart::Unexpected => "unexpected",
            };
            y.push_str(&format!("    autorestart: {restart}\n"));
            y.push_str("    exitcodes: [0]\n    starttime: 0\n    stoptime: 10\n");
            y.push_str("    startretries: 1000000\n");
            // A crash loop must never be cut short by the restart budget.
            y.push_str(&format!(
                "    maxrestarts: {}\n    restartwindow: 1\n",
                u32::MAX
            ));
            for (key, out) in [("stdout", &p.stdout), ("stderr", &p.stderr)] {
                match out {
                    Output::Default => {}
                    Output::Null => y.push_str(&format!("    {key}: null\n")),
                    Output::File(f) => y.push_str(&format!(
                        "    {key}: {}\n",
                        yaml_string(&f.to_string_lossy())
                    )),
                }
            }
            for line in p.taskmaster_extra.lines() {
                y.push_str(&format!("    {line}\n"));
            }
        }
        y.push_str("server:\n  listen: \"127.0.0.1:0\"\n");
        y
    }

    /// supervisord's `[program:x]` sections.
    pub fn supervisord_programs(&self) -> String {
        let mut s = String::new();
        for p in &self.programs {
            s.push_str(&format!("[program:{}]\n", p.name));
            // `%` is ConfigParser interpolation.
            s.push_str(&format!(
                "command={}\n",
                p.command_line().replace('%', "%%")
            ));
            s.push_str(&format!("numprocs={}\n", p.numprocs));
            s.push_str("process_name=%(program_name)s_%(process_num)d\n");
            s.push_str(&format!("autostart={}\n", p.autostart));
            let restart = match p.restart {
                Restart::Never => "false",
                Restart::Unexpected => "unexpected",
            };
            s.push_str(&format!("autorestart={restart}\n"));
            s.push_str("exitcodes=0\nstartsecs=0\nstopsignal=TERM\nstopwaitsecs=10\n");
            // Never FATAL: a crash loop must go on being measured.
            s.push_str("startretries=1000000\n");
            for (key, out) in [("stdout", &p.stdout), ("stderr", &p.stderr)] {
                let value = match out {
                    Output::Default => "AUTO".to_string(),
                    Output::Null => "NONE".to_string(),
                    Output::File(f) => f.to_string_lossy().replace('%', "%%"),
                };
                s.push_str(&format!(
                    "{key}_logfile={value}\n{key}_logfile_maxbytes=0\n{key}_logfile_backups=0\n"
                ));
            }
            s.push('\n');
        }
        s
    }
}

/// `arg` as one shell word (single-quoted unless it is plainly safe).
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A YAML double-quoted scalar (a JSON string is one).
fn yaml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("/tmp/a-b_c.1"), "/tmp/a-b_c.1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn renders_both_configs() {
        let mut p = Program::new("web", &["sleep", "10 0"], 3);
        p.stdout = Output::Null;
        p.taskmaster_extra = "ready:\n  tcp: 127.0.0.1:9\n".into();
        let fleet = Fleet::new(vec![p]);
        assert_eq!(fleet.instances(), 3);
        let y = fleet.taskmaster_yaml();
        assert!(y.contains("  web:\n    cmd: \"sleep '10 0'\"\n    numprocs: 3\n"));
        assert!(y.contains("    stdout: null\n") && !y.contains("stderr:"));
        assert!(
            y.contains("    ready:\n      tcp: 127.0.0.1:9\nserver:"),
            "{y}"
        );
        assert!(!fleet.supervisord_programs().contains("ready"));
        let s = fleet.supervisord_programs();
        assert!(s.starts_with("[program:web]\ncommand=sleep '10 0'\nnumprocs=3\n"));
        assert!(s.contains("stdout_logfile=NONE\n") && s.contains("stderr_logfile=AUTO\n"));
    }
}
