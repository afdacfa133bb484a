//! The HTTP probe's client: one `GET` on a fresh connection per probe, as monit does, with a
//! plain hyper HTTP/1 handshake driven inside the probe's own future. No pool, no spawned
//! connection task, no proxy, no redirects (a redirect status is the answer), one timer (the
//! caller's deadline): a probe costs a connect, a write and a read.

use hyper::client::conn::http1;
use hyper::header::{ACCEPT, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

/// Why a `GET` got no status line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GetError {
    /// The URL is not a plain `http://host[:port][/path]`.
    #[error("not a plain http:// URL: {0}")]
    Url(String),
    /// The connection could not be made or broke before an answer.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer was not HTTP/1 or the connection closed before it.
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// What the HTTP probes share: nothing kept between probes (every probe connects afresh), so a
/// clone is free.
#[derive(Debug, Clone, Default)]
pub struct HttpClient;

impl HttpClient {
    /// `GET url` on a new connection; the answer's status code. The caller puts the deadline on
    /// it; dropping the future closes the connection.
    pub(crate) async fn get_status(&self, url: &str) -> Result<u16, GetError> {
        self.request_status("GET", url).await
    }

    /// `method url` with an empty body on a new connection (a heal hook's request); the
    /// answer's status code. The caller puts the deadline on it.
    pub(crate) async fn request_status(&self, method: &str, url: &str) -> Result<u16, GetError> {
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
        // An IPv6 literal keeps its brackets in the URI; the socket address does not.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((bare, port)).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let request = Request::builder()
            .method(method)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(
                HOST,
                match uri.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_string(),
                },
            )
            .header(ACCEPT, "*/*")
            .body(String::new())
            .map_err(|e| GetError::Url(format!("{url}: {e}")))?;
        // The connection is driven here, beside the request, instead of on a spawned task: it
        // ends when the answer's head is read (the body is not wanted). The answer is looked at
        // first: a server that answers and closes ends both at once.
        let answer = sender.send_request(request);
        tokio::pin!(answer);
        tokio::pin!(connection);
        let head = tokio::select! {
            biased;
            answer = &mut answer => answer?,
            ended = &mut connection => {
                ended?;
                // Closed cleanly: the answer came before it, or hyper says why it did not.
                answer.await?
            }
        };
        Ok(head.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A server that answers one request with `status` after recording the request's head.
    async fn one_answer(status: &'static str) -> (String, tokio::task::JoinHandle<String>) {
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
            let answer =
                format!("HTTP/1.1 {status}\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n");
            s.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (format!("http://{addr}/health?x=1"), served)
    }

    #[tokio::test]
    async fn a_get_names_host_and_path_and_a_redirect_is_the_answer() {
        let (url, served) = one_answer("302 Found").await;
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
        assert!(matches!(err, GetError::Http(_) | GetError::Io(_)), "{err}");
        assert!(matches!(
            HttpClient.get_status("https://127.0.0.1/").await,
            Err(GetError::Url(_))
        ));
    }
}
