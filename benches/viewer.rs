//! Speed and memory of the Rust API against a running emulator. Prints medians, with a
//! baseline measured in the same run. `scripts/bench.sh` measures the C API against a plain
//! OpenSSL floor instead; to run this one, start the emulator and export its env file:
//!
//! ```sh
//! kvs-signaling-emulator --env-file /tmp/emu.env &
//! timeout 30 sh -c 'until [ -s /tmp/emu.env ]; do sleep 0.1; done'
//! set -a; . /tmp/emu.env; set +a
//! cargo bench -p kvs-viewer --bench viewer
//! ```
//!
//! Only the viewer runs in this process, so heap and CPU numbers are the library's own
//! (heap includes OpenSSL's buffers: it is read from malloc's statistics).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use kvs_viewer::{Credentials, MessageType, Viewer, ViewerConfig};

/// Bytes malloc has handed out and not got back: Rust's and OpenSSL's allocations alike.
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads allocator statistics.
    unsafe { libc::mallinfo2() }.uordblks
}

const OFFER: &str = r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:96 H264/90000\r\n"}"#;
const CANDIDATE: &str = r#"{"candidate":"candidate:1 1 udp 2130706431 192.168.1.20 50000 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
const RUNS: usize = 30;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} is not set: run scripts/bench.sh, which starts the emulator");
        std::process::exit(2)
    })
}

fn config(client_id: &str) -> ViewerConfig {
    let mut c = ViewerConfig::new(
        &env("AWS_REGION"),
        &env("KVS_CHANNEL_ARN"),
        client_id,
        &env("KVS_WSS_ENDPOINT"),
        Credentials::new(
            &env("AWS_ACCESS_KEY_ID"),
            &env("AWS_SECRET_ACCESS_KEY"),
            std::env::var("AWS_SESSION_TOKEN").ok().as_deref(),
        ),
    );
    c.ca_file = Some(env("KVS_CA_FILE").into());
    c
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Median time of `Viewer::connect` over `RUNS` fresh client ids (each viewer closed after).
fn median_connect(config_for: impl Fn(&str) -> ViewerConfig, prefix: &str) -> Duration {
    median(
        (0..RUNS)
            .map(|i| {
                let config = config_for(&format!("{prefix}{i}"));
                let t = Instant::now();
                let v = Viewer::connect(&config).unwrap();
                let took = t.elapsed();
                v.close().unwrap();
                took
            })
            .collect(),
    )
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Baseline: TCP + TLS handshake to the same server with one reused connector, no
/// WebSocket, no signing.
fn tls_connector(cfg: &ViewerConfig) -> native_tls::TlsConnector {
    let pem = std::fs::read(cfg.ca_file.as_ref().unwrap()).unwrap();
    let mut b = native_tls::TlsConnector::builder();
    for c in native_tls::Certificate::stack_from_pem(&pem).unwrap() {
        b.add_root_certificate(c);
    }
    b.build().unwrap()
}

fn tls_handshake_only(cfg: &ViewerConfig, connector: &native_tls::TlsConnector) -> Duration {
    let hostport = cfg
        .wss_endpoint
        .trim_start_matches("wss://")
        .trim_end_matches('/');
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
    let t = Instant::now();
    let tcp = TcpStream::connect(hostport).unwrap();
    let tls = connector.connect(host, tcp).unwrap();
    let took = t.elapsed();
    drop(tls);
    took
}

fn main() {
    // Warm up (first TLS context, DNS, page faults).
    Viewer::connect(&config("bench-warmup"))
        .unwrap()
        .close()
        .unwrap();

    let base_cfg = config("x");
    let connector = tls_connector(&base_cfg);
    tls_handshake_only(&base_cfg, &connector); // warm-up
    let base = median(
        (0..RUNS)
            .map(|_| tls_handshake_only(&base_cfg, &connector))
            .collect(),
    );
    let connect = median_connect(config, "bench-c");
    println!(
        "connect (presign + TCP + TLS + upgrade): median {} over {RUNS}; TLS handshake alone {}; ratio {:.2}",
        ms(connect),
        ms(base),
        connect.as_secs_f64() / base.as_secs_f64()
    );

    // Discovery as a viewer in the field does it: channel name -> ARN -> endpoints -> ICE,
    // then the WebSocket, all on one control-plane connection.
    let discovering = |client_id: &str| {
        let mut c = config(client_id);
        c.channel_arn.clear();
        c.wss_endpoint.clear();
        c.channel_name = Some(env("KVS_CHANNEL_NAME"));
        c.control_plane_url = Some(env("KVS_CONTROL_PLANE_URL"));
        c
    };
    let discover = median_connect(discovering, "bench-d");
    println!(
        "connect with discovery (Describe + GetEndpoint + GetIceServerConfig + WebSocket): median {}; ratio to a direct connect {:.2}",
        ms(discover),
        discover.as_secs_f64() / connect.as_secs_f64()
    );

    let v = Viewer::connect(&config("bench-rtt")).unwrap();
    let mut rtts = Vec::new();
    let mut sends = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        v.send(MessageType::SdpOffer, OFFER.as_bytes(), None)
            .unwrap();
        sends.push(t.elapsed());
        loop {
            let m = v.recv(Some(Duration::from_secs(10))).unwrap();
            if m.message_type == MessageType::SdpAnswer {
                rtts.push(t.elapsed());
                break;
            }
        }
        // Drain the answer's candidates so the next round starts clean.
        while v.recv(Some(Duration::from_millis(50))).is_ok() {}
    }
    let send_c = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                v.send(MessageType::IceCandidate, CANDIDATE.as_bytes(), None)
                    .unwrap();
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "offer -> answer round trip: median {}; send() returns in {} (offer), {} (candidate)",
        ms(median(rtts)),
        ms(median(sends)),
        ms(send_c)
    );

    // CPU while a thread is blocked in recv: the connection thread sleeps in poll(2).
    let cpu0 = cpu_time();
    let wall = Instant::now();
    let _ = v.recv(Some(Duration::from_secs(2)));
    println!(
        "idle: {} of CPU in {:.1} s blocked in recv (keepalive pings every 30 s)",
        ms(cpu_time() - cpu0),
        wall.elapsed().as_secs_f64()
    );
    v.close().unwrap();

    // Heap kept per connected viewer (the emulator allows 10 viewers per channel).
    let n = 8;
    let before = heap_in_use() as isize;
    let viewers: Vec<_> = (0..n)
        .map(|i| Viewer::connect(&config(&format!("bench-m{i}"))).unwrap())
        .collect();
    let per = (heap_in_use() as isize - before) / n as isize;
    println!(
        "heap per connected viewer (Rust + OpenSSL): {:.1} KiB (mean of {n}), plus one I/O thread with a 256 KiB stack reservation",
        per as f64 / 1024.0
    );
    for v in viewers {
        v.close().unwrap();
    }
}
