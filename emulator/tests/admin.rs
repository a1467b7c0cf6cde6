//! The admin API: versioned paths, the old paths as aliases, and its committed JSON Schema.

mod common;

use common::*;
use kvs_signaling_emulator::admin_api_schema;
use serde_json::Value;

const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/admin-api.schema.json");

/// The committed schema is what the types derive (`KVS_UPDATE_SCHEMA=1` rewrites it).
#[test]
fn committed_schema_is_fresh() {
    let generated = serde_json::to_string_pretty(&admin_api_schema()).unwrap() + "\n";
    if std::env::var_os("KVS_UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_FILE, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    assert!(
        committed == generated,
        "emulator/admin-api.schema.json is stale: run KVS_UPDATE_SCHEMA=1 cargo test -p kvs-signaling-emulator --test admin"
    );
}

fn event_types(schema: &Value) -> Vec<String> {
    // Every event variant pins "type" to a constant (no other definition has a "type" field).
    let v = schema.clone();
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(t)) = m.get("properties").and_then(|p| p.get("type"))
                    && let Some(Value::String(c)) = t.get("const")
                {
                    out.push(c.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&v, &mut out);
    out
}

#[test]
fn v1_paths_answer_and_the_old_paths_still_do() {
    let emu = start();
    let env = emu.env();
    let _v = viewer(&emu, "admin-v1");
    for path in ["/v1/state", "/state"] {
        let st = admin(env, "GET", path, "");
        assert_eq!(st.status, 200, "{path}");
        assert_eq!(st.json()["viewers"][0]["client_id"], "admin-v1", "{path}");
        assert_eq!(st.json()["server_down"], false, "{path}");
    }
    for path in ["/v1/fault", "/fault"] {
        let r = admin(env, "POST", path, r#"{"StopPongs":false}"#);
        assert_eq!(
            (r.status, r.json()["ok"].clone()),
            (200, Value::Bool(true)),
            "{path}"
        );
    }
    let bad = admin(env, "POST", "/v1/fault", r#"{"NoSuchFault":1}"#);
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("bad fault JSON")
    );
    assert_eq!(admin(env, "GET", "/v1/health", "").json()["ok"], true);
    assert_eq!(admin(env, "GET", "/v2/state", "").status, 404);
    let schema = admin(env, "GET", "/v1/schema", "");
    assert_eq!(schema.json(), admin_api_schema());

    // Every event type in the log is one the schema documents.
    let known = event_types(&admin_api_schema());
    assert!(known.contains(&"frame_in".to_string()), "{known:?}");
    let events = admin(env, "GET", "/v1/events", "").json();
    let events = events.as_array().unwrap();
    assert!(!events.is_empty());
    for e in events {
        let t = e["type"].as_str().unwrap();
        assert!(known.iter().any(|k| k == t), "undocumented event type {t}");
        assert!(e["seq"].is_u64() && e["ts_ms"].is_u64(), "{e}");
    }
}
