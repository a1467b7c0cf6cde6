//! Advertised host names (`--advertise-host`): per-role, port-less-on-443 endpoints and a
//! certificate that covers them; and the README recipe in a network namespace on port 443.

mod common;

use std::net::TcpStream;
use std::process::Command;

use common::*;
use kvs_signaling_emulator::{Emulator, EmulatorConfig};
use serde_json::json;

fn host_port(url: &str) -> (String, u16) {
    let rest = url.split("://").nth(1).unwrap();
    let (h, p) = rest.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

/// TLS to the emulator's loopback port, verifying the certificate for `name` (no DNS needed).
fn tls_as(
    env: &kvs_signaling_emulator::EmulatorEnv,
    name: &str,
    port: u16,
) -> native_tls::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let ca = native_tls::Certificate::from_pem(&std::fs::read(&env.ca_file).unwrap()).unwrap();
    native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .build()
        .unwrap()
        .connect(name, tcp)
        .unwrap_or_else(|e| panic!("certificate does not cover {name}: {e}"))
}

#[test]
fn advertised_names_are_per_role_and_covered_by_the_certificate() {
    let emu = start_with(|c| c.advertise_host = Some("kvs.test".into()));
    let env = emu.env().clone();
    let (control, port) = host_port(&env.control_plane_url);
    assert_eq!(control, "kvs.test");
    let (viewer_host, p1) = host_port(&env.wss_endpoint);
    let (master_host, p2) = host_port(&env.master_wss_endpoint);
    let (https_host, p3) = host_port(&env.https_endpoint);
    assert_eq!(
        (p1, p2, p3),
        (port, port, port),
        "not on 443: the port stays in the URLs"
    );
    for (h, prefix) in [
        (&viewer_host, "v-"),
        (&master_host, "m-"),
        (&https_host, "r-"),
    ] {
        assert!(h.starts_with(prefix) && h.ends_with(".kvs.test"), "{h}");
        assert_eq!(h.len(), "v-12345678.kvs.test".len(), "{h}");
    }
    assert_ne!(viewer_host, master_host);
    assert_eq!(
        env.advertised_hosts,
        vec![
            control.clone(),
            https_host.clone(),
            viewer_host.clone(),
            master_host.clone()
        ]
    );
    assert!(env.to_env_file().contains(&format!(
        "KVS_EMULATOR_HOSTS='{}'",
        env.advertised_hosts.join(" ")
    )));
    // The same names from a second emulator: predictable for scripts and hosts files.
    let again = start_with(|c| c.advertise_host = Some("kvs.test".into()));
    assert_eq!(
        host_port(&again.env().wss_endpoint).0,
        viewer_host,
        "names derive from --advertise-host only"
    );

    // GetSignalingChannelEndpoint answers per role.
    for (role, wss) in [
        ("VIEWER", &env.wss_endpoint),
        ("MASTER", &env.master_wss_endpoint),
    ] {
        let body = json!({"ChannelARN": env.channel_arn,
            "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "HTTPS"], "Role": role}});
        let r = post_cp(&env, "/getSignalingChannelEndpoint", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
        let list = r.json()["ResourceEndpointList"].clone();
        assert_eq!(list[0]["ResourceEndpoint"], wss.as_str(), "{role}");
        assert_eq!(
            list[1]["ResourceEndpoint"],
            env.https_endpoint.as_str(),
            "{role}"
        );
    }

    // The certificate covers every advertised name (and any other *.kvs.test).
    for name in env
        .advertised_hosts
        .iter()
        .map(String::as_str)
        .chain(["r-other.kvs.test"])
    {
        drop(tls_as(&env, name, port));
    }
    // A viewer signs and sends the advertised host; the upgrade is accepted.
    let url = presign(
        &env,
        &Opts {
            client_id: Some("named-viewer".into()),
            ..Default::default()
        },
    );
    assert!(
        url.starts_with(&format!("wss://{viewer_host}:{port}/?")),
        "{url}"
    );
    let stream = tls_as(&env, &viewer_host, port);
    let (mut ws, _) = tungstenite::client::client(url.as_str(), stream).expect("upgrade accepted");
    send(&mut ws, &offer_frame());
    assert_eq!(recv(&mut ws)["messageType"], "SDP_ANSWER");
}

#[test]
fn per_surface_overrides_and_invalid_names() {
    let emu = start_with(|c| {
        c.advertise_viewer_host = Some("viewer.example.test".into());
        c.advertise_master_host = Some("master.example.test".into());
    });
    let env = emu.env();
    assert!(env.wss_endpoint.starts_with("wss://viewer.example.test:"));
    assert!(
        env.master_wss_endpoint
            .starts_with("wss://master.example.test:")
    );
    // Surfaces without a name keep the literal address.
    assert!(env.control_plane_url.starts_with("https://127.0.0.1:"));
    assert!(env.https_endpoint.starts_with("https://127.0.0.1:"));
    for bad in ["kvs.test:443", "https://kvs.test", "", "a..b", "-x.test"] {
        let e = Emulator::start(EmulatorConfig {
            advertise_host: Some(bad.into()),
            ..EmulatorConfig::default()
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("not a valid host name"),
            "{bad}: {e}"
        );
    }
}

/// Why the namespace test cannot run here, if it cannot.
fn netns_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (binding 443 and mount --bind need root)".into());
    }
    let probe = Command::new("unshare").args(["-n", "-m", "true"]).status();
    match probe {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("unshare -n -m fails here ({s})")),
        Err(e) => Some(format!("unshare not available: {e}")),
    }
}

fn botocore_available() -> bool {
    Command::new("python3")
        .args(["-c", "import botocore"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The README recipe: port 443 in a network namespace, a client that refuses endpoints with a
/// port (as the official C SDK does) runs master and viewer through it.
#[test]
fn port_443_recipe_in_a_network_namespace() {
    if let Some(why) = netns_unavailable() {
        println!("SKIPPED port_443_recipe_in_a_network_namespace: {why}");
        return;
    }
    assert!(
        botocore_available(),
        "python3 with botocore is required: pip install botocore"
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let work = std::env::temp_dir().join(format!("kvs-emu-port443-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let out = Command::new("timeout")
        .arg("120")
        .args(["unshare", "-n", "-m"])
        .arg(format!("{dir}/port443.sh"))
        .arg(env!("CARGO_BIN_EXE_kvs-signaling-emulator"))
        .arg(&work)
        .args(["python3", &format!("{dir}/port443_client.py")])
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&work);
    assert!(out.status.success(), "recipe failed: {}", out.status);
    for case in [
        "VIEWER endpoints are port-less host names",
        "VIEWER and MASTER get distinct WSS hosts",
        "MASTER and VIEWER WebSockets open on 443",
        "viewer receives the answer without senderClientId",
        "candidates both ways",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("PASS {case}")),
            "{case}"
        );
    }
}
