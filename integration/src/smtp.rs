//! A small but real SMTP server on loopback, for the email tests.
//!
//! It speaks enough RFC 5321 for a real client (lettre in the daemon):
//! greeting, `EHLO`/`HELO` (advertising `AUTH PLAIN LOGIN`), `AUTH PLAIN`
//! and `AUTH LOGIN` (credentials are recorded, so a test can see which
//! password arrived), `MAIL FROM`, `RCPT TO`, `DATA` with dot-unstuffing,
//! `RSET`, `NOOP`, `QUIT`. Every accepted message is kept as a
//! [`ReceivedMail`], whose body is decoded (quoted-printable or base64) for
//! assertions.
//!
//! [`SmtpServer::silent`] accepts connections and never says a word: the
//! hung server a mailer must time out on. [`closed_port`] is a port nobody
//! listens on: the server that is down.
//!
//! [`SmtpServer::start_tls`] speaks TLS with a certificate from a
//! [`TestCa`] (made by rcgen, served by rustls): from the first byte
//! ([`TlsMode::Implicit`]) or after `STARTTLS` ([`TlsMode::StartTls`]), so a
//! test can prove a real handshake against a CA it hands to the daemon.
//!
//! One thread accepts, one thread serves each connection; every socket has
//! a read timeout, and `Drop` stops the accept loop and closes every
//! connection, so a test never leaks a thread that waits forever.

use crate::{HarnessError, wait_until};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connection may stay silent before the server drops it.
const IDLE: Duration = Duration::from_secs(30);

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses, in order.
    pub to: Vec<String>,
    /// The message as sent after `DATA` (headers and body), `\n` line ends.
    pub data: String,
    /// `(user, password)` of the session's `AUTH`, if any.
    pub auth: Option<(String, String)>,
}

impl ReceivedMail {
    /// A header's value, unfolded; the first of that name (any case).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\n\n").unwrap_or((&self.data, ""));
        let mut value: Option<String> = None;
        for line in head.lines() {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_string());
            }
        }
        value
    }

    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The body, decoded according to its `Content-Transfer-Encoding`.
    pub fn body(&self) -> String {
        let (_, raw) = self.data.split_once("\n\n").unwrap_or(("", &self.data));
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "quoted-printable" => String::from_utf8_lossy(&decode_quoted_printable(raw)).into(),
            "base64" => String::from_utf8_lossy(&decode_base64(raw)).into(),
            _ => raw.to_string(),
        }
    }
}

struct Shared {
    mails: Mutex<Vec<ReceivedMail>>,
    /// Connections accepted so far.
    connections: AtomicUsize,
    stop: AtomicBool,
    /// Every open connection, to close on drop.
    open: Mutex<Vec<TcpStream>>,
    silent: bool,
    tls: Option<(TlsMode, Arc<ServerConfig>)>,
}

/// How a TLS server protects its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain greeting, `STARTTLS` advertised, then the handshake.
    StartTls,
    /// The handshake first (SMTPS).
    Implicit,
}

/// A certificate authority made for one test, and a server certificate it
/// signed.
pub struct TestCa {
    /// The CA's certificate, PEM: what the daemon must be told to trust.
    pub ca_pem: String,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A fresh CA, and a server certificate for `names` (DNS names or IP
    /// addresses) signed by it.
    pub fn new(names: &[&str]) -> Result<Self, HarnessError> {
        let fail =
            |e: rcgen::Error| HarnessError::Build(format!("cannot make a test certificate: {e}"));
        let ca_key = rcgen::KeyPair::generate().map_err(fail)?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "taskmaster test CA");
        let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .map_err(fail)?
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(fail)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![CertificateDer::from(cert.der().to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                )
            })
            .map_err(|e| HarnessError::Build(format!("cannot set up the test TLS server: {e}")))?;
        Ok(TestCa {
            ca_pem: ca_cert.pem(),
            config: Arc::new(config),
        })
    }
}

/// A session's byte stream, plain or under TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    /// Between the two, while STARTTLS swaps them.
    Gone,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Gone => Ok(0),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Gone => Ok(()),
        }
    }
}

fn tls_stream(config: &Arc<ServerConfig>, tcp: TcpStream) -> std::io::Result<Conn> {
    let session = ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
    Ok(Conn::Tls(Box::new(StreamOwned::new(session, tcp))))
}

/// The server; stops on `Drop`.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("addr", &self.addr)
            .field("silent", &self.shared.silent)
            .field("mails", &self.mails().len())
            .finish()
    }
}

impl SmtpServer {
    /// A server that answers, on 127.0.0.1 and a free port.
    pub fn start() -> Result<Self, HarnessError> {
        Self::launch(false, None)
    }

    /// A server that accepts connections and never answers.
    pub fn silent() -> Result<Self, HarnessError> {
        Self::launch(true, None)
    }

    /// A server that answers under TLS, with `ca`'s server certificate.
    pub fn start_tls(mode: TlsMode, ca: &TestCa) -> Result<Self, HarnessError> {
        Self::launch(false, Some((mode, Arc::clone(&ca.config))))
    }

    fn launch(
        silent: bool,
        tls: Option<(TlsMode, Arc<ServerConfig>)>,
    ) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| HarnessError::io("cannot bind the test SMTP server", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::io("cannot read the SMTP server's address", e))?;
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            silent,
            tls,
        });
        let state = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                state.connections.fetch_add(1, Ordering::SeqCst);
                if let Ok(copy) = stream.try_clone() {
                    lock(&state.open).push(copy);
                }
                if state.silent {
                    continue; // held open in `open`, never answered
                }
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    // A broken or timed-out session just ends.
                    let _ = serve(stream, &state);
                });
            }
        });
        Ok(SmtpServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message accepted so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.mails).clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub fn wait_for_mails(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMail>, HarnessError> {
        if wait_until(timeout, || self.mails().len() >= n) {
            return Ok(self.mails());
        }
        Err(HarnessError::Timeout(format!(
            "{} mail(s) within {timeout:?}, wanted {n}: {:#?}",
            self.mails().len(),
            self.mails()
        )))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in lock(&self.shared.open).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("cannot bind a port to release", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| HarnessError::io("cannot read a bound address", e))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One SMTP session.
fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut starttls = None;
    let conn = match &shared.tls {
        Some((TlsMode::Implicit, config)) => tls_stream(config, stream)?,
        Some((TlsMode::StartTls, config)) => {
            starttls = Some(Arc::clone(config));
            Conn::Plain(stream)
        }
        None => Conn::Plain(stream),
    };
    let mut input = BufReader::new(conn);
    fn reply(input: &mut BufReader<Conn>, text: &str) -> std::io::Result<()> {
        let out = input.get_mut();
        out.write_all(text.as_bytes())?;
        out.write_all(b"\r\n")?;
        out.flush()
    }
    fn read(input: &mut BufReader<Conn>, line: &mut String) -> std::io::Result<bool> {
        line.clear();
        Ok(input.read_line(line)? > 0)
    }
    reply(&mut input, "220 smtp.test ESMTP ready")?;
    let mut auth = None;
    let mut from = None;
    let mut to = Vec::new();
    let mut line = String::new();
    while read(&mut input, &mut line)? {
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        match verb {
            "EHLO" if starttls.is_some() => reply(
                &mut input,
                "250-smtp.test\r\n250-STARTTLS\r\n250-8BITMIME\r\n250 SIZE 10485760",
            )?,
            "EHLO" => reply(
                &mut input,
                "250-smtp.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 10485760",
            )?,
            "STARTTLS" => match starttls.take() {
                Some(config) => {
                    reply(&mut input, "220 2.0.0 ready to start TLS")?;
                    // The client sends nothing more before its handshake.
                    let plain = std::mem::replace(&mut input, BufReader::new(Conn::Gone));
                    let Conn::Plain(tcp) = plain.into_inner() else {
                        return Ok(());
                    };
                    input = BufReader::new(tls_stream(&config, tcp)?);
                    (auth, from) = (None, None);
                    to.clear();
                }
                None => reply(&mut input, "503 5.5.1 TLS already active")?,
            },
            "HELO" => reply(&mut input, "250 smtp.test")?,
            "AUTH" => {
                let mut words = command.split_whitespace().skip(1);
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let credentials = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = match initial {
                            Some(r) => r,
                            None => {
                                reply(&mut input, "334 ")?;
                                if !read(&mut input, &mut line)? {
                                    return Ok(());
                                }
                                line.trim().to_string()
                            }
                        };
                        let decoded = decode_base64(&response);
                        let mut parts = decoded.split(|b| *b == 0).skip(1);
                        let user =
                            String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                        let pass =
                            String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                        Some((user, pass))
                    }
                    "LOGIN" => {
                        reply(&mut input, "334 VXNlcm5hbWU6")?;
                        if !read(&mut input, &mut line)? {
                            return Ok(());
                        }
                        let user =
                            String::from_utf8_lossy(&decode_base64(line.trim())).into_owned();
                        reply(&mut input, "334 UGFzc3dvcmQ6")?;
                        if !read(&mut input, &mut line)? {
                            return Ok(());
                        }
                        let pass =
                            String::from_utf8_lossy(&decode_base64(line.trim())).into_owned();
                        Some((user, pass))
                    }
                    _ => None,
                };
                match credentials {
                    Some(c) => {
                        auth = Some(c);
                        reply(&mut input, "235 2.7.0 authenticated")?;
                    }
                    None => reply(&mut input, "504 5.5.4 unknown mechanism")?,
                }
            }
            "MAIL" => {
                from = Some(angle(&command));
                to.clear();
                reply(&mut input, "250 2.1.0 ok")?;
            }
            "RCPT" => {
                to.push(angle(&command));
                reply(&mut input, "250 2.1.5 ok")?;
            }
            "DATA" => {
                reply(&mut input, "354 end with <CRLF>.<CRLF>")?;
                let mut data = String::new();
                loop {
                    if !read(&mut input, &mut line)? {
                        return Ok(());
                    }
                    let text = line.trim_end_matches(['\r', '\n']);
                    if text == "." {
                        break;
                    }
                    data.push_str(text.strip_prefix('.').unwrap_or(text));
                    data.push('\n');
                }
                lock(&shared.mails).push(ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    auth: auth.clone(),
                });
                reply(&mut input, "250 2.0.0 queued")?;
            }
            "RSET" => {
                from = None;
                to.clear();
                reply(&mut input, "250 2.0.0 ok")?;
            }
            "NOOP" => reply(&mut input, "250 2.0.0 ok")?,
            "QUIT" => {
                reply(&mut input, "221 2.0.0 bye")?;
                return Ok(());
            }
            _ => reply(&mut input, "502 5.5.2 command not recognised")?,
        }
    }
    Ok(())
}

/// The address between `<` and `>` of a `MAIL FROM:<a>` line.
fn angle(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_string()
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        if !soft {
            out.push(b'\n');
        }
    }
    // The split added one line end too many.
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_undo_the_encodings() {
        assert_eq!(decode_base64("AHVzZXIAcGFzcw=="), b"\0user\0pass");
        assert_eq!(
            decode_quoted_printable("caf=C3=A9 au =\nlait\nx=3Dy"),
            "café au lait\nx=y".as_bytes()
        );
    }

    #[test]
    fn headers_unfold_and_bodies_decode() {
        let mail = ReceivedMail {
            from: String::new(),
            to: Vec::new(),
            data: "Subject: [taskmaster h] a\n long one\nContent-Transfer-Encoding: \
                   quoted-printable\n\nline=3D1\n"
                .into(),
            auth: None,
        };
        assert_eq!(mail.subject(), "[taskmaster h] a long one");
        assert_eq!(mail.body(), "line=1\n");
    }

    /// A real conversation, as a client would have it.
    #[test]
    fn the_server_speaks_smtp() -> crate::TestResult {
        let server = SmtpServer::start()?;
        let stream = TcpStream::connect(server.addr())?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = stream.try_clone()?;
        let mut input = BufReader::new(stream);
        let mut expect = |code: &str| -> crate::TestResult {
            let mut line = String::new();
            loop {
                line.clear();
                input.read_line(&mut line)?;
                if line.get(3..4) != Some("-") {
                    break;
                }
            }
            assert!(line.starts_with(code), "{line:?}, expected {code}");
            Ok(())
        };
        expect("220")?;
        for (send, code) in [
            ("EHLO me", "250"),
            ("AUTH PLAIN AHVzZXIAcGFzcw==", "235"),
            ("MAIL FROM:<a@b.c>", "250"),
            ("RCPT TO:<d@e.f>", "250"),
            ("DATA", "354"),
            ("Subject: hi\r\n\r\n..dotted\r\n.", "250"),
            ("QUIT", "221"),
        ] {
            out.write_all(format!("{send}\r\n").as_bytes())?;
            expect(code)?;
        }
        let mails = server.mails();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].from, "a@b.c");
        assert_eq!(mails[0].to, vec!["d@e.f".to_string()]);
        assert_eq!(mails[0].subject(), "hi");
        assert_eq!(mails[0].body(), ".dotted\n");
        assert_eq!(mails[0].auth, Some(("user".into(), "pass".into())));
        Ok(())
    }

    #[test]
    fn a_silent_server_accepts_and_says_nothing() -> crate::TestResult {
        let server = SmtpServer::silent()?;
        let stream = TcpStream::connect(server.addr())?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut line = String::new();
        let got = BufReader::new(stream).read_line(&mut line);
        assert!(got.is_err(), "read {got:?} {line:?}");
        assert!(wait_until(Duration::from_secs(5), || server.connections() == 1));
        assert!(TcpStream::connect(("127.0.0.1", closed_port()?)).is_err());
        Ok(())
    }
}
