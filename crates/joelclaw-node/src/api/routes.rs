//! The routes of the local API, each answering with the CLI's envelope.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::stream::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::ApiState;
use crate::output::{Envelope, ErrorBody, ErrorCode, SCHEMA_VERSION};

pub(super) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/services/{label}", get(service))
        .route("/v1/services/{label}/{action}", post(act))
        .route("/v1/events", get(events))
        .route("/v1/events/stream", get(stream))
        .route("/v1/fleet", get(fleet_nodes))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// What the optional loopback TCP listener serves (`[api] health_listen`): health and metrics,
/// nothing that reads more or acts.
pub(super) fn read_only_router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found_read_only)
        .with_state(state)
}

async fn not_found_read_only() -> Response {
    failure(
        StatusCode::NOT_FOUND,
        "api",
        ErrorCode::NotFound,
        "this listener serves /v1/health and /metrics only; the rest of the API is on the agent's Unix socket".into(),
    )
}

fn reply(status: StatusCode, command: &str, result: Value, error: Option<ErrorBody>) -> Response {
    let envelope = Envelope {
        schema_version: SCHEMA_VERSION,
        ok: error.is_none(),
        command: command.to_string(),
        result,
        error,
        next_actions: Vec::new(),
    };
    let body = serde_json::to_string(&envelope).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn failure(status: StatusCode, command: &str, kind: ErrorCode, message: String) -> Response {
    reply(
        status,
        command,
        Value::Null,
        Some(ErrorBody { kind, message }),
    )
}

async fn health(State(s): State<ApiState>) -> Response {
    let status = s.status.borrow().clone();
    reply(
        StatusCode::OK,
        "api.health",
        json!({
            "node_id": status.node_id,
            "started_ms": s.started_ms,
            "last_round_ms": status.at_ms,
            "services": status.services.len(),
        }),
        None,
    )
}

async fn status(State(s): State<ApiState>) -> Response {
    let status = s.status.borrow().clone();
    reply(
        StatusCode::OK,
        "api.status",
        serde_json::to_value(status).unwrap_or_default(),
        None,
    )
}

async fn service(State(s): State<ApiState>, Path(label): Path<String>) -> Response {
    let status = s.status.borrow().clone();
    match status.services.into_iter().find(|svc| svc.label == label) {
        Some(svc) => reply(
            StatusCode::OK,
            "api.service",
            serde_json::to_value(svc).unwrap_or_default(),
            None,
        ),
        None => failure(
            StatusCode::NOT_FOUND,
            "api.service",
            ErrorCode::NotFound,
            format!("no service {label:?} in this agent's inventory"),
        ),
    }
}

/// A person's verb, through the loop: serialized with the service's heals, its desired state
/// saved before the manager is called.
async fn act(State(s): State<ApiState>, Path((label, action)): Path<(String, String)>) -> Response {
    let command = "api.service-action";
    let Some(verb) = central_core::Verb::parse(&action) else {
        return failure(
            StatusCode::NOT_FOUND,
            command,
            ErrorCode::NotFound,
            format!("no action {action:?}: use start, stop, restart, enable or disable"),
        );
    };
    let Some(control) = &s.control else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            command,
            ErrorCode::Failed,
            "this agent takes no service verbs".into(),
        );
    };
    match control.send(&label, verb, s.verb_patience).await {
        Ok(outcome) => reply(
            StatusCode::OK,
            command,
            serde_json::to_value(outcome).unwrap_or_default(),
            None,
        ),
        Err(e) => {
            use central_core::VerbError;
            let (status, kind) = match &e {
                VerbError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
                VerbError::NotSupported(_) => {
                    (StatusCode::NOT_IMPLEMENTED, ErrorCode::NotSupported)
                }
                VerbError::Failed { .. } => (StatusCode::BAD_GATEWAY, ErrorCode::Failed),
                VerbError::Gone => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Failed),
            };
            failure(status, command, kind, e.to_string())
        }
    }
}

#[derive(Debug, Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn events(State(s): State<ApiState>, Query(q): Query<Since>) -> Response {
    let (events, last_seq) = s.journal.since(q.since);
    reply(
        StatusCode::OK,
        "api.events",
        json!({ "events": events, "last_seq": last_seq }),
        None,
    )
}

async fn stream(State(s): State<ApiState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.journal.subscribe();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(entry) => {
                    let data = serde_json::to_string(&entry).unwrap_or_default();
                    let event = Event::default()
                        .id(entry.seq.to_string())
                        .event(entry.event.event.as_str())
                        .data(data);
                    return Some((Ok(event), rx));
                }
                // A slow reader skips what it missed; `since` fills the gap.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn fleet_nodes(State(s): State<ApiState>) -> Response {
    let command = "api.fleet";
    let Some(config) = &s.fleet else {
        return failure(
            StatusCode::NOT_FOUND,
            command,
            ErrorCode::NotFound,
            "this agent's inventory has no [fleet] section".into(),
        );
    };
    match fleet::fleet_status(config).await {
        Ok(nodes) => reply(
            StatusCode::OK,
            command,
            json!(crate::verbs::fleet::FleetStatusResult {
                redis: config.redacted_url(),
                nodes,
            }),
            None,
        ),
        // Redis away is the fleet's problem, not this agent's: a 503 naming it.
        Err(e) => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            command,
            ErrorCode::Failed,
            e.to_string(),
        ),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let status = s.status.borrow().clone();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(&status),
    )
        .into_response()
}

async fn not_found() -> Response {
    failure(
        StatusCode::NOT_FOUND,
        "api",
        ErrorCode::NotFound,
        "no such route: see /v1/health, /v1/status, /v1/services/{label}, /v1/events, \
         /v1/events/stream, /v1/fleet, /metrics"
            .into(),
    )
}
