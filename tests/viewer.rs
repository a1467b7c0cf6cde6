//! The viewer against the project's signaling emulator: real TLS, real WebSockets, loopback.

use std::net::TcpListener;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use kvs_signaling_emulator::{Emulator, EmulatorConfig, Fault, Operation, RawFrame};
use kvs_viewer::{Credentials, ErrorKind, Message, MessageType, Viewer, ViewerConfig};
use serde_json::Value;

const OFFER: &str = r#"{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:96 H264/90000\r\n"}"#;
const CANDIDATE: &str = r#"{"candidate":"candidate:1 1 udp 2130706431 192.168.1.20 50000 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
/// Generous bound for anything that should take milliseconds on loopback.
const BOUND: Duration = Duration::from_secs(10);

fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).expect("emulator starts")
}

fn config_for(emu: &Emulator, client_id: &str) -> ViewerConfig {
    let env = emu.env();
    let mut c = ViewerConfig::new(
        &env.region,
        &env.channel_arn,
        client_id,
        &env.wss_endpoint,
        Credentials::new(
            &env.access_key_id,
            &env.secret_access_key,
            env.session_token.as_deref(),
        ),
    );
    c.ca_file = Some(env.ca_file.clone());
    c
}

/// A viewer that reports every end of its connection instead of reconnecting by itself
/// (`auto_reconnect` off): how the library behaved before automatic reconnect, still offered.
fn connect_manual(emu: &Emulator, client_id: &str) -> Viewer {
    let mut c = config_for(emu, client_id);
    c.auto_reconnect = false;
    Viewer::connect(&c).expect("viewer connects")
}

fn connect(emu: &Emulator, client_id: &str) -> Viewer {
    Viewer::connect(&config_for(emu, client_id)).expect("viewer connects")
}

fn recv(v: &Viewer) -> Message {
    v.recv(Some(BOUND)).expect("a message arrives")
}

/// Waits until the emulator has sent a `message_type` frame to `client_id`.
fn wait_sent(emu: &Emulator, client_id: &str, message_type: &str) {
    emu.wait_for_event(
        |e| e["type"] == "frame_out" && e["message_type"] == message_type && e["to"] == client_id,
        BOUND,
    )
    .unwrap_or_else(|| panic!("the emulator never sent {message_type} to {client_id}"));
}

fn payload_json(m: &Message) -> Value {
    serde_json::from_slice(&m.payload).expect("payload is JSON")
}

#[test]
fn offer_gets_answer_then_candidates_in_order() {
    let emu = start(EmulatorConfig {
        answer_candidates: 3,
        ..EmulatorConfig::default()
    });
    let v = connect(&emu, "viewer-1");
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    v.send(
        MessageType::IceCandidate,
        CANDIDATE.as_bytes(),
        Some("cand-1"),
    )
    .unwrap();

    let answer = recv(&v);
    assert_eq!(answer.message_type, MessageType::SdpAnswer);
    assert_eq!(
        answer.sender_client_id, "",
        "messages from the master carry no sender"
    );
    let sdp = payload_json(&answer);
    assert_eq!(sdp["type"], "answer");
    assert!(
        sdp["sdp"].as_str().unwrap().contains("m=video"),
        "answer matches the offer's media"
    );
    for _ in 0..3 {
        let c = recv(&v);
        assert_eq!(c.message_type, MessageType::IceCandidate);
        assert!(
            payload_json(&c)["candidate"]
                .as_str()
                .unwrap()
                .starts_with("candidate:")
        );
    }
    assert_eq!(
        v.recv(Some(Duration::ZERO)).unwrap_err().kind,
        ErrorKind::Timeout,
        "nothing beyond the answer and its candidates"
    );

    // The master saw exactly what we sent, camelCase, with the candidate's correlation id.
    let offer_in = emu
        .wait_for_event(
            |e| e["type"] == "frame_in" && e["action"] == "SDP_OFFER",
            BOUND,
        )
        .expect("emulator logged the offer");
    assert_eq!(offer_in["correlation_id"], Value::Null);
    let cand_in = emu
        .wait_for_event(
            |e| e["type"] == "frame_in" && e["action"] == "ICE_CANDIDATE",
            BOUND,
        )
        .expect("emulator logged the candidate");
    assert_eq!(cand_in["correlation_id"], "cand-1");
    v.close().unwrap();
}

#[test]
fn send_goes_out_while_another_thread_blocks_in_recv() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-threads");
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        // Blocks with no timeout: only an answer — which needs our offer to go out — wakes it.
        s.spawn(|| tx.send(v.recv(None)).unwrap());
        // Send only once the receiver is parked in recv (bounded wait on that condition).
        let parked = (0..1_000_000).any(|_| {
            thread::yield_now();
            v.stats().waiting_receivers == 1
        });
        assert!(parked, "the receiver thread never blocked in recv");
        v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
            .unwrap();
        let got = rx
            .recv_timeout(BOUND)
            .expect("blocked recv woke up with the answer");
        assert_eq!(got.unwrap().message_type, MessageType::SdpAnswer);
    });
    v.close().unwrap();
}

#[test]
fn recv_timeout_is_not_fatal() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-timeout");
    for t in [Duration::ZERO, Duration::from_millis(20)] {
        assert_eq!(v.recv(Some(t)).unwrap_err().kind, ErrorKind::Timeout);
    }
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    assert_eq!(recv(&v).message_type, MessageType::SdpAnswer);
    v.close().unwrap();
}

#[test]
fn close_frees_the_viewer_slot_at_once() {
    let emu = start(EmulatorConfig {
        max_viewers: 1,
        ..EmulatorConfig::default()
    });
    let first = connect(&emu, "viewer-a");
    let err = Viewer::connect(&config_for(&emu, "viewer-b")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ClientLimitExceeded, "{err}");
    assert_eq!(err.http_status, Some(400));
    assert_eq!(
        err.error_type.as_deref(),
        Some("ClientLimitExceededException")
    );

    // No wait: the close handshake itself frees the slot.
    first.close().unwrap();
    let second = connect(&emu, "viewer-b");
    assert_eq!(emu.connected_viewers(), vec!["viewer-b".to_owned()]);
    second.close().unwrap();
}

#[test]
fn the_same_client_id_replaces_the_older_connection() {
    let emu = start(EmulatorConfig::default());
    let old = connect_manual(&emu, "viewer-same");
    let new = connect(&emu, "viewer-same");
    let err = old.recv(Some(BOUND)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Closed, "{err}");
    new.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    assert_eq!(recv(&new).message_type, MessageType::SdpAnswer);
    old.close().unwrap();
    new.close().unwrap();
}

#[test]
fn service_errors_map_to_their_kinds() {
    let emu = start(EmulatorConfig::default());
    // 404: a well-formed ARN of a channel that does not exist.
    let mut c = config_for(&emu, "viewer-404");
    c.channel_arn = c.channel_arn.replace("demo-channel", "no-such-channel");
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(
        (e.kind, e.http_status),
        (ErrorKind::ResourceNotFound, Some(404)),
        "{e}"
    );

    // 403: the wrong secret.
    let mut c = config_for(&emu, "viewer-403");
    let env = emu.env();
    c.credentials = Credentials::new(&env.access_key_id, "not-the-secret", None);
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(
        (e.kind, e.http_status),
        (ErrorKind::AccessDenied, Some(403)),
        "{e}"
    );
    assert!(
        e.message
            .starts_with("connect: HTTP 403 AccessDeniedException"),
        "{e}"
    );

    // 400 InvalidArgumentException, 500 and 503 as the service would answer them.
    for (status, error_type, kind) in [
        (400, "InvalidArgumentException", ErrorKind::InvalidArgument),
        (500, "InternalFailure", ErrorKind::Service),
        (503, "", ErrorKind::HttpStatus),
    ] {
        emu.inject(Fault::FailNext {
            operation: Operation::Connect,
            status,
            error_type: error_type.into(),
            message: "injected".into(),
            count: 1,
        })
        .unwrap();
        let e = Viewer::connect(&config_for(&emu, "viewer-fail")).unwrap_err();
        assert_eq!((e.kind, e.http_status), (kind, Some(status)), "{e}");
        assert!(
            e.message.contains("injected"),
            "the service's message is kept: {e}"
        );
    }
    // The emulator is still healthy after all of that.
    connect(&emu, "viewer-ok").close().unwrap();
}

#[test]
fn untrusted_certificate_is_a_tls_error() {
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "viewer-tls");
    c.ca_file = None; // the emulator's CA is not in the system roots
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    assert!(e.message.contains("certificate"), "{e}");
}

#[test]
fn refused_port_is_a_network_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "viewer-refused");
    c.wss_endpoint = format!("wss://127.0.0.1:{port}");
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
    assert!(e.message.contains("refused"), "{e}");
}

#[test]
fn silent_server_is_a_handshake_timeout() {
    let emu = start(EmulatorConfig::default());
    emu.inject(Fault::StallHandshake { ms: 5_000 }).unwrap();
    let mut c = config_for(&emu, "viewer-stall");
    c.connect_timeout = Duration::from_millis(300);
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
}

#[test]
fn invalid_config_is_refused_before_any_io() {
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "AWS_reserved");
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.starts_with("client_id"), "{e}");
    c.client_id = "viewer-x".into();
    c.ca_file = Some("/nonexistent/ca.pem".into());
    let e = Viewer::connect(&c).unwrap_err();
    assert!(e.message.starts_with("ca_file"), "{e}");
    let contacts: Vec<_> = emu
        .events()
        .into_iter()
        .filter(|e| {
            let t = e["type"].as_str().unwrap_or_default();
            [
                "auth",
                "http_request",
                "connected",
                "connect_rejected",
                "handshake_failed",
                "tls_error",
            ]
            .contains(&t)
        })
        .collect();
    assert!(
        contacts.is_empty(),
        "nothing reached the server: {contacts:?}"
    );
}

#[test]
fn skewed_clock_is_corrected_from_the_403() {
    let emu = start(EmulatorConfig {
        clock_offset_secs: 3600, // the server is an hour ahead of us
        ..EmulatorConfig::default()
    });
    let v = connect(&emu, "viewer-skew");
    let offset = v.stats().clock_offset_s;
    assert!((3590..=3610).contains(&offset), "learnt offset {offset}");
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    assert_eq!(recv(&v).message_type, MessageType::SdpAnswer);
    v.close().unwrap();
}

#[test]
fn go_away_is_delivered_then_the_server_closes() {
    let emu = start(EmulatorConfig::default());
    let v = connect_manual(&emu, "viewer-goaway");
    emu.inject(Fault::GoAway {
        client_id: Some("viewer-goaway".into()),
        grace_ms: 100,
    })
    .unwrap();
    assert_eq!(recv(&v).message_type, MessageType::GoAway);
    let e = v.recv(Some(BOUND)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Closed, "{e}");
    assert_eq!(e.close_code, Some(1001), "{e}");
    v.close()
        .expect("closing an already-ended connection is fine");
}

#[test]
fn reconnect_ice_server_is_delivered() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-ice");
    emu.inject(Fault::ReconnectIceServer {
        client_id: Some("viewer-ice".into()),
    })
    .unwrap();
    assert_eq!(recv(&v).message_type, MessageType::ReconnectIceServer);
    v.close().unwrap();
}

#[test]
fn junk_frames_are_skipped_and_counted() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-junk");
    let junk = [
        RawFrame::NonJson,
        RawFrame::Binary(vec![0, 1, 2]),
        RawFrame::InvalidBase64,
        RawFrame::Text(
            r#"{"message":"Endpoint request timed out","connectionId":"x","requestId":"y"}"#.into(),
        ),
    ];
    for frame in junk {
        emu.inject(Fault::SendRaw {
            client_id: Some("viewer-junk".into()),
            frame,
        })
        .unwrap();
    }
    let status = r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"c-9","errorType":"InvalidArgumentException","statusCode":"400","description":"bad payload","success":false}}"#;
    emu.inject(Fault::SendRaw {
        client_id: Some("viewer-junk".into()),
        frame: RawFrame::Text(status.into()),
    })
    .unwrap();
    let m = recv(&v);
    assert_eq!(
        m.message_type,
        MessageType::StatusResponse,
        "junk before it was skipped"
    );
    let s = m.status.unwrap();
    assert_eq!(
        (
            s.correlation_id.as_str(),
            s.error_type.as_str(),
            s.status_code,
            s.description.as_str()
        ),
        ("c-9", "InvalidArgumentException", 400, "bad payload")
    );
    let stats = v.stats();
    assert_eq!(stats.frames_skipped, 4, "{stats:?}");
    assert!(v.ended().is_none(), "junk never ends the connection");
    v.close().unwrap();
}

#[test]
fn abrupt_drop_is_reported_as_closed() {
    let emu = start(EmulatorConfig::default());
    let v = connect_manual(&emu, "viewer-drop");
    emu.inject(Fault::DropConnection {
        client_id: Some("viewer-drop".into()),
    })
    .unwrap();
    let e = v.recv(Some(BOUND)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Closed, "{e}");
    assert_eq!(e.close_code, None);
    assert_eq!(
        v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
            .unwrap_err()
            .kind,
        ErrorKind::Closed
    );
    v.close().unwrap();
}

#[test]
fn messages_before_a_close_are_not_lost() {
    let emu = start(EmulatorConfig {
        answer_candidates: 1,
        ..EmulatorConfig::default()
    });
    let v = connect_manual(&emu, "viewer-keep");
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    // Once the master's candidate went out, end the connection before we read anything.
    wait_sent(&emu, "viewer-keep", "ICE_CANDIDATE");
    emu.inject(Fault::GoAway {
        client_id: Some("viewer-keep".into()),
        grace_ms: 0,
    })
    .unwrap();
    let mut types = Vec::new();
    loop {
        match v.recv(Some(BOUND)) {
            Ok(m) => types.push(m.message_type),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Closed, "{e}");
                break;
            }
        }
    }
    assert_eq!(
        types,
        [
            MessageType::SdpAnswer,
            MessageType::IceCandidate,
            MessageType::GoAway
        ]
    );
    v.close().unwrap();
}

#[test]
fn reconnect_after_go_away_keeps_unread_messages() {
    let emu = start(EmulatorConfig {
        answer_candidates: 1,
        ..EmulatorConfig::default()
    });
    let v = connect_manual(&emu, "viewer-re");
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    wait_sent(&emu, "viewer-re", "ICE_CANDIDATE");
    emu.inject(Fault::GoAway {
        client_id: Some("viewer-re".into()),
        grace_ms: 60_000, // the service would wait a minute; we do not
    })
    .unwrap();
    wait_sent(&emu, "viewer-re", "GO_AWAY");

    // Nothing read yet; reconnecting must not lose the answer, candidate or GO_AWAY.
    let http_before = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "http_request")
        .count();
    v.reconnect().unwrap();
    assert_eq!(v.stats().reconnects, 1);
    assert_eq!(
        emu.events()
            .iter()
            .filter(|e| e["type"] == "http_request")
            .count(),
        http_before,
        "a reconnect costs no control-plane call"
    );
    let kept: Vec<_> = (0..3).map(|_| recv(&v).message_type).collect();
    assert_eq!(
        kept,
        [
            MessageType::SdpAnswer,
            MessageType::IceCandidate,
            MessageType::GoAway
        ]
    );
    // The new connection works: a fresh offer gets a fresh answer.
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    assert_eq!(recv(&v).message_type, MessageType::SdpAnswer);
    assert_eq!(emu.connected_viewers(), vec!["viewer-re".to_owned()]);
    v.close().unwrap();
}

#[test]
fn reconnect_after_a_drop_and_after_a_failed_attempt() {
    let emu = start(EmulatorConfig::default());
    let v = connect_manual(&emu, "viewer-redrop");
    emu.inject(Fault::DropConnection {
        client_id: Some("viewer-redrop".into()),
    })
    .unwrap();
    assert_eq!(v.recv(Some(BOUND)).unwrap_err().kind, ErrorKind::Closed);

    // The service refuses once: the handle stays usable and says why.
    emu.inject(Fault::FailNext {
        operation: Operation::Connect,
        status: 500,
        error_type: "InternalFailure".into(),
        message: "try later".into(),
        count: 1,
    })
    .unwrap();
    let e = v.reconnect().unwrap_err();
    assert_eq!(
        (e.kind, e.http_status),
        (ErrorKind::Service, Some(500)),
        "{e}"
    );
    assert_eq!(
        v.recv(Some(Duration::ZERO)).unwrap_err().kind,
        ErrorKind::Service
    );

    v.reconnect().unwrap();
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    assert_eq!(recv(&v).message_type, MessageType::SdpAnswer);
    v.close().unwrap();
}

#[test]
fn a_silent_server_is_detected_by_keepalive_pings() {
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "viewer-ping");
    c.auto_reconnect = false;
    c.ping_interval = Duration::from_millis(200);
    let v = Viewer::connect(&c).unwrap();
    // Pings are answered: the connection stays up across two of them.
    let ping_after = |seq: i64| {
        emu.wait_for_event(
            |e| e["type"] == "ping" && e["from"] == "viewer-ping" && e["seq"].as_i64() > Some(seq),
            BOUND,
        )
        .expect("the viewer pings when the line is quiet")["seq"]
            .as_i64()
            .unwrap()
    };
    ping_after(ping_after(-1));
    assert!(v.ended().is_none(), "{:?}", v.ended());
    assert!(v.stats().pings_sent >= 2, "{:?}", v.stats());

    // The server goes silent (a dead NAT mapping looks the same): reported as closed.
    emu.inject(Fault::StopPongs(true)).unwrap();
    let e = v.recv(Some(BOUND)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Closed, "{e}");
    assert!(e.message.contains("keepalive"), "{e}");
    v.close().unwrap();
}

#[test]
fn a_burst_beyond_the_socket_buffers_arrives_complete_and_in_order() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-burst");
    // ~11 MB of frames, sent as fast as send() returns: more than loopback socket buffers hold,
    // so the connection thread meets a full socket and must keep, not drop, what it was given.
    const N: usize = 1500;
    let pad = "p".repeat(7000);
    for i in 0..N {
        let c = format!(
            r#"{{"candidate":"candidate:{i} 1 udp 1 10.0.0.1 {} typ host","sdpMid":"0","sdpMLineIndex":0,"pad":"{pad}"}}"#,
            10_000 + i
        );
        v.send(MessageType::IceCandidate, c.as_bytes(), None)
            .unwrap();
    }
    let last = format!("candidate:{} ", N - 1);
    emu.wait_for_event(
        |e| {
            e["type"] == "viewer_candidate"
                && e["candidate"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&last))
        },
        Duration::from_secs(60),
    )
    .expect("the last candidate reached the master");
    let order: Vec<usize> = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "viewer_candidate" && e["client_id"] == "viewer-burst")
        .map(|e| {
            let c = e["candidate"].as_str().unwrap();
            c["candidate:".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(order, (0..N).collect::<Vec<_>>());
    assert!(v.ended().is_none());
    v.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// One deadline: servers that answer one byte at a time (slow loris) get a Timeout within
// `connect_timeout` on every read — TLS handshake, HTTP response, WebSocket upgrade response.

/// A self-signed certificate for 127.0.0.1, and its key (PEM).
fn self_signed() -> (Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "slow loris").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

/// A listener on a free 127.0.0.1 port with a self-signed certificate for it: the port, the CA
/// file a viewer trusts it by (named after `what`), and the TLS acceptor for its connections.
fn tls_listener(
    what: &str,
) -> (
    TcpListener,
    u16,
    std::path::PathBuf,
    native_tls::TlsAcceptor,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cert, key) = self_signed();
    let ca_file =
        std::env::temp_dir().join(format!("kvs-{what}-{}-{port}.pem", std::process::id()));
    std::fs::write(&ca_file, &cert).unwrap();
    let acceptor =
        native_tls::TlsAcceptor::new(native_tls::Identity::from_pkcs8(&cert, &key).unwrap())
            .unwrap();
    (listener, port, ca_file, acceptor)
}

/// Gap between two bytes of a slow server.
const DRIP: Duration = Duration::from_millis(250);

/// A server on 127.0.0.1 that serves each connection like a slow loris: `tls` = complete the
/// TLS handshake, read the request head, then send `answer` one byte per `DRIP`; without
/// `tls`, drip a TLS record header and its body from the first byte. Stops when the client
/// hangs up or `stop` is dropped. Returns the port, the CA file, and `stop`.
fn slow_loris(tls: bool, answer: &'static [u8]) -> (u16, std::path::PathBuf, mpsc::Sender<()>) {
    let (listener, port, ca_file, acceptor) = tls_listener("slow-loris");
    let (stop, stopped) = mpsc::channel::<()>();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let drip = |w: &mut dyn std::io::Write, bytes: &[u8]| {
            for b in bytes {
                if w.write_all(&[*b]).and_then(|()| w.flush()).is_err() {
                    return;
                }
                // Sleeping is the fault itself here, not synchronisation.
                if !matches!(
                    stopped.recv_timeout(DRIP),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    return;
                }
            }
        };
        // One client per test; accept for at most 20 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let tcp = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return,
            }
        };
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        if !tls {
            // A handshake record header announcing 16 KB, then its body, slowly.
            let mut tcp = tcp;
            let mut record = vec![0x16, 0x03, 0x03, 0x40, 0x00, 0x02];
            record.resize(64, 0);
            drip(&mut tcp, &record);
            return;
        }
        let Ok(mut stream) = acceptor.accept(tcp) else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match std::io::Read::read(&mut stream, &mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        drip(&mut stream, answer);
    });
    (port, ca_file, stop)
}

/// Connects with a 1.2 s bound and checks it ends in a Timeout on time.
fn times_out_on_time(mut c: ViewerConfig, step: &str) {
    let bound = Duration::from_millis(1200);
    c.connect_timeout = bound;
    let started = std::time::Instant::now();
    let e = Viewer::connect(&c).unwrap_err();
    let took = started.elapsed();
    println!("{step}: {e} after {took:?} (bound {bound:?})");
    assert_eq!(e.kind, ErrorKind::Timeout, "{step}: {e}");
    assert!(e.message.contains(step), "{step}: {e}");
    // Every read waits at most for the time left; one drip of slack for the thread to notice.
    assert!(
        took >= bound - Duration::from_millis(50),
        "{step}: {took:?}"
    );
    assert!(took < bound + DRIP * 2, "{step}: took {took:?}");
}

const SLOW_HTTP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"ChannelInfo\":{\"ChannelARN\":1}}";
const SLOW_UPGRADE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: xxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n";

#[test]
fn slow_loris_tls_handshake_times_out_on_time() {
    let emu = start(EmulatorConfig::default());
    let (port, ca_file, _stop) = slow_loris(false, b"");
    let mut c = config_for(&emu, "viewer-slow-tls");
    c.wss_endpoint = format!("wss://127.0.0.1:{port}");
    c.ca_file = Some(ca_file);
    times_out_on_time(c, "TLS handshake");
}

#[test]
fn slow_loris_upgrade_response_times_out_on_time() {
    let emu = start(EmulatorConfig::default());
    let (port, ca_file, _stop) = slow_loris(true, SLOW_UPGRADE);
    let mut c = config_for(&emu, "viewer-slow-upgrade");
    c.wss_endpoint = format!("wss://127.0.0.1:{port}");
    c.ca_file = Some(ca_file);
    times_out_on_time(c, "WebSocket upgrade");
}

#[test]
fn slow_loris_http_response_times_out_on_time() {
    let emu = start(EmulatorConfig::default());
    let (port, ca_file, _stop) = slow_loris(true, SLOW_HTTP);
    let mut c = config_for(&emu, "viewer-slow-http");
    // Discovery against the slow control plane.
    c.channel_arn = String::new();
    c.channel_name = Some(emu.env().channel_name.clone());
    c.wss_endpoint = String::new();
    c.control_plane_url = Some(format!("https://127.0.0.1:{port}"));
    c.ca_file = Some(ca_file);
    times_out_on_time(c, "describe");
}

/// Discovery and the upgrade share the one bound: a slow upgrade after a quick discovery
/// still ends at `connect_timeout`, not at discovery time + `connect_timeout`.
#[test]
fn discovery_and_upgrade_share_one_deadline() {
    let emu = start(EmulatorConfig::default());
    emu.inject(Fault::HandshakeDelay { ms: 5_000 }).unwrap();
    let env = emu.env();
    let mut c = config_for(&emu, "viewer-shared-deadline");
    c.channel_arn = String::new();
    c.channel_name = Some(env.channel_name.clone());
    c.wss_endpoint = String::new();
    c.control_plane_url = Some(env.control_plane_url.clone());
    // The delay may fall in the TLS handshake or the upgrade, depending on the emulator.
    times_out_on_time(c, "connect: ");
}

/// An oversized message is skipped and counted, and the message behind it is delivered
/// (it used to stay queued forever with BUFFER_TOO_SMALL, blocking the answer behind it).
#[test]
fn oversized_messages_are_skipped_and_never_block_the_queue() {
    use base64::Engine;
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-big");
    let candidate = |len: usize| {
        let payload = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; len]);
        RawFrame::Text(format!(
            r#"{{"messageType":"ICE_CANDIDATE","senderClientId":"","messagePayload":"{payload}"}}"#
        ))
    };
    for frame in [RawFrame::Oversized, candidate(7501), candidate(7500)] {
        emu.inject(Fault::SendRaw {
            client_id: Some("viewer-big".into()),
            frame,
        })
        .unwrap();
    }
    let m = recv(&v);
    assert_eq!(m.payload.len(), 7500, "the two larger ones were skipped");
    let stats = v.stats();
    assert_eq!(
        (stats.messages_oversized, stats.frames_skipped),
        (2, 2),
        "{stats:?}"
    );
    assert!(
        stats
            .last_skip_reason
            .as_deref()
            .is_some_and(|r| r.contains("7501-byte")),
        "{stats:?}"
    );
    v.close().unwrap();

    // A larger limit lets them through.
    let mut c = config_for(&emu, "viewer-bigger");
    c.max_message_len = 200 * 1024;
    let v = Viewer::connect(&c).unwrap();
    emu.inject(Fault::SendRaw {
        client_id: Some("viewer-bigger".into()),
        frame: RawFrame::Oversized,
    })
    .unwrap();
    assert!(recv(&v).payload.len() > 7500);
    assert_eq!(v.stats().messages_oversized, 0);
    v.close().unwrap();
}

/// A WebSocket server on 127.0.0.1 that completes the upgrade and then freezes: it neither
/// reads nor answers again (a hung process, a dead NAT mapping with the kernel still up).
/// Returns the port, the CA file and a sender whose drop releases the server.
fn frozen_server() -> (u16, std::path::PathBuf, mpsc::Sender<()>) {
    let (listener, port, ca_file, acceptor) = tls_listener("frozen");
    let (release, released) = mpsc::channel::<()>();
    thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let Ok(tls) = acceptor.accept(tcp) else {
            return;
        };
        let Ok(ws) = tungstenite::accept(tls) else {
            return;
        };
        // Frozen: hold the socket without reading until the test is done.
        let _ = released.recv_timeout(Duration::from_secs(60));
        drop(ws);
    });
    (port, ca_file, release)
}

/// A server that stops reading is detected by the pong deadline (shorter than the interval),
/// and a send whose frame the library still holds is never reported OK: once the socket
/// buffers are full, sends time out, then the connection is declared dead.
#[test]
fn a_frozen_server_is_detected_and_held_sends_are_not_reported_ok() {
    let emu = start(EmulatorConfig::default());
    let (port, ca_file, _release) = frozen_server();
    let mut c = config_for(&emu, "viewer-frozen");
    c.auto_reconnect = false;
    c.wss_endpoint = format!("wss://127.0.0.1:{port}");
    c.ca_file = Some(ca_file);
    c.ping_interval = Duration::from_millis(1500);
    c.pong_timeout = Duration::from_millis(700);
    c.send_timeout = Duration::from_millis(300);
    let v = Viewer::connect(&c).unwrap();
    let started = std::time::Instant::now();
    let candidate = format!(r#"{{"candidate":"{}"}}"#, "c".repeat(7000));
    let mut ok = 0usize;
    let first_error = loop {
        match v.send(MessageType::IceCandidate, candidate.as_bytes(), None) {
            Ok(()) => ok += 1,
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < BOUND,
            "{ok} sends, all OK, for {BOUND:?}"
        );
    };
    println!(
        "{ok} sends reached the socket buffers, then: {first_error} after {:?}",
        started.elapsed()
    );
    assert_eq!(first_error.kind, ErrorKind::Timeout, "{first_error}");
    let e = v.recv(Some(BOUND)).unwrap_err();
    let detected = started.elapsed();
    println!("frozen server detected after {detected:?}: {e}");
    assert_eq!(e.kind, ErrorKind::Closed, "{e}");
    assert!(e.message.contains("keepalive"), "{e}");
    assert!(
        detected < Duration::from_millis(1500 + 700) * 2,
        "{detected:?}"
    );
    let after = v.send(MessageType::IceCandidate, b"{}", None).unwrap_err();
    assert_eq!(after.kind, ErrorKind::Closed, "{after}");
    let _ = v.close();
}

// ---------------------------------------------------------------------------------------
// Running unattended: with the default config and no app action beyond recv/send, every
// fault is followed by a reconnect, announced by `Reconnected`, and the next offer gets its
// answer.

/// Receives until a message of `wanted` type arrives (others are skipped); bounded.
fn recv_until(v: &Viewer, wanted: MessageType) -> Vec<MessageType> {
    recv_until_within(v, wanted, BOUND)
}

fn recv_until_within(v: &Viewer, wanted: MessageType, bound: Duration) -> Vec<MessageType> {
    let until = std::time::Instant::now() + bound;
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        let m = v
            .recv(Some(left))
            .unwrap_or_else(|e| panic!("no {wanted:?} (seen {seen:?}): {e}"));
        seen.push(m.message_type);
        if m.message_type == wanted {
            return seen;
        }
    }
}

fn offer_is_answered(v: &Viewer) {
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .expect("the offer goes out on the new connection");
    recv_until(v, MessageType::SdpAnswer);
}

#[test]
fn reconnects_by_itself_after_every_kind_of_drop() {
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "viewer-unattended");
    c.ping_interval = Duration::from_millis(300);
    c.pong_timeout = Duration::from_millis(200);
    let v = Viewer::connect(&c).unwrap();
    offer_is_answered(&v);
    let faults: [(&str, Fault, Option<Fault>); 4] = [
        (
            "RST",
            Fault::DropConnection {
                client_id: Some("viewer-unattended".into()),
            },
            None,
        ),
        (
            "pings ignored",
            Fault::StopPongs(true),
            Some(Fault::StopPongs(false)),
        ),
        (
            "idle cut",
            Fault::IdleTimeout { secs: 1 },
            Some(Fault::IdleTimeout { secs: 0 }),
        ),
        (
            "server close (max lifetime)",
            Fault::MaxLifetime { secs: 1 },
            Some(Fault::MaxLifetime { secs: 0 }),
        ),
    ];
    for (i, (name, fault, undo)) in faults.into_iter().enumerate() {
        let started = std::time::Instant::now();
        emu.inject(fault).unwrap();
        recv_until(&v, MessageType::Reconnected);
        if let Some(undo) = undo {
            emu.inject(undo).unwrap();
        }
        offer_is_answered(&v);
        let stats = v.stats();
        println!(
            "{name}: reconnected and answered in {:?} ({stats:?})",
            started.elapsed()
        );
        assert!(stats.reconnects > i as u64, "{name}: {stats:?}");
        assert!(stats.last_disconnect_reason.is_some(), "{name}: {stats:?}");
        assert!(v.ended().is_none(), "{name}");
    }
    v.close().unwrap();
}

/// GO_AWAY: the new connection is accepted before the old one closes, the app sees GO_AWAY
/// then Reconnected, and every candidate sent from another thread meanwhile arrives, in order.
#[test]
fn go_away_is_make_before_break_and_loses_no_candidate() {
    let emu = start(EmulatorConfig::default());
    let v = Arc::new(connect(&emu, "viewer-mbb"));
    offer_is_answered(&v);
    const N: usize = 300;
    let sender = {
        let v = v.clone();
        thread::spawn(move || {
            for i in 0..N {
                let c = format!(
                    r#"{{"candidate":"candidate:{i} 1 udp 1 10.0.0.1 {} typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
                    20_000 + i
                );
                v.send(MessageType::IceCandidate, c.as_bytes(), None)
                    .unwrap_or_else(|e| panic!("candidate {i}: {e}"));
            }
        })
    };
    emu.inject(Fault::GoAway {
        client_id: Some("viewer-mbb".into()),
        grace_ms: 60_000,
    })
    .unwrap();
    let seen = recv_until(&v, MessageType::Reconnected);
    assert!(seen.contains(&MessageType::GoAway), "{seen:?}");
    sender.join().unwrap();
    let last = format!("candidate:{} ", N - 1);
    emu.wait_for_event(
        |e| {
            e["type"] == "viewer_candidate"
                && e["candidate"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&last))
        },
        BOUND,
    )
    .expect("the last candidate arrives");
    let events = emu.events();
    let order: Vec<usize> = events
        .iter()
        .filter(|e| e["type"] == "viewer_candidate" && e["client_id"] == "viewer-mbb")
        .map(|e| {
            let c = e["candidate"].as_str().unwrap();
            c["candidate:".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(order, (0..N).collect::<Vec<_>>(), "all, once, in order");
    // Make-before-break in the event log: the second connection was accepted before the
    // first one was gone.
    let conns: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e["type"] == "connected" && e["client_id"] == "viewer-mbb")
        .map(|e| (e["conn"].as_u64().unwrap(), e["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(conns.len(), 2, "{conns:?}");
    let old_gone = events
        .iter()
        .find(|e| e["type"] == "disconnected" && e["conn"].as_u64() == Some(conns[0].0))
        .map(|e| e["seq"].as_u64().unwrap())
        .expect("the old connection was closed");
    assert!(
        conns[1].1 < old_gone,
        "new {conns:?} before old gone at {old_gone}"
    );
    assert_eq!(v.stats().last_disconnect_reason.as_deref(), Some("GO_AWAY"));
    offer_is_answered(&v);
    Arc::try_unwrap(v).unwrap().close().unwrap();
}

/// A RECONNECT_ICE_SERVER makes the library fetch the TURN servers again by itself.
#[test]
fn reconnect_ice_server_refreshes_the_turn_servers() {
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "viewer-turn");
    c.control_plane_url = Some(emu.env().control_plane_url.clone());
    let v = Viewer::connect(&c).unwrap();
    v.ice_servers().unwrap();
    let fetched = |emu: &Emulator| {
        emu.events()
            .iter()
            .filter(|e| e["type"] == "http_request" && e["operation"] == "GetIceServerConfig")
            .count()
    };
    assert_eq!(fetched(&emu), 1);
    emu.inject(Fault::ReconnectIceServer {
        client_id: Some("viewer-turn".into()),
    })
    .unwrap();
    assert_eq!(recv(&v).message_type, MessageType::ReconnectIceServer);
    let first = emu
        .events()
        .iter()
        .find(|e| e["type"] == "http_request" && e["operation"] == "GetIceServerConfig")
        .and_then(|e| e["seq"].as_u64())
        .unwrap();
    emu.wait_for_event(
        |e| {
            e["type"] == "http_request"
                && e["operation"] == "GetIceServerConfig"
                && e["seq"].as_u64() > Some(first)
        },
        BOUND,
    )
    .expect("the TURN servers are fetched again by themselves");
    assert_eq!(fetched(&emu), 2);
    v.close().unwrap();
}

/// With the budget spent, recv reports a terminal error instead of trying forever; sends
/// made while reconnecting wait, then fail, and are never reported OK.
#[test]
fn a_reconnect_budget_ends_in_a_clear_terminal_error() {
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "viewer-budget");
    c.reconnect_max_attempts = 3;
    c.reconnect_backoff_base = Duration::from_millis(20);
    c.reconnect_backoff_cap = Duration::from_millis(50);
    c.send_timeout = Duration::from_millis(200);
    let v = Viewer::connect(&c).unwrap();
    emu.inject(Fault::FailNext {
        operation: Operation::Connect,
        status: 500,
        error_type: "InternalFailure".into(),
        message: "down".into(),
        count: 100,
    })
    .unwrap();
    emu.inject(Fault::DropConnection {
        client_id: Some("viewer-budget".into()),
    })
    .unwrap();
    let e = v.recv(Some(BOUND)).unwrap_err();
    assert!(
        e.message.contains("gave up reconnecting after 3 attempts"),
        "{e}"
    );
    assert_eq!(e.http_status, Some(500), "{e}");
    assert!(v.ended().is_some());
    let sent = v.send(MessageType::SdpOffer, OFFER.as_bytes(), None);
    assert!(sent.is_err(), "{sent:?}");
    v.close().unwrap();
}

/// Sends made while the service is down wait, and go out in order once it is back; those
/// that waited longer than send_timeout were not sent and say so.
#[test]
fn sends_during_a_reconnect_go_out_on_the_new_connection() {
    let emu = start(EmulatorConfig::default());
    let mut c = config_for(&emu, "viewer-wait");
    c.send_timeout = Duration::from_secs(5);
    let v = Arc::new(Viewer::connect(&c).unwrap());
    // Three refused upgrades: the reconnect takes a few backoff rounds.
    emu.inject(Fault::FailNext {
        operation: Operation::Connect,
        status: 500,
        error_type: "InternalFailure".into(),
        message: "down".into(),
        count: 3,
    })
    .unwrap();
    emu.inject(Fault::DropConnection {
        client_id: Some("viewer-wait".into()),
    })
    .unwrap();
    // The viewer is reconnecting once its first attempt is refused. (Frames sent before it
    // noticed the drop may sit in the dead socket's kernel buffer: the documented loss.)
    emu.wait_for_event(|e| e["type"] == "connect_rejected", BOUND)
        .expect("a reconnect attempt");
    let senders: Vec<_> = (0..3)
        .map(|i| {
            let v = v.clone();
            thread::spawn(move || {
                let c = format!(
                    r#"{{"candidate":"candidate:{i} 1 udp 1 10.0.0.1 {} typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
                    30_000 + i
                );
                v.send(MessageType::IceCandidate, c.as_bytes(), None)
            })
        })
        .collect();
    for s in senders {
        s.join()
            .unwrap()
            .expect("the send waited for the new connection");
    }
    recv_until(&v, MessageType::Reconnected);
    for i in 0..3 {
        let prefix = format!("candidate:{i} ");
        emu.wait_for_event(
            |e| {
                e["type"] == "viewer_candidate"
                    && e["candidate"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(&prefix))
            },
            BOUND,
        )
        .unwrap_or_else(|| panic!("candidate {i} arrived"));
    }
    Arc::try_unwrap(v).unwrap().close().unwrap();
}

#[test]
fn server_close_codes_are_followed_by_a_reconnect() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-codes");
    for code in [1000u16, 1001, 4000] {
        let started = std::time::Instant::now();
        emu.inject(Fault::Close {
            client_id: Some("viewer-codes".into()),
            code,
            reason: "injected".into(),
        })
        .unwrap();
        recv_until(&v, MessageType::Reconnected);
        offer_is_answered(&v);
        let reason = v.stats().last_disconnect_reason.unwrap_or_default();
        println!(
            "close {code}: recovered in {:?} ({reason})",
            started.elapsed()
        );
        assert!(reason.contains(&format!("close code {code}")), "{reason}");
    }
    v.close().unwrap();
}

/// With the default keepalive (10 s ping, 5 s pong deadline), a server that stops reading is
/// detected within ~15 s and the connection replaced.
#[test]
fn a_frozen_server_is_replaced_within_15_s_with_defaults() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-freeze");
    offer_is_answered(&v);
    let started = std::time::Instant::now();
    emu.inject(Fault::Freeze {
        client_id: Some("viewer-freeze".into()),
        ms: 0,
    })
    .unwrap();
    recv_until_within(&v, MessageType::Reconnected, Duration::from_secs(30));
    let took = started.elapsed();
    println!("frozen server replaced after {took:?}");
    assert!(took < Duration::from_secs(17), "{took:?}");
    offer_is_answered(&v);
    v.close().unwrap();
}

/// The service down for 20 s then back: the viewer reconnects by itself (backoff capped at
/// 10 s) and the next offer is answered.
#[test]
fn the_service_down_for_20_s_then_back() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-down");
    let started = std::time::Instant::now();
    emu.inject(Fault::ServerDown { ms: 20_000 }).unwrap();
    recv_until_within(&v, MessageType::Reconnected, Duration::from_secs(45));
    offer_is_answered(&v);
    let took = started.elapsed();
    println!(
        "service down 20 s: answered again after {took:?} ({:?})",
        v.stats()
    );
    assert!(took >= Duration::from_secs(20), "{took:?}");
    v.close().unwrap();
}

/// A short-lived presigned URL: the emulator closes the connection when it expires, and the
/// viewer comes back with a freshly presigned one.
#[test]
fn presign_expiry_is_followed_by_a_fresh_presign() {
    let emu = start(EmulatorConfig {
        close_on_presign_expiry: true,
        ..EmulatorConfig::default()
    });
    let mut c = config_for(&emu, "viewer-presign");
    c.presign_expires_s = 2;
    let v = Viewer::connect(&c).unwrap();
    let started = std::time::Instant::now();
    recv_until(&v, MessageType::Reconnected);
    offer_is_answered(&v);
    println!("presign expiry: recovered after {:?}", started.elapsed());
    let connects: Vec<i64> = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "connected" && e["client_id"] == "viewer-presign")
        .filter_map(|e| e["presign_expires_at"].as_i64())
        .collect();
    assert!(connects.len() >= 2, "{connects:?}");
    assert!(connects[1] > connects[0], "a fresh presign: {connects:?}");
    v.close().unwrap();
}

/// Whether `fd` is readable within `wait` (poll(2), as an event loop would ask).
fn readable(fd: std::os::fd::BorrowedFd<'_>, wait: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid, initialised pollfd that outlives the call; length matches.
    let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    n == 1 && p.revents & libc::POLLIN != 0
}

/// The ready fd says "readable" exactly while `recv(0)` returns at once: not before the
/// answer, while messages are queued, not once they are taken, and again for the end after `request_close`.
#[test]
fn the_ready_fd_is_readable_exactly_while_recv_would_not_block() {
    let emu = start(EmulatorConfig {
        answer_candidates: 2,
        ..EmulatorConfig::default()
    });
    let v = connect(&emu, "polled");
    let fd = v.ready_fd();
    assert!(!readable(fd, Duration::ZERO), "nothing queued yet");
    assert_eq!(
        v.recv(Some(Duration::ZERO)).unwrap_err().kind,
        ErrorKind::Timeout
    );

    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    let mut types = Vec::new();
    while types.len() < 3 {
        assert!(readable(fd, BOUND), "the answer and candidates come");
        while let Ok(m) = v.recv(Some(Duration::ZERO)) {
            types.push(m.message_type);
        }
    }
    assert_eq!(
        types,
        [
            MessageType::SdpAnswer,
            MessageType::IceCandidate,
            MessageType::IceCandidate
        ]
    );
    assert!(!readable(fd, Duration::ZERO), "all taken");

    v.request_close();
    assert!(readable(fd, BOUND), "the end is news too");
    assert_eq!(
        v.recv(Some(Duration::ZERO)).unwrap_err().kind,
        ErrorKind::Closed
    );
    assert!(readable(fd, Duration::ZERO), "and stays so");
    v.close().unwrap();
}

/// A WebSocket server on 127.0.0.1 that, when the client's close frame arrives, first sends
/// one more ICE candidate and only then its close reply: a master's message racing the app's
/// `request_close`, made certain. Returns the port and the CA file.
fn server_talking_after_close() -> (u16, std::path::PathBuf) {
    use std::io::{Read, Write};
    let (listener, port, ca_file, acceptor) = tls_listener("late-talker");
    thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        tcp.set_read_timeout(Some(BOUND)).unwrap();
        let Ok(tls) = acceptor.accept(tcp) else {
            return;
        };
        let Ok(mut ws) = tungstenite::accept(tls) else {
            return;
        };
        // Raw frames from here on, so nothing answers the close before the candidate is out.
        let s = ws.get_mut();
        loop {
            let mut head = [0u8; 2];
            if s.read_exact(&mut head).is_err() {
                return;
            }
            let len = match head[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    s.read_exact(&mut l).unwrap();
                    u64::from(u16::from_be_bytes(l))
                }
                127 => {
                    let mut l = [0u8; 8];
                    s.read_exact(&mut l).unwrap();
                    u64::from_be_bytes(l)
                }
                n => u64::from(n),
            };
            let mut rest = vec![0u8; 4 + len as usize]; // client frames are masked
            s.read_exact(&mut rest).unwrap();
            if head[0] & 0x0f == 0x8 {
                break;
            }
        }
        let payload = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANDIDATE);
        let text = format!(
            r#"{{"messageType":"ICE_CANDIDATE","messagePayload":"{payload}","senderClientId":"master"}}"#
        );
        let mut frame = vec![0x81, 126];
        frame.extend_from_slice(&(text.len() as u16).to_be_bytes());
        frame.extend_from_slice(text.as_bytes());
        frame.extend_from_slice(&[0x88, 0x02, 0x03, 0xe8]); // close 1000
        // The server ends the TCP connection after the close handshake (RFC 6455 §7.1.1).
        let _ = s.write_all(&frame).and_then(|()| s.flush());
        let _ = s.shutdown();
    });
    (port, ca_file)
}

/// `Closed` after `request_close` is final: a message the server sends after it is not
/// delivered behind it (it used to be, when it raced the close).
#[test]
fn closed_after_request_close_is_final() {
    let emu = start(EmulatorConfig::default());
    let (port, ca_file) = server_talking_after_close();
    let mut c = config_for(&emu, "viewer-late");
    c.auto_reconnect = false;
    c.wss_endpoint = format!("wss://127.0.0.1:{port}");
    c.ca_file = Some(ca_file);
    let v = Viewer::connect(&c).unwrap();
    let fd = v.ready_fd();
    v.request_close();
    assert!(readable(fd, BOUND));
    assert_eq!(
        v.recv(Some(Duration::ZERO)).unwrap_err().kind,
        ErrorKind::Closed
    );
    // Wait (bounded) until the I/O thread has read the candidate.
    let started = std::time::Instant::now();
    while v.stats().frames_received == 0 {
        assert!(
            started.elapsed() < BOUND,
            "the late candidate never arrived"
        );
        std::thread::yield_now();
    }
    let after = v.recv(Some(Duration::ZERO));
    assert!(
        matches!(&after, Err(e) if e.kind == ErrorKind::Closed),
        "after Closed: {after:?}"
    );
    assert!(readable(fd, Duration::ZERO), "the end stays news");
    v.close().unwrap();
}

/// Nor does a reconnect that was under way when `request_close` came announce itself behind
/// the `Closed` (`Reconnected` used to follow it).
#[test]
fn a_reconnect_under_way_at_request_close_is_not_announced_after_closed() {
    let emu = start(EmulatorConfig::default());
    let v = connect(&emu, "viewer-closing-mid-reconnect");
    emu.inject(Fault::HandshakeDelay { ms: 500 }).unwrap();
    emu.inject(Fault::DropConnection {
        client_id: Some("viewer-closing-mid-reconnect".into()),
    })
    .unwrap();
    // The viewer is inside its reconnect's upgrade, which the emulator holds back.
    emu.wait_for_event(|e| e["type"] == "handshake_delayed", BOUND)
        .expect("the viewer reconnects");
    v.request_close();
    assert_eq!(
        v.recv(Some(Duration::ZERO)).unwrap_err().kind,
        ErrorKind::Closed
    );
    // Wait (bounded) until the reconnect has completed inside the I/O thread.
    let started = std::time::Instant::now();
    while v.stats().reconnects == 0 {
        assert!(started.elapsed() < BOUND, "the reconnect never completed");
        std::thread::yield_now();
    }
    let after = v.recv(Some(Duration::ZERO));
    assert!(
        matches!(&after, Err(e) if e.kind == ErrorKind::Closed),
        "after Closed: {after:?}"
    );
    v.close().unwrap();
}
