//! JSON-lines event log, kept in memory (for in-process tests) and appended to a file.
//!
//! Events never carry secrets: no secret keys, session tokens, signatures or presigned query
//! strings — only client ids, ARNs, access key ids, verdicts and reasons.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// The event sink.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Inner>,
    cond: Condvar,
}

#[derive(Debug)]
struct Inner {
    events: Vec<Value>,
    file: Option<File>,
}

impl EventLog {
    /// A log writing to `path` (created / truncated).
    pub fn new(path: Option<&Path>) -> std::io::Result<EventLog> {
        let file = match path {
            Some(p) => Some(File::create(p)?),
            None => None,
        };
        Ok(EventLog {
            inner: Mutex::new(Inner {
                events: Vec::new(),
                file,
            }),
            cond: Condvar::new(),
        })
    }

    /// Records an event of `kind` with the fields of `fields` (a JSON object).
    pub fn emit(&self, kind: &str, fields: Value) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut obj = Map::new();
        obj.insert("ts_ms".into(), json!(ts));
        obj.insert("type".into(), json!(kind));
        if let Value::Object(m) = fields {
            for (k, v) in m {
                obj.insert(k, v);
            }
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        obj.insert("seq".into(), json!(inner.events.len()));
        let v = Value::Object(obj);
        if let Some(f) = inner.file.as_mut() {
            let _ = writeln!(f, "{v}");
            let _ = f.flush();
        }
        inner.events.push(v);
        drop(inner);
        self.cond.notify_all();
    }

    /// All events so far.
    pub fn all(&self) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events
            .clone()
    }

    /// Waits (bounded) for the first event — past or future — matching `pred`.
    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut checked = 0;
        loop {
            if let Some(v) = inner.events[checked..].iter().find(|e| pred(e)) {
                return Some(v.clone());
            }
            checked = inner.events.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            inner = self
                .cond
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
