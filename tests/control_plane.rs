//! Discovery against the project's signaling emulator over real TLS on loopback: channel name →
//! ARN → endpoints → ICE servers → connected viewer, each step's service errors, tampered
//! answers, endpoint reuse, clock skew, and a botocore cross-check of the header signature.

use std::time::{Duration, Instant};

use kvs_signaling_emulator::{Credential, Emulator, EmulatorConfig, Fault, Operation, Tamper};
use kvs_viewer::{Credentials, ErrorKind, MessageType, Viewer, ViewerConfig};
use serde_json::Value;

const OFFER: &str = r#"{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:96 H264/90000\r\n"}"#;
/// Generous bound for anything that should take milliseconds on loopback.
const BOUND: Duration = Duration::from_secs(10);

fn start() -> Emulator {
    start_with(EmulatorConfig::default())
}

fn start_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).expect("emulator starts")
}

/// A viewer that knows only region, channel name, credentials and where the control plane is.
fn discovering(emu: &Emulator) -> ViewerConfig {
    let env = emu.env();
    let mut c = ViewerConfig::new(
        &env.region,
        "",
        &env.client_id,
        "",
        Credentials::new(
            &env.access_key_id,
            &env.secret_access_key,
            env.session_token.as_deref(),
        ),
    );
    c.channel_name = Some(env.channel_name.clone());
    c.control_plane_url = Some(env.control_plane_url.clone());
    c.ca_file = Some(env.ca_file.clone());
    c
}

fn inject(emu: &Emulator, fault: Fault) {
    emu.inject(fault).expect("fault accepted");
}

fn fail_next(emu: &Emulator, operation: Operation, status: u16, error_type: &str, message: &str) {
    inject(
        emu,
        Fault::FailNext {
            operation,
            status,
            error_type: error_type.into(),
            message: message.into(),
            count: 1,
        },
    );
}

/// How many answered requests of `operation` the emulator logged.
fn calls(emu: &Emulator, operation: Operation) -> usize {
    emu.events()
        .iter()
        .filter(|e| e["type"] == "http_request" && e["operation"] == operation.name())
        .count()
}

#[test]
fn name_to_arn_to_endpoints_to_ice_to_offer_and_answer() {
    let emu = start();
    let env = emu.env();
    let v = Viewer::connect(&discovering(&emu)).expect("discovers and connects");

    assert_eq!(v.channel_arn(), env.channel_arn);
    let endpoints = v.endpoints().unwrap();
    assert_eq!(endpoints.wss, env.wss_endpoint);
    assert_eq!(endpoints.https, env.https_endpoint);

    let servers = v.ice_servers().unwrap();
    assert_eq!(servers.len(), 3, "STUN + the emulator's two TURN servers");
    assert_eq!(
        servers[0].uris,
        ["stun:stun.kinesisvideo.us-west-2.amazonaws.com:443"]
    );
    assert_eq!((servers[0].ttl_s, servers[0].password()), (0, ""));
    for s in &servers[1..] {
        assert_eq!(s.uris.len(), 3);
        assert!(s.uris.iter().all(|u| u.starts_with("turn")), "{:?}", s.uris);
        assert_eq!(s.ttl_s, 300);
        assert!(!s.username.is_empty() && !s.password().is_empty());
    }

    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    let answer = v.recv(Some(BOUND)).expect("the built-in master answers");
    assert_eq!(answer.message_type, MessageType::SdpAnswer);
    let payload: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(payload["type"], "answer");

    // One call of each; ICE servers were fetched during discovery, not again on read.
    assert_eq!(calls(&emu, Operation::Describe), 1);
    assert_eq!(calls(&emu, Operation::GetEndpoint), 1);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 1);
    let role = emu
        .wait_for_event(|e| e["type"] == "endpoint_role", BOUND)
        .unwrap();
    assert_eq!(role["role"], "VIEWER");
    v.close().unwrap();
}

#[test]
fn refresh_reuses_the_endpoints() {
    let emu = start();
    let v = Viewer::connect(&discovering(&emu)).unwrap();
    let before = v.ice_servers().unwrap();
    let after = v.refresh_ice_servers().unwrap();
    assert_eq!(after.len(), before.len());
    assert_ne!(
        before[1].password(),
        after[1].password(),
        "a refresh returns fresh credentials"
    );
    assert_eq!(calls(&emu, Operation::Describe), 1);
    assert_eq!(calls(&emu, Operation::GetEndpoint), 1);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 2);
}

#[test]
fn an_arn_skips_describe_and_a_wss_endpoint_skips_discovery() {
    let emu = start();
    let env = emu.env();
    let mut c = discovering(&emu);
    c.channel_arn = env.channel_arn.clone();
    c.channel_name = None;
    let v = Viewer::connect(&c).unwrap();
    assert_eq!(calls(&emu, Operation::Describe), 0);
    assert_eq!(calls(&emu, Operation::GetEndpoint), 1);
    v.close().unwrap();

    // WSS endpoint given: no control-plane call until ICE servers are asked for, then the
    // endpoints once and the ICE config once; a second read is served from memory.
    let emu = start();
    let env = emu.env();
    let mut c = discovering(&emu);
    c.channel_arn = env.channel_arn.clone();
    c.wss_endpoint = env.wss_endpoint.clone();
    let v = Viewer::connect(&c).unwrap();
    assert_eq!(calls(&emu, Operation::GetEndpoint), 0);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 0);
    assert_eq!(v.ice_servers().unwrap().len(), 3);
    assert_eq!(v.ice_servers().unwrap().len(), 3);
    assert_eq!(calls(&emu, Operation::Describe), 0);
    assert_eq!(calls(&emu, Operation::GetEndpoint), 1);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 1);
}

#[test]
fn each_steps_service_errors_map_to_kinds_and_name_the_step() {
    let emu = start();
    // (status, name, kind, transient: retried until the connect deadline)
    let cases = [
        (
            400,
            "InvalidArgumentException",
            ErrorKind::InvalidArgument,
            false,
        ),
        (
            400,
            "ClientLimitExceededException",
            ErrorKind::ClientLimitExceeded,
            true,
        ),
        (403, "AccessDeniedException", ErrorKind::AccessDenied, false),
        (
            404,
            "ResourceNotFoundException",
            ErrorKind::ResourceNotFound,
            false,
        ),
        (500, "", ErrorKind::HttpStatus, true),
        (500, "InternalFailure", ErrorKind::Service, true),
    ];
    for (op, step) in [
        (Operation::Describe, "describe: "),
        (Operation::GetEndpoint, "get_endpoint: "),
        (Operation::GetIceConfig, "get_ice_config: "),
    ] {
        for (status, name, kind, transient) in cases {
            // A transient failure fails the connect only if it lasts the whole deadline.
            let fresh;
            let (emu, count) = if transient {
                fresh = start();
                (&fresh, 1_000)
            } else {
                (&emu, 1)
            };
            inject(
                emu,
                Fault::FailNext {
                    operation: op,
                    status,
                    error_type: name.into(),
                    message: "injected".into(),
                    count,
                },
            );
            let mut config = discovering(emu);
            config.connect_timeout = Duration::from_millis(1500);
            let e = Viewer::connect(&config).expect_err("must fail");
            if transient {
                assert!(e.message.contains(" attempts: "), "{e}");
            }
            let what = format!("{op:?} {status} {name:?}: {e}");
            assert_eq!(e.kind, kind, "{what}");
            assert_eq!(e.http_status, Some(status), "{what}");
            assert!(e.message.starts_with(step), "{what}");
            assert!(e.message.contains("injected"), "{what}");
            assert!(e.request_id.is_some(), "{what}");
            if !name.is_empty() {
                assert_eq!(e.error_type.as_deref(), Some(name), "{what}");
            }
        }
    }
    // After all that, discovery works again.
    Viewer::connect(&discovering(&emu))
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn tampered_answers_give_clear_errors() {
    let emu = start();

    inject(&emu, Fault::TamperNext(Tamper::DropWssEndpoint));
    let e = Viewer::connect(&discovering(&emu)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.message.starts_with("get_endpoint: "), "{e}");
    assert!(e.message.contains("no WSS endpoint"), "{e}");

    inject(&emu, Fault::TamperNext(Tamper::IceUriCount(5)));
    let e = Viewer::connect(&discovering(&emu)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.message.starts_with("get_ice_config: "), "{e}");
    assert!(e.message.contains("5 URIs, at most 4"), "{e}");

    inject(&emu, Fault::TamperNext(Tamper::IceTtl(29)));
    let e = Viewer::connect(&discovering(&emu)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.message.starts_with("get_ice_config: "), "{e}");
    assert!(e.message.contains("Ttl is 29 s"), "{e}");

    inject(&emu, Fault::TamperNext(Tamper::IceTtl(86_401)));
    let e = Viewer::connect(&discovering(&emu)).unwrap_err();
    assert!(e.message.contains("more than the 86400 s"), "{e}");

    inject(
        &emu,
        Fault::TamperNext(Tamper::ChannelStatus("DELETING".into())),
    );
    let e = Viewer::connect(&discovering(&emu)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceNotFound, "{e}");
    assert!(e.message.starts_with("describe: "), "{e}");
    assert!(e.message.contains("being deleted"), "{e}");

    // Six servers: the first five are kept (as the C SDK does), behind STUN.
    inject(&emu, Fault::TamperNext(Tamper::IceServerCount(6)));
    let v = Viewer::connect(&discovering(&emu)).unwrap();
    assert_eq!(v.ice_servers().unwrap().len(), 6);
    assert_eq!(v.ice_servers_dropped(), 1);
}

#[test]
fn servers_near_their_ttl_are_refreshed_on_read() {
    let emu = start();
    // TTL 31 s: due for refresh one second after the fetch (30 s grace).
    inject(&emu, Fault::TamperNext(Tamper::IceTtl(31)));
    let v = Viewer::connect(&discovering(&emu)).unwrap();
    let first = Instant::now();
    assert_eq!(v.ice_servers().unwrap()[1].ttl_s, 31);
    let deadline = first + BOUND;
    // Time must pass for this one; poll the read (each read is the code under test).
    let refreshed = loop {
        let s = v.ice_servers().unwrap();
        if s[1].ttl_s == 300 {
            break s;
        }
        assert!(Instant::now() < deadline, "never refreshed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(first.elapsed() >= Duration::from_millis(900));
    assert_eq!(refreshed.len(), 3);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 2);
    assert_eq!(calls(&emu, Operation::GetEndpoint), 1);
}

#[test]
fn a_skewed_clock_is_corrected_once_and_kept_for_the_websocket() {
    let emu = start();
    inject(&emu, Fault::ClockOffset { secs: 900 });
    let v = Viewer::connect(&discovering(&emu)).expect("corrected and connected");
    let offset = v.stats().clock_offset_s;
    assert!((895..=905).contains(&offset), "offset {offset}");
    // Describe was refused once and retried; the later calls and the WSS URL used the offset.
    let refused = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "http_request" && e["status"] == 403)
        .count();
    assert_eq!(refused, 1);
    assert_eq!(calls(&emu, Operation::GetEndpoint), 1);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 1);
}

#[test]
fn secrets_never_reach_error_messages() {
    let emu = start_with(EmulatorConfig {
        credentials: vec![Credential::random_session()],
        ..EmulatorConfig::default()
    });
    let env = emu.env();
    let token = env.session_token.clone().unwrap();
    let secret = env.secret_access_key.clone();
    // What the real service says on a signature mismatch: the canonical request, token included.
    let message = format!(
        "The request signature we calculated does not match the signature you provided. \
         The Canonical String for this request should have been 'POST\n/describeSignalingChannel\n\n\
         x-amz-security-token:{token}\n' and also {secret}"
    );
    fail_next(&emu, Operation::Describe, 403, "", &message);
    let e = Viewer::connect(&discovering(&emu)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("does not match"), "{shown}");
    assert!(!shown.contains(&token), "token leaked: {shown}");
    assert!(!shown.contains(&secret), "secret leaked: {shown}");

    // And a connected viewer's ICE servers print without credentials.
    let v = Viewer::connect(&discovering(&emu)).unwrap();
    let shown = format!("{:?}", v.ice_servers().unwrap());
    for s in v.ice_servers().unwrap() {
        if !s.password().is_empty() {
            assert!(!shown.contains(s.password()));
        }
    }
}

#[test]
fn bad_discovery_config_is_refused_before_any_io() {
    let emu = start();
    let mut c = discovering(&emu);
    c.channel_name = None;
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.starts_with("channel_arn"), "{e}");

    let mut c = discovering(&emu);
    c.channel_name = Some("bad name".into());
    assert!(
        Viewer::connect(&c)
            .unwrap_err()
            .message
            .starts_with("channel_name")
    );

    let mut c = discovering(&emu);
    c.control_plane_url = Some(emu.env().control_plane_url.replace("https:", "http:"));
    let e = Viewer::connect(&c).unwrap_err();
    assert!(e.message.starts_with("control_plane_url"), "{e}");
    assert!(e.message.contains("https://"), "{e}");
    assert!(emu.events().iter().all(|e| e["type"] != "http_request"));
}

#[test]
fn an_unknown_channel_is_not_found_at_describe() {
    let emu = start();
    let mut c = discovering(&emu);
    c.channel_name = Some("no-such-channel".into());
    let e = Viewer::connect(&c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceNotFound, "{e}");
    assert!(e.message.starts_with("describe: HTTP 404"), "{e}");
}

#[test]
fn the_three_calls_share_one_connection() {
    let emu = start();
    let v = Viewer::connect(&discovering(&emu)).unwrap();
    // The emulator serves control plane, ICE config and WSS on one host:port: one TLS
    // connection for Describe + GetEndpoint + GetIceConfig, one for the WebSocket.
    let accepts = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "tcp_accept")
        .count();
    assert_eq!(accepts, 2);
    v.close().unwrap();
}

#[test]
fn ice_calls_run_while_another_thread_blocks_in_recv() {
    let emu = start();
    let v = Viewer::connect(&discovering(&emu)).unwrap();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| v.recv(Some(BOUND)));
        // Wait (bounded) until the receiver is really blocked.
        let deadline = Instant::now() + BOUND;
        while v.stats().waiting_receivers == 0 {
            assert!(Instant::now() < deadline, "the receiver never blocked");
            std::thread::yield_now();
        }
        let t = Instant::now();
        assert_eq!(v.refresh_ice_servers().unwrap().len(), 3);
        assert_eq!(v.ice_servers().unwrap().len(), 3);
        assert!(t.elapsed() < BOUND / 2);
        assert!(!receiver.is_finished(), "recv returned without a message");
        // The connection is still served: the offer goes out, the answer wakes the receiver.
        v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
            .unwrap();
        let answer = receiver.join().unwrap().expect("answer");
        assert_eq!(answer.message_type, MessageType::SdpAnswer);
    });
}

/// The viewer's one clock, every surface (issue: skew broke every HTTPS call). With the
/// service's clock ±6 and ±20 minutes off: discovery, a direct connect, the first ICE fetch
/// and a refresh after the service's clock moved again all succeed on their second attempt.
/// (A skewed control-plane call is refused as `InvalidSignatureException` or
/// `AccessDeniedException`, depending on the emulator version; both are handled.)
#[test]
fn every_surface_corrects_the_one_clock() {
    for secs in [-1200_i64, -360, 360, 1200] {
        let emu = start();
        inject(&emu, Fault::ClockOffset { secs });
        let refused = || {
            emu.events()
                .iter()
                .filter(|e| e["type"] == "http_request" && e["status"] == 403)
                .count()
        };
        let near = |offset: i64| (offset - secs).abs() <= 5;

        // Discovery: Describe refused once, everything after signed right.
        let v = Viewer::connect(&discovering(&emu)).expect("discovery corrects the clock");
        assert!(near(v.stats().clock_offset_s), "{secs}: {:?}", v.stats());
        assert_eq!(refused(), 1, "{secs}");
        v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
            .unwrap();
        assert_eq!(
            v.recv(Some(BOUND)).unwrap().message_type,
            MessageType::SdpAnswer
        );
        v.close().unwrap();

        // Direct connect (ARN + WSS endpoint): the upgrade is refused once, then the first
        // ICE fetch (GetEndpoint + GetIceConfig) uses the offset the WebSocket learnt.
        let env = emu.env();
        let mut direct = discovering(&emu);
        direct.channel_arn = env.channel_arn.clone();
        direct.wss_endpoint = env.wss_endpoint.clone();
        direct.client_id = "viewer-direct".into();
        let v = Viewer::connect(&direct).expect("the upgrade corrects the clock");
        assert!(near(v.stats().clock_offset_s), "{secs}: {:?}", v.stats());
        assert_eq!(
            v.ice_servers().expect("ICE with the learnt offset").len(),
            3
        );
        assert_eq!(
            refused(),
            1,
            "{secs}: the ICE fetch was signed right the first time"
        );

        // The service's clock moves again: the refresh is refused once and corrected.
        inject(&emu, Fault::ClockOffset { secs: -secs });
        assert_eq!(v.refresh_ice_servers().expect("refresh corrects").len(), 3);
        assert!(
            (v.stats().clock_offset_s + secs).abs() <= 5,
            "{secs}: {:?}",
            v.stats()
        );
        assert_eq!(refused(), 2, "{secs}");
        v.close().unwrap();
    }
}

/// 5xx, throttling and 429 answers are retried with backoff inside the connect deadline.
#[test]
fn transient_failures_are_retried_within_the_deadline() {
    let emu = start();
    let fail = |operation, status, error_type: &str, count| {
        inject(
            &emu,
            Fault::FailNext {
                operation,
                status,
                error_type: error_type.into(),
                message: "injected".into(),
                count,
            },
        )
    };
    fail(Operation::Describe, 503, "", 3);
    fail(Operation::GetEndpoint, 429, "", 2);
    fail(
        Operation::GetIceConfig,
        400,
        "ClientLimitExceededException",
        1,
    );
    fail(Operation::GetIceConfig, 500, "InternalFailure", 1);
    let started = Instant::now();
    let v = Viewer::connect(&discovering(&emu)).expect("transient failures are retried");
    println!(
        "connected after 7 injected failures in {:?}",
        started.elapsed()
    );
    assert_eq!(calls(&emu, Operation::Describe), 4);
    assert_eq!(calls(&emu, Operation::GetEndpoint), 3);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 3);
    // A refresh is retried the same way.
    fail(Operation::GetIceConfig, 502, "", 2);
    assert_eq!(v.refresh_ice_servers().unwrap().len(), 3);
    assert_eq!(calls(&emu, Operation::GetIceConfig), 6);
    v.close().unwrap();
}
