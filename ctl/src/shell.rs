//! The interactive shell: reedline with history and Tab completion.
//!
//! Completion knows the command names and aliases, and the live program and
//! instance names (refreshed with a `status` at start, after every command,
//! and when Tab is pressed on names older than a second, so a reload made by
//! another client is completable at once); what a verb's arguments complete
//! to (signal names after `signal`, `stdout`/`stderr` after `tail TARGET`)
//! is in the verb's file ([`crate::commands`]). The completion logic is the
//! pure [`suggest`], unit-tested; the pty test drives the real thing.
//!
//! Colours: typed input is drawn in the terminal's own colours (reedline's
//! default highlighter paints it white, unreadable on a light background),
//! and `NO_COLOR` turns every colour off.
//!
//! A line typed here runs exactly as a line read from a pipe
//! ([`Runner::line`]); the shell adds only the prompt, history, completion and
//! Ctrl-C. It never dies of a failed command: errors are printed and the
//! prompt comes back; a vanished daemon is reported and reconnected to on the
//! next command.

use crate::command;
use crate::commands::{Completion, command_names};
use crate::connect::ConnectOptions;
use crate::run::{Mode, Runner, Step};
use crate::{Code, finish, interrupt};
use proto::ProcessInfo;
use reedline::{
    ColumnarMenu, Completer, CompletionResult, Emacs, FileBackedHistory, Highlighter, KeyCode,
    KeyModifiers, MenuBuilder, Prompt, PromptEditMode, PromptHistorySearch,
    PromptHistorySearchStatus, Reedline, ReedlineEvent, ReedlineMenu, Span, StyledText, Suggestion,
    default_emacs_keybindings,
};
use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines kept in the history file.
const HISTORY_SIZE: usize = 1000;

/// The names completion offers, as last seen from the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Program names, sorted, unique.
    pub programs: Vec<String>,
    /// `program:index`, in status order.
    pub instances: Vec<String>,
}

impl Names {
    pub fn from_status(infos: &[ProcessInfo]) -> Self {
        let mut programs: Vec<String> = infos.iter().map(|i| i.program.clone()).collect();
        programs.sort();
        programs.dedup();
        Self {
            programs,
            instances: infos.iter().map(|i| i.name.clone()).collect(),
        }
    }

    /// `all` (if wanted), the programs, then the instances.
    pub fn targets(&self, with_all: bool) -> Vec<String> {
        let mut v = Vec::with_capacity(self.programs.len() + self.instances.len() + 1);
        if with_all {
            v.push("all".to_string());
        }
        v.extend(self.programs.iter().cloned());
        v.extend(self.instances.iter().cloned());
        v
    }
}

/// Completions for `line` with the cursor at byte `pos`.
pub fn suggest(line: &str, pos: usize, names: &Names) -> Vec<Suggestion> {
    let before = line.get(..pos).unwrap_or(line);
    let start = before
        .rfind(|c: char| c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let prefix = &before[start..];
    let words: Vec<&str> = before[..start].split_whitespace().collect();
    let candidates: Vec<String> = match words.split_first() {
        None => command_names(),
        Some((cmd, args)) => command::spec(cmd).map_or_else(Vec::new, |spec| {
            (spec.complete)(&Completion {
                args,
                prefix,
                names,
            })
        }),
    };
    let mut seen = std::collections::HashSet::new();
    candidates
        .into_iter()
        .filter(|c| c.starts_with(prefix) && seen.insert(c.clone()))
        .map(|value| Suggestion {
            value,
            span: Span {
                start,
                end: before.len(),
            },
            append_whitespace: true,
            ..Suggestion::default()
        })
        .collect()
}

/// Names older than this are fetched again when completion is asked for:
/// another client may have reloaded. A `status` costs a few milliseconds.
const STALE: Duration = Duration::from_secs(1);

/// The names and when they were last asked for.
#[derive(Debug, Default)]
struct Known {
    names: Names,
    at: Option<Instant>,
}

/// reedline's view of [`suggest`], over names kept fresh by the shell loop
/// (after each command) and by itself (on Tab, when stale).
#[derive(Debug, Clone, Default)]
pub struct ShellCompleter {
    known: Arc<Mutex<Known>>,
    /// Fetches the names on a connection of its own, so completion never
    /// disturbs the shell's; `None` in unit tests.
    source: Option<Arc<Mutex<Runner>>>,
}

impl ShellCompleter {
    fn new(options: ConnectOptions) -> Self {
        Self {
            known: Arc::default(),
            source: Some(Arc::new(Mutex::new(Runner::new(options, Mode::Piped)))),
        }
    }

    fn set(&self, names: Names) {
        if let Ok(mut k) = self.known.lock() {
            *k = Known {
                names,
                at: Some(Instant::now()),
            };
        }
    }

    /// The names, fetched first if they are older than [`STALE`]. A failed
    /// fetch counts as a fetch, so a daemon that is gone costs one attempt a
    /// second, not one per key press.
    fn names(&self) -> Names {
        let stale = self
            .known
            .lock()
            .is_ok_and(|k| k.at.is_none_or(|t| t.elapsed() >= STALE));
        if stale && let Some(source) = &self.source {
            let fresh = source.lock().ok().and_then(|mut r| r.instances());
            match fresh {
                Some(infos) => self.set(Names::from_status(&infos)),
                None => {
                    if let Ok(mut k) = self.known.lock() {
                        k.at = Some(Instant::now());
                    }
                }
            }
        }
        self.known
            .lock()
            .map(|k| k.names.clone())
            .unwrap_or_default()
    }
}

impl Completer for ShellCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let suggestions = suggest(line, pos, &self.names());
        CompletionResult::fresh(suggestions)
    }
}

/// `taskmaster> `.
#[derive(Debug, Clone, Copy)]
struct ShellPrompt;

impl Prompt for ShellPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed("taskmaster> ")
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let failing = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({failing}reverse-search: {}) ", search.term))
    }
}

/// `$TASKMASTER_HISTORY`, else `~/.taskmaster_history`; `None` without a home.
pub fn history_path() -> Option<PathBuf> {
    history_path_from(
        std::env::var_os("TASKMASTER_HISTORY"),
        std::env::var_os("HOME"),
    )
}

fn history_path_from(
    over: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    match (
        over.filter(|p| !p.is_empty()),
        home.filter(|h| !h.is_empty()),
    ) {
        (Some(p), _) => Some(PathBuf::from(p)),
        (None, Some(h)) => Some(PathBuf::from(h).join(".taskmaster_history")),
        (None, None) => None,
    }
}

/// Draws typed input in the terminal's default style.
#[derive(Debug, Clone, Copy)]
struct PlainInput;

impl Highlighter for PlainInput {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut text = StyledText::default();
        text.push((Default::default(), line.to_string()));
        text
    }
}

/// Colours are off when `NO_COLOR` is set to anything non-empty
/// (no-color.org).
fn colors_wanted(no_color: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

fn editor(completer: ShellCompleter) -> Reedline {
    let mut keys = default_emacs_keybindings();
    keys.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu("completion_menu".into()),
            ReedlineEvent::MenuNext,
        ]),
    );
    let menu = ColumnarMenu::default().with_name("completion_menu");
    let mut editor = Reedline::create()
        .with_completer(Box::new(completer))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
        .with_edit_mode(Box::new(Emacs::new(keys)))
        .with_quick_completions(true)
        .with_partial_completions(true)
        .with_highlighter(Box::new(PlainInput))
        .with_ansi_colors(colors_wanted(std::env::var_os("NO_COLOR")));
    if let Some(path) = history_path() {
        match FileBackedHistory::with_file(HISTORY_SIZE, path.clone()) {
            Ok(h) => editor = editor.with_history(Box::new(h)),
            Err(e) => eprintln!(
                "warning: history file {} unusable ({e}); history will not be saved",
                path.display()
            ),
        }
    }
    editor
}

/// Runs the shell until `quit`, `exit` or Ctrl-D.
pub fn run(options: ConnectOptions, json: bool) -> Code {
    if let Err(e) = interrupt::install() {
        eprintln!("warning: cannot catch Ctrl-C ({e}); it will end the shell");
    }
    let completer = ShellCompleter::new(options.clone());
    let mut line_editor = editor(completer.clone());
    let mut runner = Runner::new(options, Mode::Shell);
    println!(
        "taskmasterctl {}: type help for the commands",
        proto::SUITE_VERSION
    );
    match runner.connect() {
        Ok(()) => refresh(&mut runner, &completer),
        Err(e) => eprintln!("error: {e}\n(the shell stays open; commands will try to reconnect)"),
    }
    loop {
        let line = match line_editor.read_line(&ShellPrompt) {
            Ok(reedline::Signal::Success(line)) => line,
            Ok(reedline::Signal::CtrlC) => continue,
            Ok(reedline::Signal::CtrlD) => break,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("error: terminal: {e}");
                break;
            }
        };
        // Saved now, not only at exit, so a killed shell keeps its history.
        let _ = line_editor.sync_history();
        let step = runner.line(
            &line,
            json,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
        let asked = match step {
            Step::Empty => continue,
            Step::Quit => break,
            Step::Ran { result, asked } => {
                let code = finish(result);
                let _ = std::io::stdout().flush();
                if code == Code::Unreachable {
                    eprintln!("(the shell stays open; the next command will try to reconnect)");
                }
                asked
            }
        };
        if asked {
            refresh(&mut runner, &completer);
        }
    }
    let _ = line_editor.sync_history();
    Code::Ok
}

fn refresh(runner: &mut Runner, completer: &ShellCompleter) {
    if let Some(infos) = runner.instances() {
        completer.set(Names::from_status(&infos));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ProcessState;

    fn names() -> Names {
        let info = |program: &str, index: u32| ProcessInfo {
            name: format!("{program}:{index}"),
            program: program.into(),
            index,
            state: ProcessState::Running,
            pid: None,
            uptime_s: 0.0,
            exitcode: None,
            restarts: 0,
            description: String::new(),
            ready: false,
            health: None,
            status_text: None,
        };
        Names::from_status(&[info("web", 0), info("web", 1), info("worker", 0)])
    }

    fn values(line: &str) -> Vec<String> {
        suggest(line, line.len(), &names())
            .into_iter()
            .map(|s| s.value)
            .collect()
    }

    #[test]
    fn first_word_completes_commands() {
        assert_eq!(values("st"), ["status", "start", "stop"]);
        assert_eq!(values("ex"), ["exit"]);
        assert!(values("").contains(&"notify-test".to_string()));
    }

    #[test]
    fn targets_complete_programs_and_instances() {
        assert_eq!(
            values("status w"),
            ["web", "worker", "web:0", "web:1", "worker:0"]
        );
        assert_eq!(values("stop web:"), ["web:0", "web:1"]);
        assert_eq!(values("start a"), ["all"]);
        assert_eq!(values("restart --"), ["--no-wait"]);
        assert_eq!(values("start --no-wait wor"), ["worker", "worker:0"]);
        assert_eq!(values("notify-test w"), ["web", "worker"]);
    }

    #[test]
    fn signal_then_targets() {
        assert_eq!(values("signal US"), ["USR1", "USR2"]);
        assert_eq!(values("signal HUP wo"), ["worker", "worker:0"]);
    }

    #[test]
    fn tail_target_then_stream() {
        assert_eq!(values("tail web:"), ["web:0", "web:1"]);
        assert_eq!(values("tail -f -n 5 web:0 "), ["stdout", "stderr"]);
        assert_eq!(values("tail web:0 stde"), ["stderr"]);
        assert!(values("tail -n ").is_empty());
        assert!(values("tail web:0 stdout ").is_empty());
    }

    #[test]
    fn span_covers_the_word_under_the_cursor() {
        let s = suggest("stop wor web", 8, &names());
        assert!(!s.is_empty());
        assert!(s.iter().all(|s| s.span == Span { start: 5, end: 8 }));
        assert!(s.iter().all(|s| s.append_whitespace));
    }

    #[test]
    fn typed_input_keeps_the_terminals_colours_and_no_color_turns_colour_off() {
        let styled = PlainInput.highlight("status web", 3);
        assert_eq!(styled.buffer.len(), 1);
        assert_eq!(styled.buffer[0].1, "status web");
        assert_eq!(styled.buffer[0].0, Default::default());
        assert!(colors_wanted(None));
        assert!(colors_wanted(Some("".into())));
        assert!(!colors_wanted(Some("1".into())));
    }

    #[test]
    fn history_path_prefers_the_env_override_then_home() {
        assert_eq!(
            history_path_from(Some("/t/h".into()), Some("/home/u".into())),
            Some(PathBuf::from("/t/h"))
        );
        assert_eq!(
            history_path_from(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.taskmaster_history"))
        );
        assert_eq!(history_path_from(None, None), None);
    }
}
