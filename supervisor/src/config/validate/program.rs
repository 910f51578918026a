//! A program's section: `programs:` and each `programs.NAME:` key by key,
//! plus the `user:` lookup and the rules for program names.

use super::ready::Readiness;
use super::{Ctx, join, to_u32};
use crate::config::yaml::{Kind, Node, quote};
use crate::config::{DEFAULT_LOGS_DIR, MAX_NUMPROCS, PROGRAM_KEYS, ProgramConfig, RunAs};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

impl Ctx {
    pub(super) fn programs(&mut self, node: &Node) -> Option<BTreeMap<String, Arc<ProgramConfig>>> {
        let before = self.problems.len();
        let logs_dir = self.dir.join(DEFAULT_LOGS_DIR);
        let valid: Vec<&'static str> = PROGRAM_KEYS.iter().map(|(k, _)| *k).collect();
        let mut programs = BTreeMap::new();
        let mut names = BTreeSet::new();
        for (name, entry) in self.mapping(node, "programs") {
            names.insert(name.to_string());
            let path = join("programs", name);
            let name_ok = valid_program_name(name);
            if !name_ok {
                let why = if proto::Target::is_reserved(name) {
                    "`all` is reserved: the control shell uses it to mean every program".to_string()
                } else {
                    format!(
                        "invalid program name {}: use only letters, digits, `_`, `.` and `-` (it is typed in `start NAME:INDEX`)",
                        quote(name)
                    )
                };
                self.report(entry.key.pos, &path, why);
            }
            // Checked even under a bad name, so that every problem shows.
            if let Some(program) = self.program(&valid, name, &entry.key, &entry.value, &logs_dir)
                && name_ok
            {
                programs.insert(name.to_string(), Arc::new(program));
            }
        }
        self.depends_on_graph(&names, &programs);
        (self.problems.len() == before).then_some(programs)
    }

    pub(super) fn program(
        &mut self,
        valid: &[&'static str],
        name: &str,
        name_node: &Node,
        body: &Node,
        logs_dir: &Path,
    ) -> Option<ProgramConfig> {
        let path = join("programs", name);
        let before = self.problems.len();
        let mut p = ProgramConfig::with_defaults(name, "", logs_dir);
        let mut have_cmd = false;
        let mut readiness = Readiness::default();
        for (key, entry) in self.entries(body, &path, valid) {
            let at = join(&path, key);
            let v = &*entry.value;
            match key {
                "cmd" => {
                    have_cmd = true;
                    if let Some((cmd, argv)) = self.command(v, &at) {
                        p.cmd = cmd;
                        p.argv = argv;
                    }
                }
                "numprocs" => {
                    if let Some(n) = self.int(v, &at, 0, i128::from(MAX_NUMPROCS)) {
                        p.numprocs = to_u32(n);
                        if n == 0 {
                            self.warn(v.pos, &at, "numprocs is 0: this program will run nothing");
                        }
                    }
                }
                "autostart" => {
                    if let Some(b) = self.boolean(v, &at) {
                        p.autostart = b;
                    }
                }
                "autorestart" => {
                    if let Some(a) = self.autorestart(v, &at) {
                        p.autorestart = a;
                    }
                }
                "exitcodes" => {
                    if let Some(codes) = self.exitcodes(v, &at) {
                        p.exitcodes = codes;
                    }
                }
                "starttime" => {
                    if let Some(d) = self.seconds(v, &at, true) {
                        p.starttime = d;
                        p.starttime_explicit = true;
                    }
                }
                "startretries" => {
                    if let Some(n) = self.int(v, &at, 0, i128::from(u32::MAX)) {
                        p.startretries = to_u32(n);
                    }
                }
                "stopsignal" => {
                    if let Some(s) = self.stopsignal(v, &at) {
                        p.stopsignal = s;
                    }
                }
                "stoptime" => {
                    if let Some(d) = self.seconds(v, &at, true) {
                        p.stoptime = d;
                    }
                }
                "stdout" => {
                    if let Some(t) = self.output(v, &at) {
                        p.stdout = t;
                    }
                }
                "stderr" => {
                    if let Some(t) = self.output(v, &at) {
                        p.stderr = t;
                    }
                }
                "env" => {
                    if let Some(env) = self.env(v, &at) {
                        p.env = env;
                    }
                }
                "workingdir" => {
                    if let Some(dir) = self.workingdir(v, &at) {
                        p.workingdir = Some(dir);
                    }
                }
                "umask" => {
                    if let Some(mask) = self.umask(v, &at) {
                        p.umask = Some(mask);
                    }
                }
                "user" => {
                    if let Some(text) = self.text(v, &at, "a user name or uid (e.g. nobody)") {
                        match resolve_user(text, nix::unistd::geteuid().as_raw()) {
                            Ok(run_as) => p.user = Some(run_as),
                            Err(why) => self.report(v.pos, &at, why),
                        }
                    }
                }
                "maxrestarts" => {
                    if let Some(n) = self.int(v, &at, 0, i128::from(u32::MAX)) {
                        p.maxrestarts = to_u32(n);
                    }
                }
                "restartwindow" => {
                    if let Some(d) = self.seconds(v, &at, false) {
                        p.restartwindow = d;
                    }
                }
                "notify" => {
                    if let Some(rules) = self.notify(v, &at) {
                        p.notify = rules;
                    }
                }
                "ready"
                | "health"
                | "watchdog"
                | "before_start"
                | "before_start_timeout"
                | "depends_on" => self.readiness_key(&mut readiness, key, v, &at, name),
                other => {
                    // Only reachable if PROGRAM_KEYS gains a key without a
                    // match arm here; a unit test sets every key.
                    self.report(
                        entry.key.pos,
                        &at,
                        format!("internal error: key `{other}` is classified but never read"),
                    );
                }
            }
        }
        if !have_cmd && (body.is_null() || matches!(body.kind, Kind::Map(_))) {
            self.report(
                name_node.pos,
                &join(&path, "cmd"),
                "missing required key `cmd` (the command to run, e.g. `cmd: sleep 60`)",
            );
        }
        self.finish_readiness(readiness, &mut p, &path);
        (self.problems.len() == before).then_some(p)
    }
}

/// `user:` as written (a name, or a uid) to the account it names, with its
/// groups. A daemon that is not root can only run programs as itself
/// (`euid` is the daemon's effective uid).
pub(in crate::config) fn resolve_user(text: &str, euid: u32) -> Result<RunAs, String> {
    use nix::unistd::{Uid, User, getgrouplist};
    let text = text.trim();
    let found = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        match text.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => return Err(format!("uid {text} is out of range")),
        }
    } else {
        User::from_name(text)
    };
    let user = match found {
        Ok(Some(user)) => user,
        Ok(None) => return Err(format!("no user {} on this host", quote(text))),
        Err(e) => return Err(format!("cannot look up user {}: {e}", quote(text))),
    };
    let uid = user.uid.as_raw();
    if euid != 0 && uid != euid {
        return Err(format!(
            "taskmasterd runs as uid {euid}, not root, so it can only run programs as itself; remove `user` or start taskmasterd as root"
        ));
    }
    let name = std::ffi::CString::new(user.name.as_str())
        .map_err(|_| format!("user name {} contains a NUL byte", quote(&user.name)))?;
    let groups = getgrouplist(&name, user.gid)
        .map_err(|e| format!("cannot list the groups of user {}: {e}", quote(&user.name)))?;
    Ok(RunAs {
        name: user.name,
        uid,
        gid: user.gid.as_raw(),
        groups: groups.into_iter().map(|g| g.as_raw()).collect(),
        home: user.dir,
    })
}

/// `NAME`, `NAME:INDEX` and `all` are control-shell targets
/// ([`proto::Target`]), so names stay simple (no `:`, no spaces) and `all` is
/// taken.
fn valid_program_name(name: &str) -> bool {
    !name.is_empty()
        && !proto::Target::is_reserved(name)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
