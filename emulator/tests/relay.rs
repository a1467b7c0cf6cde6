//! Relay between viewers and a master, the built-in master, STATUS_RESPONSE rules and faults.

mod common;

use std::time::Duration;

use common::*;
use kvs_signaling_emulator::{Fault, RawFrame};
use serde_json::{Value, json};
use tungstenite::Message;

fn candidate_frame(i: usize) -> Value {
    let c = json!({"candidate": format!("candidate:{i} 1 udp 2130706431 127.0.0.1 {} typ host", 40000 + i), "sdpMid": "0", "sdpMLineIndex": 0});
    json!({"action": "ICE_CANDIDATE", "messagePayload": b64(&c.to_string())})
}

#[test]
fn auto_answer_replies_with_matching_answer_then_candidates() {
    let emu = start();
    let mut v = viewer(&emu, "v1");
    send(&mut v, &offer_frame());
    let ans = recv(&mut v);
    assert_eq!(ans["messageType"], "SDP_ANSWER");
    assert!(
        ans.get("senderClientId").is_none(),
        "master messages carry no senderClientId"
    );
    let payload: Value =
        serde_json::from_str(&unb64(ans["messagePayload"].as_str().unwrap())).unwrap();
    assert_eq!(payload["type"], "answer");
    let sdp = payload["sdp"].as_str().unwrap();
    assert!(sdp.starts_with("v=0\r\n"));
    let m_lines: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(m_lines.len(), 2, "{sdp}");
    assert!(m_lines[0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96"));
    assert!(m_lines[1].starts_with("m=application"));
    assert!(sdp.contains("a=mid:0\r\n") && sdp.contains("a=mid:1\r\n"));
    assert!(
        sdp.contains("a=sendonly\r\n"),
        "recvonly offer gets a sendonly answer"
    );
    assert!(sdp.contains("a=group:BUNDLE 0 1\r\n"));
    for _ in 0..2 {
        let c = recv(&mut v);
        assert_eq!(c["messageType"], "ICE_CANDIDATE");
        let p: Value = serde_json::from_str(&unb64(c["messagePayload"].as_str().unwrap())).unwrap();
        assert!(p["candidate"].as_str().unwrap().starts_with("candidate:"));
        assert_eq!(p["sdpMid"], "0");
        assert_eq!(p["sdpMLineIndex"], 0);
    }
    assert!(
        recv_within(&mut v, Duration::from_millis(200)).is_none(),
        "exactly 2 candidates by default"
    );
    // Viewer candidates are recorded.
    send(&mut v, &candidate_frame(7));
    let ev = emu
        .wait_for_event(|e| e["type"] == "viewer_candidate", WAIT)
        .unwrap();
    assert_eq!(ev["client_id"], "v1");
    assert!(
        ev["candidate"]
            .as_str()
            .unwrap()
            .starts_with("candidate:7 ")
    );
}

#[test]
fn candidate_count_and_order_are_configurable() {
    let emu = start_with(|c| c.answer_candidates = 3);
    emu.inject(Fault::CandidatesBeforeAnswer(true)).unwrap();
    let mut v = viewer(&emu, "v1");
    send(&mut v, &offer_frame());
    let types: Vec<String> = (0..4)
        .map(|_| recv(&mut v)["messageType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "ICE_CANDIDATE",
            "ICE_CANDIDATE",
            "ICE_CANDIDATE",
            "SDP_ANSWER"
        ]
    );
}

#[test]
fn pascal_case_keys_and_extra_keys_are_accepted() {
    let emu = start();
    let mut v = viewer(&emu, "c-sdk");
    let payload = json!({"type": "offer", "sdp": OFFER_SDP}).to_string();
    send(
        &mut v,
        &json!({"action": "SDP_OFFER", "RecipientClientId": "ProducerMaster", "MessagePayload": b64(&payload),
                "CorrelationId": "1", "IceServerList": [{"Uris": ["turn:x"], "Username": "u", "Password": "p", "Ttl": 300}]}),
    );
    assert_eq!(recv(&mut v)["messageType"], "SDP_ANSWER");
}

#[test]
fn relay_between_viewers_and_master_in_order() {
    let emu = start();
    let mut m = master(&emu);
    let mut v1 = viewer(&emu, "v1");
    let mut v2 = viewer(&emu, "v2");
    // Viewer → master: senderClientId added, order kept.
    send(&mut v1, &offer_frame());
    for i in 0..20 {
        send(&mut v1, &candidate_frame(i));
    }
    let first = recv(&mut m);
    assert_eq!(first["messageType"], "SDP_OFFER");
    assert_eq!(first["senderClientId"], "v1");
    assert_eq!(first["messagePayload"], offer_frame()["messagePayload"]);
    for i in 0..20 {
        let f = recv(&mut m);
        assert_eq!(f["messageType"], "ICE_CANDIDATE");
        assert_eq!(
            f["messagePayload"],
            candidate_frame(i)["messagePayload"],
            "in order"
        );
    }
    // The real master took over: no auto-answer reached the viewer.
    assert!(recv_within(&mut v1, Duration::from_millis(200)).is_none());
    // Master → viewer by recipientClientId, delivered without senderClientId, in order.
    for i in 0..10 {
        send(
            &mut m,
            &json!({"action": "ICE_CANDIDATE", "recipientClientId": "v2", "messagePayload": b64(&format!("m{i}"))}),
        );
    }
    for i in 0..10 {
        let f = recv(&mut v2);
        assert_eq!(f["messageType"], "ICE_CANDIDATE");
        assert!(f.get("senderClientId").is_none());
        assert_eq!(
            unb64(f["messagePayload"].as_str().unwrap()),
            format!("m{i}")
        );
    }
    send(
        &mut m,
        &json!({"action": "SDP_ANSWER", "RecipientClientId": "v1", "MessagePayload": b64("answer")}),
    );
    let a = recv(&mut v1);
    assert_eq!(a["messageType"], "SDP_ANSWER");
    assert!(
        recv_within(&mut v2, Duration::from_millis(100)).is_none(),
        "not sent to v2"
    );
}

#[test]
fn built_in_master_resumes_when_the_real_master_leaves() {
    let emu = start();
    let mut m = master(&emu);
    m.close(None).unwrap();
    let _ = wait_closed(&mut m);
    emu.wait_for_event(
        |e| e["type"] == "disconnected" && e["role"] == "MASTER",
        WAIT,
    )
    .unwrap();
    let mut v = viewer(&emu, "v1");
    send(&mut v, &offer_frame());
    assert_eq!(recv(&mut v)["messageType"], "SDP_ANSWER");
}

#[test]
fn messages_wait_for_a_late_master_without_auto_answer() {
    let emu = start_with(|c| c.auto_answer = false);
    let mut v = viewer(&emu, "v1");
    send(&mut v, &offer_frame());
    emu.wait_for_event(|e| e["type"] == "queued_for_master", WAIT)
        .unwrap();
    assert!(
        recv_within(&mut v, Duration::from_millis(200)).is_none(),
        "no built-in answer"
    );
    let mut m = master(&emu);
    let f = recv(&mut m);
    assert_eq!(f["messageType"], "SDP_OFFER");
    assert_eq!(f["senderClientId"], "v1");
}

#[test]
fn status_response_only_on_failure_and_only_with_correlation_id() {
    let emu = start();
    let mut v = viewer(&emu, "v1");
    // Success with a correlationId: no STATUS_RESPONSE (only the answer + candidates).
    let mut ok = offer_frame();
    ok["correlationId"] = json!("c-ok");
    send(&mut v, &ok);
    for _ in 0..3 {
        assert_ne!(recv(&mut v)["messageType"], "STATUS_RESPONSE");
    }
    // Oversized payload (10,001 chars) without correlationId: silently dropped.
    let big = "A".repeat(10_001);
    send(
        &mut v,
        &json!({"action": "ICE_CANDIDATE", "messagePayload": big}),
    );
    assert!(recv_within(&mut v, Duration::from_millis(200)).is_none());
    // Same with a correlationId: STATUS_RESPONSE with the service's shape.
    send(
        &mut v,
        &json!({"action": "ICE_CANDIDATE", "messagePayload": big, "correlationId": "c-1"}),
    );
    let s = recv(&mut v);
    assert_eq!(s["messageType"], "STATUS_RESPONSE");
    assert_eq!(s["statusResponse"]["correlationId"], "c-1");
    assert_eq!(s["statusResponse"]["errorType"], "InvalidArgumentException");
    assert_eq!(s["statusResponse"]["statusCode"], "400");
    // Exactly 10,000 is fine.
    send(
        &mut v,
        &json!({"action": "ICE_CANDIDATE", "messagePayload": "A".repeat(10_000), "correlationId": "c-2"}),
    );
    // Unknown action and missing payload with correlationId.
    send(
        &mut v,
        &json!({"action": "SDP_ANSWER", "messagePayload": "eA==", "correlationId": "c-3"}),
    );
    send(
        &mut v,
        &json!({"action": "ICE_CANDIDATE", "correlationId": "c-4"}),
    );
    let s3 = recv(&mut v);
    assert_eq!(
        s3["statusResponse"]["correlationId"], "c-3",
        "c-2 succeeded silently"
    );
    let s4 = recv(&mut v);
    assert_eq!(s4["statusResponse"]["correlationId"], "c-4");
    // A payload that is not base64: dropped silently without a correlationId, a STATUS_RESPONSE
    // with one; an undecodable one (bad padding) too; a bad correlationId itself too.
    send(
        &mut v,
        &json!({"action": "SDP_OFFER", "messagePayload": "not base64!"}),
    );
    assert!(recv_within(&mut v, Duration::from_millis(200)).is_none());
    send(
        &mut v,
        &json!({"action": "SDP_OFFER", "messagePayload": "not base64!", "correlationId": "c-5"}),
    );
    let s5 = recv(&mut v);
    assert_eq!(s5["statusResponse"]["correlationId"], "c-5");
    assert_eq!(
        s5["statusResponse"]["errorType"],
        "InvalidArgumentException"
    );
    assert!(
        s5["statusResponse"]["description"]
            .as_str()
            .unwrap()
            .contains("messagePayload"),
        "{s5}"
    );
    send(
        &mut v,
        &json!({"action": "ICE_CANDIDATE", "messagePayload": "A=A=", "correlationId": "c-6"}),
    );
    assert_eq!(recv(&mut v)["statusResponse"]["correlationId"], "c-6");
    send(
        &mut v,
        &json!({"action": "ICE_CANDIDATE", "messagePayload": "eA==", "correlationId": "bad id!"}),
    );
    assert_eq!(recv(&mut v)["statusResponse"]["correlationId"], "bad id!");
    let rejected = emu
        .events()
        .into_iter()
        .filter(|e| e["type"] == "frame_rejected" && e["from"] == "v1")
        .count();
    assert_eq!(rejected, 8, "every refused frame is in the event log");
    // Non-JSON is ignored without an answer; the connection stays up.
    v.send(Message::text("not json")).unwrap();
    send(&mut v, &offer_frame());
    assert_eq!(recv(&mut v)["messageType"], "SDP_ANSWER");
}

#[test]
fn master_must_name_a_recipient() {
    let emu = start();
    let mut m = master(&emu);
    send(
        &mut m,
        &json!({"action": "SDP_ANSWER", "messagePayload": "eA==", "correlationId": "x1"}),
    );
    let s = recv(&mut m);
    assert_eq!(s["messageType"], "STATUS_RESPONSE");
    assert_eq!(s["statusResponse"]["correlationId"], "x1");
    // A recipient that breaks the client-id pattern is refused too.
    send(
        &mut m,
        &json!({"action": "SDP_ANSWER", "messagePayload": "eA==", "recipientClientId": "no such/id", "correlationId": "x2"}),
    );
    let s = recv(&mut m);
    assert_eq!(s["statusResponse"]["correlationId"], "x2");
    assert!(
        s["statusResponse"]["description"]
            .as_str()
            .unwrap()
            .contains("recipientClientId"),
        "{s}"
    );
}

#[test]
fn go_away_is_sent_then_the_connection_is_closed() {
    let emu = start();
    let mut v = viewer(&emu, "v1");
    let mut other = viewer(&emu, "v2");
    emu.inject(Fault::GoAway {
        client_id: Some("v1".into()),
        grace_ms: 100,
    })
    .unwrap();
    assert_eq!(recv(&mut v)["messageType"], "GO_AWAY");
    assert_eq!(wait_closed(&mut v), Ok(Some(1001)));
    assert_eq!(emu.connected_viewers(), vec!["v2".to_string()]);
    assert!(recv_within(&mut other, Duration::from_millis(100)).is_none());
    // All viewers.
    emu.inject(Fault::GoAway {
        client_id: None,
        grace_ms: 0,
    })
    .unwrap();
    assert_eq!(recv(&mut other)["messageType"], "GO_AWAY");
    assert_eq!(wait_closed(&mut other), Ok(Some(1001)));
    assert!(
        emu.inject(Fault::GoAway {
            client_id: Some("nobody".into()),
            grace_ms: 0
        })
        .is_err()
    );
}

#[test]
fn reconnect_ice_server_is_delivered() {
    let emu = start();
    let mut v = viewer(&emu, "v1");
    emu.inject(Fault::ReconnectIceServer { client_id: None })
        .unwrap();
    assert_eq!(recv(&mut v)["messageType"], "RECONNECT_ICE_SERVER");
}

#[test]
fn drop_connection_is_abrupt() {
    let emu = start();
    let mut v = viewer(&emu, "v1");
    emu.inject(Fault::DropConnection {
        client_id: Some("v1".into()),
    })
    .unwrap();
    let r = wait_closed(&mut v);
    assert!(r.is_err(), "no close frame, just a dead socket: {r:?}");
    emu.wait_for_event(|e| e["type"] == "dropped", WAIT)
        .unwrap();
    assert!(emu.connected_viewers().is_empty());
}

#[test]
fn send_raw_frames() {
    let emu = start();
    let mut v = viewer(&emu, "v1");
    emu.inject(Fault::SendRaw {
        client_id: Some("v1".into()),
        frame: RawFrame::NonJson,
    })
    .unwrap();
    assert!(recv(&mut v).is_string(), "non-JSON text arrives as-is");
    emu.inject(Fault::SendRaw {
        client_id: None,
        frame: RawFrame::InvalidBase64,
    })
    .unwrap();
    let f = recv(&mut v);
    assert_eq!(f["messageType"], "SDP_ANSWER");
    assert!(f["messagePayload"].as_str().unwrap().contains('%'));
    emu.inject(Fault::SendRaw {
        client_id: None,
        frame: RawFrame::Oversized,
    })
    .unwrap();
    let f = recv(&mut v);
    assert!(f["messagePayload"].as_str().unwrap().len() > 100_000);
    emu.inject(Fault::SendRaw {
        client_id: None,
        frame: RawFrame::Text("{\"messageType\":\"X\"}".into()),
    })
    .unwrap();
    assert_eq!(recv(&mut v)["messageType"], "X");
    emu.inject(Fault::SendRaw {
        client_id: None,
        frame: RawFrame::Binary(vec![1, 2, 3]),
    })
    .unwrap();
    v.get_ref().get_ref().set_read_timeout(Some(WAIT)).unwrap();
    loop {
        match v.read().unwrap() {
            Message::Binary(b) => {
                assert_eq!(&b[..], &[1, 2, 3]);
                break;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn ping_and_wait_pong(v: &mut Ws, d: Duration) -> bool {
    v.send(Message::Ping(vec![42].into())).unwrap();
    let deadline = std::time::Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        v.get_ref().get_ref().set_read_timeout(Some(left)).unwrap();
        match v.read() {
            Ok(Message::Pong(_)) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn stop_pongs() {
    let emu = start();
    let mut v = viewer(&emu, "v1");
    assert!(ping_and_wait_pong(&mut v, WAIT));
    emu.inject(Fault::StopPongs(true)).unwrap();
    assert!(!ping_and_wait_pong(&mut v, Duration::from_millis(300)));
    emu.inject(Fault::StopPongs(false)).unwrap();
    assert!(ping_and_wait_pong(&mut v, WAIT));
    // Messages still flow while pongs are off.
    emu.inject(Fault::StopPongs(true)).unwrap();
    send(&mut v, &offer_frame());
    assert_eq!(recv(&mut v)["messageType"], "SDP_ANSWER");
}

#[test]
fn idle_timeout_closes_quiet_connections() {
    let emu = start();
    emu.inject(Fault::IdleTimeout { secs: 1 }).unwrap();
    let mut v = viewer(&emu, "v1");
    assert_eq!(wait_closed(&mut v), Ok(Some(1001)));
    let ev = emu
        .wait_for_event(|e| e["type"] == "server_close", WAIT)
        .unwrap();
    assert_eq!(ev["reason"], "Idle timeout");
}

#[test]
fn max_lifetime_closes_old_connections() {
    let emu = start_with(|c| c.max_connection_secs = Some(1));
    let mut v = viewer(&emu, "v1");
    assert_eq!(wait_closed(&mut v), Ok(Some(1001)));
    let ev = emu
        .wait_for_event(|e| e["type"] == "server_close", WAIT)
        .unwrap();
    assert_eq!(ev["reason"], "Maximum connection duration reached");
}

#[test]
fn admin_fault_state_and_events() {
    let emu = start();
    let env = emu.env().clone();
    let mut v = viewer(&emu, "admin-v");
    let st = admin(&env, "GET", "/v1/state", "");
    assert_eq!(st.status, 200);
    assert_eq!(st.json()["viewers"][0]["client_id"], "admin-v");
    let r = admin(
        &env,
        "POST",
        "/v1/fault",
        r#"{"GoAway":{"client_id":"admin-v","grace_ms":50}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(recv(&mut v)["messageType"], "GO_AWAY");
    assert_eq!(wait_closed(&mut v), Ok(Some(1001)));
    let r = admin(
        &env,
        "POST",
        "/v1/fault",
        r#"{"FailNext":{"operation":"Connect","status":500,"error_type":"InternalFailure","message":"boom","count":1}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let rej = ws_connect(&env, &presign(&env, &Opts::default())).unwrap_err();
    assert_eq!(rej.status, 500);
    assert_eq!(rej.error_type.as_deref(), Some("InternalFailure"));
    assert_eq!(
        admin(&env, "POST", "/v1/fault", r#"{"StopPongs":true}"#).status,
        200
    );
    assert_eq!(
        admin(&env, "POST", "/v1/fault", r#"{"Nope":1}"#).status,
        400
    );
    assert_eq!(
        admin(
            &env,
            "POST",
            "/v1/fault",
            r#"{"ReconnectIceServer":{"client_id":"ghost"}}"#
        )
        .status,
        409
    );
    let ev = admin(&env, "GET", "/v1/events", "");
    assert_eq!(ev.status, 200);
    let list = ev.json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "fault")
    );
}

#[test]
fn event_log_has_no_secrets() {
    let emu =
        start_with(|c| c.credentials = vec![kvs_signaling_emulator::Credential::random_session()]);
    let env = emu.env().clone();
    let mut v = viewer(&emu, "v1");
    send(&mut v, &offer_frame());
    let _ = recv(&mut v);
    let url = presign(&env, &Opts::default());
    let _ = ws_connect(
        &env,
        &presign(
            &env,
            &Opts {
                tamper: true,
                ..Default::default()
            },
        ),
    );
    let r = post(
        &env,
        &env.control_plane_url,
        "/describeSignalingChannel",
        &json!({"ChannelName": env.channel_name}).to_string(),
        &PostOpts::default(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    v.close(None).unwrap();
    emu.wait_for_event(|e| e["type"] == "disconnected", WAIT)
        .unwrap();
    let text = std::fs::read_to_string(&env.event_log).unwrap();
    assert!(text.lines().count() > 5);
    let token = env.session_token.clone().unwrap();
    let sig = url.rsplit("X-Amz-Signature=").next().unwrap();
    for secret in [
        env.secret_access_key.as_str(),
        token.as_str(),
        &enc(&token),
        sig,
        "X-Amz-Signature",
        "X-Amz-Credential",
    ] {
        assert!(!text.contains(secret), "event log leaks {secret}");
    }
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["type"].is_string());
    }
    // Verdicts with reasons are there.
    assert!(text.contains("\"verdict\":\"rejected\"") && text.contains("signature_mismatch"));
    assert!(text.contains("\"verdict\":\"accepted\""));
}

#[test]
fn go_away_before_the_lifetime_cut_when_configured() {
    let emu = start_with(|c| {
        c.max_connection_secs = Some(2);
        c.go_away_grace_secs = 1;
        c.go_away_before_max_lifetime = true;
    });
    let mut v = viewer(&emu, "v1");
    assert_eq!(recv(&mut v)["messageType"], "GO_AWAY");
    assert_eq!(wait_closed(&mut v), Ok(Some(1001)));
}
