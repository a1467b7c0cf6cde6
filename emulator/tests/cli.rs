//! The command-line contract: env file, readiness line, SIGTERM, --max-seconds, --help.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use kvs_signaling_emulator::EmulatorEnv;

const BIN: &str = env!("CARGO_BIN_EXE_kvs-signaling-emulator");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvs-emu-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the binary and waits (bounded) for its readiness line on stderr.
fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(WAIT).expect("readiness line on stderr");
    assert!(line.contains("ready on wss://127.0.0.1:"), "{line}");
    assert!(line.contains("emulator-ca.pem"), "{line}");
    (child, rx)
}

/// Waits (bounded) for the child to exit; kills it on timeout.
fn wait_exit(mut child: Child, d: Duration) -> std::process::ExitStatus {
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(d) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("process did not exit within {d:?}");
        }
    }
}

fn parse_env(path: &Path) -> HashMap<String, String> {
    // Values are read back through a real shell, as scripts do.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("set -a; . '{}'; env", path.display()))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn env_from(vars: &HashMap<String, String>) -> EmulatorEnv {
    EmulatorEnv {
        region: vars["AWS_REGION"].clone(),
        access_key_id: vars["AWS_ACCESS_KEY_ID"].clone(),
        secret_access_key: vars["AWS_SECRET_ACCESS_KEY"].clone(),
        session_token: vars.get("AWS_SESSION_TOKEN").cloned(),
        channel_name: vars["KVS_CHANNEL_NAME"].clone(),
        channel_arn: vars["KVS_CHANNEL_ARN"].clone(),
        control_plane_url: vars["KVS_CONTROL_PLANE_URL"].clone(),
        wss_endpoint: vars["KVS_WSS_ENDPOINT"].clone(),
        master_wss_endpoint: vars["KVS_MASTER_WSS_ENDPOINT"].clone(),
        https_endpoint: vars["KVS_HTTPS_ENDPOINT"].clone(),
        ca_file: PathBuf::from(&vars["KVS_CA_FILE"]),
        client_id: vars["KVS_CLIENT_ID"].clone(),
        admin_url: vars["KVS_EMULATOR_ADMIN_URL"].clone(),
        event_log: PathBuf::from(&vars["KVS_EMULATOR_EVENT_LOG"]),
        advertised_hosts: vars
            .get("KVS_EMULATOR_HOSTS")
            .map(|h| h.split(' ').map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

#[test]
fn env_file_serves_and_sigterm_stops() {
    let dir = scratch("term");
    let env_file = dir.join("emu.env");
    let state = dir.join("state");
    let (child, _rx) = spawn(&[
        "--env-file",
        env_file.to_str().unwrap(),
        "--max-seconds",
        "120",
        "--max-viewers",
        "3",
        "--session-token",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let vars = parse_env(&env_file);
    for k in [
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "KVS_CHANNEL_NAME",
        "KVS_CHANNEL_ARN",
        "KVS_CONTROL_PLANE_URL",
        "KVS_WSS_ENDPOINT",
        "KVS_HTTPS_ENDPOINT",
        "KVS_CA_FILE",
        "KVS_CLIENT_ID",
        "KVS_EMULATOR_ADMIN_URL",
        "KVS_EMULATOR_EVENT_LOG",
        "KVS_EMULATOR_PID",
    ] {
        assert!(vars.contains_key(k), "{k} missing from the env file");
    }
    assert_eq!(vars["KVS_EMULATOR_PID"], child.id().to_string());
    assert!(
        vars["AWS_SESSION_TOKEN"].contains('+')
            || vars["AWS_SESSION_TOKEN"].contains('/')
            || vars["AWS_SESSION_TOKEN"].ends_with("==")
    );
    let env = env_from(&vars);
    // It serves: three viewers in, the fourth is refused (--max-viewers 3).
    let _v: Vec<Ws> = (0..3)
        .map(|i| {
            let o = Opts {
                client_id: Some(format!("cli-{i}")),
                ..Default::default()
            };
            ws_connect(&env, &presign(&env, &o)).expect("viewer connects")
        })
        .collect();
    let o = Opts {
        client_id: Some("cli-3".into()),
        ..Default::default()
    };
    let r = ws_connect(&env, &presign(&env, &o)).unwrap_err();
    assert_eq!(
        r.error_type.as_deref(),
        Some("ClientLimitExceededException")
    );
    // Admin works over plain HTTP.
    assert_eq!(
        admin(&env, "GET", "/v1/state", "").json()["viewers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // SIGTERM: clean exit, env file removed, event log kept.
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = wait_exit(child, WAIT);
    assert!(status.success(), "{status:?}");
    assert!(!env_file.exists());
    let log = std::fs::read_to_string(&env.event_log).unwrap();
    assert!(log.contains("\"type\":\"stopped\""));
    assert!(!log.contains(&env.secret_access_key));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn max_seconds_ends_the_process() {
    let dir = scratch("max");
    let env_file = dir.join("emu.env");
    let (child, _rx) = spawn(&[
        "--env-file",
        env_file.to_str().unwrap(),
        "--max-seconds",
        "1",
        "--state-dir",
        dir.join("s").to_str().unwrap(),
    ]);
    let status = wait_exit(child, WAIT);
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--env-file",
        "--max-seconds",
        "--max-viewers",
        "--port",
        "--admin-port",
        "--no-auto-answer",
        "--answer-candidates",
        "--session-token",
        "--clock-offset",
        "--state-dir",
        "--stop-pongs",
        "--fail",
        "--idle-timeout",
        "--max-connection-seconds",
        "--advertise-host",
        "--advertise-master-host",
        "--bind",
        "--close-on-presign-expiry",
        "--fault",
        "--fault-at",
        "--limit-connect-tps",
        "--limit-sdp-tps",
        "--limit-ice-tps",
        "--limit-describe-tps",
        "--service-limits",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    let bad = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn faults_from_the_command_line_at_start_and_later() {
    let dir = scratch("fault-at");
    let env_file = dir.join("emu.env");
    let (child, _rx) = spawn(&[
        "--env-file",
        env_file.to_str().unwrap(),
        "--max-seconds",
        "60",
        "--state-dir",
        dir.join("s").to_str().unwrap(),
        "--fault",
        r#"{"ClockOffset":{"secs":120}}"#,
        "--fault-at",
        r#"400:{"ServerDown":{"ms":600}}"#,
    ]);
    let env = env_from(&parse_env(&env_file));
    assert_eq!(
        admin(&env, "GET", "/v1/state", "").json()["clock_offset_secs"],
        120
    );
    // The scheduled fault fires (bounded wait on the event log), then the server is back.
    let deadline = std::time::Instant::now() + WAIT;
    let saw = |t: &str| {
        admin(&env, "GET", "/v1/events", "")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == t)
    };
    while !saw("server_up") {
        assert!(std::time::Instant::now() < deadline, "no server_up event");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw("server_down"));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(wait_exit(child, WAIT).success());
    let bad = Command::new(BIN)
        .args(["--fault-at", "x:{}"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readme_documents_every_flag_of_help() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("    --"))
        .map(|l| l.split([' ', '=']).next().unwrap())
        .collect();
    assert!(flags.len() > 40, "{flags:?}");
    for f in flags {
        let flag = format!("--{f}");
        let documented = readme.match_indices(&flag).any(|(i, _)| {
            !readme[i + flag.len()..].starts_with(|c: char| c.is_ascii_lowercase() || c == '-')
        });
        assert!(documented, "emulator/README.md does not mention {flag}");
    }
}
