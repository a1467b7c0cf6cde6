//! ConnectAsViewer / ConnectAsMaster: signature verification and the service's rules.

mod common;

use common::*;
use kvs_signaling_emulator::{Credential, Fault, Operation};

fn reject(emu: &kvs_signaling_emulator::Emulator, o: &Opts) -> Rejection {
    match ws_connect(emu.env(), &presign(emu.env(), o)) {
        Ok(_) => panic!("upgrade unexpectedly accepted for {o:?}"),
        Err(r) => r,
    }
}

fn assert_denied(r: &Rejection) {
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.error_type.as_deref(),
        Some("AccessDeniedException"),
        "{r:?}"
    );
    assert!(r.date.is_some(), "a Date header is always present: {r:?}");
    assert!(r.request_id.is_some());
}

#[test]
fn presigned_viewer_connect_is_accepted() {
    let emu = start();
    let mut ws = viewer(&emu, &emu.env().client_id.clone());
    assert_eq!(emu.connected_viewers(), vec![emu.env().client_id.clone()]);
    let ev = emu
        .wait_for_event(|e| e["type"] == "connected", WAIT)
        .expect("connected event");
    assert_eq!(ev["role"], "VIEWER");
    assert_eq!(ev["channel_arn"], emu.env().channel_arn.as_str());
    ws.close(None).unwrap();
    assert!(
        emu.wait_for_event(|e| e["type"] == "disconnected", WAIT)
            .is_some(),
        "disconnect recorded"
    );
    assert!(emu.connected_viewers().is_empty());
}

#[test]
fn session_token_is_required_and_signed() {
    let emu = start_with(|c| c.credentials = vec![Credential::random_session()]);
    let env = emu.env();
    assert!(env.session_token.is_some());
    let ws = ws_connect(env, &presign(env, &Opts::default()));
    assert!(ws.is_ok(), "with token: {:?}", ws.err());
    let r = reject(
        &emu,
        &Opts {
            token: Some(None),
            ..Default::default()
        },
    );
    assert_denied(&r);
    let r = reject(
        &emu,
        &Opts {
            token: Some(Some("AnotherToken".into())),
            ..Default::default()
        },
    );
    assert_denied(&r);
}

#[test]
fn tampered_signature_is_denied() {
    let emu = start();
    let r = reject(
        &emu,
        &Opts {
            tamper: true,
            ..Default::default()
        },
    );
    assert_denied(&r);
    assert!(
        r.message()
            .starts_with("The request signature we calculated does not match"),
        "{r:?}"
    );
}

#[test]
fn wrong_secret_is_denied() {
    let emu = start();
    let r = reject(
        &emu,
        &Opts {
            secret: Some("x".repeat(40)),
            ..Default::default()
        },
    );
    assert_denied(&r);
}

#[test]
fn unknown_access_key_is_denied() {
    let emu = start();
    let r = reject(
        &emu,
        &Opts {
            access_key_id: Some("AKIAUNKNOWNUNKNOWN00".into()),
            ..Default::default()
        },
    );
    assert_denied(&r);
    assert_eq!(
        r.message(),
        "The security token included in the request is invalid."
    );
}

#[test]
fn stale_date_is_denied_as_expired() {
    let emu = start();
    let r = reject(
        &emu,
        &Opts {
            date: Some(now() - 600),
            expires: Some(299),
            ..Default::default()
        },
    );
    assert_denied(&r);
    assert!(r.message().starts_with("Signature expired: "), "{r:?}");
}

#[test]
fn expired_x_amz_expires_is_denied() {
    let emu = start();
    // Signed 20 s ago, valid for 10 s.
    let r = reject(
        &emu,
        &Opts {
            date: Some(now() - 20),
            expires: Some(10),
            ..Default::default()
        },
    );
    assert_denied(&r);
    assert!(r.message().starts_with("Signature expired: "), "{r:?}");
    // The same age with a long validity (C SDK style 604800) is fine.
    let ok = ws_connect(
        emu.env(),
        &presign(
            emu.env(),
            &Opts {
                date: Some(now() - 20),
                expires: Some(604_800),
                ..Default::default()
            },
        ),
    );
    assert!(ok.is_ok());
    // Out of range.
    let r = reject(
        &emu,
        &Opts {
            expires: Some(604_801),
            ..Default::default()
        },
    );
    assert_denied(&r);
}

#[test]
fn future_date_is_denied_as_not_yet_current() {
    let emu = start();
    let r = reject(
        &emu,
        &Opts {
            date: Some(now() + 600),
            ..Default::default()
        },
    );
    assert_denied(&r);
    assert!(
        r.message().starts_with("Signature not yet current: "),
        "{r:?}"
    );
    // Within the 5-minute skew it is accepted.
    let ok = ws_connect(
        emu.env(),
        &presign(
            emu.env(),
            &Opts {
                date: Some(now() + 120),
                ..Default::default()
            },
        ),
    );
    assert!(ok.is_ok());
}

#[test]
fn clock_offset_fault_shifts_the_window() {
    let emu = start();
    emu.inject(Fault::ClockOffset { secs: 3600 }).unwrap();
    let r = reject(&emu, &Opts::default());
    assert_denied(&r);
    assert!(r.message().starts_with("Signature expired: "));
    // A client that corrects its clock from the Date header gets in.
    let ok = ws_connect(
        emu.env(),
        &presign(
            emu.env(),
            &Opts {
                date: Some(now() + 3600),
                ..Default::default()
            },
        ),
    );
    assert!(ok.is_ok());
}

#[test]
fn wrong_host_is_denied() {
    let emu = start();
    for host in [
        "localhost",
        "127.0.0.1",
        "127.0.0.1:443",
        "v-1234abcd.kinesisvideo.us-west-2.amazonaws.com",
    ] {
        let r = reject(
            &emu,
            &Opts {
                sign_host: Some(host.into()),
                ..Default::default()
            },
        );
        assert_denied(&r);
    }
}

#[test]
fn bad_arn_is_invalid_argument() {
    let emu = start();
    for arn in [
        "not-an-arn",
        "arn:aws:kinesis:us-west-2:123456789012:channel/demo-channel/1",
    ] {
        let r = reject(
            &emu,
            &Opts {
                arn: Some(arn.into()),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.error_type.as_deref(), Some("InvalidArgumentException"));
    }
}

#[test]
fn bad_client_ids_are_invalid_argument() {
    let emu = start();
    for id in [
        "AWS_viewer",
        "aws_Viewer",
        "has space",
        "slash/id",
        &"x".repeat(257),
    ] {
        let r = reject(
            &emu,
            &Opts {
                client_id: Some(id.to_string()),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 400, "{id}: {r:?}");
        assert_eq!(r.error_type.as_deref(), Some("InvalidArgumentException"));
    }
}

#[test]
fn unknown_channel_is_not_found() {
    let emu = start();
    let arn = format!(
        "arn:aws:kinesisvideo:{}:123456789012:channel/no-such-channel/1234567890123",
        emu.env().region
    );
    let r = reject(
        &emu,
        &Opts {
            arn: Some(arn),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.error_type.as_deref(), Some("ResourceNotFoundException"));
}

#[test]
fn eleventh_viewer_is_client_limit_exceeded() {
    let emu = start();
    let mut conns: Vec<Ws> = (0..10)
        .map(|i| viewer(&emu, &format!("viewer-{i}")))
        .collect();
    assert_eq!(emu.connected_viewers().len(), 10);
    let r = reject(
        &emu,
        &Opts {
            client_id: Some("viewer-10".into()),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.error_type.as_deref(),
        Some("ClientLimitExceededException")
    );
    // An existing id reconnecting does not count twice.
    let again = viewer(&emu, "viewer-3");
    assert_eq!(emu.connected_viewers().len(), 10);
    drop(again);
    // Freeing a slot lets the next one in.
    conns[0].close(None).unwrap();
    let _ = wait_closed(&mut conns[0]);
    emu.wait_for_event(
        |e| e["type"] == "disconnected" && e["client_id"] == "viewer-0",
        WAIT,
    )
    .expect("viewer-0 gone");
    let _v = viewer(&emu, "viewer-10");
}

#[test]
fn max_viewers_is_configurable() {
    let emu = start_with(|c| c.max_viewers = 1);
    let _a = viewer(&emu, "a");
    let r = reject(
        &emu,
        &Opts {
            client_id: Some("b".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        r.error_type.as_deref(),
        Some("ClientLimitExceededException")
    );
}

#[test]
fn same_client_id_replaces_the_old_connection() {
    let emu = start();
    let mut old = viewer(&emu, "dup");
    let mut new = viewer(&emu, "dup");
    assert_eq!(
        wait_closed(&mut old),
        Ok(Some(1000)),
        "old connection is closed"
    );
    assert_eq!(emu.connected_viewers(), vec!["dup".to_string()]);
    assert!(
        emu.wait_for_event(|e| e["type"] == "replaced", WAIT)
            .is_some()
    );
    // The new one still works (auto-answer replies to it).
    send(&mut new, &offer_frame());
    assert_eq!(recv(&mut new)["messageType"], "SDP_ANSWER");
}

#[test]
fn fail_next_connect_answers_with_injected_error() {
    let emu = start();
    emu.inject(Fault::FailNext {
        operation: Operation::Connect,
        status: 503,
        error_type: "ServiceUnavailableException".into(),
        message: "busy".into(),
        count: 2,
    })
    .unwrap();
    for _ in 0..2 {
        let r = reject(&emu, &Opts::default());
        assert_eq!(r.status, 503);
        assert_eq!(r.error_type.as_deref(), Some("ServiceUnavailableException"));
        assert_eq!(r.message(), "busy");
    }
    let ok = ws_connect(emu.env(), &presign(emu.env(), &Opts::default()));
    assert!(ok.is_ok());
}

#[test]
fn master_connects_and_is_replaced_by_a_newer_master() {
    let emu = start();
    let mut m1 = master(&emu);
    assert!(emu.master_connected());
    let _m2 = master(&emu);
    assert_eq!(wait_closed(&mut m1), Ok(Some(1000)));
    assert!(emu.master_connected());
}

#[test]
fn stalled_handshake_says_nothing_then_closes() {
    let emu = start();
    emu.inject(Fault::StallHandshake { ms: 300 }).unwrap();
    let url = presign(emu.env(), &Opts::default());
    let started = std::time::Instant::now();
    let stream = tls_connect(emu.env());
    let req = tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    let res = tungstenite::client::client(req, stream);
    assert!(res.is_err(), "no upgrade while stalled");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert!(
        emu.wait_for_event(|e| e["type"] == "handshake_stalled", WAIT)
            .is_some()
    );
    // One-shot: the next one works.
    assert!(ws_connect(emu.env(), &url).is_ok());
}

#[test]
fn several_credentials_and_credential_expiry() {
    let second = Credential::random_static();
    let expired = Credential {
        expires_at: Some(now() - 1),
        ..Credential::random_static()
    };
    let (s2, ex) = (second.clone(), expired.clone());
    let emu = start_with(move |c| c.credentials.extend([s2, ex]));
    let with = |c: &Credential| Opts {
        access_key_id: Some(c.access_key_id.clone()),
        secret: Some(c.secret_access_key.clone()),
        ..Default::default()
    };
    assert!(ws_connect(emu.env(), &presign(emu.env(), &with(&second))).is_ok());
    let r = reject(&emu, &with(&expired));
    assert_denied(&r);
    assert_eq!(
        r.message(),
        "The security token included in the request is expired"
    );
}

#[test]
fn handshake_delay_delays_the_upgrade() {
    let emu = start();
    emu.inject(Fault::HandshakeDelay { ms: 200 }).unwrap();
    let started = std::time::Instant::now();
    assert!(ws_connect(emu.env(), &presign(emu.env(), &Opts::default())).is_ok());
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    emu.inject(Fault::HandshakeDelay { ms: 0 }).unwrap();
}

#[test]
fn emulator_is_send_and_sync_and_stops_promptly_with_idle_clients() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<kvs_signaling_emulator::Emulator>();
    let emu = start();
    let _v = viewer(&emu, "idle-1");
    let _m = master(&emu);
    let t = std::time::Instant::now();
    emu.shutdown();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    // Ports are free again: nothing accepts any more.
    let port: u16 = emu
        .env()
        .wss_endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
