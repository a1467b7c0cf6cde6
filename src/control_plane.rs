//! The control plane (protocol.md §2): from a channel name to the channel's ARN
//! (`DescribeSignalingChannel`), its endpoints (`GetSignalingChannelEndpoint`, Role VIEWER,
//! Protocols WSS + HTTPS) and its TURN servers (`GetIceServerConfig` on the HTTPS endpoint).
//!
//! Every call is a rest-json `POST` signed with SigV4 headers the way the AWS SDKs sign them
//! (`content-type;host;x-amz-date`, plus `x-amz-security-token` when there is one, §2.6), with
//! the time of the viewer's one `Clock`. The HTTP client (`http`) runs over the same OpenSSL
//! connector as the WebSocket (TLS 1.2 or later, system roots plus the configured CA bundle)
//! and keeps one connection per host, so the calls of a discovery share one TLS handshake.
//! Every call runs within the caller's `Deadline`.
//!
//! Service errors keep their exception name, message and request id, with the step that failed
//! in front (`describe: HTTP 404 ResourceNotFoundException: ...`). A 403 whose `Date` header
//! shows the device clock is a minute or more off is retried once with the server's time; the
//! offset goes to the shared clock, so later calls and the WebSocket URL use it too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::backoff::{self, Backoff};
use crate::clock::Clock;
use crate::config::ViewerConfig;
use crate::credentials::CredentialProvider;
use crate::deadline::Deadline;
use crate::diag::{self, Step, diag};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, Request};
use crate::ice::{self, IceCache, IceServer, IceSnapshot};
use crate::sigv4::{self, Credentials, HeaderSignRequest};
use crate::transport::{parse_error_body, parse_http_date};
use crate::validate::{self, Endpoint};

/// Step names, as they appear in front of error messages.
pub const STEP_DESCRIBE: &str = "describe";
pub const STEP_GET_ENDPOINT: &str = "get_endpoint";
pub const STEP_GET_ICE_CONFIG: &str = "get_ice_config";

/// The service's answers are a few hundred bytes; anything past this is not the service.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest endpoint the C SDK accepts (`MAX_SIGNALING_ENDPOINT_URI_LEN`).
const MAX_ENDPOINT_LEN: usize = 512;

/// `https://kinesisvideo.<region>.amazonaws.com` (`.amazonaws.com.cn` in the China regions).
pub fn default_control_plane_url(region: &str) -> String {
    format!("https://kinesisvideo.{region}.{}", ice::dns_suffix(region))
}

/// What `DescribeSignalingChannel` says about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// `arn:aws:kinesisvideo:<region>:<account>:channel/<name>/<number>`.
    pub arn: String,
    /// The channel's name.
    pub name: String,
    /// `CREATING`, `ACTIVE`, `UPDATING` (`DELETING` is refused).
    pub status: String,
}

/// The viewer endpoints of a channel, from `GetSignalingChannelEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `wss://v-....kinesisvideo.<region>.amazonaws.com`
    pub wss: String,
    /// `https://r-....kinesisvideo.<region>.amazonaws.com`
    pub https: String,
}

/// The headers of a signed control-plane `POST`, in the order they are sent: `content-type`,
/// `host`, `x-amz-date`, `x-amz-security-token` (when the credentials have one) and
/// `authorization`. `host` must be exactly the `Host` header (with a non-default port).
///
/// The result holds the session token and the signature: never log it.
pub fn signed_headers(
    creds: &Credentials,
    region: &str,
    host: &str,
    path: &str,
    body: &[u8],
    time: OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let mut headers: Vec<(&'static str, String)> = vec![
        ("content-type", "application/json".to_owned()),
        ("host", host.to_owned()),
        ("x-amz-date", sigv4::amz_date(time)),
    ];
    if let Some(token) = creds.session_token() {
        headers.push(("x-amz-security-token", token.to_owned()));
    }
    let signed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let authorization = sigv4::authorization_header(
        creds,
        &HeaderSignRequest {
            method: "POST",
            path,
            region,
            service: sigv4::SERVICE,
            time,
            headers: &signed,
            payload: body,
        },
    );
    headers.push(("authorization", authorization));
    headers
}

/// The HTTPS client of the three calls. Cheap to keep; thread-safe.
pub(crate) struct ControlPlane {
    http: http::Client,
    /// Asked at every signature (credentials.rs).
    credentials: CredentialProvider,
    region: String,
    url: Endpoint,
    /// The viewer's clock; a skewed 403 corrects it for every later signature.
    clock: Arc<Clock>,
}

impl ControlPlane {
    pub(crate) fn new(
        config: &ViewerConfig,
        tls: crate::tls::Connector,
        clock: Arc<Clock>,
    ) -> Result<ControlPlane> {
        let url = match &config.control_plane_url {
            Some(u) => validate::https_endpoint("control_plane_url", u)?,
            None => validate::https_endpoint(
                "control_plane_url",
                &default_control_plane_url(&config.region),
            )?,
        };
        Ok(ControlPlane {
            http: http::Client::new(tls, MAX_RESPONSE_BYTES),
            credentials: config.credential_provider(),
            region: config.region.clone(),
            url,
            clock,
        })
    }

    /// `DescribeSignalingChannel` by name: the channel's ARN. A channel being deleted is refused.
    pub(crate) fn describe(&self, channel_name: &str, deadline: &Deadline) -> Result<ChannelInfo> {
        let body = self.post(
            STEP_DESCRIBE,
            &self.url,
            "describeSignalingChannel",
            &json!({ "ChannelName": channel_name }),
            deadline,
        )?;
        let info = parse_describe(&body).map_err(|e| e.in_step(STEP_DESCRIBE))?;
        diag!(
            Info,
            Step::Discovery,
            "channel {} is {} ({})",
            info.name,
            info.arn,
            info.status
        );
        Ok(info)
    }

    /// `GetSignalingChannelEndpoint` as a viewer, asking for WSS and HTTPS; both are required.
    pub(crate) fn get_endpoints(
        &self,
        channel_arn: &str,
        deadline: &Deadline,
    ) -> Result<Endpoints> {
        let body = self.post(
            STEP_GET_ENDPOINT,
            &self.url,
            "getSignalingChannelEndpoint",
            &json!({
                "ChannelARN": channel_arn,
                "SingleMasterChannelEndpointConfiguration": {
                    "Protocols": ["WSS", "HTTPS"],
                    "Role": "VIEWER",
                },
            }),
            deadline,
        )?;
        parse_endpoints(&body).map_err(|e| e.in_step(STEP_GET_ENDPOINT))
    }

    /// `GetIceServerConfig` on the channel's HTTPS endpoint: the TURN servers (without STUN)
    /// and how many were dropped over the limit.
    pub(crate) fn get_ice_servers(
        &self,
        https: &Endpoint,
        channel_arn: &str,
        client_id: &str,
        deadline: &Deadline,
    ) -> Result<(Vec<IceServer>, usize)> {
        let body = self.post(
            STEP_GET_ICE_CONFIG,
            https,
            "v1/get-ice-server-config",
            &json!({ "ChannelARN": channel_arn, "ClientId": client_id, "Service": "TURN" }),
            deadline,
        )?;
        ice::parse_ice_server_config(&body).map_err(|e| e.in_step(STEP_GET_ICE_CONFIG))
    }

    /// Signs and sends one `POST <base>/<op>`; returns the body of a 2xx answer.
    fn post(
        &self,
        step: &str,
        base: &Endpoint,
        op: &str,
        body: &Value,
        deadline: &Deadline,
    ) -> Result<Vec<u8>> {
        let body = body.to_string().into_bytes();
        let path = format!("{}/{op}", base.path.trim_end_matches('/'));
        let log_step = match step {
            STEP_GET_ICE_CONFIG => Step::Ice,
            _ => Step::Discovery,
        };
        let mut retried_with: Option<i64> = None;
        let mut backoff = Backoff::new(backoff::DEFAULT_BASE, backoff::DEFAULT_CAP);
        let mut last_transient: Option<Error> = None;
        loop {
            let signing = self
                .credentials
                .current_within(self.clock.now(), deadline.left())?
                .credentials;
            let headers = signed_headers(
                &signing,
                &self.region,
                &base.host_header,
                &path,
                &body,
                self.clock.now(),
            );
            let request = Request {
                method: "POST",
                path: &path,
                headers: &headers,
                body: &body,
            };
            diag!(
                Trace,
                log_step,
                "POST https://{}{path} {}",
                base.host_header,
                diag::headers_for_log(headers.iter().map(|(k, v)| (*k, v.as_str())))
            );
            let sent_at = Instant::now();
            let answer = match self.http.send(base, &request, deadline) {
                Ok(answer) => answer,
                Err(e) if e.is_transient() && wait_before_retry(&mut backoff, deadline) => {
                    diag!(Warn, log_step, "POST {path}: {e}; retried");
                    last_transient = Some(e);
                    continue;
                }
                // A retry cut short by the deadline: the failure that made us retry says more.
                Err(e) if e.kind == ErrorKind::Timeout && last_transient.is_some() => {
                    let last = last_transient.unwrap_or(e);
                    return Err(retry_notes(last, retried_with, &backoff)
                        .in_step(step)
                        .with_note("the last attempt was cut by the connect timeout"));
                }
                Err(e) => return Err(retry_notes(e, retried_with, &backoff).in_step(step)),
            };
            diag!(
                Debug,
                log_step,
                "POST {path}: HTTP {} in {} ms, {} bytes",
                answer.status,
                sent_at.elapsed().as_millis(),
                answer.body.len()
            );
            diag!(
                Trace,
                log_step,
                "HTTP {} {}",
                answer.status,
                diag::headers_for_log(answer.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            );
            if (200..300).contains(&answer.status) {
                return Ok(answer.body);
            }
            let (body_type, message) = parse_error_body(&answer.body);
            let message = message.map(|m| signing.redact(&m));
            let error = Error::from_service_response(
                answer.status,
                answer
                    .header("x-amzn-ErrorType")
                    .map(str::to_owned)
                    .or(body_type)
                    .as_deref(),
                message.as_deref(),
                answer.header("x-amzn-RequestId"),
            );
            if retried_with.is_none() {
                let server_date = answer.header("date").and_then(parse_http_date);
                let retry =
                    self.clock
                        .after_refusal(error.http_status, server_date, &error.message);
                if let Some(offset) = retry {
                    diag!(
                        Info,
                        log_step,
                        "the service refused the signature's time ({}); clock corrected to \
                         {offset:+} s from the device clock, retrying",
                        error.error_type.as_deref().unwrap_or("HTTP 403")
                    );
                    retried_with = Some(offset);
                    continue;
                }
            }
            if error.is_transient() && wait_before_retry(&mut backoff, deadline) {
                diag!(Warn, log_step, "POST {path}: {error}; retried");
                last_transient = Some(error);
                continue;
            }
            return Err(retry_notes(error, retried_with, &backoff).in_step(step));
        }
    }
}

/// Sleeps the next backoff wait if the deadline leaves room for it and another try.
fn wait_before_retry(backoff: &mut Backoff, deadline: &Deadline) -> bool {
    let wait = backoff.next_wait();
    if wait >= deadline.left() {
        return false;
    }
    std::thread::sleep(wait);
    true
}

/// Says what was tried before the error: a corrected clock, transient failures.
fn retry_notes(mut e: Error, retried_with: Option<i64>, backoff: &Backoff) -> Error {
    if let Some(offset) = retried_with {
        e = e.in_step(&format!("retried with the server's clock, {offset} s off"));
    }
    match backoff.attempts() {
        0 => e,
        n => e.in_step(&format!("{} attempts", n + 1)),
    }
}

fn unusable(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("the service's answer is unusable: {what}"),
    )
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| unusable(format!("not JSON ({e})")))
}

/// `{"ChannelInfo": {"ChannelARN", "ChannelName", "ChannelStatus", ...}}`.
pub fn parse_describe(body: &[u8]) -> Result<ChannelInfo> {
    let v = parse_json(body)?;
    let info = v
        .get("ChannelInfo")
        .and_then(Value::as_object)
        .ok_or_else(|| unusable("ChannelInfo is missing"))?;
    let text = |name: &str| info.get(name).and_then(Value::as_str).map(str::to_owned);
    let arn = text("ChannelARN").ok_or_else(|| unusable("ChannelInfo.ChannelARN is missing"))?;
    validate::channel_arn(&arn).map_err(|e| unusable(format!("ChannelInfo.{}", e.message)))?;
    let name = text("ChannelName").unwrap_or_default();
    let status = text("ChannelStatus").unwrap_or_default();
    if status == "DELETING" {
        return Err(Error::new(
            ErrorKind::ResourceNotFound,
            format!("channel {name:?} ({arn}) is being deleted (ChannelStatus DELETING)"),
        ));
    }
    Ok(ChannelInfo { arn, name, status })
}

/// `{"ResourceEndpointList": [{"Protocol": "WSS", "ResourceEndpoint": "wss://..."}, ...]}`;
/// protocols compared case-insensitively, both WSS and HTTPS required, both validated.
pub fn parse_endpoints(body: &[u8]) -> Result<Endpoints> {
    let v = parse_json(body)?;
    let list = v
        .get("ResourceEndpointList")
        .and_then(Value::as_array)
        .ok_or_else(|| unusable("ResourceEndpointList is missing"))?;
    let mut wss = None;
    let mut https = None;
    for entry in list {
        let protocol = entry.get("Protocol").and_then(Value::as_str).unwrap_or("");
        let endpoint = entry.get("ResourceEndpoint").and_then(Value::as_str);
        let slot = if protocol.eq_ignore_ascii_case("WSS") {
            &mut wss
        } else if protocol.eq_ignore_ascii_case("HTTPS") {
            &mut https
        } else {
            continue;
        };
        if let Some(e) = endpoint {
            *slot = Some(e.to_owned());
        }
    }
    let check = |e: Option<String>, protocol: &str| -> Result<String> {
        let e = e.ok_or_else(|| {
            unusable(format!(
                "no {protocol} endpoint in ResourceEndpointList (a viewer needs WSS and HTTPS)"
            ))
        })?;
        if e.len() > MAX_ENDPOINT_LEN {
            return Err(unusable(format!(
                "the {protocol} endpoint has {} characters, at most {MAX_ENDPOINT_LEN} supported",
                e.len()
            )));
        }
        Ok(e)
    };
    let wss = check(wss, "WSS")?;
    let https = check(https, "HTTPS")?;
    validate::wss_endpoint(&wss).map_err(|e| unusable(format!("WSS endpoint: {}", e.message)))?;
    validate::https_endpoint("HTTPS endpoint", &https).map_err(|e| unusable(e.message))?;
    Ok(Endpoints { wss, https })
}

/// What the viewer learnt about its channel, kept for reconnects and ICE refreshes: the ARN,
/// the endpoints (they do not change for a channel) and the TURN servers.
pub(crate) struct ChannelDirectory {
    control: ControlPlane,
    channel_arn: String,
    client_id: String,
    region: String,
    /// Known after discovery, or fetched on the first ICE request when the WSS endpoint was
    /// configured. Parsed HTTPS endpoint alongside.
    endpoints: Mutex<Option<(Endpoints, Endpoint)>>,
    ice: Mutex<Option<IceCache>>,
    /// TURN server sets fetched after the first, for `Stats::ice_refreshes`.
    ice_refreshes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChannelDirectory {
    pub(crate) fn new(control: ControlPlane, channel_arn: String, config: &ViewerConfig) -> Self {
        ChannelDirectory {
            control,
            channel_arn,
            client_id: config.client_id.clone(),
            region: config.region.clone(),
            endpoints: Mutex::new(None),
            ice: Mutex::new(None),
            ice_refreshes: AtomicU64::new(0),
        }
    }

    pub(crate) fn channel_arn(&self) -> &str {
        &self.channel_arn
    }

    /// The channel's endpoints, from memory after the first `GetSignalingChannelEndpoint`.
    pub(crate) fn endpoints(&self, deadline: &Deadline) -> Result<Endpoints> {
        Ok(self.endpoints_parsed(deadline)?.0)
    }

    fn endpoints_parsed(&self, deadline: &Deadline) -> Result<(Endpoints, Endpoint)> {
        // Lines wait until the lock is released: the log callback may call back in.
        let _quiet = diag::hold();
        let mut known = lock(&self.endpoints);
        if let Some(e) = &*known {
            return Ok(e.clone());
        }
        let endpoints = self.control.get_endpoints(&self.channel_arn, deadline)?;
        let https = validate::https_endpoint("HTTPS endpoint", &endpoints.https)
            .map_err(|e| e.in_step(STEP_GET_ENDPOINT))?;
        diag!(
            Info,
            Step::Discovery,
            "endpoints {} and {}",
            endpoints.wss,
            endpoints.https
        );
        *known = Some((endpoints.clone(), https.clone()));
        Ok((endpoints, https))
    }

    /// Forgets the endpoints and asks the control plane again (the old ones stopped
    /// answering).
    pub(crate) fn rediscover_endpoints(&self, deadline: &Deadline) -> Result<Endpoints> {
        lock(&self.endpoints).take();
        self.endpoints(deadline)
    }

    /// STUN first, then the TURN servers; fetched again when `force`, when never fetched, or
    /// within 30 s of the smallest TTL. Holds only the ICE lock while fetching: the
    /// connection thread and `send`/`recv` are never blocked by it.
    pub(crate) fn ice_servers(&self, force: bool, deadline: &Deadline) -> Result<Vec<IceServer>> {
        Ok(self.ice_snapshot(force, deadline)?.servers)
    }

    /// The servers of one fetch with its generation, read under one lock.
    pub(crate) fn ice_snapshot(&self, force: bool, deadline: &Deadline) -> Result<IceSnapshot> {
        // Lines wait until the lock is released: the log callback may call back in.
        let _quiet = diag::hold();
        let mut cache = lock(&self.ice);
        match &*cache {
            Some(c) if !force && c.is_fresh(Instant::now()) => {}
            _ => {
                let (_, https) = self.endpoints_parsed(deadline)?;
                let fetched_at = Instant::now();
                let (turn, dropped) = self.control.get_ice_servers(
                    &https,
                    &self.channel_arn,
                    &self.client_id,
                    deadline,
                )?;
                let refresh = cache.is_some();
                if refresh {
                    self.ice_refreshes.fetch_add(1, Ordering::Relaxed);
                }
                diag!(
                    Info,
                    Step::Ice,
                    "{} {} TURN servers (TTL {} s){}",
                    if refresh { "refreshed:" } else { "fetched" },
                    turn.len(),
                    turn.iter().map(|t| t.ttl_s).min().unwrap_or(0),
                    if dropped > 0 {
                        format!(", {dropped} over the limit dropped")
                    } else {
                        String::new()
                    }
                );
                let generation = cache.as_ref().map_or(1, |c| c.generation() + 1);
                *cache = Some(IceCache::new(turn, dropped, fetched_at, generation));
            }
        }
        Ok(cache
            .as_ref()
            .map(|c| c.snapshot(&self.region))
            .unwrap_or(IceSnapshot {
                generation: 0,
                servers: Vec::new(),
            }))
    }

    /// TURN server sets fetched after the first.
    pub(crate) fn ice_refreshes(&self) -> u64 {
        self.ice_refreshes.load(Ordering::Relaxed)
    }

    /// TURN servers dropped from the last answer because it had more than five.
    pub(crate) fn ice_servers_dropped(&self) -> usize {
        lock(&self.ice).as_ref().map_or(0, |c| c.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const ARN: &str =
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123";

    #[test]
    fn default_urls_per_partition() {
        assert_eq!(
            default_control_plane_url("us-west-2"),
            "https://kinesisvideo.us-west-2.amazonaws.com"
        );
        assert_eq!(
            default_control_plane_url("cn-north-1"),
            "https://kinesisvideo.cn-north-1.amazonaws.com.cn"
        );
    }

    /// protocol.md §2.6, botocore style: bit for bit.
    #[test]
    fn signs_the_documented_vector() {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLE+/="),
        );
        let body = format!(
            r#"{{"ChannelARN":"{ARN}","SingleMasterChannelEndpointConfiguration":{{"Protocols":["WSS","HTTPS"],"Role":"VIEWER"}}}}"#
        );
        assert_eq!(body.len(), 184);
        let headers = signed_headers(
            &creds,
            "us-west-2",
            "kinesisvideo.us-west-2.amazonaws.com",
            "/getSignalingChannelEndpoint",
            body.as_bytes(),
            datetime!(2024-01-01 12:00:00 UTC),
        );
        let names: Vec<_> = headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "host",
                "x-amz-date",
                "x-amz-security-token",
                "authorization"
            ]
        );
        assert_eq!(
            headers[4].1,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-west-2/kinesisvideo/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, \
             Signature=2173139cbdf969c8afa38948a11fa44c9cc355a9089dd77e3f5e9005b5d6e12d"
        );
        let no_token = signed_headers(
            &Credentials::new("AKIAIOSFODNN7EXAMPLE", "x", None),
            "us-west-2",
            "h",
            "/describeSignalingChannel",
            b"{}",
            datetime!(2024-01-01 12:00:00 UTC),
        );
        assert!(
            no_token[3]
                .1
                .contains("SignedHeaders=content-type;host;x-amz-date,")
        );
    }

    #[test]
    fn describe_answers() {
        let ok = format!(
            r#"{{"ChannelInfo":{{"ChannelARN":"{ARN}","ChannelName":"demo-channel","ChannelStatus":"ACTIVE","CreationTime":1.7e9,"Extra":1}}}}"#
        );
        let info = parse_describe(ok.as_bytes()).unwrap();
        assert_eq!((info.arn.as_str(), info.status.as_str()), (ARN, "ACTIVE"));
        let deleting = ok.replace("ACTIVE", "DELETING");
        let e = parse_describe(deleting.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ResourceNotFound);
        assert!(e.message.contains("being deleted"), "{}", e.message);
        let e = parse_describe(br#"{"ChannelInfo":{"ChannelARN":"nope"}}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("channel_arn"), "{}", e.message);
        for bad in [&b"{}"[..], b"[]", b"<html>"] {
            assert_eq!(parse_describe(bad).unwrap_err().kind, ErrorKind::Protocol);
        }
    }

    #[test]
    fn endpoint_answers() {
        let both = br#"{"ResourceEndpointList":[{"Protocol":"https","ResourceEndpoint":"https://r-1.kinesisvideo.us-west-2.amazonaws.com"},{"Protocol":"WSS","ResourceEndpoint":"wss://v-1.kinesisvideo.us-west-2.amazonaws.com"},{"Protocol":"WEBRTC","ResourceEndpoint":"x"}]}"#;
        let e = parse_endpoints(both).unwrap();
        assert_eq!(e.wss, "wss://v-1.kinesisvideo.us-west-2.amazonaws.com");
        assert_eq!(e.https, "https://r-1.kinesisvideo.us-west-2.amazonaws.com");
        let only_https = br#"{"ResourceEndpointList":[{"Protocol":"HTTPS","ResourceEndpoint":"https://r-1.x"}]}"#;
        let err = parse_endpoints(only_https).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Protocol);
        assert!(err.message.contains("no WSS endpoint"), "{}", err.message);
        let bad_scheme = br#"{"ResourceEndpointList":[{"Protocol":"HTTPS","ResourceEndpoint":"http://r-1.x"},{"Protocol":"WSS","ResourceEndpoint":"wss://v"}]}"#;
        assert!(
            parse_endpoints(bad_scheme)
                .unwrap_err()
                .message
                .contains("https://")
        );
        let long = format!(
            r#"{{"ResourceEndpointList":[{{"Protocol":"HTTPS","ResourceEndpoint":"https://r"}},{{"Protocol":"WSS","ResourceEndpoint":"wss://{}"}}]}}"#,
            "v".repeat(600)
        );
        assert!(
            parse_endpoints(long.as_bytes())
                .unwrap_err()
                .message
                .contains("at most 512")
        );
        assert!(parse_endpoints(b"{}").is_err());
    }

    /// Our header signature equals botocore's `SigV4Auth` for the same request, time and body.
    #[test]
    fn header_signature_matches_botocore() {
        let creds = Credentials::new(
            "ASIAEXAMPLEEXAMPLE12",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLE+/=token"),
        );
        let cases = [
            (
                "127.0.0.1:8443",
                "/describeSignalingChannel",
                r#"{"ChannelName":"demo-channel"}"#.to_owned(),
            ),
            (
                "r-1234abcd.kinesisvideo.us-west-2.amazonaws.com",
                "/v1/get-ice-server-config",
                r#"{"ChannelARN":"arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123","ClientId":"viewer-1","Service":"TURN"}"#.to_owned(),
            ),
        ];
        let time = time::macros::datetime!(2024-03-05 06:07:08 UTC);
        for (host, path, body) in cases {
            let ours = signed_headers(&creds, "us-west-2", host, path, body.as_bytes(), time);
            let authorization = &ours.iter().find(|(k, _)| *k == "authorization").unwrap().1;
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/botocore_sign.py");
            let input = serde_json::json!({
                "access_key_id": creds.access_key_id,
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "session_token": creds.session_token(),
                "region": "us-west-2",
                "url": format!("https://{host}{path}"),
                "body": body,
                "amz_date": "20240305T060708Z",
            });
            let out = std::process::Command::new("timeout")
                .args(["30", "python3", script, &input.to_string()])
                .output()
                .expect("python3 runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("No module named 'botocore'"),
                "botocore is missing: pip install botocore"
            );
            assert!(out.status.success(), "botocore script failed: {stderr}");
            let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                theirs["authorization"].as_str().unwrap(),
                authorization,
                "{host}{path}"
            );
            assert_eq!(
                theirs["signed_headers"],
                "content-type;host;x-amz-date;x-amz-security-token"
            );
        }
    }
}
