//! Credential sources against the emulator's AWS IoT credentials provider: mutual TLS over
//! loopback, the device certificate it issued, and signed calls the emulator verifies.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvs_signaling_emulator::{Emulator, EmulatorConfig, Fault, IotConfig, IotEnv, IotKeyFormat};
use kvs_viewer::{
    CredentialProvider, CredentialSource, Credentials, Error, ErrorKind, ExpiringCredentials,
    IotSettings, MessageType, Viewer, ViewerConfig,
};
use time::OffsetDateTime;

const OFFER: &str = r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"}"#;
/// Generous bound for anything that should take milliseconds on loopback.
const BOUND: Duration = Duration::from_secs(10);

fn start_iot(credential_seconds: u64) -> Emulator {
    Emulator::start(EmulatorConfig {
        iot: Some(IotConfig {
            credential_seconds,
            ..IotConfig::default()
        }),
        ..EmulatorConfig::default()
    })
    .expect("emulator starts")
}

fn iot_env(emu: &Emulator) -> IotEnv {
    emu.iot_env().expect("the IoT provider runs").clone()
}

fn settings(env: &IotEnv) -> IotSettings {
    IotSettings {
        endpoint: env.endpoint.clone(),
        role_alias: env.role_alias.clone(),
        thing_name: env.thing_name.clone(),
        cert_file: env.cert_file.clone(),
        key_file: env.key_file.clone(),
        ca_file: Some(env.ca_file.clone()),
    }
}

fn iot_provider(s: IotSettings) -> CredentialProvider {
    CredentialProvider::new(CredentialSource::Iot(s))
}

/// A viewer config that discovers the channel (Describe, GetEndpoint, GetIceServerConfig)
/// and connects: four signed requests with `credentials`.
fn discovering_config(emu: &Emulator, client_id: &str, credentials: Credentials) -> ViewerConfig {
    let env = emu.env();
    let mut c = ViewerConfig::new(&env.region, "", client_id, "", credentials);
    c.channel_name = Some(env.channel_name.clone());
    c.control_plane_url = Some(env.control_plane_url.clone());
    c.ca_file = Some(env.ca_file.clone());
    c
}

fn accepted_keys(emu: &Emulator) -> Vec<String> {
    emu.events()
        .iter()
        .filter(|e| e["type"] == "auth" && e["verdict"] == "accepted")
        .filter_map(|e| e["access_key_id"].as_str().map(str::to_owned))
        .collect()
}

/// Every string these tests can show a user: errors (Display and Debug), Debug output of the
/// sources and providers, the emulator's event log.
#[derive(Default)]
struct Captured(Mutex<Vec<String>>);

impl Captured {
    fn error(&self, e: &Error) {
        let mut v = self.0.lock().unwrap();
        v.push(e.to_string());
        v.push(format!("{e:?}"));
    }
    fn text(&self, t: String) {
        self.0.lock().unwrap().push(t);
    }
    fn assert_free_of(&self, secrets: &[String]) {
        let all = self.0.lock().unwrap().join("\n");
        assert!(all.len() > 200, "something was captured");
        for s in secrets.iter().filter(|s| s.len() >= 16) {
            assert!(!all.contains(s.as_str()), "a secret leaked: …{}", &s[..8]);
        }
    }
}

/// The base64 lines of a PEM private key: the key material a log must never show.
fn key_material(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn fetch_err(p: &CredentialProvider, captured: &Captured) -> Error {
    let e = p.credentials().expect_err("the fetch must fail");
    captured.error(&e);
    assert!(e.message.starts_with("credentials: "), "{e}");
    e
}

#[test]
fn iot_credentials_sign_every_call_and_the_emulator_accepts_them() {
    let emu = start_iot(3600);
    let env = iot_env(&emu);
    assert!(
        std::fs::read_to_string(&env.key_file)
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "PKCS#1, as AWS IoT hands out"
    );
    let provider = iot_provider(settings(&env));
    let before = OffsetDateTime::now_utc();
    let c = provider
        .current()
        .expect("credentials from the IoT provider");
    let exp = c.expires_at.expect("temporary credentials expire");
    let lifetime = (exp - before).whole_seconds();
    assert!((3590..=3601).contains(&lifetime), "{lifetime}");
    assert!(c.credentials.access_key_id.starts_with("ASIA"));
    assert!(c.credentials.session_token().is_some());
    // Cached: the second use does not ask the provider again.
    provider.credentials().unwrap();
    assert_eq!(provider.fetch_count(), 1);
    let issued = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "iot_credentials")
        .count();
    assert_eq!(issued, 1);

    let akid = c.credentials.access_key_id.clone();
    let cfg = discovering_config(&emu, "iot-viewer", provider.credentials().unwrap());
    let v = Viewer::connect(&cfg).expect("signed with IoT credentials, accepted");
    v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
        .unwrap();
    let answer = v.recv(Some(BOUND)).expect("answer");
    assert_eq!(answer.message_type, MessageType::SdpAnswer);
    v.close().unwrap();
    let keys = accepted_keys(&emu);
    assert_eq!(
        keys.len(),
        4,
        "Describe, GetEndpoint, GetIceConfig, Connect"
    );
    assert!(keys.iter().all(|k| *k == akid), "{keys:?}");
}

#[test]
fn device_keys_load_as_pkcs1_pkcs8_and_ec() {
    let emu = start_iot(3600);
    let env = iot_env(&emu);
    for (format, header) in [
        (IotKeyFormat::RsaPkcs8, "-----BEGIN PRIVATE KEY-----"),
        (IotKeyFormat::Ec, "-----BEGIN EC PRIVATE KEY-----"),
    ] {
        let device = emu.iot_issue_device(&env.thing_name, format).unwrap();
        let pem = std::fs::read_to_string(&device.key_file).unwrap();
        assert!(pem.starts_with(header), "{format:?}: {pem:.40}");
        let p = iot_provider(IotSettings {
            cert_file: device.cert_file,
            key_file: device.key_file,
            ..settings(&env)
        });
        let c = p.current().unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert!(c.credentials.access_key_id.starts_with("ASIA"));
    }
}

/// A certificate and key from a CA the provider does not know.
fn foreign_device(dir: &Path) -> (PathBuf, PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "demo-channel").unwrap();
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
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = dir.join("foreign-certificate.pem.crt");
    let key_file = dir.join("foreign-private.pem.key");
    std::fs::write(&cert, b.build().to_pem().unwrap()).unwrap();
    std::fs::write(&key_file, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert, key_file)
}

#[test]
fn refusals_have_clear_codes_and_no_secret_anywhere() {
    let emu = start_iot(3600);
    let env = iot_env(&emu);
    let captured = Captured::default();
    let good = settings(&env);

    let e = fetch_err(
        &iot_provider(IotSettings {
            thing_name: "someone-else".into(),
            ..good.clone()
        }),
        &captured,
    );
    assert_eq!(e.kind, ErrorKind::AccessDenied, "{e}");
    assert_eq!(e.http_status, Some(403));
    assert!(e.message.contains("not attached to that thing"), "{e}");

    let e = fetch_err(
        &iot_provider(IotSettings {
            role_alias: "no-such-alias".into(),
            ..good.clone()
        }),
        &captured,
    );
    assert_eq!(e.kind, ErrorKind::ResourceNotFound, "{e}");
    assert_eq!(e.http_status, Some(404));

    let dir = env.dir.join("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    let (foreign_cert, foreign_key) = foreign_device(&dir);
    let e = fetch_err(
        &iot_provider(IotSettings {
            cert_file: foreign_cert,
            key_file: foreign_key,
            ..good.clone()
        }),
        &captured,
    );
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    let refused = emu.wait_for_event(
        |e| e["type"] == "iot_refused" && e["reason"] == "tls_handshake",
        BOUND,
    );
    assert!(refused.is_some(), "the provider refused the handshake");

    // The key of another device: caught before any I/O.
    let other = emu
        .iot_issue_device(&env.thing_name, IotKeyFormat::RsaPkcs1)
        .unwrap();
    let e = fetch_err(
        &iot_provider(IotSettings {
            key_file: other.key_file.clone(),
            ..good.clone()
        }),
        &captured,
    );
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    assert!(
        e.message.starts_with("credentials: iot_key_file: ")
            && e.message.contains("does not belong to the certificate"),
        "{e}"
    );

    // The server certificate is not trusted without iot_ca_file.
    let e = fetch_err(
        &iot_provider(IotSettings {
            ca_file: None,
            ..good.clone()
        }),
        &captured,
    );
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");

    // Nobody listens.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = fetch_err(
        &iot_provider(IotSettings {
            endpoint: format!("https://127.0.0.1:{port}"),
            ..good.clone()
        }),
        &captured,
    );
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
    assert!(e.message.contains("unreachable"), "{e}");

    // A working fetch, then everything a user could see is searched for its secrets.
    let p = iot_provider(good);
    let c = p.current().unwrap();
    captured.text(format!("{p:?}"));
    captured.text(format!("{c:?}"));
    captured.text(format!("{:?}", p.source()));
    // Signing with them, then a refused call: the error quotes the service, not the secret.
    let cfg = discovering_config(&emu, "leak-check", c.credentials.clone());
    captured.text(format!("{cfg:?}"));
    emu.inject(Fault::ClockOffset { secs: 7200 }).unwrap();
    if let Err(e) = Viewer::connect(&cfg) {
        captured.error(&e);
    }
    captured.text(serde_json::to_string(&emu.events()).unwrap());
    captured.text(std::fs::read_to_string(&emu.env().event_log).unwrap_or_default());
    let issued = emu.iot_issued_credentials();
    assert!(!issued.is_empty());
    let mut secrets: Vec<String> = issued
        .iter()
        .flat_map(|i| {
            [
                i.secret_access_key.clone(),
                i.session_token.clone().unwrap(),
            ]
        })
        .collect();
    secrets.extend(key_material(&env.key_file));
    secrets.extend(key_material(&other.key_file));
    captured.assert_free_of(&secrets);
}

/// A provider whose clock is the system clock plus `offset` seconds, like the emulator's.
fn shifted_provider(source: CredentialSource, offset: Arc<AtomicI64>) -> CredentialProvider {
    CredentialProvider::with_clock(
        source,
        kvs_viewer::DEFAULT_REFRESH_MARGIN,
        kvs_viewer::DEFAULT_REFRESH_JITTER,
        Box::new(move || {
            OffsetDateTime::now_utc() + time::Duration::seconds(offset.load(Ordering::SeqCst))
        }),
    )
}

/// 30 s credentials across three lifetimes, time advanced on both sides (16 s a step) instead
/// of waited for: each refresh comes before the expiry, credentials are refused once expired,
/// the fresh ones accepted.
#[test]
fn thirty_second_credentials_are_refreshed_before_they_expire() {
    let emu = start_iot(30);
    let env = iot_env(&emu);
    let offset = Arc::new(AtomicI64::new(0));
    let p = shifted_provider(CredentialSource::Iot(settings(&env)), offset.clone());
    let connect = |client: &str, c: &ExpiringCredentials| {
        Viewer::connect(&discovering_config(&emu, client, c.credentials.clone()))
            .map(|v| v.close().unwrap())
    };
    let mut history: Vec<ExpiringCredentials> = Vec::new();
    for step in 0..6i64 {
        let shift = step * 16;
        offset.store(shift, Ordering::SeqCst);
        emu.inject(Fault::ClockOffset { secs: shift }).unwrap();
        let now = OffsetDateTime::now_utc() + time::Duration::seconds(shift);
        let c = p.current().unwrap();
        if let Some(prev) = history.last() {
            assert_ne!(c.credentials.access_key_id, prev.credentials.access_key_id);
            assert!(
                prev.expires_at.unwrap() > now,
                "refreshed before the expiry"
            );
            connect("previous-creds", prev)
                .unwrap_or_else(|e| panic!("step {step}: not yet expired, still valid: {e}"));
        }
        connect("fresh-creds", &c).unwrap_or_else(|e| panic!("step {step}: {e}"));
        if step >= 2 {
            let e = connect("expired-creds", &history[history.len() - 2])
                .expect_err("expired credentials are refused");
            assert_eq!(e.kind, ErrorKind::AccessDenied, "{e}");
        }
        // Refresh is due 15 s (half the lifetime, below the 5 min margin) plus up to 3 s of
        // jitter before the expiry; a presign may use at most what is left.
        let early = (c.expires_at.unwrap() - p.refresh_at().unwrap()).whole_seconds();
        // (The expiry is in whole seconds, so the lifetime seen is 29.x s.)
        assert!((14..=18).contains(&early), "{early}");
        assert!(p.presign_expires_s(299).unwrap() <= 30);
        // Before the refresh time the provider is not asked again.
        offset.store(shift + 11, Ordering::SeqCst);
        assert_eq!(
            p.credentials().unwrap().access_key_id,
            c.credentials.access_key_id
        );
        history.push(c);
        assert_eq!(p.fetch_count(), history.len() as u64);
    }
}

#[test]
fn the_callback_is_called_again_when_the_credentials_near_expiry() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let env = emu.env().clone();
    let offset = Arc::new(AtomicI64::new(0));
    let calls = Arc::new(AtomicI64::new(0));
    let (o2, c2) = (offset.clone(), calls.clone());
    let source = CredentialSource::from_fn(move || {
        c2.fetch_add(1, Ordering::SeqCst);
        let now = OffsetDateTime::now_utc() + time::Duration::seconds(o2.load(Ordering::SeqCst));
        Ok(ExpiringCredentials::new(
            Credentials::new(
                &env.access_key_id,
                &env.secret_access_key,
                env.session_token.as_deref(),
            ),
            Some(now + time::Duration::seconds(60)),
        ))
    });
    let p = shifted_provider(source, offset.clone());
    let creds = p.credentials().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let v = Viewer::connect(&discovering_config(&emu, "cb-viewer", creds)).unwrap();
    v.close().unwrap();
    p.credentials().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "cached while fresh");
    offset.store(31, Ordering::SeqCst);
    p.credentials().unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "called again before expiry"
    );

    // A failing callback with nothing cached is reported as such.
    let failing = CredentialSource::from_fn(|| Err("the secure element is locked".into()));
    let e = CredentialProvider::new(failing).credentials().unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert_eq!(
        e.message,
        "credentials: the credentials callback failed: the secure element is locked"
    );
}

/// A viewer whose config names the IoT provider (`credential_source`): discovery, the
/// WebSocket, ICE refreshes and reconnects all sign with it. 4 s credentials (refresh due
/// 2 s, half the lifetime, plus up to 0.4 s jitter before expiry) across three lifetimes
/// while the viewer keeps exchanging messages; each connection drop is answered by a reconnect
/// with the credentials of the moment, never expired ones.
#[test]
fn a_connected_viewer_keeps_working_across_credential_lifetimes() {
    let emu = Emulator::start(EmulatorConfig {
        iot: Some(IotConfig {
            credential_seconds: 4,
            ..IotConfig::default()
        }),
        // Each offer takes ~200 ms to be answered: the exchange paces the test.
        answer_candidates: 1,
        candidate_delay_ms: 200,
        ..EmulatorConfig::default()
    })
    .unwrap();
    let provider = iot_provider(settings(&iot_env(&emu)));
    let mut cfg = discovering_config(&emu, "long-lived", Credentials::new("", "", None));
    cfg.credential_source = Some(provider.clone());
    // The test drives each reconnect itself, so that it sees every drop.
    cfg.auto_reconnect = false;
    let v = Viewer::connect(&cfg).expect("connects with IoT credentials");
    let first = accepted_keys(&emu);
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(first.iter().all(|k| k.starts_with("ASIA")));

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut reconnects = 0;
    while provider.fetch_count() < 4 {
        assert!(std::time::Instant::now() < deadline, "bounded");
        v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
            .unwrap();
        loop {
            let m = v.recv(Some(BOUND)).expect("answer and candidates");
            if m.message_type == MessageType::IceCandidate {
                break;
            }
        }
        if provider
            .refresh_at()
            .is_some_and(|at| OffsetDateTime::now_utc() >= at)
        {
            // What the reconnect machinery does: a new connection, signed anew.
            emu.inject(Fault::DropConnection { client_id: None })
                .unwrap();
            // Nothing is pending: the answer and the one candidate were taken.
            let e = v.recv(Some(BOUND)).expect_err("the drop is reported");
            assert_eq!(e.kind, ErrorKind::Closed, "{e}");
            v.reconnect().expect("reconnects with fresh credentials");
            v.refresh_ice_servers()
                .expect("GetIceServerConfig with fresh credentials");
            reconnects += 1;
        }
    }
    v.close().unwrap();
    assert!(reconnects >= 3, "{reconnects}");
    // Every Connect was signed by credentials the emulator had issued and not yet expired
    // (it refuses expired ones), and each lifetime brought new ones.
    let issued = emu.iot_issued_credentials();
    let connects: Vec<String> = emu
        .events()
        .iter()
        .filter(|e| e["type"] == "auth" && e["operation"] == "Connect")
        .inspect(|e| assert_eq!(e["verdict"], "accepted", "{e}"))
        .map(|e| e["access_key_id"].as_str().unwrap().to_owned())
        .collect();
    let mut distinct = connects.clone();
    distinct.dedup();
    assert!(distinct.len() >= 4, "{connects:?}");
    assert!(
        distinct
            .iter()
            .all(|k| issued.iter().any(|i| &i.access_key_id == k))
    );
}

/// A provider that accepts the connection and never answers: the connect still ends within
/// its own timeout (not the provider's 5 s), with a clear code naming the step.
#[test]
fn a_silent_provider_cannot_stretch_the_connect_timeout() {
    let emu = start_iot(3600);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let s = IotSettings {
        endpoint: format!("https://{}", silent.local_addr().unwrap()),
        ..settings(&iot_env(&emu))
    };
    let mut cfg = discovering_config(&emu, "silent", Credentials::new("", "", None));
    cfg.credential_source = Some(iot_provider(s));
    cfg.connect_timeout = Duration::from_millis(700);
    let started = std::time::Instant::now();
    let e = Viewer::connect(&cfg).expect_err("no credentials, no connect");
    let took = started.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.starts_with("credentials: "), "{e}");
    assert!(
        took < Duration::from_secs(4),
        "bounded by connect_timeout: {took:?}"
    );
    drop(silent);
}
