//! The faults automatic-reconnect tests need: server close codes, freeze, server down, presigned
//! URL expiry; through the Rust API and the admin API (the CLI's `--fault-at` is in cli.rs).

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use kvs_signaling_emulator::{Event, Fault};
use tungstenite::Message;

fn port_of(url: &str) -> u16 {
    url.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// Reads until the connection fails without a close frame (RST / EOF); Err if a frame or a
/// close frame arrives instead, or nothing happens within `d`.
fn wait_reset(ws: &mut Ws, d: Duration) -> Result<(), String> {
    ws.get_ref().get_ref().set_read_timeout(Some(d)).unwrap();
    match ws.read() {
        Ok(m) => Err(format!("got {m:?}")),
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err("still open".into())
        }
        Err(_) => Ok(()),
    }
}

#[test]
fn server_close_with_codes_1000_1001_and_4000() {
    let emu = start();
    for code in [1000u16, 1001, 4000] {
        let id = format!("close-{code}");
        let mut v = viewer(&emu, &id);
        emu.inject(Fault::Close {
            client_id: Some(id.clone()),
            code,
            reason: "test close".into(),
        })
        .unwrap();
        assert_eq!(wait_closed(&mut v), Ok(Some(code)));
        let ev = emu
            .wait_for_event(
                |e| e["type"] == "server_close" && e["client_id"] == id.as_str(),
                WAIT,
            )
            .unwrap();
        assert_eq!(ev["code"], code);
    }
    // Codes a close frame cannot carry are refused; so is an unknown client.
    for code in [999u16, 1005, 1006, 1015, 2000, 5000] {
        let f = Fault::Close {
            client_id: None,
            code,
            reason: String::new(),
        };
        assert!(emu.inject(f).is_err(), "{code}");
    }
    let env = emu.env();
    let r = admin(
        env,
        "POST",
        "/v1/fault",
        r#"{"Close":{"client_id":"nobody","code":4000}}"#,
    );
    assert_eq!(r.status, 409);
    let mut v = viewer(&emu, "admin-close");
    let r = admin(
        env,
        "POST",
        "/v1/fault",
        r#"{"Close":{"client_id":"admin-close","code":4000,"reason":"maintenance"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(wait_closed(&mut v), Ok(Some(4000)));
}

#[test]
fn freeze_reads_nothing_and_answers_nothing_until_replaced() {
    let emu = start();
    let mut v = viewer(&emu, "frozen");
    emu.inject(Fault::Freeze {
        client_id: Some("frozen".into()),
        ms: 0,
    })
    .unwrap();
    emu.wait_for_record(|r| matches!(r.event, Event::Frozen { .. }), WAIT)
        .expect("frozen event");
    // No answer to an offer, no pong to a ping, no close.
    send(&mut v, &offer_frame());
    v.send(Message::Ping(vec![1, 2, 3].into())).unwrap();
    assert_eq!(recv_within(&mut v, Duration::from_millis(700)), None);
    assert!(
        emu.events()
            .iter()
            .all(|e| !(e["type"] == "frame_in" && e["from"] == "frozen")),
        "a frozen connection reads nothing"
    );
    // It still counts as connected until a newer connection with the same id replaces it.
    assert_eq!(emu.connected_viewers(), vec!["frozen".to_string()]);
    let mut fresh = viewer(&emu, "frozen");
    send(&mut fresh, &offer_frame());
    assert_eq!(recv(&mut fresh)["messageType"], "SDP_ANSWER");
    assert_eq!(
        wait_reset(&mut v, WAIT),
        Ok(()),
        "the frozen one ends with a reset"
    );
}

#[test]
fn freeze_with_a_bound_drops_the_connection_after_it() {
    let emu = start();
    let mut v = viewer(&emu, "frozen-300");
    let t = Instant::now();
    let env = emu.env();
    let r = admin(
        env,
        "POST",
        "/v1/fault",
        r#"{"Freeze":{"client_id":"frozen-300","ms":300}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(wait_reset(&mut v, WAIT), Ok(()));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(emu.connected_viewers().is_empty());
}

#[test]
fn server_down_refuses_connections_then_comes_back_on_the_same_port() {
    let emu = start();
    let env = emu.env().clone();
    let port = port_of(&env.wss_endpoint);
    let mut v = viewer(&emu, "down-v");
    // A kept-alive control-plane connection opened before the downtime.
    let mut kept = tls_connect(&env);
    let t = Instant::now();
    emu.inject(Fault::ServerDown { ms: 1500 }).unwrap();
    assert_eq!(
        wait_reset(&mut v, WAIT),
        Ok(()),
        "live connections are dropped"
    );
    emu.wait_for_record(|r| matches!(r.event, Event::ServerDown { .. }), WAIT)
        .expect("server_down event");
    // The kept-alive connection gets no answer: it is reset.
    {
        use std::io::{Read, Write};
        let req = signed_request(
            &env,
            &env.control_plane_url,
            "/describeSignalingChannel",
            &serde_json::json!({ "ChannelName": env.channel_name }).to_string(),
            &PostOpts::default(),
            false,
        );
        let _ = kept.write_all(req.as_bytes());
        let mut buf = [0u8; 64];
        assert!(
            !matches!(kept.read(&mut buf), Ok(n) if n > 0),
            "no answer while the server is down"
        );
    }
    let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(admin(&env, "GET", "/v1/state", "").json()["server_down"] == true);
    // Back after the downtime, same port, and it serves.
    let up = emu
        .wait_for_record(|r| matches!(r.event, Event::ServerUp { .. }), WAIT)
        .expect("server_up event");
    assert!(t.elapsed() >= Duration::from_millis(1500), "{up:?}");
    let mut again = viewer(&emu, "down-v");
    send(&mut again, &offer_frame());
    assert_eq!(recv(&mut again)["messageType"], "SDP_ANSWER");
    let r = post_cp(
        &env,
        "/describeSignalingChannel",
        &serde_json::json!({ "ChannelName": env.channel_name }).to_string(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn presign_expiry_is_enforced_on_upgrade_and_optionally_on_live_connections() {
    // At the upgrade: an expired URL is refused (403 AccessDeniedException, "Signature expired").
    let emu = start();
    let env = emu.env().clone();
    let stale = Opts {
        date: Some(now() - 100),
        expires: Some(60),
        ..Default::default()
    };
    let rej = ws_connect(&env, &presign(&env, &stale)).unwrap_err();
    assert_eq!(
        (rej.status, rej.error_type.as_deref()),
        (403, Some("AccessDeniedException"))
    );
    assert!(
        rej.message().starts_with("Signature expired"),
        "{}",
        rej.message()
    );
    // Connected with 2 s left: by default the connection outlives the URL (the service checks
    // it only at the upgrade) ...
    let short = Opts {
        client_id: Some("short-lived".into()),
        expires: Some(2),
        ..Default::default()
    };
    let mut v = ws_connect(&env, &presign(&env, &short)).unwrap();
    let ev = emu
        .wait_for_event(
            |e| e["type"] == "connected" && e["client_id"] == "short-lived",
            WAIT,
        )
        .unwrap();
    assert!((now() + 1..=now() + 2).contains(&ev["presign_expires_at"].as_i64().unwrap()));
    assert_eq!(recv_within(&mut v, Duration::from_millis(3000)), None);
    send(&mut v, &offer_frame());
    assert_eq!(recv(&mut v)["messageType"], "SDP_ANSWER");

    // ... and with close_on_presign_expiry it is closed when the URL expires.
    let emu = start_with(|c| c.close_on_presign_expiry = true);
    let env = emu.env().clone();
    let t = Instant::now();
    let mut v = ws_connect(&env, &presign(&env, &short)).unwrap();
    assert_eq!(wait_closed(&mut v), Ok(Some(1001)));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let ev = emu
        .wait_for_event(|e| e["type"] == "server_close", WAIT)
        .unwrap();
    assert_eq!(ev["reason"], "Presigned URL expired");
}
