//! Service quotas (protocol.md §7.1): off by default, each its own setting, answered with
//! `ClientLimitExceededException` as the service documents.

mod common;

use common::*;
use serde_json::json;

#[test]
fn limits_are_off_by_default() {
    let emu = start();
    let env = emu.env().clone();
    for i in 0..6 {
        let o = Opts {
            client_id: Some(format!("burst-{i}")),
            ..Default::default()
        };
        ws_connect(&env, &presign(&env, &o)).expect("no connect limit by default");
    }
    let mut v = viewer(&emu, "many-candidates");
    for i in 0..30 {
        let c = b64(&json!({"candidate": format!("candidate:{i} 1 udp 1 127.0.0.1 9 typ host"), "sdpMid": "0"}).to_string());
        send(
            &mut v,
            &json!({"action": "ICE_CANDIDATE", "messagePayload": c, "correlationId": format!("c{i}")}),
        );
    }
    assert_eq!(
        recv_within(&mut v, std::time::Duration::from_millis(300)),
        None
    );
}

/// Status of a raw upgrade request already written to `s`.
fn upgrade_status(s: &mut native_tls::TlsStream<std::net::TcpStream>) -> u16 {
    read_one_response(s).status
}

#[test]
fn connect_rate_per_channel() {
    use std::io::Write;
    let emu = start_with(|c| c.limit_connect_tps = Some(2));
    let env = emu.env().clone();
    // TLS first (the slow part on a busy machine), then the three upgrades back to back, so
    // all three land well inside one second.
    let mut streams: Vec<_> = (0..3).map(|_| tls_connect(&env)).collect();
    let host = env.wss_endpoint.trim_start_matches("wss://").to_string();
    for (i, s) in streams.iter_mut().enumerate() {
        let o = Opts {
            client_id: Some(format!("rate-{i}")),
            ..Default::default()
        };
        let url = presign(&env, &o);
        let target = url.split_once(host.as_str()).unwrap().1;
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
    }
    let statuses: Vec<u16> = streams.iter_mut().map(upgrade_status).collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [101, 101, 400], "{statuses:?}");
    let ev = emu
        .wait_for_event(|e| e["type"] == "limit_exceeded", WAIT)
        .unwrap();
    assert_eq!(ev["limit"], "connect_rate");
    let rejected = emu
        .wait_for_event(|e| e["type"] == "connect_rejected", WAIT)
        .unwrap();
    assert_eq!(rejected["error_type"], "ClientLimitExceededException");
}

#[test]
fn message_rates_per_connection() {
    let emu = start_with(|c| {
        c.auto_answer = false;
        c.limit_sdp_tps = Some(2);
        c.limit_ice_tps = Some(3);
    });
    let mut v = viewer(&emu, "chatty");
    let offer = offer_frame()["messagePayload"].clone();
    for i in 0..3 {
        send(
            &mut v,
            &json!({"action": "SDP_OFFER", "messagePayload": offer, "correlationId": format!("o{i}")}),
        );
    }
    let s = recv(&mut v);
    assert_eq!(s["messageType"], "STATUS_RESPONSE");
    assert_eq!(s["statusResponse"]["correlationId"], "o2");
    assert_eq!(
        s["statusResponse"]["errorType"],
        "ClientLimitExceededException"
    );
    assert_eq!(s["statusResponse"]["statusCode"], "400");
    // Candidates have their own budget; over it without a correlationId: dropped silently.
    let cand = b64(r#"{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0"}"#);
    for _ in 0..4 {
        send(
            &mut v,
            &json!({"action": "ICE_CANDIDATE", "messagePayload": cand}),
        );
    }
    send(
        &mut v,
        &json!({"action": "ICE_CANDIDATE", "messagePayload": cand, "correlationId": "i5"}),
    );
    let s = recv(&mut v);
    assert_eq!(s["statusResponse"]["correlationId"], "i5");
    let queued = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "queued_for_master")
        .count();
    assert_eq!(queued, 2 + 3, "only the admitted messages were relayed");
}

#[test]
fn describe_rate_per_channel() {
    use std::io::Write;
    let emu = start_with(|c| c.limit_describe_tps = Some(2));
    let env = emu.env().clone();
    let body = json!({"ChannelName": env.channel_name}).to_string();
    // Three requests on one kept-alive connection: no TLS handshake between them, so they land
    // within milliseconds of each other even on a busy machine.
    let mut s = tls_connect(&env);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let req = signed_request(
            &env,
            &env.control_plane_url,
            "/describeSignalingChannel",
            &body,
            &PostOpts::default(),
            false,
        );
        s.write_all(req.as_bytes()).unwrap();
        let r = read_one_response(&mut s);
        statuses.push((r.status, r.header("x-amzn-errortype").map(str::to_string)));
    }
    assert_eq!(
        statuses,
        [
            (200, None),
            (200, None),
            (400, Some("ClientLimitExceededException".into()))
        ]
    );
}
