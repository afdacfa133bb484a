//! The CLI's side of the running agent's local API: one HTTP/1 request over
//! `STATE/agent.sock` (hyper), under a deadline. Whether an agent runs is told apart from an
//! agent that does not answer: no socket or a refused connection is "no agent"; a deadline
//! passed is a timeout, never taken for "not running".

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use serde_json::Value;

use crate::api::SOCKET;

/// Why the agent could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent listens on the state folder's socket.
    #[error("no agent runs for {0} (no one listens on its socket)")]
    NotRunning(PathBuf),
    /// The socket exists, and this user may not use it.
    #[error("{0}: permission denied (the agent's API is for its service group: run as a member of it, or as root)")]
    PermissionDenied(PathBuf),
    /// The agent took longer than the deadline.
    #[error(
        "the agent at {socket} did not answer within {after:?} (it runs, but is slow or stuck)"
    )]
    Timeout {
        /// The socket.
        socket: PathBuf,
        /// The deadline.
        after: Duration,
    },
    /// It answered something that is not the API's envelope.
    #[error("the agent at {socket} answered badly: {detail}")]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// The running agent's API for one state folder.
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
}

impl AgentClient {
    /// The API of the agent that runs (or ran) for `state_dir`.
    pub fn for_state_dir(state_dir: &Path) -> Self {
        AgentClient {
            socket: state_dir.join(SOCKET),
        }
    }

    /// `GET path`: the HTTP status and the envelope.
    pub async fn get(&self, path: &str, deadline: Duration) -> Result<(u16, Value), AgentError> {
        self.request(hyper::Method::GET, path, deadline).await
    }

    /// `POST path` (no body): the HTTP status and the envelope.
    pub async fn post(&self, path: &str, deadline: Duration) -> Result<(u16, Value), AgentError> {
        self.request(hyper::Method::POST, path, deadline).await
    }

    async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        deadline: Duration,
    ) -> Result<(u16, Value), AgentError> {
        match tokio::time::timeout(deadline, self.exchange(method, path)).await {
            Ok(result) => result,
            Err(_) => Err(AgentError::Timeout {
                socket: self.socket.clone(),
                after: deadline,
            }),
        }
    }

    async fn exchange(
        &self,
        method: hyper::Method,
        path: &str,
    ) -> Result<(u16, Value), AgentError> {
        let protocol = |detail: String| AgentError::Protocol {
            socket: self.socket.clone(),
            detail,
        };
        let stream = match tokio::net::UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) => {
                return Err(match e.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        AgentError::PermissionDenied(self.socket.clone())
                    }
                    // No socket, or a stale one nobody listens on.
                    _ => AgentError::NotRunning(self.socket.clone()),
                });
            }
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| protocol(e.to_string()))?;
        // The connection is driven beside the request and ends with it.
        let driver = tokio::spawn(connection);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "joelclaw-node")
            .body(Empty::<Bytes>::new())
            .map_err(|e| protocol(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .to_bytes();
        driver.abort();
        let envelope = serde_json::from_slice(&body)
            .map_err(|e| protocol(format!("not JSON ({e}): HTTP {status}")))?;
        Ok((status, envelope))
    }
}
