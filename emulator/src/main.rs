//! `kvs-signaling-emulator`: runs the emulator until `--max-seconds`, SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kvs_signaling_emulator::{
    Credential, Emulator, EmulatorConfig, Fault, IotConfig, IotKeyFormat, Operation,
};

const HELP: &str = "\
kvs-signaling-emulator — a local KVS WebRTC signaling service for tests (TLS on 127.0.0.1)

USAGE:
    kvs-signaling-emulator [--env-file PATH] [OPTIONS]

Once ready, writes PATH (atomically) with shell-sourceable KEY=VALUE lines: AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (only with --session-token),
KVS_CHANNEL_NAME, KVS_CHANNEL_ARN, KVS_CONTROL_PLANE_URL, KVS_WSS_ENDPOINT, KVS_MASTER_WSS_ENDPOINT,
KVS_HTTPS_ENDPOINT, KVS_CA_FILE, KVS_CLIENT_ID, KVS_EMULATOR_ADMIN_URL, KVS_EMULATOR_EVENT_LOG,
KVS_EMULATOR_HOSTS (only with advertised names), KVS_EMULATOR_PID, and with --iot:
KVS_IOT_CREDENTIALS_ENDPOINT, KVS_IOT_ROLE_ALIAS, KVS_IOT_THING_NAME, KVS_IOT_CERT_FILE,
KVS_IOT_KEY_FILE, KVS_IOT_CA_FILE.
Without --env-file the lines go to stdout. Exits after --max-seconds, on SIGTERM and on SIGINT.

OPTIONS:
    --env-file PATH              Where to write the KEY=VALUE lines (removed again at exit)
    --max-seconds N              Exit by itself after N seconds (default 600; 0 = never)
    --port N                     TLS port (default 0 = a free port)
    --admin-port N               Admin HTTP port (default 0 = a free port)
    --bind ADDR                  Address both listeners bind to (default 127.0.0.1)
    --advertise-host NAME        Advertise host names instead of the bind address: control plane
                                 NAME, HTTPS r-<hex>.NAME, viewer WSS v-<hex>.NAME, master WSS
                                 m-<hex>.NAME (no port when --port is 443); the certificate covers
                                 NAME and *.NAME; the names are in KVS_EMULATOR_HOSTS
    --advertise-control-host H   Override the advertised control-plane host
    --advertise-https-host H     Override the advertised HTTPS (GetIceServerConfig) host
    --advertise-viewer-host H    Override the advertised viewer WSS host
    --advertise-master-host H    Override the advertised master WSS host
    --region R                   Region (default us-west-2)
    --channel NAME               Pre-created channel name (default demo-channel)
    --account-id ID              Account id in ARNs (default 123456789012)
    --client-id ID               Viewer id handed out as KVS_CLIENT_ID (default random viewer-…)
    --access-key-id ID           Use this access key id (default: random AKIA…/ASIA…)
    --secret-access-key KEY      Use this secret (with --access-key-id)
    --session-token              Generate session credentials (ASIA… + token the requests must carry)
    --credential-expires-in S    Credentials expire S seconds after start
    --max-viewers N              Concurrent viewers per channel (default 10)
    --no-auto-answer             Disable the built-in master (answers offers when no master is connected)
    --answer-candidates N        ICE candidates the built-in master sends (default 2)
    --candidate-delay-ms N       Delay between the built-in master's messages (default 0)
    --candidates-before-answer   Built-in master sends its candidates before the answer
    --clock-offset S             Shift the emulator's clock by S seconds (may be negative)
    --max-skew S                 Allowed request-date skew in seconds (default 300)
    --idle-timeout S             Close connections idle for S seconds (default 600; 0 = never)
    --max-connection-seconds S   Close connections older than S seconds (default 3600; 0 = never)
    --go-away-grace S            Seconds between a lifetime GO_AWAY and the close (default 60)
    --go-away-before-lifetime    Send GO_AWAY --go-away-grace seconds before the lifetime cut
    --stop-pongs                 Do not answer WebSocket pings
    --handshake-delay-ms N       Delay every WebSocket upgrade answer by N ms
    --fail OP:STATUS:TYPE[:COUNT]
                                 Answer the next COUNT (default 1) OP requests with STATUS/TYPE;
                                 OP = Connect|Describe|GetEndpoint|GetIceConfig|CreateChannel|
                                 ListChannels|DeleteChannel|UpdateChannel|TagResource|
                                 UntagResource|ListTags|Any
                                 (may be repeated), e.g. --fail Connect:503:ServiceUnavailableException:2
    --limit-connect-tps N        ConnectAsViewer/ConnectAsMaster calls per second per channel
                                 (service quota 3; default unlimited) -> ClientLimitExceededException
    --limit-sdp-tps N            SDP offers/answers per second per connection (service: 5)
    --limit-ice-tps N            ICE candidates per second per connection (service: 20)
    --limit-describe-tps N       DescribeSignalingChannel calls per second per channel (service: 5)
    --service-limits             All four at the service's values (3, 5, 20, 5)
    --close-on-presign-expiry    Close a connection once its presigned URL expires (the service
                                 checks the URL only at the upgrade; off by default)
    --fault JSON                 Inject this fault (admin API JSON) at start (may be repeated)
    --fault-at MS:JSON           Inject this fault MS milliseconds after start (may be repeated),
                                 e.g. --fault-at '5000:{\"ServerDown\":{\"ms\":20000}}'
    --accept-host-without-port   Also accept signatures over the Host without its port
    --error-type-suffix S        Append ':S' to x-amzn-ErrorType values
    --tls-cert PEM               Use this server certificate (with --tls-key) instead of a fresh CA
    --tls-key PEM                Server private key (PKCS#8 PEM)
    --state-dir DIR              Where the CA PEM and the event log go (default: a new temp dir)
    --event-log PATH             Event log path (default DIR/events.jsonl)
    --iot                        Run the AWS IoT credentials provider (mutual TLS, own port) and
                                 issue a device certificate + key into DIR/iot
    --iot-port N                 Its port (default 0 = a free port; implies --iot)
    --iot-role-alias A           The role alias that exists (default kvs-viewer-role-alias)
    --iot-thing-name T           Thing of the device certificate (default: the channel name)
    --iot-credential-seconds S   Lifetime of the issued credentials (default 3600)
    --iot-key-format F           Device key: rsa (PKCS#1, default), pkcs8 or ec
    -h, --help                   Show this help
    -V, --version                Show the version

ADMIN (plain HTTP on 127.0.0.1, KVS_EMULATOR_ADMIN_URL; JSON Schema at GET /v1/schema):
    POST /v1/fault   JSON fault, e.g. {\"GoAway\":{\"client_id\":null,\"grace_ms\":1000}}, {\"StopPongs\":true},
                  {\"FailNext\":{\"operation\":\"Connect\",\"status\":503,\"error_type\":\"ServiceUnavailableException\",
                  \"message\":\"busy\",\"count\":1}}, {\"SendRaw\":{\"client_id\":\"v1\",\"frame\":\"NonJson\"}}
    GET /v1/events   the event log as a JSON array
    GET /v1/state    connected viewers and masters
    (the 0.1 paths /fault, /events, /state still answer)
";

fn parse_operation(s: &str) -> Result<Operation, String> {
    Ok(match s {
        "Connect" => Operation::Connect,
        "Describe" => Operation::Describe,
        "GetEndpoint" => Operation::GetEndpoint,
        "GetIceConfig" => Operation::GetIceConfig,
        "CreateChannel" => Operation::CreateChannel,
        "ListChannels" => Operation::ListChannels,
        "DeleteChannel" => Operation::DeleteChannel,
        "UpdateChannel" => Operation::UpdateChannel,
        "TagResource" => Operation::TagResource,
        "UntagResource" => Operation::UntagResource,
        "ListTags" => Operation::ListTags,
        "Any" => Operation::Any,
        _ => return Err(format!("unknown operation '{s}'")),
    })
}

struct Cli {
    cfg: EmulatorConfig,
    env_file: Option<PathBuf>,
    max_seconds: u64,
    faults: Vec<Fault>,
    /// (milliseconds after start, fault), in the order given.
    scheduled: Vec<(u64, Fault)>,
}

fn parse_fault(flag: &str, json: &str) -> Result<Fault, String> {
    serde_json::from_str(json).map_err(|e| format!("{flag}: '{json}' is not a fault: {e}"))
}

fn parse_args(args: Vec<String>) -> Result<Option<Cli>, String> {
    let mut cfg = EmulatorConfig::default();
    let mut env_file = None;
    let mut max_seconds = 600u64;
    let mut faults = Vec::new();
    let mut scheduled = Vec::new();
    let mut akid: Option<String> = None;
    let mut secret: Option<String> = None;
    let mut session = false;
    let mut expires_in: Option<i64> = None;
    let mut it = args.into_iter();
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: '{v}' is not a valid number"))
    }
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| it.next());
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("kvs-signaling-emulator {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--env-file" => {
                env_file = Some(PathBuf::from(val().ok_or("--env-file needs a value")?))
            }
            "--max-seconds" => max_seconds = num(&flag, val())?,
            "--port" => cfg.port = num(&flag, val())?,
            "--admin-port" => cfg.admin_port = num(&flag, val())?,
            "--bind" => {
                let v = val().ok_or("--bind needs a value")?;
                cfg.bind = v
                    .parse()
                    .map_err(|_| format!("--bind: '{v}' is not an IP address"))?;
            }
            "--advertise-host" => {
                cfg.advertise_host = Some(val().ok_or("--advertise-host needs a value")?)
            }
            "--advertise-control-host" => {
                cfg.advertise_control_host =
                    Some(val().ok_or("--advertise-control-host needs a value")?)
            }
            "--advertise-https-host" => {
                cfg.advertise_https_host =
                    Some(val().ok_or("--advertise-https-host needs a value")?)
            }
            "--advertise-viewer-host" => {
                cfg.advertise_viewer_host =
                    Some(val().ok_or("--advertise-viewer-host needs a value")?)
            }
            "--advertise-master-host" => {
                cfg.advertise_master_host =
                    Some(val().ok_or("--advertise-master-host needs a value")?)
            }
            "--region" => cfg.region = val().ok_or("--region needs a value")?,
            "--channel" => cfg.channel_name = val().ok_or("--channel needs a value")?,
            "--account-id" => cfg.account_id = val().ok_or("--account-id needs a value")?,
            "--client-id" => cfg.client_id = val().ok_or("--client-id needs a value")?,
            "--access-key-id" => akid = Some(val().ok_or("--access-key-id needs a value")?),
            "--secret-access-key" => {
                secret = Some(val().ok_or("--secret-access-key needs a value")?)
            }
            "--session-token" => session = true,
            "--credential-expires-in" => expires_in = Some(num(&flag, val())?),
            "--max-viewers" => cfg.max_viewers = num(&flag, val())?,
            "--no-auto-answer" => cfg.auto_answer = false,
            "--answer-candidates" => cfg.answer_candidates = num(&flag, val())?,
            "--candidate-delay-ms" => cfg.candidate_delay_ms = num(&flag, val())?,
            "--candidates-before-answer" => faults.push(Fault::CandidatesBeforeAnswer(true)),
            "--clock-offset" => cfg.clock_offset_secs = num(&flag, val())?,
            "--max-skew" => cfg.max_skew_secs = num(&flag, val())?,
            "--idle-timeout" => {
                let s: u64 = num(&flag, val())?;
                cfg.idle_timeout_secs = (s > 0).then_some(s);
            }
            "--max-connection-seconds" => {
                let s: u64 = num(&flag, val())?;
                cfg.max_connection_secs = (s > 0).then_some(s);
            }
            "--go-away-grace" => cfg.go_away_grace_secs = num(&flag, val())?,
            "--go-away-before-lifetime" => cfg.go_away_before_max_lifetime = true,
            "--stop-pongs" => faults.push(Fault::StopPongs(true)),
            "--handshake-delay-ms" => faults.push(Fault::HandshakeDelay {
                ms: num(&flag, val())?,
            }),
            "--fail" => {
                let v = val().ok_or("--fail needs OP:STATUS:TYPE[:COUNT]")?;
                let parts: Vec<&str> = v.split(':').collect();
                if parts.len() < 3 || parts.len() > 4 {
                    return Err(format!("--fail: '{v}' is not OP:STATUS:TYPE[:COUNT]"));
                }
                faults.push(Fault::FailNext {
                    operation: parse_operation(parts[0])?,
                    status: num("--fail STATUS", Some(parts[1].to_string()))?,
                    error_type: parts[2].to_string(),
                    message: format!("Injected {} failure", parts[2]),
                    count: match parts.get(3) {
                        Some(c) => num("--fail COUNT", Some(c.to_string()))?,
                        None => 1,
                    },
                });
            }
            "--close-on-presign-expiry" => cfg.close_on_presign_expiry = true,
            "--limit-connect-tps" => cfg.limit_connect_tps = Some(num(&flag, val())?),
            "--limit-sdp-tps" => cfg.limit_sdp_tps = Some(num(&flag, val())?),
            "--limit-ice-tps" => cfg.limit_ice_tps = Some(num(&flag, val())?),
            "--limit-describe-tps" => cfg.limit_describe_tps = Some(num(&flag, val())?),
            "--service-limits" => {
                cfg.limit_connect_tps = Some(3);
                cfg.limit_sdp_tps = Some(5);
                cfg.limit_ice_tps = Some(20);
                cfg.limit_describe_tps = Some(5);
            }
            "--fault" => {
                let v = val().ok_or("--fault needs a JSON fault")?;
                faults.push(parse_fault("--fault", &v)?);
            }
            "--fault-at" => {
                let v = val().ok_or("--fault-at needs MS:JSON")?;
                let (ms, json) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--fault-at: '{v}' is not MS:JSON"))?;
                let ms: u64 = num("--fault-at MS", Some(ms.to_string()))?;
                scheduled.push((ms, parse_fault("--fault-at", json)?));
            }
            "--accept-host-without-port" => cfg.accept_host_without_port = true,
            "--error-type-suffix" => {
                cfg.error_type_suffix = Some(val().ok_or("--error-type-suffix needs a value")?)
            }
            "--tls-cert" => {
                cfg.tls_cert_pem = Some(PathBuf::from(val().ok_or("--tls-cert needs a value")?))
            }
            "--tls-key" => {
                cfg.tls_key_pem = Some(PathBuf::from(val().ok_or("--tls-key needs a value")?))
            }
            "--state-dir" => {
                cfg.state_dir = Some(PathBuf::from(val().ok_or("--state-dir needs a value")?))
            }
            "--event-log" => {
                cfg.event_log = Some(PathBuf::from(val().ok_or("--event-log needs a value")?))
            }
            // The IoT credentials provider (emulator/src/iot.rs); every --iot-* flag enables it.
            f if f.starts_with("--iot") => {
                let iot = cfg.iot.get_or_insert_with(IotConfig::default);
                match f {
                    "--iot" => {}
                    "--iot-port" => iot.port = num(f, val())?,
                    "--iot-role-alias" => {
                        iot.role_alias = val().ok_or("--iot-role-alias needs a value")?
                    }
                    "--iot-thing-name" => {
                        iot.thing_name = Some(val().ok_or("--iot-thing-name needs a value")?)
                    }
                    "--iot-credential-seconds" => {
                        iot.credential_seconds = num(f, val())?;
                        if iot.credential_seconds == 0 {
                            return Err("--iot-credential-seconds must be at least 1".into());
                        }
                    }
                    "--iot-key-format" => {
                        let v = val().ok_or("--iot-key-format needs a value")?;
                        iot.key_format = IotKeyFormat::parse(&v).ok_or_else(|| {
                            format!("--iot-key-format: '{v}' is not rsa, pkcs8 or ec")
                        })?;
                    }
                    other => return Err(format!("unknown argument '{other}' (see --help)")),
                }
            }
            other => return Err(format!("unknown argument '{other}' (see --help)")),
        }
    }
    let mut cred = if session {
        Credential::random_session()
    } else {
        Credential::random_static()
    };
    match (akid, secret) {
        (Some(a), Some(s)) => {
            cred.access_key_id = a;
            cred.secret_access_key = s;
        }
        (None, None) => {}
        _ => return Err("--access-key-id and --secret-access-key go together".into()),
    }
    if let Some(e) = expires_in {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        cred.expires_at = Some(now + cfg.clock_offset_secs + e);
    }
    cfg.credentials = vec![cred];
    if cfg.state_dir.is_none() {
        // Kept after exit so the CA and the event log can still be read.
        let dir = std::env::temp_dir().join(format!("kvs-emulator-{}", std::process::id()));
        cfg.state_dir = Some(dir);
    }
    Ok(Some(Cli {
        cfg,
        env_file,
        max_seconds,
        faults,
        scheduled,
    }))
}

fn write_env_file(path: &PathBuf, text: &str) -> std::io::Result<()> {
    let mut tmp = path.clone().into_os_string();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn main() -> ExitCode {
    let cli = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvs-signaling-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("kvs-signaling-emulator: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let emu = match Emulator::start(cli.cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kvs-signaling-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for f in cli.faults {
        if let Err(e) = emu.inject(f) {
            eprintln!("kvs-signaling-emulator: {e}");
            return ExitCode::FAILURE;
        }
    }
    let env = emu.env().clone();
    let mut text = env.to_env_file();
    if let Some(iot) = emu.iot_env() {
        for (k, v) in iot.vars() {
            text.push_str(&format!(
                "{k}={}\n",
                kvs_signaling_emulator::shell_quote(&v)
            ));
        }
    }
    text.push_str(&format!("KVS_EMULATOR_PID={}\n", std::process::id()));
    match &cli.env_file {
        Some(p) => {
            if let Err(e) = write_env_file(p, &text) {
                eprintln!("kvs-signaling-emulator: cannot write {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{text}"),
    }
    eprintln!(
        "kvs-signaling-emulator: ready on {} (admin {}), trust CA {}; events in {}",
        env.wss_endpoint,
        env.admin_url,
        env.ca_file.display(),
        env.event_log.display()
    );
    if let Some(iot) = emu.iot_env() {
        eprintln!(
            "kvs-signaling-emulator: IoT credentials provider on {}; device certificate and key in {}",
            iot.endpoint,
            iot.dir.display()
        );
    }
    let started = Instant::now();
    let deadline = (cli.max_seconds > 0).then(|| started + Duration::from_secs(cli.max_seconds));
    let mut scheduled = cli.scheduled;
    scheduled.sort_by_key(|(ms, _)| *ms);
    let mut scheduled = scheduled.into_iter().peekable();
    let why = loop {
        while let Some((_, f)) =
            scheduled.next_if(|(ms, _)| started.elapsed() >= Duration::from_millis(*ms))
        {
            if let Err(e) = emu.inject(f) {
                eprintln!("kvs-signaling-emulator: scheduled fault: {e}");
            }
        }
        if stop.load(Ordering::SeqCst) {
            break "signal";
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break "max-seconds reached";
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    emu.shutdown();
    if let Some(p) = &cli.env_file {
        let _ = std::fs::remove_file(p);
    }
    eprintln!("kvs-signaling-emulator: stopped ({why})");
    ExitCode::SUCCESS
}
