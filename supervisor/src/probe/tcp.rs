//! The `tcp:` probe: a TCP connect to `host:port` succeeds within the
//! budget. The connection is closed at once; nothing is sent.
//!
//! A literal address (`127.0.0.1`, `::1`, `[::1]`) is used as is; a name is
//! resolved with `tokio::net::lookup_host`, which runs `getaddrinfo` on
//! tokio's blocking pool, so a slow resolver never stalls the actor thread
//! (when the budget ends first the lookup finishes there, unobserved). Every
//! address a name resolves to is tried in turn, like `std`'s `connect`; the
//! last failure is the one reported.

use super::{describe, within};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// Connects to `host:port` within `budget`, then closes the connection.
/// `host` is a name or an address, IPv6 with or without brackets.
pub async fn tcp(host: &str, port: u16, budget: Duration) -> Result<(), String> {
    within(budget, async { connect(host, port).await.map(drop) }).await
}

/// A connected stream to `host:port` (no time limit of its own: the caller
/// bounds it). Errors: `connection refused`, `cannot resolve db: …`.
pub(crate) async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let mut last = String::from("no address to connect to");
    for addr in resolve(host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = describe(&e),
        }
    }
    Err(last)
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("cannot resolve {bare}: {}", describe(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {bare}: no address"));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const BUDGET: Duration = Duration::from_secs(5);

    /// A port nothing listens on (bound then released; another test could
    /// take it in between, which would make a refusal test fail, not pass).
    fn free_port() -> std::io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_refused() -> std::io::Result<()> {
        let port = free_port()?;
        assert_eq!(
            tcp("127.0.0.1", port, BUDGET).await,
            Err("connection refused".to_string())
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_probe_succeeds_once_a_listener_binds_the_port() -> std::io::Result<()> {
        let port = free_port()?;
        assert!(tcp("127.0.0.1", port, BUDGET).await.is_err());
        let _listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        assert_eq!(tcp("127.0.0.1", port, BUDGET).await, Ok(()));
        assert_eq!(tcp("localhost", port, BUDGET).await, Ok(()));
        Ok(())
    }

    #[tokio::test]
    async fn ipv6_literals_are_accepted_with_or_without_brackets() -> std::io::Result<()> {
        let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
            return Ok(()); // no IPv6 loopback on this host
        };
        let port = listener.local_addr()?.port();
        assert_eq!(tcp("::1", port, BUDGET).await, Ok(()));
        assert_eq!(tcp("[::1]", port, BUDGET).await, Ok(()));
        Ok(())
    }

    #[tokio::test]
    async fn a_connect_that_hangs_times_out_within_the_budget() -> std::io::Result<()> {
        // A listener that never accepts, its backlog full: Linux drops
        // further SYNs, so the next connect hangs.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?)?;
        let listener = socket.listen(0)?;
        let addr = listener.local_addr()?;
        let mut queued = Vec::new();
        loop {
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(200), connect).await {
                Ok(stream) => queued.push(stream?),
                Err(_) => break,
            }
            assert!(queued.len() < 64, "the backlog never filled");
        }
        let budget = Duration::from_millis(300);
        let begun = Instant::now();
        let result = tcp("127.0.0.1", addr.port(), budget).await;
        assert_eq!(result, Err("timed out after 0.3s".to_string()));
        assert!(
            begun.elapsed() < Duration::from_secs(3),
            "{:?}",
            begun.elapsed()
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_unknown_name_fails_with_a_resolution_error() {
        let result = tcp("no-such-host.invalid", 80, BUDGET).await;
        let Err(e) = result else {
            panic!("resolved no-such-host.invalid");
        };
        // A host without a reachable resolver may take the whole budget.
        assert!(
            e.starts_with("cannot resolve no-such-host.invalid") || e == "timed out after 5s",
            "{e}"
        );
    }
}
