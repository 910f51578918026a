//! Reload planning: the difference between the running config and a newly
//! read one, program by program, with no side effects.
//!
//! Each changed program is classified by the most disruptive class among its
//! changed keys (see [`crate::config::PROGRAM_KEYS`]): a spawn-affecting key
//! means its instances are restarted; `numprocs` means scaling in place;
//! policy keys (and `autostart`) are applied to the live actors. Unchanged
//! programs are not touched at all. The Registry carries the plan out.

use crate::actors::program::Change;
use crate::config::{Config, KeyClass, PROGRAM_KEYS, ProgramConfig, changed_keys};
use proto::ReloadSummary;
use std::sync::Arc;

/// What a reload will do.
#[derive(Debug, Default)]
pub struct ReloadPlan {
    pub added: Vec<Arc<ProgramConfig>>,
    pub removed: Vec<String>,
    /// Programs to update, with their new config and how.
    pub changed: Vec<(Arc<ProgramConfig>, Change)>,
    pub unchanged: Vec<String>,
    /// Non-program sections that changed, said in words.
    pub notes: Vec<String>,
}

fn class_of(key: &str) -> Option<KeyClass> {
    PROGRAM_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, c)| *c)
}

/// How to apply `new` over `old`; `None` when nothing changed.
pub fn classify(old: &ProgramConfig, new: &ProgramConfig) -> Option<Change> {
    let keys = changed_keys(old, new);
    if keys.is_empty() {
        return None;
    }
    let classes: Vec<_> = keys.iter().filter_map(|k| class_of(k)).collect();
    Some(if classes.contains(&KeyClass::Spawn) {
        Change::Respawn
    } else if classes.contains(&KeyClass::Scale) {
        Change::Scale
    } else {
        Change::Policy
    })
}

/// Compares two configs.
pub fn plan(old: &Config, new: &Config) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    for (name, old_program) in &old.programs {
        match new.programs.get(name) {
            None => plan.removed.push(name.clone()),
            Some(new_program) => match classify(old_program, new_program) {
                None => plan.unchanged.push(name.clone()),
                Some(change) => plan.changed.push((new_program.clone(), change)),
            },
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
        let names = |change: Change| -> Vec<String> {
            self.changed
                .iter()
                .filter(|(_, c)| *c == change)
                .map(|(p, _)| p.name.clone())
                .collect()
        };
        ReloadSummary {
            added: self.added.iter().map(|p| p.name.clone()).collect(),
            removed: self.removed.clone(),
            restarted: names(Change::Respawn),
            scaled: names(Change::Scale),
            updated: names(Change::Policy),
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
}
