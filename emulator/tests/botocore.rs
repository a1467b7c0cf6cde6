//! Fidelity proof: botocore's `SigV4QueryAuth` / `SigV4Auth` and its real clients against the
//! running emulator (accepted; tampered signature, wrong secret, stale date and wrong host
//! denied). The script is `tests/botocore_fidelity.py`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kvs_signaling_emulator::{Credential, Emulator, EmulatorConfig};

fn require_botocore() {
    let ok = Command::new("python3")
        .args(["-c", "import botocore"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with botocore is required for the fidelity tests: pip install botocore"
    );
}

fn run_script(emu: &Emulator) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/botocore_fidelity.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in emu.env().vars() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("python3 runs");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                println!("{l}");
                lines.push(l);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("botocore script timed out; output so far: {lines:#?}");
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "botocore script failed: {lines:#?}");
    lines
}

fn check(lines: &[String]) {
    for case in [
        "wss presigned by SigV4QueryAuth is accepted",
        "wss tampered signature is denied",
        "wss wrong secret is denied",
        "wss stale date is denied",
        "wss wrong host is denied",
        "botocore DescribeSignalingChannel is accepted and parsed",
        "botocore GetSignalingChannelEndpoint is accepted",
        "botocore GetIceServerConfig is accepted",
        "botocore sees ResourceNotFoundException",
        "botocore client with a wrong secret sees InvalidSignatureException",
        "botocore client with an unknown key sees UnrecognizedClientException",
        "botocore unsigned client sees MissingAuthenticationTokenException",
        "SigV4Auth POST is accepted",
        "SigV4Auth tampered signature is denied",
        "SigV4Auth wrong secret is denied",
        "SigV4Auth stale date is denied",
        "SigV4Auth wrong host is denied",
        "ListSignalingChannels with ChannelNameCondition BEGINS_WITH",
        "ListSignalingChannels paginates with NextToken",
        "a channel created at run time accepts a viewer at once",
        "UpdateSignalingChannel sets MessageTtlSeconds and a new Version",
        "UpdateSignalingChannel with a stale version is VersionMismatchException",
        "TagResource / UntagResource / ListTagsForResource",
        "DeleteSignalingChannel removes the channels",
    ] {
        assert!(
            lines.iter().any(|l| l == &format!("PASS {case}")),
            "case '{case}' did not pass: {lines:#?}"
        );
    }
}

#[test]
fn botocore_static_credentials() {
    require_botocore();
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    check(&run_script(&emu));
}

#[test]
fn botocore_session_credentials() {
    require_botocore();
    let emu = Emulator::start(EmulatorConfig {
        credentials: vec![Credential::random_session()],
        ..EmulatorConfig::default()
    })
    .unwrap();
    check(&run_script(&emu));
}
