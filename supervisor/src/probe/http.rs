//! The `http:` probe: a plain-http GET answers 2xx, or exactly the status
//! the config asks for.
//!
//! hyper's HTTP/1 client connection runs over the `tcp` probe's own
//! connect (literal addresses as is, names resolved off the thread). The
//! connection future is driven in the probe's own future (no task spawned),
//! so when the budget ends, dropping the probe closes everything. Memory is
//! bounded: hyper reads the response head into a buffer of at most
//! [`MAX_HEAD`] (a longer head is an error), and the body is never read: the
//! status decides, and the connection is closed once it is known.

use super::{describe, tcp, within};
use crate::config::ready::HttpUrl;
use bytes::Bytes;
use futures::future::{Either, select};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use std::pin::pin;
use std::time::Duration;

/// The largest response head (status line and headers) read.
pub const MAX_HEAD: usize = 64 * 1024;

/// GETs `url` within `budget`: success is a 2xx answer, or exactly `status`
/// when given. Errors: `connection refused`, `HTTP 503`, `timed out after 1s`.
pub async fn http(url: &HttpUrl, status: Option<u16>, budget: Duration) -> Result<(), String> {
    within(budget, async {
        let code = get(url).await?;
        let ok = match status {
            Some(wanted) => code == wanted,
            None => (200..300).contains(&code),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("HTTP {code}"))
        }
    })
    .await
}

/// The status code of a GET of `url`.
async fn get(url: &HttpUrl) -> Result<u16, String> {
    let stream = tcp::connect(&url.host, url.port).await?;
    let (mut sender, connection) = http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_error(&e))?;
    let request = hyper::Request::get(url.path.as_str())
        .header(HOST, authority(url))
        .header(
            USER_AGENT,
            concat!("taskmaster/", env!("CARGO_PKG_VERSION")),
        )
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| format!("cannot send this request: {e}"))?;
    let response = match select(pin!(sender.send_request(request)), pin!(connection)).await {
        Either::Left((response, _)) => response,
        // The connection ended first (closed by the server, or an error);
        // a response it completed is still waiting in the sender.
        Either::Right((ended, response)) => {
            ended.map_err(|e| hyper_error(&e))?;
            response.await
        }
    };
    response
        .map(|r| r.status().as_u16())
        .map_err(|e| hyper_error(&e))
}

/// `Host:` as a client writes it: the port only when not 80, an IPv6
/// address in brackets.
fn authority(url: &HttpUrl) -> String {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    if url.port == 80 {
        host
    } else {
        format!("{host}:{}", url.port)
    }
}

/// A socket error as [`describe`] words it; hyper's own errors as hyper
/// says them (`connection closed before message completed`).
fn hyper_error(e: &hyper::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return describe(io);
        }
        source = inner.source();
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    const BUDGET: Duration = Duration::from_secs(5);

    fn url(port: u16, path: &str) -> HttpUrl {
        HttpUrl {
            text: format!("http://127.0.0.1:{port}{path}"),
            host: "127.0.0.1".into(),
            port,
            path: path.into(),
        }
    }

    /// Serves one connection: reads the request head, answers `response`
    /// (then keeps the connection open until the client closes it), and
    /// reports the request head it read.
    async fn serve_once(response: Vec<u8>) -> std::io::Result<(u16, oneshot::Receiver<String>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tell, told) = oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tell.send(String::from_utf8_lossy(&head).into_owned());
            let _ = conn.write_all(&response).await;
            // Until the client closes: the probe must not wait for us.
            let _ = conn.read(&mut buf).await;
        });
        Ok((port, told))
    }

    fn canned(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_200_answer_is_success_and_the_request_is_a_plain_get() -> std::io::Result<()> {
        let (port, request) = serve_once(canned("200 OK", "ok")).await?;
        assert_eq!(http(&url(port, "/healthz?x=1"), None, BUDGET).await, Ok(()));
        let request = request.await.map_err(std::io::Error::other)?;
        assert!(
            request.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_503_answer_fails_with_its_status() -> std::io::Result<()> {
        let (port, _) = serve_once(canned("503 Service Unavailable", "busy")).await?;
        assert_eq!(
            http(&url(port, "/"), None, BUDGET).await,
            Err("HTTP 503".to_string())
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_exact_status_is_success_and_any_other_fails() -> std::io::Result<()> {
        let (port, _) = serve_once(canned("503 Service Unavailable", "")).await?;
        assert_eq!(http(&url(port, "/"), Some(503), BUDGET).await, Ok(()));
        let (port, _) = serve_once(canned("200 OK", "")).await?;
        assert_eq!(
            http(&url(port, "/"), Some(204), BUDGET).await,
            Err("HTTP 200".to_string())
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_within_the_budget() -> std::io::Result<()> {
        let (port, _) = serve_once(Vec::new()).await?;
        let begun = Instant::now();
        assert_eq!(
            http(&url(port, "/"), None, Duration::from_millis(300)).await,
            Err("timed out after 0.3s".to_string())
        );
        assert!(
            begun.elapsed() < Duration::from_secs(3),
            "{:?}",
            begun.elapsed()
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_refused() -> std::io::Result<()> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        assert_eq!(
            http(&url(port, "/"), None, BUDGET).await,
            Err("connection refused".to_string())
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_response_head_longer_than_the_bound_is_refused() -> std::io::Result<()> {
        // One long header (hyper's own default limit is larger: 400 KB).
        let mut response = b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec();
        response.resize(response.len() + 3 * MAX_HEAD, b'a');
        response.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let (port, _) = serve_once(response).await?;
        let result = http(&url(port, "/"), None, BUDGET).await;
        let Err(e) = result else {
            panic!("a head of {} bytes was accepted", 3 * MAX_HEAD);
        };
        assert!(e.contains("too large"), "{e}");
        Ok(())
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_fails() -> std::io::Result<()> {
        let (port, _) = serve_once(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()).await?;
        assert!(http(&url(port, "/"), None, BUDGET).await.is_err());
        Ok(())
    }

    #[test]
    fn the_host_header_names_the_port_unless_80_and_brackets_ipv6() {
        let mut u = url(80, "/");
        assert_eq!(authority(&u), "127.0.0.1");
        u.port = 8080;
        u.host = "::1".into();
        assert_eq!(authority(&u), "[::1]:8080");
    }
}
