//! The HTTP probe's client: one `GET` on a fresh connection per probe, as monit does. The URL
//! is parsed and the request written out once per endpoint ([`Get`]); a probe is a connect, one
//! write of those bytes and a read of the status line into a buffer on the stack, then the
//! connection is reset (the rest of the answer is not wanted). No pool, no spawned task, no
//! proxy, no redirects (a redirect status is the answer), no timer of its own (the caller's
//! deadline bounds it).
//!
//! Why not an HTTP client library: a probe needs only the status code, and hyper's
//! per-connection machinery (its buffers, channels and shutdown) was about a third of the
//! agent's own user CPU per probe at 1,000 services (BENCHMARKS.md, part (c)).

use std::net::{IpAddr, SocketAddr};

use http::Uri;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Why a `GET` got no status code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GetError {
    /// The URL is not a plain `http://host[:port][/path]`.
    #[error("not a plain http:// URL: {0}")]
    Url(String),
    /// The connection could not be made or broke before an answer.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// What came back does not start with an HTTP/1 status line.
    #[error("{0}")]
    Answer(String),
}

/// Room for the status line (`HTTP/1.1 200 OK`); a longer reason phrase is cut, the code is in
/// its first 12 bytes.
const STATUS_LINE_ROOM: usize = 256;

/// One endpoint's `GET`: where to connect and the request's bytes, made once.
#[derive(Debug, Clone)]
pub(crate) struct Get {
    /// The address, when the host is an IP literal (no lookup at each probe).
    addr: Option<SocketAddr>,
    /// The host name to look up otherwise (brackets of an IPv6 literal removed).
    host: Box<str>,
    port: u16,
    request: Box<[u8]>,
}

impl Get {
    /// Parses `url` (`http://host[:port][/path[?query]]`) and writes the request out.
    pub(crate) fn new(url: &str) -> Result<Get, GetError> {
        Get::with_method("GET", url)
    }

    /// The same with another method and an empty body (a heal hook's `PUT`, `POST`…).
    pub(crate) fn with_method(method: &str, url: &str) -> Result<Get, GetError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| GetError::Url(format!("{url}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(GetError::Url(url.to_string()));
        }
        let host = uri
            .host()
            .ok_or_else(|| GetError::Url(format!("{url}: no host")))?;
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = match uri.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        // The server may close after answering: this connection is not reused.
        // A method that carries a body says it is empty: a server must not wait for one.
        let length = if method == "GET" || method == "HEAD" {
            ""
        } else {
            "Content-Length: 0\r\n"
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\n{length}Connection: close\r\n\r\n"
        );
        // An IPv6 literal keeps its brackets in the URI; the socket address does not.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Get {
            addr: bare
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port)),
            host: bare.into(),
            port,
            request: request.into_bytes().into_boxed_slice(),
        })
    }

    /// Sends the `GET` on a new connection; the answer's status code. The caller puts the
    /// deadline on it; dropping the future closes the connection.
    pub(crate) async fn status(&self) -> Result<u16, GetError> {
        let mut stream = match self.addr {
            Some(addr) => TcpStream::connect(addr).await?,
            None => TcpStream::connect((&*self.host, self.port)).await?,
        };
        stream.write_all(&self.request).await?;
        let mut buf = [0u8; STATUS_LINE_ROOM];
        let mut len = 0;
        loop {
            let n = stream.read(&mut buf[len..]).await?;
            len += n;
            let line_end = buf[..len].iter().position(|&b| b == b'\n');
            if n > 0 && line_end.is_none() && len < buf.len() {
                continue;
            }
            let line = &buf[..line_end.unwrap_or(len)];
            if len > 0 {
                // Answered: the connection is reset on close rather than shut down in turn
                // (FIN, ACK), as load balancers' health checks do. Half the packets, and no
                // TIME_WAIT left on the service's side for each probe.
                let _ = stream.set_zero_linger();
            }
            return status_code(line).ok_or_else(|| {
                GetError::Answer(if len == 0 {
                    "the connection closed before an answer".to_string()
                } else {
                    format!(
                        "not an HTTP/1 status line: {:?}",
                        String::from_utf8_lossy(&line[..line.len().min(64)])
                    )
                })
            });
        }
    }
}

/// The code of an HTTP/1 status line (`HTTP/1.1 200 OK`, `HTTP/1.0 204`), if it is one.
fn status_code(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (minor, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b" ")?;
    let code = rest.get(..3)?;
    let ends = matches!(rest.get(3), None | Some(b' ' | b'\r'));
    if !minor.is_ascii_digit() || !code.iter().all(u8::is_ascii_digit) || !ends {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// What the HTTP probes share: nothing kept between probes (every probe connects afresh), so a
/// clone is free.
#[derive(Debug, Clone, Default)]
pub struct HttpClient;

impl HttpClient {
    /// `GET url` on a new connection; the answer's status code (see [`Get::status`]).
    pub(crate) async fn get_status(&self, url: &str) -> Result<u16, GetError> {
        Get::new(url)?.status().await
    }

    /// `method url` with an empty body on a new connection (a heal hook's request); the
    /// answer's status code. The caller puts the deadline on it.
    pub(crate) async fn request_status(&self, method: &str, url: &str) -> Result<u16, GetError> {
        Get::with_method(method, url)?.status().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers one request with `answer` after recording the request's head.
    async fn one_answer(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            // In pieces: the status line may arrive split.
            let (first, rest) = answer.split_at(6);
            s.write_all(first.as_bytes()).await.unwrap();
            s.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            s.write_all(rest.as_bytes()).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (format!("http://{addr}/health?x=1"), served)
    }

    #[tokio::test]
    async fn a_get_names_host_and_path_and_a_redirect_is_the_answer() {
        let (url, served) =
            one_answer("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
                .await;
        assert_eq!(HttpClient.get_status(&url).await.unwrap(), 302);
        let head = served.await.unwrap();
        let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
        assert!(head.starts_with("GET /health?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_status_line_with_no_reason_and_a_closed_connection_is_read() {
        let (url, _served) = one_answer("HTTP/1.0 204").await;
        assert_eq!(HttpClient.get_status(&url).await.unwrap(), 204);
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_an_error() {
        let (url, _served) = one_answer("SSH-2.0-OpenSSH_9.6\r\n").await;
        let err = HttpClient.get_status(&url).await.unwrap_err();
        assert!(matches!(err, GetError::Answer(_)), "{err}");
        assert!(err.to_string().contains("SSH-2.0"), "{err}");
    }

    #[test]
    fn status_lines() {
        for (line, code) in [
            (&b"HTTP/1.1 200 OK\r"[..], Some(200)),
            (b"HTTP/1.0 503 Service Unavailable", Some(503)),
            (b"HTTP/1.1 204", Some(204)),
            (b"HTTP/1.1 20", None),
            (b"HTTP/1.1 2000 OK", None),
            (b"HTTP/2 200", None),
            (b"", None),
        ] {
            assert_eq!(
                status_code(line),
                code,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[tokio::test]
    async fn a_connection_closed_before_an_answer_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            drop(s);
        });
        let err = HttpClient
            .get_status(&format!("http://{addr}/"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, GetError::Answer(_) | GetError::Io(_)),
            "{err}"
        );
        assert!(matches!(
            HttpClient.get_status("https://127.0.0.1/").await,
            Err(GetError::Url(_))
        ));
    }
}
