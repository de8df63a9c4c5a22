//! Density and latency: how many players one pinned engine core carries, and how
//! steadily. Each step starts a Quaver node (in this process, the same code as the
//! binary), the project's fake Discord voice server, and N bots (one WebSocket session
//! and one player each, created by PATCH with a track and a voice state pointing at
//! the fake), lets them play, and measures.
//!
//! Usage (`cargo bench --bench density -- …`):
//! - `--scenario passthrough|transcode` (default: both), `--players N` (one step;
//!   default: step N upward until a limit is crossed), `--seconds S` (default 10),
//!   `--json` (one JSON object per line), `--quick` (small N, 2 s: what CI runs),
//!   `--rt P` (SCHED_FIFO priority P for the tick thread).
//! - Without `--players`, writes `target/density/density.csv` and `density.svg`.
//!
//! Pinning: the engine's tick thread on CPU 0, everything else (control plane, bots,
//! decoders, the fake's receiver) on CPU 1 when the machine has two or more.
//! DAVE is not implemented yet, so it is off.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

/// The project's fake Discord voice server, shared with the integration tests.
#[path = "../tests/common"]
#[allow(dead_code)]
mod common {
    pub mod fake_discord;
}

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_discord::{FakeDiscord, FakeDiscordOptions};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use quaver::server::{discord_voice, AudioSetup, Running};
use quaver_control::media::MediaSettings;
use quaver_control::ControlConfig;
use quaver_engine::decode::pcm::ResampleQuality;
use quaver_engine::EngineConfig;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const USER_ID: u64 = 170_939_974_227_591_168;
const PASSWORD: &str = "youshallnotpass";
const STEPS: [usize; 7] = [100, 500, 1_000, 2_000, 3_000, 5_000, 10_000];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    Passthrough,
    Transcode,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Passthrough => "passthrough",
            Scenario::Transcode => "transcode",
        }
    }
    fn file(self) -> &'static str {
        match self {
            Scenario::Passthrough => "long.opus",
            Scenario::Transcode => "long.mp3",
        }
    }
}

struct Args {
    scenarios: Vec<Scenario>,
    players: Option<usize>,
    seconds: u64,
    json: bool,
    quick: bool,
    realtime: Option<u8>,
}

fn args() -> Args {
    let all: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        all.iter()
            .position(|a| a == name)
            .and_then(|i| all.get(i + 1))
            .cloned()
    };
    let quick = all.iter().any(|a| a == "--quick");
    let scenarios = match value("--scenario").as_deref() {
        Some("passthrough") => vec![Scenario::Passthrough],
        Some("transcode") => vec![Scenario::Transcode],
        _ => vec![Scenario::Passthrough, Scenario::Transcode],
    };
    Args {
        scenarios,
        players: value("--players").and_then(|v| v.parse().ok()),
        seconds: value("--seconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 2 } else { 10 }),
        json: all.iter().any(|a| a == "--json"),
        quick,
        realtime: value("--rt").and_then(|v| v.parse().ok()),
    }
}

/// One step's figures.
#[derive(Debug, Clone)]
struct Step {
    scenario: Scenario,
    players: usize,
    cost_us: f64,
    cpu_us: f64,
    floor_us: f64,
    lateness: [f64; 4],
    arrival_dev_p99_us: f64,
    nulled: u64,
    lost: u64,
    rss_kb_per_player: f64,
    patch_p99_ms: f64,
    received: u64,
    engine_sent: u64,
    kernel_drops: u64,
}

impl Step {
    fn json(&self) -> String {
        json!({
            "scenario": self.scenario.name(),
            "players": self.players,
            "cost_us_per_player_tick": round(self.cost_us),
            "cpu_us_per_player_tick": round(self.cpu_us),
            "floor_us_per_player_tick": round(self.floor_us),
            "lateness_p50_us": round(self.lateness[0]),
            "lateness_p99_us": round(self.lateness[1]),
            "lateness_p999_us": round(self.lateness[2]),
            "lateness_max_us": round(self.lateness[3]),
            "arrival_dev_p99_us": round(self.arrival_dev_p99_us),
            "nulled_frames": self.nulled,
            "lost_packets": self.lost,
            "rss_kb_per_player": round(self.rss_kb_per_player),
            "patch_p99_ms": round(self.patch_p99_ms),
            "received_packets": self.received,
            "engine_packets_sent_total": self.engine_sent,
            "receiver_kernel_drops": self.kernel_drops,
        })
        .to_string()
    }

    /// A limit from the issue: nulled frames, p99 lateness over 1 ms, or lost packets.
    fn over_limit(&self) -> bool {
        self.nulled > 0 || self.lateness[1] > 1_000.0 || self.lost > 0
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn media_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media"))
}

fn rss_kb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU time (µs) of this process's threads named `name`.
fn thread_cpu_us(name: &str) -> f64 {
    let ticks_per_s = 100.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|stat| {
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            (utime + stime) / ticks_per_s * 1e6
        })
        .sum()
}

/// The soft open-file limit, raised to the hard limit first.
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(1024)
}

fn main() {
    let args = args();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let engine_cpu = (cores.len() >= 2).then(|| cores[0].id);
    if cores.len() >= 2 {
        core_affinity::set_for_current(cores[1]);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut results = Vec::new();
    if !args.json {
        println!(
            "{:<12} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>9}",
            "scenario",
            "players",
            "cost µs",
            "cpu µs",
            "floor µs",
            "p50 µs",
            "p99 µs",
            "max µs",
            "nulled",
            "lost",
            "KB/player"
        );
    }
    for &scenario in &args.scenarios {
        let steps: Vec<usize> = match (args.players, args.quick) {
            (Some(n), _) => vec![n],
            (None, true) => vec![10, 40],
            (None, false) => STEPS.to_vec(),
        };
        // Each player holds about five sockets in this one process (bot, node, voice
        // gateway both ends, UDP): stay under the open-file limit.
        let fd_limit = open_file_limit();
        for n in steps {
            if n * 5 + 500 > fd_limit {
                println!("# skipping {n} players: needs ~{} open files, the limit is {fd_limit} (raise `ulimit -n`)", n * 5 + 500);
                break;
            }
            let step = runtime.block_on(run_step(
                scenario,
                n,
                args.seconds,
                engine_cpu,
                args.realtime,
            ));
            if args.json {
                println!("{}", step.json());
            } else {
                println!(
                    "{:<12} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>6} {:>9.1}",
                    scenario.name(),
                    n,
                    step.cost_us,
                    step.cpu_us,
                    step.floor_us,
                    step.lateness[0],
                    step.lateness[1],
                    step.lateness[3],
                    step.nulled,
                    step.lost,
                    step.rss_kb_per_player
                );
            }
            let stop = step.over_limit();
            results.push(step);
            if stop && args.players.is_none() {
                break;
            }
        }
    }
    if args.players.is_none() {
        write_reports(&results);
    }
}

async fn run_step(
    scenario: Scenario,
    n: usize,
    seconds: u64,
    engine_cpu: Option<usize>,
    realtime: Option<u8>,
) -> Step {
    let fake = FakeDiscord::start(FakeDiscordOptions {
        decode_payloads: false,
        ..Default::default()
    })
    .await;
    let rss0 = rss_kb();
    let audio = AudioSetup {
        engine: EngineConfig {
            threads: 1,
            cpus: engine_cpu.into_iter().collect(),
            realtime_priority: realtime,
            max_players: n + 16,
            spin: Duration::from_micros(1_000),
        },
        decode_threads: 1,
        media: MediaSettings {
            opus_quality: 10,
            buffer_ms: 5_000,
            stuck_threshold_ms: 10_000,
            resample: ResampleQuality::High,
        },
        voice: Arc::new(discord_voice(true, true)),
        local: Some(vec![media_dir()]),
        http: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = Running::serve(ControlConfig::default(), audio, listener)
        .await
        .unwrap();
    let base = format!("http://{}", running.local_addr());
    let http = reqwest::Client::new();
    let track = load_track(&http, &base, scenario).await;

    // N bots, created 64 at a time: a session and a player each.
    let mut patch_ms = Histogram::<u64>::new(3).unwrap();
    let addr = running.local_addr();
    let bots = futures_util::stream::iter(0..n)
        .map(|i| {
            let guild = 1_000_000 + i as u64;
            let body = json!({"voice": fake.voice_state(guild, USER_ID), "encodedTrack": track});
            let (http, base) = (http.clone(), base.clone());
            async move {
                let (ws, session) = open_session(addr).await;
                let start = Instant::now();
                let res = http
                    .patch(format!("{base}/v4/sessions/{session}/players/{guild}"))
                    .header("Authorization", PASSWORD)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success(), "PATCH failed: {}", res.status());
                (ws, start.elapsed())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let mut sockets = Vec::with_capacity(n);
    for (ws, took) in bots {
        sockets.push(ws);
        let _ = patch_ms.record(took.as_micros() as u64);
    }
    // Until every player's audio arrives at the fake.
    let ready_by = Instant::now() + Duration::from_secs(30 + n as u64 / 50);
    for i in 0..n {
        let guild = 1_000_000 + i as u64;
        let left = ready_by
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        fake.wait_for(guild, left, |v| v.packets.len() > 5).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stats = running.media().engine().stats()[0].clone();
    stats.reset.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let (ticks0, busy0, nulled0) = (
        stats.ticks.load(Ordering::Relaxed),
        stats.busy_total.load(Ordering::Relaxed),
        stats.frames_nulled.load(Ordering::Relaxed),
    );
    let cpu0 = thread_cpu_us("quaver-tick-0");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (ticks1, busy1, nulled1) = (
        stats.ticks.load(Ordering::Relaxed),
        stats.busy_total.load(Ordering::Relaxed),
        stats.frames_nulled.load(Ordering::Relaxed),
    );
    let cpu1 = thread_cpu_us("quaver-tick-0");
    let t1 = Instant::now();
    let ticks = (ticks1 - ticks0).max(1) as f64;
    let us = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed) as f64 / 1000.0;
    let lateness = [
        us(&stats.lateness_p50),
        us(&stats.lateness_p99),
        us(&stats.lateness_p999),
        us(&stats.lateness_max),
    ];

    // What the receiver saw in the window: losses from sequence gaps, pacing.
    // Packets short of one per 20 ms per player (a player that received nothing
    // counts fully, with one packet of slack at each edge), and pacing.
    let expected = ((t1 - t0).as_millis() / 20) as u64;
    let mut lost = 0u64;
    let mut received = 0u64;
    let mut dev = Histogram::<u64>::new(3).unwrap();
    for i in 0..n {
        let view = fake.connection(1_000_000 + i as u64);
        let window: Vec<_> = view
            .iter()
            .flat_map(|v| v.packets.iter())
            .filter(|p| p.arrived >= t0 && p.arrived <= t1)
            .collect();
        lost += expected.saturating_sub(window.len() as u64 + 2);
        received += window.len() as u64;
        for w in window.windows(2) {
            let gap = (w[1].arrived - w[0].arrived).as_micros() as i64;
            let _ = dev.record((gap - 20_000).unsigned_abs());
        }
    }
    let rss = (rss_kb() - rss0) / n as f64;
    let sent = stats.packets_sent.load(Ordering::Relaxed);
    let kernel_drops = fake.kernel_drops().unwrap_or(0);
    running.shutdown().await.unwrap();
    for s in sockets {
        s.abort();
    }
    drop(fake);
    // Measured with the node stopped, so nothing else runs on the engine's core.
    let floor_us = floor(scenario);
    Step {
        scenario,
        players: n,
        cost_us: (busy1 - busy0) as f64 / 1000.0 / ticks / n as f64,
        cpu_us: (cpu1 - cpu0) / ticks / n as f64,
        floor_us,
        lateness,
        arrival_dev_p99_us: dev.value_at_quantile(0.99) as f64,
        nulled: nulled1 - nulled0,
        lost,
        rss_kb_per_player: rss,
        patch_p99_ms: patch_ms.value_at_quantile(0.99) as f64 / 1000.0,
        received,
        engine_sent: sent,
        kernel_drops,
    }
}

async fn load_track(http: &reqwest::Client, base: &str, scenario: Scenario) -> String {
    let id = media_dir().join(scenario.file()).canonicalize().unwrap();
    let res: Value = http
        .get(format!("{base}/v4/loadtracks"))
        .query(&[("identifier", id.to_string_lossy().as_ref())])
        .header("Authorization", PASSWORD)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["data"]["encoded"]
        .as_str()
        .expect("the media loads")
        .to_owned()
}

/// Opens a Lavalink session whose messages a task drains; returns that task and the
/// session id.
async fn open_session(addr: std::net::SocketAddr) -> (tokio::task::JoinHandle<()>, String) {
    let mut req = format!("ws://{addr}/v4/websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", HeaderValue::from_static(PASSWORD));
    req.headers_mut().insert(
        "User-Id",
        HeaderValue::from_str(&USER_ID.to_string()).unwrap(),
    );
    req.headers_mut()
        .insert("Client-Name", HeaderValue::from_static("quaver-density/1"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let ready = ws.next().await.unwrap().unwrap();
    let ready: Value = serde_json::from_str(ready.to_text().unwrap()).unwrap();
    let id = ready["sessionId"].as_str().unwrap().to_owned();
    // Keep the socket drained so the node never buffers for a slow client.
    let task = tokio::spawn(async move { while ws.next().await.is_some() {} });
    (task, id)
}

/// What each packet must cost at least, measured now on the engine's core: sealing
/// (AES-256-GCM) and a connected UDP send to a draining receiver; for transcode also
/// decoding, resampling and encoding a 20 ms frame of the same MP3 (complexity 10).
fn floor(scenario: Scenario) -> f64 {
    use quaver_engine::transport::{EncryptionMode, RtpState, TransportCipher};
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let engine_core = cores.first().copied();
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = receiver.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    receiver.set_nonblocking(true).unwrap();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if receiver.recv(&mut buf).is_err() {
                std::hint::spin_loop();
            }
        }
    });
    let measure = std::thread::spawn(move || {
        if let Some(c) = engine_core {
            core_affinity::set_for_current(c);
        }
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(addr).unwrap();
        let cipher = TransportCipher::new(EncryptionMode::Aes256GcmRtpsize, [7; 32]);
        let mut rtp = RtpState::new(1);
        let mut packet = [0u8; 12 + 1275 + 20];
        let payload = 80; // long.opus at 32 kbps
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            packet[..12].copy_from_slice(&rtp.header());
            let len = cipher
                .seal_in_place(&mut packet, payload, rtp.nonce)
                .unwrap();
            let _ = socket.send(&packet[..len]);
            rtp.advance();
        }
        let send_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        match scenario {
            Scenario::Passthrough => send_us,
            Scenario::Transcode => send_us + decode_and_encode_us(),
        }
    });
    let floor = measure.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    drain.join().unwrap();
    floor
}

/// Decoding + resampling (on this thread) and encoding one 20 ms frame of long.mp3.
fn decode_and_encode_us() -> f64 {
    use quaver_engine::codec::FrameEncoder;
    use quaver_engine::decode::{Job, JobSpec, MediaSource, Pump};
    use quaver_engine::opus::OpusEncoder;
    use quaver_engine::ring::{RecordKind, PCM_FRAME_BYTES};
    let path = media_dir().join("long.mp3");
    let spec = JobSpec {
        source: Box::new(move || {
            Ok(Box::new(std::fs::File::open(path).unwrap()) as Box<dyn MediaSource>)
        }),
        extension: Some("mp3".into()),
        start_ms: 0,
        epoch: 1,
        buffer_ms: 1_000,
        dedicated: false,
        resample: ResampleQuality::High,
    };
    let (mut job, ready) = Job::open(spec).unwrap();
    let quaver_engine::decode::JobReport::Ready {
        frames: mut reader, ..
    } = ready
    else {
        panic!("no frames")
    };
    let mut buf = vec![0u8; PCM_FRAME_BYTES];
    let mut frames: Vec<Vec<i16>> = Vec::new();
    let start = Instant::now();
    loop {
        let pump = job.pump(64, &mut |_| {});
        while let Some(r) = reader.read(&mut buf) {
            if r.kind == RecordKind::Pcm && frames.len() < 500 {
                frames.push(
                    buf[..r.len]
                        .chunks_exact(2)
                        .map(|c| i16::from_ne_bytes([c[0], c[1]]))
                        .collect(),
                );
            }
        }
        if pump == Pump::Finished {
            break;
        }
    }
    let decode_us = start.elapsed().as_secs_f64() * 1e6 / 3_000.0; // 60 s = 3000 frames
    let mut enc = OpusEncoder::new(10).unwrap();
    let mut out = [0u8; 1275];
    let start = Instant::now();
    for f in &frames {
        enc.encode(f, &mut out).unwrap();
    }
    decode_us + start.elapsed().as_secs_f64() * 1e6 / frames.len() as f64
}

/// `target/density/density.csv` and an SVG plot of cost and lateness against N.
fn write_reports(results: &[Step]) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/density"));
    let _ = std::fs::create_dir_all(&dir);
    let mut csv = String::from(
        "scenario,players,cost_us_per_player_tick,cpu_us_per_player_tick,floor_us_per_player_tick,lateness_p50_us,lateness_p99_us,lateness_p999_us,lateness_max_us,arrival_dev_p99_us,nulled_frames,lost_packets,rss_kb_per_player,patch_p99_ms\n",
    );
    for r in results {
        csv.push_str(&format!(
            "{},{},{:.3},{:.3},{:.3},{:.0},{:.0},{:.0},{:.0},{:.0},{},{},{:.1},{:.2}\n",
            r.scenario.name(),
            r.players,
            r.cost_us,
            r.cpu_us,
            r.floor_us,
            r.lateness[0],
            r.lateness[1],
            r.lateness[2],
            r.lateness[3],
            r.arrival_dev_p99_us,
            r.nulled,
            r.lost,
            r.rss_kb_per_player,
            r.patch_p99_ms
        ));
    }
    let _ = std::fs::write(dir.join("density.csv"), csv);
    let _ = std::fs::write(dir.join("density.svg"), svg(results));
    println!("wrote {}/density.csv and density.svg", dir.display());
}

/// A plot panel: title, left edge, and the named series it draws from a step.
type Panel = (
    &'static str,
    f64,
    Box<dyn Fn(&Step) -> Vec<(&'static str, f64)>>,
);

/// Two panels, log-scaled N on x: µs per player-tick (with floors dashed), and tick
/// lateness p50/p99/max.
fn svg(results: &[Step]) -> String {
    let (w, h, pad) = (900.0, 360.0, 60.0);
    let max_n = results.iter().map(|r| r.players).max().unwrap_or(10) as f64;
    let x = |n: usize, left: f64| {
        left + pad + ((n as f64).ln() / max_n.max(2.0).ln()) * (w / 2.0 - 2.0 * pad)
    };
    let mut out = format!("<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n");
    let panels: [Panel; 2] = [
        (
            "µs per player-tick (dashed: floor)",
            0.0,
            Box::new(|r: &Step| vec![("cost", r.cost_us), ("floor", r.floor_us)]),
        ),
        (
            "tick lateness µs (p50, p99, max)",
            w / 2.0,
            Box::new(|r: &Step| {
                vec![
                    ("p50", r.lateness[0]),
                    ("p99", r.lateness[1]),
                    ("max", r.lateness[3]),
                ]
            }),
        ),
    ];
    for (title, left, series) in panels.iter() {
        let max_y = results
            .iter()
            .flat_map(|r| series(r).into_iter().map(|(_, v)| v))
            .fold(1.0f64, f64::max)
            * 1.1;
        let y = |v: f64| h - pad - v / max_y * (h - 2.0 * pad);
        out.push_str(&format!("<text x='{}' y='20'>{title}</text>\n", left + pad));
        out.push_str(&format!("<line x1='{0}' y1='{1}' x2='{2}' y2='{1}' stroke='black'/><line x1='{0}' y1='{3}' x2='{0}' y2='{1}' stroke='black'/>\n", left + pad, h - pad, left + w / 2.0 - pad, pad));
        out.push_str(&format!(
            "<text x='{}' y='{}'>{max_y:.0}</text><text x='{}' y='{}'>players (log)</text>\n",
            left + 5.0,
            pad,
            left + w / 4.0,
            h - 20.0
        ));
        for (si, scenario) in [Scenario::Passthrough, Scenario::Transcode]
            .iter()
            .enumerate()
        {
            let rows: Vec<&Step> = results.iter().filter(|r| r.scenario == *scenario).collect();
            if rows.is_empty() {
                continue;
            }
            let colors = [
                ["#1f77b4", "#aec7e8", "#0b3c5d"],
                ["#d62728", "#ff9896", "#7f1010"],
            ];
            for k in 0..series(rows[0]).len() {
                let points: Vec<String> = rows
                    .iter()
                    .map(|r| format!("{:.1},{:.1}", x(r.players, *left), y(series(r)[k].1)))
                    .collect();
                let dash = if series(rows[0])[k].0 == "floor" {
                    " stroke-dasharray='4 3'"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "<polyline fill='none' stroke='{}' stroke-width='2'{dash} points='{}'/>\n",
                    colors[si][k.min(2)],
                    points.join(" ")
                ));
            }
            for r in &rows {
                out.push_str(&format!(
                    "<text x='{:.1}' y='{:.1}' font-size='10'>{}</text>\n",
                    x(r.players, *left),
                    h - pad + 14.0,
                    r.players
                ));
            }
            out.push_str(&format!(
                "<text x='{}' y='{}' fill='{}'>{}</text>\n",
                left + w / 2.0 - pad - 80.0,
                pad + 15.0 * si as f64,
                colors[si][0],
                scenario.name()
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}
