//! The Notifier's pure parts (throttle, mail text, queue) as tables, and
//! the process actor's reports with real processes.

use super::*;
use crate::actors::process::{self, InstanceContext, ProcessActor};
use crate::actors::reaper::{ChildTable, Reaper};
use crate::config::{AutoRestart, NotifyEvent};
use crate::sys::exit::ExitStatus;
use std::collections::BTreeSet;
use std::path::PathBuf;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The events of each mail, as their numbers.
fn plan(throttle: Duration, at: &[u64]) -> Vec<(u64, Vec<u64>, usize)> {
    let events: Vec<(Duration, u64)> = at.iter().map(|t| (ms(*t), *t)).collect();
    schedule(throttle, &events)
        .into_iter()
        .map(|(when, d)| (when.as_millis() as u64, d.events, d.omitted))
        .collect()
}

#[test]
fn the_first_event_goes_at_once_and_the_rest_of_the_window_is_one_digest() {
    // A crash loop: 20 exits, 100 ms apart, throttle 2 s.
    let exits: Vec<u64> = (0..20).map(|i| i * 100).collect();
    assert_eq!(
        plan(ms(2000), &exits),
        vec![(0, vec![0], 0), (2000, exits[1..].to_vec(), 0)]
    );
}

#[test]
fn a_long_burst_is_one_digest_per_window() {
    // 20 events 250 ms apart over 5 s, throttle 2 s: one at once, then one
    // digest at each window end.
    let at: Vec<u64> = (0..20).map(|i| i * 250).collect();
    let mails = plan(ms(2000), &at);
    let times: Vec<u64> = mails.iter().map(|m| m.0).collect();
    assert_eq!(times, vec![0, 2000, 4000, 6000]);
    assert_eq!(mails[1].1, vec![250, 500, 750, 1000, 1250, 1500, 1750]);
    assert_eq!(
        mails[2].1,
        vec![2000, 2250, 2500, 2750, 3000, 3250, 3500, 3750]
    );
    assert_eq!(mails[3].1, vec![4000, 4250, 4500, 4750]);
    let sent: usize = mails.iter().map(|m| m.1.len()).sum();
    assert_eq!(sent, 20, "every event is in exactly one mail");
}

#[test]
fn quiet_periods_send_each_first_event_at_once() {
    assert_eq!(
        plan(ms(2000), &[0, 10_000, 12_500]),
        vec![
            (0, vec![0], 0),
            (10_000, vec![10_000], 0),
            (12_500, vec![12_500], 0)
        ]
    );
    // Batched at 1000, flushed at 2000, which opens a window until 4000:
    // 3000 is batched too, and its digest opens a window until 6000 that
    // batches 5000; 9000 comes after a quiet window.
    assert_eq!(
        plan(ms(2000), &[0, 1000, 3000, 5000, 9000]),
        vec![
            (0, vec![0], 0),
            (2000, vec![1000], 0),
            (4000, vec![3000], 0),
            (6000, vec![5000], 0),
            (9000, vec![9000], 0)
        ]
    );
}

#[test]
fn throttle_zero_sends_every_event() {
    assert_eq!(
        plan(Duration::ZERO, &[0, 0, 5]),
        vec![(0, vec![0], 0), (0, vec![0], 0), (5, vec![5], 0)]
    );
}

#[test]
fn a_digest_keeps_a_bounded_number_of_events_and_counts_the_rest() {
    let at: Vec<u64> = (0..=150).collect();
    let mails = plan(ms(1000), &at);
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].1.len(), DIGEST_MAX_EVENTS);
    assert_eq!(mails[1].2, 150 - DIGEST_MAX_EVENTS);
    assert_eq!(mails[1].1[0], 1);
}

fn noted(instance: &str, event: NotifyEvent, exit: Option<ExitStatus>) -> Noted {
    Noted {
        program: "web".into(),
        instance: instance.into(),
        event,
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(951_827_696),
        exit,
        restarts: 3,
        detail: "exited too quickly (exit status 1), 4 attempts".into(),
    }
}

#[test]
fn subjects_name_the_instance_and_event_or_count_a_digest() {
    let fatal = noted("web:0", NotifyEvent::Fatal, Some(ExitStatus::Code(1)));
    assert_eq!(
        subject("box", "web", std::slice::from_ref(&fatal), 0),
        "[taskmaster box] web:0 FATAL"
    );
    let exit = noted("web:1", NotifyEvent::UnexpectedExit, None);
    assert_eq!(
        subject("box", "web", std::slice::from_ref(&exit), 0),
        "[taskmaster box] web:1 UNEXPECTED EXIT"
    );
    assert_eq!(
        subject("box", "web", &[fatal.clone(), exit.clone()], 0),
        "[taskmaster box] web: 2 events"
    );
    // Counted events are events too.
    assert_eq!(
        subject("box", "web", &[fatal], 6),
        "[taskmaster box] web: 7 events"
    );
}

#[test]
fn a_body_has_every_fact_and_the_stderr_tail() {
    let killed = ExitStatus::Signaled {
        signal: 9,
        core_dumped: false,
    };
    let e = noted("web:0", NotifyEvent::Fatal, Some(killed));
    let tail = Tail {
        instance: "web:0".into(),
        path: Some(PathBuf::from("/logs/web-0.stderr.log")),
        lines: Ok(vec!["panic: out of cheese".into()]),
    };
    let text = body("box", "web", &[e], 0, &[tail]);
    for needle in [
        "host:      box",
        "program:   web",
        "instance:  web:0",
        "event:     FATAL",
        "time:      2000-02-29 12:34:56.000 UTC",
        "exit:      killed by SIGKILL",
        "restarts:  3",
        "4 attempts",
        "Last 1 line(s) of web:0's stderr (/logs/web-0.stderr.log):",
        "    panic: out of cheese",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let discarded = Tail {
        instance: "web:1".into(),
        path: None,
        lines: Ok(Vec::new()),
    };
    let digest = body(
        "box",
        "web",
        &[
            noted(
                "web:0",
                NotifyEvent::UnexpectedExit,
                Some(ExitStatus::Code(2)),
            ),
            noted(
                "web:1",
                NotifyEvent::UnexpectedExit,
                Some(ExitStatus::Code(3)),
            ),
        ],
        4,
        &[discarded],
    );
    assert!(digest.contains("6 events for web"), "{digest}");
    assert!(
        digest.contains("web:1  UNEXPECTED EXIT  exit: exit status 3"),
        "{digest}"
    );
    assert!(digest.contains("and 4 more event(s)"), "{digest}");
    assert!(digest.contains("web:1's stderr is discarded"), "{digest}");
}

#[test]
fn utc_dates_are_civil() {
    let at = |s: u64| utc(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    assert_eq!(at(0), "1970-01-01 00:00:00.000 UTC");
    assert_eq!(at(951_827_696), "2000-02-29 12:34:56.000 UTC");
    assert_eq!(at(1_798_761_599), "2026-12-31 23:59:59.000 UTC");
    let later = SystemTime::UNIX_EPOCH + Duration::from_millis(1_798_761_599_042);
    assert_eq!(utc(later), "2026-12-31 23:59:59.042 UTC");
}

#[test]
fn the_queue_drops_the_oldest_and_counts() {
    let mut q = MailQueue::new(3);
    for i in 0..3 {
        assert_eq!(q.push(i), None);
    }
    assert_eq!(q.push(3), Some(0));
    assert_eq!(q.push(4), Some(1));
    assert_eq!(q.dropped(), 2);
    assert_eq!(q.len(), 3);
    assert_eq!(
        (q.pop(), q.pop(), q.pop(), q.pop()),
        (Some(2), Some(3), Some(4), None)
    );
    assert!(q.is_empty());
}

#[test]
fn secret_env_keeps_every_password_variable_and_shows_names_only() -> TestResult {
    let email = |var: &str| -> Result<EmailConfig, Box<dyn std::error::Error>> {
        let text = format!(
            "email: {{smtp: {{host: h, username: u, password_env: {var}}}, from: a@b.c}}\nprograms: {{}}\n"
        );
        let config = crate::config::parse(&text, std::path::Path::new("/tmp/tm.yaml"))?;
        Ok(config.email.ok_or("no email")?)
    };
    let env = SecretEnv::of(Some(&email("OLD_PW")?));
    let shared = env.clone();
    // A reload to another variable, then to no email at all.
    env.add(Some(&email("NEW_PW")?));
    env.add(None);
    assert_eq!(
        shared.names(),
        vec!["OLD_PW".to_string(), "NEW_PW".to_string()]
    );
    assert_eq!(format!("{env:?}"), "SecretEnv([\"OLD_PW\", \"NEW_PW\"])");
    Ok(())
}

// ----- process actors report to the Notifier ----------------------------------

/// Stands in for the Notifier: records every event.
struct Collector(Arc<Mutex<Vec<InstanceEvent>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<InstanceEvent> for Collector {
    type Result = ();
    fn handle(&mut self, msg: InstanceEvent, _: &mut Self::Context) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(msg);
    }
}

fn rule(on: &[NotifyEvent]) -> Result<NotifyRule, Box<dyn std::error::Error>> {
    Ok(NotifyRule {
        on: on.iter().copied().collect::<BTreeSet<_>>(),
        to: vec!["ops@example.com".parse()?],
        throttle: Duration::ZERO,
    })
}

#[test]
fn instances_report_their_transitions_only_when_the_program_has_rules() -> TestResult {
    let _serial = process::tests::SERIAL
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir()?;
    let logs = dir.path().join("logs");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let program = |name: &str| {
        let mut p = ProgramConfig::with_defaults(name, "sh -c 'echo oops >&2; exit 3'", &logs);
        p.starttime = Duration::ZERO;
        p.autorestart = AutoRestart::Unexpected;
        p.maxrestarts = 1;
        p.restartwindow = Duration::from_secs(60);
        p
    };
    let mut loud = program("loud");
    loud.notify = vec![rule(&NotifyEvent::ALL)?];
    let quiet = program("quiet");
    let table = ChildTable::default();
    let collected = Arc::clone(&seen);
    let states = actix_rt::System::new().block_on(async move {
        Reaper::new(table.clone())?.start();
        let events = Collector(collected).start().recipient();
        let start = |p: ProgramConfig| {
            ProcessActor::new(InstanceContext {
                program: Arc::new(p),
                index: 0,
                children: table.clone(),
                events: Some(events.clone()),
                secret_env: SecretEnv::default(),
                hooks: Default::default(),
            })
            .start()
        };
        let (loud, quiet) = (start(loud), start(quiet));
        loud.do_send(process::Start);
        quiet.do_send(process::Start);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut states = Vec::new();
        loop {
            states.clear();
            for a in [&loud, &quiet] {
                states.push(a.send(process::GetInfo).await?.state);
            }
            if states.iter().all(|s| *s == proto::ProcessState::Fatal) || Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(ms(5)).await;
        }
        // Anything in flight to the collector arrives before this answer.
        Ok::<_, Box<dyn std::error::Error>>(states)
    })?;
    assert!(
        states.iter().all(|s| *s == proto::ProcessState::Fatal),
        "{states:?}"
    );
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(
        seen.iter().all(|e| e.program.name == "loud"),
        "quiet reported"
    );
    let kinds: Vec<NotifyEvent> = seen.iter().map(|e| e.noted.event).collect();
    use NotifyEvent::*;
    // Spawned straight to RUNNING (starttime 0), exits unexpectedly, is
    // restarted once (maxrestarts 1), exits again, gives up.
    assert_eq!(
        kinds,
        vec![Started, UnexpectedExit, Started, UnexpectedExit, Fatal]
    );
    let last = seen.last().ok_or("no event")?;
    assert_eq!(last.noted.instance, "loud:0");
    assert_eq!(last.noted.exit, Some(ExitStatus::Code(3)));
    assert_eq!(last.noted.restarts, 1);
    assert!(
        last.noted.detail.contains("restarting too often"),
        "{:?}",
        last.noted
    );
    assert!(last.stderr.is_some());
    Ok(())
}

#[test]
fn transports_build_for_every_tls_mode_with_credentials() -> TestResult {
    for tls in ["none", "starttls", "tls"] {
        let text = format!(
            "email: {{smtp: {{host: smtp.example.com, tls: {tls}, username: u, password_env: PW}}, from: a@b.c}}\nprograms: {{}}\n"
        );
        let config = crate::config::parse(&text, std::path::Path::new("/tmp/tm.yaml"))?;
        let email = config.email.ok_or("no email")?;
        // rustls needs its crypto provider (ring) here: a missing one panics.
        let secret = Secret::new("pw".into());
        let built = transport(&email, Some(&secret), None);
        assert!(built.is_ok(), "tls: {tls}: {:?}", built.err());
        let mail = Mail {
            to: vec!["ops@example.com".parse()?],
            subject: "s".into(),
            body: "b\n".into(),
        };
        assert!(build_message(&email, &mail).is_ok());
    }
    Ok(())
}
