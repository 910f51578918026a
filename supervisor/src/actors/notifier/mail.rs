//! Mail text, pure (subject and body of one event or of a digest, with the
//! instances' stderr tails), and its way out: the lettre message and the
//! SMTP transport built from the `email:` section.

use crate::config::email::Secret;
use crate::config::{EmailConfig, NotifyEvent, SmtpTls};
use crate::sys::exit::ExitStatus;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, Tokio1Executor};
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::SystemTime;

pub(super) type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// What a mail says about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    pub program: String,
    /// `NAME:INDEX`.
    pub instance: String,
    pub event: NotifyEvent,
    pub time: SystemTime,
    /// How the child ended, when the event is about an exit.
    pub exit: Option<ExitStatus>,
    pub restarts: u32,
    /// The status line's description (`exited too quickly …, 4 attempts`).
    pub detail: String,
}

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Vec<Address>,
    pub subject: String,
    pub body: String,
}

/// The last lines of one instance's stderr, as a mail shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub instance: String,
    pub path: Option<PathBuf>,
    /// The lines, or why there are none.
    pub lines: Result<Vec<String>, String>,
}

/// `[taskmaster HOST] web:0 FATAL`, or `[taskmaster HOST] web: 7 events`.
pub fn subject(host: &str, program: &str, events: &[Noted], omitted: usize) -> String {
    let total = events.len() + omitted;
    match events {
        [one] if total == 1 => format!("[taskmaster {host}] {} {}", one.instance, one.event),
        _ => format!("[taskmaster {host}] {program}: {total} events"),
    }
}

/// The body: the facts of each event, then the stderr tails.
pub fn body(host: &str, program: &str, events: &[Noted], omitted: usize, tails: &[Tail]) -> String {
    let mut b = String::new();
    match events {
        [one] if omitted == 0 => {
            let _ = writeln!(b, "taskmaster on {host}: {} {}\n", one.instance, one.event);
            let _ = writeln!(b, "host:      {host}");
            let _ = writeln!(b, "program:   {}", one.program);
            let _ = writeln!(b, "instance:  {}", one.instance);
            let _ = writeln!(b, "event:     {}", one.event);
            let _ = writeln!(b, "time:      {}", utc(one.time));
            let _ = writeln!(b, "exit:      {}", exit_text(one.exit));
            let _ = writeln!(b, "restarts:  {}", one.restarts);
            let _ = writeln!(b, "state:     {}", one.detail);
        }
        _ => {
            let total = events.len() + omitted;
            let _ = writeln!(b, "taskmaster on {host}: {total} events for {program}\n");
            let _ = writeln!(b, "host:      {host}");
            let _ = writeln!(b, "program:   {program}\n");
            for e in events {
                let _ = writeln!(
                    b,
                    "{}  {}  {}  exit: {}  restarts: {}",
                    utc(e.time),
                    e.instance,
                    e.event,
                    exit_text(e.exit),
                    e.restarts
                );
                if e.event == NotifyEvent::Fatal {
                    let _ = writeln!(b, "    {}", e.detail);
                }
            }
            if omitted > 0 {
                let _ = writeln!(b, "... and {omitted} more event(s), not listed");
            }
        }
    }
    for tail in tails {
        b.push('\n');
        match (&tail.lines, &tail.path) {
            (Ok(lines), Some(path)) => {
                let _ = writeln!(
                    b,
                    "Last {} line(s) of {}'s stderr ({}):",
                    lines.len(),
                    tail.instance,
                    path.display()
                );
                for line in lines {
                    let _ = writeln!(b, "    {line}");
                }
            }
            (Ok(_), None) => {
                let _ = writeln!(b, "{}'s stderr is discarded (stderr: null).", tail.instance);
            }
            (Err(why), _) => {
                let _ = writeln!(b, "{}'s stderr cannot be shown: {why}", tail.instance);
            }
        }
    }
    b
}

fn exit_text(exit: Option<ExitStatus>) -> String {
    exit.map_or_else(|| "-".to_string(), |e| e.to_string())
}

/// `2026-11-24 14:22:21.042 UTC` (milliseconds tell a digest's events apart).
pub fn utc(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, millis) = (since.as_secs(), since.subsec_millis());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The name this host gives itself (in EHLO and in subjects).
pub fn host_name() -> String {
    match ClientId::default() {
        ClientId::Domain(name) => name,
        other => other.to_string(),
    }
}
/// Why a send attempt failed.
#[derive(Debug)]
pub(super) enum SendError {
    /// Trying again cannot help (bad settings, a 5xx answer).
    Permanent(String),
    /// Worth a retry (unreachable, timeout, 4xx).
    Transient(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Permanent(e) | SendError::Transient(e) => f.write_str(e),
        }
    }
}

pub(super) fn list(to: &[Address]) -> String {
    to.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The transport of `email`, with `password` as credentials.
pub(super) fn transport(
    email: &EmailConfig,
    password: Option<&Secret>,
    ca: Option<&[u8]>,
) -> Result<Transport, String> {
    let smtp = &email.smtp;
    let mut builder = Transport::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .timeout(Some(smtp.timeout));
    // The built-in (Mozilla) roots, and the CA file's certificates if any.
    let tls = |host: &str| {
        let mut params = TlsParameters::builder(host.to_string());
        if let Some(pem) = ca {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| format!("cannot use the CA file (email.smtp.ca_file): {e}"))?;
            params = params.add_root_certificate(cert);
        }
        params
            .build()
            .map_err(|e| format!("cannot set up TLS for {host}: {e}"))
    };
    builder = match smtp.tls {
        SmtpTls::None => builder.tls(Tls::None),
        SmtpTls::StartTls => builder.tls(Tls::Required(tls(&smtp.host)?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(&smtp.host)?)),
    };
    if let (Some(user), Some(password)) = (&smtp.username, password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

pub(super) fn build_message(email: &EmailConfig, mail: &Mail) -> Result<lettre::Message, String> {
    let mut builder = lettre::Message::builder()
        .from(email.from.clone())
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        builder = builder.to(to.clone().into());
    }
    builder
        .body(mail.body.clone())
        .map_err(|e| format!("cannot build the mail: {e}"))
}
