//! The admin listener (plain HTTP on the bind address): fault injection, the event log, the
//! connection state and the JSON Schema of all three. Versioned under `/v1/`; the unversioned
//! paths of 0.1 (`/fault`, `/events`, `/state`, `/health`) still answer the same.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Fault;
use crate::events::EventRecord;
use crate::http::{self, Head};
use crate::server::{HANDSHAKE_TIMEOUT, Patient, Shared, lock};

/// Answer of `POST /v1/fault` (and of every error of the admin API).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AdminReply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What went wrong (absent when `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One connected viewer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ViewerState {
    /// `X-Amz-ClientId`.
    pub client_id: String,
    /// Channel ARN.
    pub channel_arn: String,
}

/// Answer of `GET /v1/state`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct State {
    /// Connected viewers, in connection order.
    pub viewers: Vec<ViewerState>,
    /// ARNs of the channels with a connected master.
    pub masters: Vec<String>,
    /// Names of all channels.
    pub channels: Vec<String>,
    /// Whether the built-in master answers offers.
    pub auto_answer: bool,
    /// Seconds added to the system clock.
    pub clock_offset_secs: i64,
    /// Whether WebSocket PINGs go unanswered.
    pub stop_pongs: bool,
    /// Whether new TCP connections are refused (`ServerDown`).
    pub server_down: bool,
}

/// The JSON Schema (draft 2020-12) of the admin API: one definition per request/answer body,
/// all referring to one shared `$defs`.
pub fn schema() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let fault = generator.subschema_for::<Fault>();
    let event = generator.subschema_for::<EventRecord>();
    let state = generator.subschema_for::<State>();
    let reply = generator.subschema_for::<AdminReply>();
    let mut defs: serde_json::Map<String, Value> = generator.take_definitions(true);
    defs.insert("fault".into(), fault.to_value());
    defs.insert("event".into(), event.to_value());
    defs.insert("state".into(), state.to_value());
    defs.insert("reply".into(), reply.to_value());
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kvs-signaling-emulator admin API v1",
        "description": "POST /v1/fault takes `fault` and answers `reply`; GET /v1/events answers an array of `event` (also the lines of the event log file); GET /v1/state answers `state`; GET /v1/health answers `reply`; GET /v1/schema answers this document.",
        "$defs": defs,
        "oneOf": [
            {"$ref": "#/$defs/fault"},
            {"$ref": "#/$defs/event"},
            {"$ref": "#/$defs/state"},
            {"$ref": "#/$defs/reply"},
        ],
    })
}

/// Accept loop of the admin listener.
pub(crate) fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    for stream in listener.incoming() {
        if shared.is_shutdown() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let s2 = shared.clone();
        shared.spawn("emu-admin", move || {
            let _ = handle(&s2, stream);
        });
    }
}

fn handle(shared: &Arc<Shared>, mut tcp: TcpStream) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = Vec::new();
    let mut p = Patient {
        inner: &mut tcp,
        shared,
        deadline: Instant::now() + HANDSHAKE_TIMEOUT,
    };
    let Some((head, _)) = http::read_head(&mut p, &mut buf)? else {
        return Ok(());
    };
    let body = http::read_body(&mut p, &mut buf, &head)?;
    let (status, out) = route(shared, &head, &body);
    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Connection".to_string(), "close".to_string()),
    ];
    http::write_response(&mut tcp, status, &headers, out.to_string().as_bytes())?;
    let _ = tcp.shutdown(Shutdown::Write);
    Ok(())
}

fn reply(ok: bool, error: Option<String>) -> Value {
    serde_json::to_value(AdminReply { ok, error }).unwrap_or(Value::Null)
}

fn route(shared: &Arc<Shared>, head: &Head, body: &[u8]) -> (u16, Value) {
    let path = head.path.strip_prefix("/v1").unwrap_or(&head.path);
    match (head.method.as_str(), path) {
        ("POST", "/fault") => match serde_json::from_slice::<Fault>(body) {
            Ok(f) => match shared.inject(f) {
                Ok(()) => (200, reply(true, None)),
                Err(e) => (409, reply(false, Some(e))),
            },
            Err(e) => (400, reply(false, Some(format!("bad fault JSON: {e}")))),
        },
        ("GET", "/events") => (200, Value::Array(shared.events.all())),
        ("GET", "/state") => (
            200,
            serde_json::to_value(state(shared)).unwrap_or(Value::Null),
        ),
        ("GET", "/health") => (200, reply(true, None)),
        ("GET", "/schema") if head.path.starts_with("/v1/") => (200, schema()),
        _ => (
            404,
            reply(
                false,
                Some(
                    "unknown admin route; use POST /v1/fault, GET /v1/events, GET /v1/state, \
                     GET /v1/health, GET /v1/schema"
                        .into(),
                ),
            ),
        ),
    }
}

/// Connected viewers and masters.
pub(crate) fn state(shared: &Shared) -> State {
    let hub = lock(&shared.hub);
    State {
        viewers: hub
            .viewers
            .iter()
            .map(|(arn, id, _)| ViewerState {
                client_id: id.clone(),
                channel_arn: arn.clone(),
            })
            .collect(),
        masters: hub.masters.keys().cloned().collect(),
        channels: lock(&shared.channels)
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        auto_answer: shared.cfg.auto_answer,
        clock_offset_secs: shared.clock_offset.load(Ordering::SeqCst),
        stop_pongs: shared.stop_pongs.load(Ordering::SeqCst),
        server_down: shared.server_down(),
    }
}
