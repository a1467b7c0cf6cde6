//! Control plane (`/describeSignalingChannel`, `/getSignalingChannelEndpoint`,
//! `/createSignalingChannel`) and `POST /v1/get-ice-server-config`, rest-json as in the service
//! models.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::config::{Operation, Tamper, random_bytes};
use crate::events::Event;
use crate::http::Head;
use crate::server::{ApiError, Channel, Shared, lock};
use crate::sigv4::SignedRequest;

/// ChannelName / ClientId constraint: 1–256 of `[a-zA-Z0-9_.-]`.
pub fn valid_name(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Channel ARN constraint: ≤1024 and
/// `arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+`.
pub fn valid_arn(s: &str) -> bool {
    if s.is_empty() || s.len() > 1024 {
        return false;
    }
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kinesisvideo" {
        return false;
    }
    let lower_digit_dash = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !lower_digit_dash(parts[1]) || !lower_digit_dash(parts[3]) {
        return false;
    }
    if parts[4].is_empty() || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let res: Vec<&str> = parts[5].split('/').collect();
    res.len() == 3
        && !res[0].is_empty()
        && res[0].bytes().all(|b| b.is_ascii_lowercase())
        && valid_name(res[1])
        && !res[2].is_empty()
        && res[2].bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn str_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::new(
            400,
            "SerializationException",
            format!("Unexpected value type for field '{name}'"),
        )),
    }
}

pub(crate) fn validation(field: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::invalid(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

pub(crate) fn check_arn(arn: Option<&str>, field: &str) -> Result<String, ApiError> {
    let Some(arn) = arn else {
        return Err(ApiError::invalid(format!("{field} is required")));
    };
    if !valid_arn(arn) {
        return Err(validation(
            field,
            arn,
            "Member must satisfy regular expression pattern: arn:[a-z\\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+",
        ));
    }
    Ok(arn.to_string())
}

pub(crate) fn channel_json(c: &Channel) -> Value {
    json!({
        "ChannelARN": c.arn,
        "ChannelName": c.name,
        "ChannelStatus": "ACTIVE",
        "ChannelType": c.channel_type,
        // rest-json timestamps are epoch seconds (a number).
        "CreationTime": c.creation_ms as f64 / 1000.0,
        "SingleMasterConfiguration": {"MessageTtlSeconds": c.message_ttl},
        "Version": c.version,
    })
}

/// Handles one control-plane request. Returns status, extra headers and body.
pub(crate) fn handle(
    shared: &Shared,
    head: &Head,
    body: &[u8],
    rid: &str,
) -> (u16, Vec<(String, String)>, String) {
    let op = match (head.method.as_str(), head.path.as_str()) {
        ("POST", "/describeSignalingChannel") => Some(Operation::Describe),
        ("POST", "/getSignalingChannelEndpoint") => Some(Operation::GetEndpoint),
        ("POST", "/createSignalingChannel") => Some(Operation::CreateChannel),
        ("POST", "/v1/get-ice-server-config") => Some(Operation::GetIceConfig),
        ("POST", "/listSignalingChannels") => Some(Operation::ListChannels),
        ("POST", "/deleteSignalingChannel") => Some(Operation::DeleteChannel),
        ("POST", "/updateSignalingChannel") => Some(Operation::UpdateChannel),
        ("POST", "/TagResource") => Some(Operation::TagResource),
        ("POST", "/UntagResource") => Some(Operation::UntagResource),
        ("POST", "/ListTagsForResource") => Some(Operation::ListTags),
        _ => None,
    };
    let result = match op {
        None => Err(ApiError::new(404, "UnknownOperationException", "")),
        Some(op) => dispatch(shared, head, body, op).map(|v| match shared.take_tamper(op) {
            Some(t) => {
                shared.emit(Event::TamperApplied {
                    operation: op.name().into(),
                    tamper: format!("{t:?}"),
                });
                tamper(v, &t)
            }
            None => v,
        }),
    };
    let op_name = op.map(|o| o.name()).unwrap_or("Unknown");
    match result {
        Ok(v) => {
            shared.emit(Event::HttpRequest {
                operation: op_name.into(),
                method: head.method.clone(),
                path: head.path.clone(),
                status: 200,
                error_type: None,
                message: None,
                request_id: rid.into(),
            });
            (200, Vec::new(), v.to_string())
        }
        Err(e) => {
            shared.emit(Event::HttpRequest {
                operation: op_name.into(),
                method: head.method.clone(),
                path: head.path.clone(),
                status: e.status,
                error_type: Some(e.error_type.clone()),
                message: Some(e.message.clone()),
                request_id: rid.into(),
            });
            (
                e.status,
                vec![(
                    "x-amzn-ErrorType".into(),
                    shared.error_type_value(&e.error_type),
                )],
                e.body(),
            )
        }
    }
}

fn dispatch(shared: &Shared, head: &Head, body: &[u8], op: Operation) -> Result<Value, ApiError> {
    if let Some(err) = shared.take_failure(op) {
        return Err(err);
    }
    let accepted = shared.accepted_credentials();
    let verifier = shared.verifier(&accepted);
    let req = SignedRequest {
        method: &head.method,
        path: &head.path,
        query: &head.query,
        headers: &head.headers,
        body,
    };
    match verifier.verify_header(&req) {
        Ok(v) => shared.emit(Event::Auth {
            operation: op.name().into(),
            verdict: "accepted".into(),
            access_key_id: Some(v.access_key_id),
            reason: None,
            message: None,
            error_type: None,
            client_id: None,
            channel_arn: None,
            role: None,
        }),
        Err(e) => {
            let err = ApiError::control_plane_auth(&e);
            shared.emit(Event::Auth {
                operation: op.name().into(),
                verdict: "rejected".into(),
                access_key_id: None,
                reason: Some(e.reason().into()),
                message: Some(e.message()),
                error_type: Some(err.error_type.clone()),
                client_id: None,
                channel_arn: None,
                role: None,
            });
            return Err(err);
        }
    }
    let parsed: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                400,
                "SerializationException",
                format!("Malformed JSON body: {e}"),
            )
        })?
    };
    let Value::Object(obj) = parsed else {
        return Err(ApiError::new(
            400,
            "SerializationException",
            "Request body must be a JSON object",
        ));
    };
    match op {
        Operation::Describe => describe(shared, &obj),
        Operation::GetEndpoint => get_endpoint(shared, &obj),
        Operation::CreateChannel => create(shared, &obj),
        Operation::GetIceConfig => ice_config(shared, &obj),
        Operation::ListChannels => crate::manage::list(shared, &obj),
        Operation::DeleteChannel => crate::manage::delete(shared, &obj),
        Operation::UpdateChannel => crate::manage::update(shared, &obj),
        Operation::TagResource => crate::manage::tag(shared, &obj),
        Operation::UntagResource => crate::manage::untag(shared, &obj),
        Operation::ListTags => crate::manage::list_tags(shared, &obj),
        Operation::Connect | Operation::Any => {
            Err(ApiError::new(404, "UnknownOperationException", ""))
        }
    }
}

/// Corrupts a successful answer as `t` says.
fn tamper(mut v: Value, t: &Tamper) -> Value {
    match t {
        Tamper::ChannelStatus(s) => v["ChannelInfo"]["ChannelStatus"] = json!(s),
        Tamper::DropWssEndpoint => {
            if let Some(list) = v["ResourceEndpointList"].as_array_mut() {
                list.retain(|e| e["Protocol"] != "WSS");
            }
        }
        Tamper::IceServerCount(n) => {
            if let Some(list) = v["IceServerList"].as_array_mut() {
                let first = list.first().cloned().unwrap_or(Value::Null);
                list.resize(*n, first);
            }
        }
        Tamper::IceUriCount(n) => {
            if let Some(list) = v["IceServerList"].as_array_mut() {
                for s in list {
                    s["Uris"] = json!(
                        (0..*n)
                            .map(|i| format!("turn:127.0.0.1:{}?transport=udp", 3478 + i))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
        Tamper::IceTtl(ttl) => {
            if let Some(list) = v["IceServerList"].as_array_mut() {
                for s in list {
                    s["Ttl"] = json!(ttl);
                }
            }
        }
    }
    v
}

fn describe(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = str_field(body, "ChannelName")?;
    let arn = str_field(body, "ChannelARN")?;
    let channel = match (name, arn) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::invalid(
                "Exactly one of ChannelName or ChannelARN must be specified.",
            ));
        }
        (Some(n), None) => {
            if !valid_name(n) {
                return Err(validation(
                    "channelName",
                    n,
                    "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
                ));
            }
            shared.channel_by_name(n)
        }
        (None, Some(a)) => shared.channel_by_arn(&check_arn(Some(a), "channelARN")?),
    };
    let c = channel.ok_or_else(ApiError::not_found)?;
    if !shared.admit_channel("describe_rate", shared.cfg.limit_describe_tps, &c.arn, "-") {
        return Err(crate::server::limit_exceeded(
            "DescribeSignalingChannel calls per second for this channel",
        ));
    }
    Ok(json!({ "ChannelInfo": channel_json(&c) }))
}

fn get_endpoint(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = check_arn(str_field(body, "ChannelARN")?, "channelARN")?;
    let conf = body
        .get("SingleMasterChannelEndpointConfiguration")
        .and_then(Value::as_object);
    let protocols: Vec<String> = match conf.and_then(|c| c.get("Protocols")) {
        None | Some(Value::Null) => vec!["WSS".into(), "HTTPS".into()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| p.as_str().unwrap_or("").to_string())
            .collect(),
        Some(_) => {
            return Err(ApiError::new(
                400,
                "SerializationException",
                "Protocols must be a list",
            ));
        }
    };
    if protocols.is_empty() || protocols.len() > 5 {
        return Err(ApiError::invalid("Protocols must contain 1 to 5 items."));
    }
    for p in &protocols {
        if !matches!(p.as_str(), "WSS" | "HTTPS" | "WEBRTC") {
            return Err(validation(
                "singleMasterChannelEndpointConfiguration.protocols",
                p,
                "Member must satisfy enum value set: [WSS, HTTPS, WEBRTC]",
            ));
        }
    }
    let role = conf
        .and_then(|c| c.get("Role"))
        .and_then(Value::as_str)
        .unwrap_or("MASTER");
    if !matches!(role, "MASTER" | "VIEWER") {
        return Err(validation(
            "singleMasterChannelEndpointConfiguration.role",
            role,
            "Member must satisfy enum value set: [MASTER, VIEWER]",
        ));
    }
    let c = shared
        .channel_by_arn(&arn)
        .ok_or_else(ApiError::not_found)?;
    if protocols.iter().any(|p| p == "WEBRTC") {
        return Err(ApiError::invalid(format!(
            "The channel {} is not configured for media ingestion; WEBRTC endpoint is not available.",
            c.name
        )));
    }
    // The service hands out per-role hosts (v-… for viewers, m-… for masters); with advertised
    // host names so does the emulator (one listener serves them all). The service's hosts are
    // per channel too; ours are per emulator, so one hosts-file line covers every channel.
    let list: Vec<Value> = protocols
        .iter()
        .map(|p| {
            let ep = match (p.as_str(), role) {
                ("WSS", "MASTER") => &shared.master_wss_endpoint,
                ("WSS", _) => &shared.wss_endpoint,
                _ => &shared.https_endpoint,
            };
            json!({"Protocol": p, "ResourceEndpoint": ep})
        })
        .collect();
    shared.emit(Event::EndpointRole {
        channel_arn: arn.clone(),
        role: role.into(),
    });
    Ok(json!({ "ResourceEndpointList": list }))
}

fn create(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let Some(name) = str_field(body, "ChannelName")? else {
        return Err(ApiError::invalid("ChannelName is required"));
    };
    if !valid_name(name) {
        return Err(validation(
            "channelName",
            name,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    let ctype = str_field(body, "ChannelType")?.unwrap_or("SINGLE_MASTER");
    if !matches!(ctype, "SINGLE_MASTER" | "FULL_MESH") {
        return Err(validation(
            "channelType",
            ctype,
            "Member must satisfy enum value set: [SINGLE_MASTER, FULL_MESH]",
        ));
    }
    let ttl = body
        .get("SingleMasterConfiguration")
        .and_then(|c| c.get("MessageTtlSeconds"))
        .map(|v| v.as_u64().unwrap_or(0))
        .unwrap_or(60);
    if !(5..=120).contains(&ttl) {
        return Err(validation(
            "singleMasterConfiguration.messageTtlSeconds",
            &ttl.to_string(),
            "Member must have value between 5 and 120",
        ));
    }
    let tags = match body.get("Tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(t) => crate::manage::parse_tags(t)?,
    };
    let mut channels = lock(&shared.channels);
    if channels.iter().any(|c| c.name == name) {
        return Err(ApiError::new(
            400,
            "ResourceInUseException",
            format!("The signaling channel {name} already exists."),
        ));
    }
    let mut c = shared.new_channel(name, ctype, ttl);
    crate::manage::merge_tags(&mut c.tags, tags)?;
    let arn = c.arn.clone();
    channels.push(c);
    drop(channels);
    shared.emit(Event::ChannelCreated {
        channel_name: name.into(),
        channel_arn: arn.clone(),
    });
    Ok(json!({ "ChannelARN": arn }))
}

fn ice_config(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = check_arn(str_field(body, "ChannelARN")?, "channelARN")?;
    if let Some(id) = str_field(body, "ClientId")?
        && !valid_name(id)
    {
        return Err(validation(
            "clientId",
            id,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    if let Some(svc) = str_field(body, "Service")?
        && svc != "TURN"
    {
        return Err(validation(
            "service",
            svc,
            "Member must satisfy enum value set: [TURN]",
        ));
    }
    let c = shared
        .channel_by_arn(&arn)
        .ok_or_else(ApiError::not_found)?;
    let ttl = 300;
    let expiry = shared.now() + ttl;
    let username = format!("{expiry}:{}", B64.encode(format!("v1:{}", c.arn)));
    let host = &shared.cfg.ice_host;
    let servers: Vec<Value> = (0..2)
        .map(|_| {
            // Field order of real answers: Password, Ttl, Uris, Username (serde_json sorts keys).
            json!({
                "Password": B64.encode(random_bytes(32)),
                "Ttl": ttl,
                "Uris": [
                    format!("turn:{host}:443?transport=udp"),
                    format!("turns:{host}:443?transport=udp"),
                    format!("turns:{host}:443?transport=tcp"),
                ],
                "Username": username,
            })
        })
        .collect();
    Ok(json!({ "IceServerList": servers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_pattern() {
        assert!(valid_arn(
            "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123"
        ));
        assert!(valid_arn(
            "arn:aws-cn:kinesisvideo:cn-north-1:1:channel/a.b_c/1"
        ));
        assert!(!valid_arn(
            "arn:aws:kinesis:us-west-2:123456789012:channel/demo/1"
        ));
        assert!(!valid_arn(
            "arn:aws:kinesisvideo:us-west-2:12a:channel/demo/1"
        ));
        assert!(!valid_arn(
            "arn:aws:kinesisvideo:us-west-2:1:channel/de mo/1"
        ));
        assert!(!valid_arn(
            "arn:aws:kinesisvideo:us-west-2:1:channel/demo/x"
        ));
        assert!(!valid_arn("arn:aws:kinesisvideo:us-west-2:1:channel/demo"));
        assert!(!valid_arn(""));
    }
}
