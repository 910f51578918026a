//! Reload planning: the difference between the running config and a newly
//! read one, program by program, with no side effects.
//!
//! Each changed program is classified by the most disruptive class among its
//! changed keys (see [`crate::config::PROGRAM_KEYS`]): a spawn-affecting key
//! means its instances are restarted; `numprocs` means scaling in place;
//! policy keys (and `autostart`) are applied to the live actors. Unchanged
//! programs are not touched at all. The Registry carries the plan out; the
//! summary names every kind of change a program had (`numprocs` and
//! `stoptime` together: scaled *and* updated in place).

use crate::config::{Config, KeyClass, ProgramConfig, changed_keys, key_class};
use proto::ReloadSummary;
use std::sync::Arc;

/// How a reloaded program differs from the running one: what the
/// ProgramActor must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Only policy keys (and maybe `autostart`): applied to live instances.
    Policy,
    /// `numprocs` changed (maybe with policy keys): scale in place.
    Scale,
    /// A key that changes how a process is spawned: restart the instances,
    /// one by one (and scale if `numprocs` changed too).
    Respawn,
}

/// A program the reload changes.
#[derive(Debug)]
pub struct Changed {
    pub config: Arc<ProgramConfig>,
    pub change: Change,
    /// The classes of its changed keys, for the summary.
    pub classes: Vec<KeyClass>,
}

/// What a reload will do.
#[derive(Debug, Default)]
pub struct ReloadPlan {
    pub added: Vec<Arc<ProgramConfig>>,
    pub removed: Vec<String>,
    /// Programs to update, with their new config and how.
    pub changed: Vec<Changed>,
    pub unchanged: Vec<String>,
    /// Non-program sections that changed, said in words.
    pub notes: Vec<String>,
}

/// The classes of the keys that differ, without repeats.
fn changed_classes(old: &ProgramConfig, new: &ProgramConfig) -> Vec<KeyClass> {
    let mut classes: Vec<KeyClass> = Vec::new();
    for class in changed_keys(old, new).into_iter().filter_map(key_class) {
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
    classes
}

/// The action for a set of changed key classes: the most disruptive wins.
fn change_for(classes: &[KeyClass]) -> Option<Change> {
    if classes.is_empty() {
        None
    } else if classes.contains(&KeyClass::Spawn) {
        Some(Change::Respawn)
    } else if classes.contains(&KeyClass::Scale) {
        Some(Change::Scale)
    } else {
        Some(Change::Policy)
    }
}

/// How to apply `new` over `old`; `None` when nothing changed.
pub fn classify(old: &ProgramConfig, new: &ProgramConfig) -> Option<Change> {
    change_for(&changed_classes(old, new))
}

/// Compares two configs.
pub fn plan(old: &Config, new: &Config) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    for (name, old_program) in &old.programs {
        match new.programs.get(name) {
            None => plan.removed.push(name.clone()),
            Some(new_program) => {
                let classes = changed_classes(old_program, new_program);
                match change_for(&classes) {
                    None => plan.unchanged.push(name.clone()),
                    Some(change) => plan.changed.push(Changed {
                        config: new_program.clone(),
                        change,
                        classes,
                    }),
                }
            }
        }
    }
    for (name, program) in &new.programs {
        if !old.programs.contains_key(name) {
            plan.added.push(program.clone());
        }
    }
    if old.log != new.log {
        plan.notes.push(format!(
            "event log: level {}, file {} (applied)",
            new.log.level.as_str(),
            new.log.file.display()
        ));
    }
    if old.email != new.email {
        plan.notes.push(match &new.email {
            Some(e) => format!(
                "email: SMTP {}:{} (tls: {}) (applied)",
                e.smtp.host,
                e.smtp.port,
                e.smtp.tls.as_str()
            ),
            None => "email: notifications off (applied)".into(),
        });
    }
    if old.server.listen != new.server.listen {
        plan.notes.push(format!(
            "server.listen changed from {} to {}: restart taskmasterd to apply it (still listening on the old address)",
            old.server.listen, new.server.listen
        ));
    }
    if old.server.token_file != new.server.token_file {
        plan.notes.push(
            "server.token_file changed: restart taskmasterd to apply it (the old token stays valid)".into(),
        );
    }
    if old.server.allow_remote != new.server.allow_remote
        || old.server.pidfile != new.server.pidfile
    {
        plan.notes
            .push("server.allow_remote/pidfile changed: restart taskmasterd to apply".into());
    }
    plan
}

impl ReloadPlan {
    /// The client-facing summary.
    pub fn summary(&self) -> ReloadSummary {
        // A restart applies the policy keys too, so a restarted program is
        // not also "updated in place"; scaling happens either way.
        let names = |kind: fn(&Changed) -> bool| -> Vec<String> {
            self.changed
                .iter()
                .filter(|c| kind(c))
                .map(|c| c.config.name.clone())
                .collect()
        };
        ReloadSummary {
            added: self.added.iter().map(|p| p.name.clone()).collect(),
            removed: self.removed.clone(),
            restarted: names(|c| c.change == Change::Respawn),
            scaled: names(|c| c.classes.contains(&KeyClass::Scale)),
            updated: names(|c| {
                c.change != Change::Respawn
                    && c.classes
                        .iter()
                        .any(|k| matches!(k, KeyClass::Policy | KeyClass::Autostart))
            }),
            unchanged: self.unchanged.clone(),
            notes: self.notes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn program(name: &str) -> ProgramConfig {
        ProgramConfig::with_defaults(name, "sleep 100", Path::new("/tmp/logs"))
    }

    #[test]
    fn each_key_class_maps_to_its_action() {
        let base = program("web");
        type Edit = Box<dyn Fn(&mut ProgramConfig)>;
        let cases: Vec<(&str, Edit, Option<Change>)> = vec![
            ("nothing", Box::new(|_| {}), None),
            (
                "cmd",
                Box::new(|p| {
                    p.cmd = "sleep 200".into();
                    p.argv = vec!["sleep".into(), "200".into()];
                }),
                Some(Change::Respawn),
            ),
            (
                "env",
                Box::new(|p| {
                    p.env.insert("A".into(), "1".into());
                }),
                Some(Change::Respawn),
            ),
            (
                "umask",
                Box::new(|p| p.umask = Some(0o22)),
                Some(Change::Respawn),
            ),
            (
                "numprocs",
                Box::new(|p| p.numprocs = 4),
                Some(Change::Scale),
            ),
            (
                "stoptime",
                Box::new(|p| p.stoptime = Duration::from_secs(3)),
                Some(Change::Policy),
            ),
            (
                "autostart",
                Box::new(|p| p.autostart = false),
                Some(Change::Policy),
            ),
            (
                "numprocs+stoptime",
                Box::new(|p| {
                    p.numprocs = 3;
                    p.stoptime = Duration::from_secs(1);
                }),
                Some(Change::Scale),
            ),
            (
                "numprocs+cmd",
                Box::new(|p| {
                    p.numprocs = 3;
                    p.cmd = "x".into();
                    p.argv = vec!["x".into()];
                }),
                Some(Change::Respawn),
            ),
        ];
        for (what, edit, expected) in cases {
            let mut new = base.clone();
            edit(&mut new);
            assert_eq!(classify(&base, &new), expected, "changing {what}");
        }
    }

    fn config_of(programs: &str) -> Config {
        match crate::config::parse(programs, Path::new("/tmp/t.yaml")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_summary_names_every_kind_of_change_a_program_had() {
        let old =
            config_of("programs:\n  both: {cmd: a}\n  respawn: {cmd: a}\n  policy: {cmd: a}\n");
        // numprocs + stoptime; numprocs + umask + stoptime; autostart.
        let new = config_of(
            "programs:\n  both: {cmd: a, numprocs: 3, stoptime: 1}\n  respawn: {cmd: a, numprocs: 2, umask: '022', stoptime: 1}\n  policy: {cmd: a, autostart: false}\n",
        );
        let s = plan(&old, &new).summary();
        assert_eq!(s.scaled, ["both", "respawn"]);
        assert_eq!(s.updated, ["both", "policy"]);
        assert_eq!(s.restarted, ["respawn"]);
    }
}
