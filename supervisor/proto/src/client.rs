//! A small blocking client: connect, authenticate, call.
//!
//! Blocking on purpose: `taskmasterctl` runs one command at a time (the
//! reedline loop is synchronous too), and tests can use it without a runtime.

use crate::{ErrorKind, Hello, PROTOCOL_VERSION, Request, Response, Welcome};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Replies can be large (status of 10,000 instances is ~2 MB); this bounds a
/// runaway server, not normal use.
const MAX_REPLY: u64 = 256 * 1024 * 1024;

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to taskmasterd at {addr}: {source} (is the daemon running? check server.listen or --server)"
    )]
    Connect { addr: String, source: io::Error },
    #[error("authentication refused by taskmasterd: {0} (check the token file, or --token-file)")]
    Auth(String),
    #[error("protocol version mismatch: {0}")]
    Version(String),
    #[error("connection closed by taskmasterd")]
    Closed,
    #[error("unexpected reply from taskmasterd: {0}")]
    Protocol(String),
    #[error("connection to taskmasterd failed: {0}")]
    Io(#[from] io::Error),
}

/// An authenticated connection.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    welcome: Welcome,
}

impl Client {
    /// Connects to `addr` (`host:port`), sends the hello and waits for the
    /// welcome. `timeout` bounds the connect and each read of the handshake.
    pub fn connect(addr: &str, token: &str, timeout: Duration) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let addrs = addr.to_socket_addrs().map_err(connect_err)?;
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        let _ = stream.set_nodelay(true);
        stream.set_read_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            welcome: Welcome {
                protocol_version: 0,
                daemon_version: String::new(),
                daemon_pid: 0,
            },
        };
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            token: token.trim().to_string(),
        };
        match client.call(&Request::Hello(hello))? {
            Response::Welcome(w) => client.welcome = w,
            Response::Error(e) if e.kind == ErrorKind::Auth => {
                return Err(ClientError::Auth(e.message));
            }
            Response::Error(e) if e.kind == ErrorKind::Version => {
                return Err(ClientError::Version(e.message));
            }
            Response::Error(e) => return Err(ClientError::Protocol(e.message)),
            other => return Err(ClientError::Protocol(format!("{other:?}"))),
        }
        client.reader.get_ref().set_read_timeout(None)?;
        Ok(client)
    }

    /// What the daemon said in its welcome.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends one request and reads its response.
    pub fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.send(request)?;
        self.recv()
    }

    /// Sends one request without waiting.
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let mut line =
            serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(())
    }

    /// Reads the next response (for streams such as `tail -f`).
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_slice(&line).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Bounds how long [`Client::recv`] may wait; `None` waits forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.reader.get_ref().set_read_timeout(timeout)?;
        Ok(())
    }
}
