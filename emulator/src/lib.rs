//! A local emulator of the Kinesis Video Streams WebRTC signaling service.
//!
//! One TLS listener on 127.0.0.1 serves the control plane (`POST /describeSignalingChannel`,
//! `/getSignalingChannelEndpoint`, `/createSignalingChannel`), `POST /v1/get-ice-server-config`
//! and the signaling WebSocket (`GET /?X-Amz-…`, ConnectAsViewer / ConnectAsMaster). Every request
//! is SigV4-verified. A plain-HTTP admin listener takes faults (`POST /fault`) and shows
//! `GET /events` and `GET /state`. A JSON-lines event log records what clients did, without
//! secrets.
//!
//! ```no_run
//! use kvs_signaling_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).unwrap();
//! println!("{}", emu.env().wss_endpoint);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod admin;
mod config;
mod control;
pub mod events;
mod http;
mod iot;
mod manage;
mod sdp;
mod server;
mod signaling;
pub mod sigv4;
mod tls;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;

pub use admin::{AdminReply, State, ViewerState};
pub use config::{Credential, EmulatorConfig, Fault, Operation, RawFrame, Tamper};
pub use control::{valid_arn, valid_name};
pub use events::{Event, EventRecord};
pub use iot::{IotConfig, IotDevice, IotEnv, IotKeyFormat};

/// The JSON Schema of the admin API (what `GET /v1/schema` answers and
/// `emulator/admin-api.schema.json` holds).
pub fn admin_api_schema() -> serde_json::Value {
    admin::schema()
}

use server::{Hub, Shared, lock};

/// What a client needs to talk to the emulator (the `KEY=VALUE` env file carries the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorEnv {
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_ACCESS_KEY_ID` (first configured credential).
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, when the first credential has one.
    pub session_token: Option<String>,
    /// `KVS_CHANNEL_NAME`.
    pub channel_name: String,
    /// `KVS_CHANNEL_ARN`.
    pub channel_arn: String,
    /// `KVS_CONTROL_PLANE_URL`, e.g. `https://127.0.0.1:PORT`.
    pub control_plane_url: String,
    /// `KVS_WSS_ENDPOINT`: the VIEWER WSS endpoint, e.g. `wss://127.0.0.1:PORT`.
    pub wss_endpoint: String,
    /// `KVS_MASTER_WSS_ENDPOINT`: the MASTER WSS endpoint (differs from the viewer's only with
    /// advertised host names).
    pub master_wss_endpoint: String,
    /// `KVS_HTTPS_ENDPOINT`, e.g. `https://127.0.0.1:PORT`.
    pub https_endpoint: String,
    /// `KVS_CA_FILE`: PEM of the CA that signed the server certificate.
    pub ca_file: PathBuf,
    /// `KVS_CLIENT_ID`: a ready viewer id.
    pub client_id: String,
    /// `KVS_EMULATOR_ADMIN_URL`, e.g. `http://127.0.0.1:PORT`.
    pub admin_url: String,
    /// `KVS_EMULATOR_EVENT_LOG`.
    pub event_log: PathBuf,
    /// `KVS_EMULATOR_HOSTS`: the advertised host names (space-separated in the env file; only
    /// present when there are any), which must resolve to the bind address, e.g. through
    /// `/etc/hosts`.
    pub advertised_hosts: Vec<String>,
}

/// Quotes a value for a POSIX shell when it needs it.
pub fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:,@%+=".contains(&b))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

impl EmulatorEnv {
    /// The variables as `(name, value)` pairs (for a child process environment).
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("AWS_REGION".to_string(), self.region.clone()),
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
        ];
        if let Some(t) = &self.session_token {
            v.push(("AWS_SESSION_TOKEN".into(), t.clone()));
        }
        v.extend([
            ("KVS_CHANNEL_NAME".to_string(), self.channel_name.clone()),
            ("KVS_CHANNEL_ARN".to_string(), self.channel_arn.clone()),
            (
                "KVS_CONTROL_PLANE_URL".to_string(),
                self.control_plane_url.clone(),
            ),
            ("KVS_WSS_ENDPOINT".to_string(), self.wss_endpoint.clone()),
            (
                "KVS_MASTER_WSS_ENDPOINT".to_string(),
                self.master_wss_endpoint.clone(),
            ),
            (
                "KVS_HTTPS_ENDPOINT".to_string(),
                self.https_endpoint.clone(),
            ),
            (
                "KVS_CA_FILE".to_string(),
                self.ca_file.display().to_string(),
            ),
            ("KVS_CLIENT_ID".to_string(), self.client_id.clone()),
            ("KVS_EMULATOR_ADMIN_URL".to_string(), self.admin_url.clone()),
            (
                "KVS_EMULATOR_EVENT_LOG".to_string(),
                self.event_log.display().to_string(),
            ),
        ]);
        if !self.advertised_hosts.is_empty() {
            v.push(("KVS_EMULATOR_HOSTS".into(), self.advertised_hosts.join(" ")));
        }
        v
    }

    /// Shell-sourceable `KEY=VALUE` lines.
    pub fn to_env_file(&self) -> String {
        self.vars()
            .iter()
            .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
            .collect()
    }
}

/// The advertised host of each surface (None = the bind address).
#[derive(Debug, Clone, Default)]
struct Surfaces {
    control: Option<String>,
    https: Option<String>,
    viewer_wss: Option<String>,
    master_wss: Option<String>,
    /// `--advertise-host` itself (its wildcard goes into the certificate).
    base: Option<String>,
}

/// A host name as the service's certificate and URLs could carry it.
fn valid_host(h: &str) -> bool {
    (1..=253).contains(&h.len())
        && h.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl Surfaces {
    fn from_config(cfg: &EmulatorConfig) -> Result<Surfaces, String> {
        let base = cfg.advertise_host.clone();
        // Stable per name, so scripts and hosts files can predict the endpoints.
        let sub = |prefix: &str| {
            base.as_ref().map(|b| {
                let h = hex::encode(sha2::Sha256::digest(format!("{prefix}:{b}")));
                format!("{prefix}-{}.{b}", &h[..8])
            })
        };
        let s = Surfaces {
            control: cfg.advertise_control_host.clone().or_else(|| base.clone()),
            https: cfg.advertise_https_host.clone().or_else(|| sub("r")),
            viewer_wss: cfg.advertise_viewer_host.clone().or_else(|| sub("v")),
            master_wss: cfg.advertise_master_host.clone().or_else(|| sub("m")),
            base,
        };
        for h in s.host_names().iter().chain(s.base.iter()) {
            if !valid_host(h) {
                return Err(format!(
                    "advertised host '{h}' is not a valid host name (no port, no scheme)"
                ));
            }
        }
        Ok(s)
    }

    /// The distinct advertised names, in surface order.
    fn host_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in [
            &self.control,
            &self.https,
            &self.viewer_wss,
            &self.master_wss,
        ]
        .into_iter()
        .flatten()
        {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
        out
    }

    /// Names the generated certificate must cover.
    fn cert_names(&self) -> Vec<String> {
        let mut names = self.host_names();
        if let Some(b) = &self.base {
            names.push(format!("*.{b}"));
        }
        names
    }
}

/// A running emulator. Stops on [`Emulator::shutdown`] or drop.
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    env: EmulatorEnv,
    listeners: Mutex<Vec<JoinHandle<()>>>,
    addrs: Vec<SocketAddr>,
    temp_dir: Option<PathBuf>,
    stopped: AtomicBool,
    /// The IoT credentials provider and its `KVS_IOT_*` values (iot.rs), when it runs.
    iot: Option<(Arc<iot::IotProvider>, IotEnv)>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn make_temp_dir() -> std::io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "kvs-emulator-{}-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn other_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Emulator {
    /// Starts the listeners and returns once they accept connections.
    pub fn start(cfg: EmulatorConfig) -> std::io::Result<Emulator> {
        if cfg.credentials.is_empty() {
            return Err(other_err("at least one credential is required"));
        }
        if !valid_name(&cfg.channel_name) {
            return Err(other_err(format!(
                "invalid channel name '{}'",
                cfg.channel_name
            )));
        }
        let (state_dir, temp_dir) = match &cfg.state_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.clone(), None)
            }
            None => {
                let d = make_temp_dir()?;
                (d.clone(), Some(d))
            }
        };
        let surfaces = Surfaces::from_config(&cfg).map_err(other_err)?;
        let material = match (&cfg.tls_cert_pem, &cfg.tls_key_pem) {
            (Some(c), Some(k)) => tls::load(c, k)?,
            (None, None) => tls::generate(&surfaces.cert_names()).map_err(other_err)?,
            _ => return Err(other_err("tls_cert_pem and tls_key_pem go together")),
        };
        let ca_file = match &material.ca_pem {
            Some(pem) => {
                let p = state_dir.join("emulator-ca.pem");
                std::fs::write(&p, pem)?;
                p
            }
            // A user-supplied certificate: clients trust its chain; point them at the cert.
            None => cfg.tls_cert_pem.clone().unwrap_or_default(),
        };
        let acceptor = Arc::new(tls::acceptor(&material).map_err(other_err)?);
        let event_log = cfg
            .event_log
            .clone()
            .unwrap_or_else(|| state_dir.join("events.jsonl"));
        let events = events::EventLog::new(Some(&event_log))?;

        let listener = TcpListener::bind((cfg.bind, cfg.port))?;
        let admin = TcpListener::bind((cfg.bind, cfg.admin_port))?;
        let addr = listener.local_addr()?;
        let admin_addr = admin.local_addr()?;
        // Literal IPs (never `localhost`) so clients never try another address family.
        let host = match addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let admin_host = match admin_addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let port = addr.port();
        let url = |scheme: &str, advertised: &Option<String>| match advertised {
            // The service's endpoints carry no port; a client such as the C SDK insists on 443.
            Some(h) if port == 443 => format!("{scheme}://{h}"),
            Some(h) => format!("{scheme}://{h}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let wss_endpoint = url("wss", &surfaces.viewer_wss);
        let master_wss_endpoint = url("wss", &surfaces.master_wss);
        let https_endpoint = url("https", &surfaces.https);
        let control_plane_url = url("https", &surfaces.control);

        let shared = Arc::new(Shared {
            clock_offset: AtomicI64::new(cfg.clock_offset_secs),
            stop_pongs: Arc::new(AtomicBool::new(false)),
            candidates_before_answer: AtomicBool::new(false),
            handshake_delay_ms: AtomicU64::new(0),
            stall_next_ms: AtomicU64::new(0),
            idle_timeout_secs: AtomicU64::new(cfg.idle_timeout_secs.unwrap_or(0)),
            max_lifetime_secs: AtomicU64::new(cfg.max_connection_secs.unwrap_or(0)),
            fail_rules: Mutex::new(Vec::new()),
            tampers: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
            rates: Mutex::new(std::collections::HashMap::new()),
            channels: Mutex::new(Vec::new()),
            hub: Mutex::new(Hub::default()),
            shutdown: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            threads: Mutex::new(Vec::new()),
            wss_endpoint: wss_endpoint.clone(),
            master_wss_endpoint: master_wss_endpoint.clone(),
            https_endpoint: https_endpoint.clone(),
            tls_addr: addr,
            events,
            cfg: cfg.clone(),
            iot_issued: Mutex::new(Vec::new()),
        });
        let channel = shared.new_channel(&cfg.channel_name, "SINGLE_MASTER", cfg.message_ttl_secs);
        let channel_arn = channel.arn.clone();
        lock(&shared.channels).push(channel);

        let cred = &cfg.credentials[0];
        let env = EmulatorEnv {
            region: cfg.region.clone(),
            access_key_id: cred.access_key_id.clone(),
            secret_access_key: cred.secret_access_key.clone(),
            session_token: cred.session_token.clone(),
            channel_name: cfg.channel_name.clone(),
            channel_arn: channel_arn.clone(),
            control_plane_url,
            wss_endpoint,
            master_wss_endpoint,
            https_endpoint,
            advertised_hosts: surfaces.host_names(),
            ca_file,
            client_id: cfg.client_id.clone(),
            admin_url: format!("http://{admin_host}"),
            event_log,
        };
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        // The IoT credentials provider: its own mutual-TLS listener (iot.rs).
        let mut iot_env = None;
        let iot = match &cfg.iot {
            Some(iot_cfg) => {
                let dir = state_dir.join("iot");
                let (provider, device) =
                    iot::IotProvider::new(iot_cfg.clone(), &material, &dir, &cfg.channel_name)?;
                let (l, a) = iot::bind(cfg.bind, iot_cfg.port)?;
                iot_env = Some(IotEnv {
                    endpoint: format!("https://{a}"),
                    role_alias: iot_cfg.role_alias.clone(),
                    thing_name: device.thing_name,
                    cert_file: device.cert_file,
                    key_file: device.key_file,
                    ca_file: env.ca_file.clone(),
                    dir: provider.dir().to_path_buf(),
                });
                let provider = Arc::new(provider);
                let (s, p) = (shared.clone(), provider.clone());
                listeners.push(
                    std::thread::Builder::new()
                        .name("emu-iot-accept".into())
                        .spawn(move || iot::accept_loop(s, p, l))?,
                );
                addrs.push(a);
                Some(provider)
            }
            None => None,
        };

        let s1 = shared.clone();
        let t1 = std::thread::Builder::new()
            .name("emu-tls-accept".into())
            .spawn(move || server::tls_accept_loop(s1, listener, acceptor))?;
        let s2 = shared.clone();
        let t2 = std::thread::Builder::new()
            .name("emu-admin-accept".into())
            .spawn(move || admin::accept_loop(s2, admin))?;
        shared.emit(Event::Started {
            addr: addr.to_string(),
            admin_addr: admin_addr.to_string(),
            channel_arn: channel_arn.clone(),
            region: cfg.region.clone(),
            max_viewers: cfg.max_viewers,
            auto_answer: cfg.auto_answer,
        });
        listeners.extend([t1, t2]);
        addrs.extend([addr, admin_addr]);
        Ok(Emulator {
            shared,
            env,
            listeners: Mutex::new(listeners),
            addrs,
            temp_dir: if cfg.state_dir.is_none() {
                temp_dir
            } else {
                None
            },
            stopped: AtomicBool::new(false),
            iot: iot.map(|p| (p, iot_env.expect("set with the provider"))),
        })
    }

    /// What a device needs to use the IoT credentials provider (`KVS_IOT_*`), when it runs.
    pub fn iot_env(&self) -> Option<&IotEnv> {
        self.iot.as_ref().map(|(_, env)| env)
    }

    /// The credentials the IoT credentials provider issued so far (expired ones included, for
    /// an hour), secrets included, like [`EmulatorEnv`] carries the configured ones.
    pub fn iot_issued_credentials(&self) -> Vec<Credential> {
        lock(&self.shared.iot_issued).clone()
    }

    /// Issues (and registers) another device certificate for `thing_name` from the IoT
    /// credentials provider's CA. Errors when the provider is off.
    pub fn iot_issue_device(
        &self,
        thing_name: &str,
        key_format: IotKeyFormat,
    ) -> std::io::Result<IotDevice> {
        match &self.iot {
            Some((p, _)) => p.issue_device(thing_name, key_format),
            None => Err(other_err(
                "the IoT credentials provider is off (EmulatorConfig::iot)",
            )),
        }
    }

    /// Connection details for clients.
    pub fn env(&self) -> &EmulatorEnv {
        &self.env
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.cfg
    }

    /// Injects a fault. Errors when a named client is not connected or the fault is invalid.
    pub fn inject(&self, fault: Fault) -> Result<(), String> {
        self.shared.inject(fault)
    }

    /// All events so far, as the JSON objects of the event log.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.shared.events.all()
    }

    /// All events so far, typed.
    pub fn event_records(&self) -> Vec<EventRecord> {
        self.shared.events.records()
    }

    /// Waits (at most `timeout`) for a typed event matching `pred`, including past ones.
    pub fn wait_for_record(
        &self,
        pred: impl Fn(&EventRecord) -> bool,
        timeout: Duration,
    ) -> Option<EventRecord> {
        self.shared.events.wait_for_record(pred, timeout)
    }

    /// Waits (at most `timeout`) for an event matching `pred`, including past ones.
    pub fn wait_for_event(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Option<serde_json::Value> {
        self.shared.events.wait_for(pred, timeout)
    }

    /// Client ids of the connected viewers (all channels), in connection order.
    pub fn connected_viewers(&self) -> Vec<String> {
        lock(&self.shared.hub)
            .viewers
            .iter()
            .map(|(_, id, _)| id.clone())
            .collect()
    }

    /// Whether a real master is connected to the default channel.
    pub fn master_connected(&self) -> bool {
        lock(&self.shared.hub)
            .masters
            .contains_key(&self.env.channel_arn)
    }

    /// Adds a channel (as CreateSignalingChannel would) and returns its ARN.
    pub fn create_channel(&self, name: &str) -> Result<String, String> {
        if !valid_name(name) {
            return Err(format!("invalid channel name '{name}'"));
        }
        let mut channels = lock(&self.shared.channels);
        if let Some(c) = channels.iter().find(|c| c.name == name) {
            return Ok(c.arn.clone());
        }
        let c = self
            .shared
            .new_channel(name, "SINGLE_MASTER", self.shared.cfg.message_ttl_secs);
        let arn = c.arn.clone();
        channels.push(c);
        Ok(arn)
    }

    /// The emulator's current time (system clock plus the configured/injected offset).
    pub fn now_unix(&self) -> i64 {
        self.shared.now()
    }

    /// Stops everything: closes connections (close frame 1001), joins threads, frees the ports,
    /// removes the temporary state directory. Idempotent.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept() calls.
        for a in &self.addrs {
            let _ = TcpStream::connect_timeout(a, Duration::from_secs(1));
        }
        for t in lock(&self.listeners).drain(..) {
            let _ = t.join();
        }
        loop {
            let batch: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
            if batch.is_empty() {
                break;
            }
            for t in batch {
                let _ = t.join();
            }
        }
        self.shared.emit(Event::Stopped {});
        if let Some(d) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
