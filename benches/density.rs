//! Density and latency: how many players one pinned engine core carries, and how
//! steadily. Each step starts the real `quaver` binary (the release build cargo made
//! for this benchmark) with a generated `application.yml`, the project's fake Discord
//! voice server, and N bots (one WebSocket session and one player each, created by
//! PATCH with a track and a voice state pointing at the fake), lets them play, and
//! measures.
//!
//! Usage (`cargo bench --bench density -- …`):
//! - `--scenario passthrough|transcode` (default: both), `--players N` (one step;
//!   default: step N upward until a limit is crossed), `--seconds S` (default 10),
//!   `--json` (one JSON object per line), `--quick` (small N, 2 s: what CI runs),
//!   `--rt P` (SCHED_FIFO priority P for the tick thread), `--no-dave` (transport
//!   encryption only; by default every call is DAVE-encrypted: the fake runs one
//!   `davey` member per channel that welcomes the bot), `--spin-us U` (the tick
//!   thread's busy-wait before each deadline, `quaver.engine.spinUs`, default 1000).
//! - `--source http|file` (default `http`): where the players' media comes from.
//!   `http` is the path users run: an HTTP server inside this harness (on the harness
//!   core, the tests' `MediaServer`: `Range: bytes=N-` with 206 and `Content-Range`,
//!   `Content-Length`, `Accept-Ranges`, keep-alive, like a CDN) serves the files and
//!   each player plays `http://127.0.0.1:PORT/media/<file>`; `file` plays the same
//!   files from `quaver.sources.localRoots`, for comparison.
//! - Without `--players`, writes `target/density/density.csv` and `density.svg`.
//!   `--plot FILE.csv` redraws the SVG of such a CSV (next to it) without measuring.
//!
//! Pinning: the engine's tick thread on CPU 0 (`quaver.engine.cpus`), the rest of the
//! node (started under `taskset`), the bots, and the fake's busy-polling receiver on
//! CPU 1, when the machine has two or more.
//!
//! Figures per step: the engine's own accounting (`GET /quaver/engine`: busy time per
//! tick, lateness histogram, nulled frames), the tick thread's and the whole node's
//! CPU time from `/proc/<pid>` (whole process, and per thread class by thread name:
//! tick, decode pool, network streams, control), the node's thread count, the node's
//! RSS growth per player, what the receiver
//! saw (losses from missing packets in the window, inter-arrival deviation, kernel
//! drops), and the PATCH latency.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

/// The project's fake Discord voice server, shared with the integration tests.
#[path = "../tests/common"]
#[allow(dead_code)]
mod common {
    pub mod fake_discord;
    pub mod media_server;
    pub mod node_process;

    /// The test media, as `tests/common/mod.rs` names it for the media server.
    pub fn media_dir() -> std::path::PathBuf {
        super::media_dir().canonicalize().unwrap()
    }
}

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_discord::{FakeDiscord, FakeDiscordOptions};
use common::media_server::MediaServer;
use common::node_process::NodeProcess;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use quaver_engine::decode::pcm::ResampleQuality;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const USER_ID: u64 = 170_939_974_227_591_168;
const PASSWORD: &str = "youshallnotpass";
/// Passthrough steps; transcoding costs ~20x more per player, so it steps lower.
const STEPS: [usize; 11] = [
    100, 500, 1_000, 2_000, 2_500, 3_000, 3_500, 4_000, 4_500, 5_000, 10_000,
];
const TRANSCODE_STEPS: [usize; 6] = [25, 50, 100, 150, 200, 300];

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

/// Where the players' media comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// The harness's HTTP server: what users run.
    Http,
    /// `quaver.sources.localRoots`: no network I/O in the node.
    File,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::File => "file",
        }
    }
}

struct Args {
    scenarios: Vec<Scenario>,
    source: Source,
    players: Option<usize>,
    seconds: u64,
    json: bool,
    quick: bool,
    realtime: Option<u8>,
    dave: bool,
    spin_us: u64,
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
    let source = match value("--source").as_deref() {
        None | Some("http") => Source::Http,
        Some("file") => Source::File,
        Some(other) => {
            eprintln!("--source must be `http` or `file`, not `{other}`");
            std::process::exit(2);
        }
    };
    Args {
        scenarios,
        source,
        players: value("--players").and_then(|v| v.parse().ok()),
        seconds: value("--seconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 2 } else { 10 }),
        json: all.iter().any(|a| a == "--json"),
        quick,
        realtime: value("--rt").and_then(|v| v.parse().ok()),
        dave: !all.iter().any(|a| a == "--no-dave"),
        spin_us: value("--spin-us")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000),
    }
}

/// One step's figures.
#[derive(Debug, Clone)]
struct Step {
    scenario: Scenario,
    source: Source,
    players: usize,
    dave: bool,
    cost_us: f64,
    cpu_us: f64,
    /// The whole node (utime + stime of `/proc/<pid>/stat`), µs per player-tick.
    process_cpu_us: f64,
    /// The node's CPU by thread class, µs per player-tick.
    classes: ClassCpu,
    /// The node's thread count, the most seen in the measuring window.
    threads: u64,
    /// I/O threads (`quaver-io-N`, and before the redesign `quaver-stream-N`) at the
    /// end of the window.
    io_threads: u64,
    /// Requests the harness's HTTP server answered during the step (0 for `file`).
    http_requests: u64,
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
    /// Per second of the window, on the engine's CPU.
    engine_cpu_softirq_ms_per_s: f64,
    engine_cpu_steal_ms_per_s: f64,
}

impl Step {
    fn json(&self) -> String {
        json!({
            "scenario": self.scenario.name(),
            "source": self.source.name(),
            "players": self.players,
            "dave": self.dave,
            "cost_us_per_player_tick": round(self.cost_us),
            "cpu_us_per_player_tick": round(self.cpu_us),
            "process_cpu_us_per_player_tick": round(self.process_cpu_us),
            "node_cpu_us_per_player_tick": round(self.process_cpu_us),
            "tick_cpu_us_per_player_tick": round(self.classes.tick),
            "decode_cpu_us_per_player_tick": round(self.classes.decode),
            "io_cpu_us_per_player_tick": round(self.classes.io),
            "control_cpu_us_per_player_tick": round(self.classes.control),
            "threads": self.threads,
            "io_threads": self.io_threads,
            "http_requests": self.http_requests,
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
            "engine_cpu_softirq_ms_per_s": round(self.engine_cpu_softirq_ms_per_s),
            "engine_cpu_steal_ms_per_s": round(self.engine_cpu_steal_ms_per_s),
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

/// Resident memory of process `pid`, KiB.
fn rss_kb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// utime + stime (µs) from a `/proc/.../stat` line.
fn stat_cpu_us(stat: &str) -> f64 {
    let ticks_per_s = 100.0;
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime + stime) / ticks_per_s * 1e6
}

/// CPU time (µs) of process `pid`'s threads named `name`.
fn thread_cpu_us(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|stat| stat_cpu_us(&stat))
        .sum()
}

/// A node thread's class, from its name (`comm`, at most 15 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
enum ThreadClass {
    /// `quaver-tick-N`: the engine's tick threads.
    Tick,
    /// `quaver-decode-N`: the decode pool (files and network streams alike).
    Decode,
    /// `quaver-io-N`: the fixed I/O threads that fetch network streams (and, before
    /// the network I/O redesign, `quaver-stream-N`: a thread per stream that read and
    /// decoded it).
    Io,
    /// Everything else: tokio workers (REST, WebSocket, voice gateways), the main thread.
    Control,
}

impl ThreadClass {
    fn of(comm: &str) -> ThreadClass {
        if comm.starts_with("quaver-tick") {
            ThreadClass::Tick
        } else if comm.starts_with("quaver-decode") {
            ThreadClass::Decode
        } else if comm.starts_with("quaver-io") || comm.starts_with("quaver-stream") {
            ThreadClass::Io
        } else {
            ThreadClass::Control
        }
    }
}

/// CPU per thread class; µs, or µs per player-tick once divided.
#[derive(Debug, Clone, Copy, Default)]
struct ClassCpu {
    tick: f64,
    decode: f64,
    io: f64,
    control: f64,
}

impl ClassCpu {
    fn per(self, player_ticks: f64) -> ClassCpu {
        ClassCpu {
            tick: self.tick / player_ticks,
            decode: self.decode / player_ticks,
            io: self.io / player_ticks,
            control: self.control / player_ticks,
        }
    }
}

/// Each live thread of process `pid`: its class and CPU time (µs).
fn thread_times(pid: u32) -> HashMap<u32, (ThreadClass, f64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // `comm` is the part of `stat` in parentheses.
            let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            Some((tid, (ThreadClass::of(comm), stat_cpu_us(&stat))))
        })
        .collect()
}

/// CPU each class used between two samples. A thread born in between counts from
/// zero; one that ended in between is missing from `after` and its last part is lost
/// (the whole-process figure still has it).
fn class_cpu(
    before: &HashMap<u32, (ThreadClass, f64)>,
    after: &HashMap<u32, (ThreadClass, f64)>,
) -> ClassCpu {
    let mut sum = ClassCpu::default();
    for (tid, (class, t1)) in after {
        let t0 = before.get(tid).map_or(0.0, |(_, t)| *t);
        let d = (t1 - t0).max(0.0);
        match class {
            ThreadClass::Tick => sum.tick += d,
            ThreadClass::Decode => sum.decode += d,
            ThreadClass::Io => sum.io += d,
            ThreadClass::Control => sum.control += d,
        }
    }
    sum
}

/// The `Threads:` line of `/proc/<pid>/status`.
fn thread_count(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Time (ms) CPU `cpu` spent in softirq and stolen by the hypervisor, from
/// `/proc/stat`: what besides the tick thread took the engine's core.
fn cpu_softirq_steal_ms(cpu: Option<usize>) -> (f64, f64) {
    let Some(cpu) = cpu else { return (0.0, 0.0) };
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&name)) else {
        return (0.0, 0.0);
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let jiffy_ms = 10.0;
    (
        f.get(6).copied().unwrap_or(0.0) * jiffy_ms,
        f.get(7).copied().unwrap_or(0.0) * jiffy_ms,
    )
}

/// CPU time (µs) of the whole process `pid`.
fn process_cpu_us(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(0.0, |s| stat_cpu_us(&s))
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
    let all: Vec<String> = std::env::args().collect();
    if let Some(csv) = all
        .iter()
        .position(|a| a == "--plot")
        .and_then(|i| all.get(i + 1))
    {
        return replot(std::path::Path::new(csv));
    }
    let args = args();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let engine_cpu = (cores.len() >= 2).then(|| cores[0].id);
    let harness_cpu = (cores.len() >= 2).then(|| cores[1].id);
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
            "{:<12} {:>4} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7} {:>6} {:>6} {:>5} {:>9}",
            "scenario",
            "src",
            "players",
            "cost µs",
            "cpu µs",
            "node µs",
            "tick µs",
            "dec µs",
            "io µs",
            "ctl µs",
            "floor µs",
            "p50 µs",
            "p99 µs",
            "max µs",
            "nulled",
            "lost",
            "thr",
            "KB/player"
        );
        println!("# µs are per player-tick; cpu = the tick thread; node = the whole process = tick + dec (decode pool) + io (quaver-io-N) + ctl (the rest)");
    }
    for &scenario in &args.scenarios {
        let steps: Vec<usize> = match (args.players, args.quick) {
            (Some(n), _) => vec![n],
            (None, true) => vec![10, 40],
            (None, false) if scenario == Scenario::Transcode => TRANSCODE_STEPS.to_vec(),
            (None, false) => STEPS.to_vec(),
        };
        // Each player holds three sockets in the node (client WebSocket, voice
        // gateway, UDP) and two here: stay under the open-file limit.
        let fd_limit = open_file_limit();
        for n in steps {
            if n * 3 + 500 > fd_limit {
                println!("# skipping {n} players: needs ~{} open files, the limit is {fd_limit} (raise `ulimit -n`)", n * 3 + 500);
                break;
            }
            let step = runtime.block_on(run_step(
                scenario,
                args.source,
                n,
                args.seconds,
                engine_cpu,
                harness_cpu,
                args.realtime,
                args.dave,
                args.spin_us,
            ));
            if args.json {
                println!("{}", step.json());
            } else {
                println!(
                    "{:<12} {:>4} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>7.0} {:>7.0} {:>7.0} {:>6} {:>6} {:>5} {:>9.1}",
                    scenario.name(),
                    step.source.name(),
                    n,
                    step.cost_us,
                    step.cpu_us,
                    step.process_cpu_us,
                    step.classes.tick,
                    step.classes.decode,
                    step.classes.io,
                    step.classes.control,
                    step.floor_us,
                    step.lateness[0],
                    step.lateness[1],
                    step.lateness[3],
                    step.nulled,
                    step.lost,
                    step.threads,
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

/// Starts the release binary for `n` players: one tick thread pinned to `engine_cpu`
/// (SCHED_FIFO `realtime` if given), everything else on `harness_cpu`.
async fn start_node(
    n: usize,
    engine_cpu: Option<usize>,
    harness_cpu: Option<usize>,
    realtime: Option<u8>,
    dave: bool,
    spin_us: u64,
) -> NodeProcess {
    let cpus = engine_cpu.map_or(String::new(), |c| format!("\n    cpus: [{c}]"));
    let rt = realtime.map_or(String::new(), |p| format!("\n    realtimePriority: {p}"));
    let roots = media_dir().canonicalize().unwrap();
    let config = |port: u16| {
        format!(
            "server:\n  port: {port}\n  address: 127.0.0.1\n\
             lavalink:\n  server:\n    password: \"{PASSWORD}\"\n    opusEncodingQuality: 10\n    resamplingQuality: HIGH\n    bufferDurationMs: 5000\n    sources:\n      local: true\n      http: true\n\
             logging:\n  level:\n    root: WARN\n\
             quaver:\n  engine:\n    threads: 1\n    spinUs: {spin_us}\n    maxPlayers: {}{cpus}{rt}\n  decode:\n    threads: 1\n  voice:\n    allowInsecureEndpoints: true\n    dave: {dave}\n  sources:\n    localRoots: [\"{}\"]\n",
            n + 16,
            roots.display()
        )
    };
    NodeProcess::start(config, &[], harness_cpu, PASSWORD).await
}

/// An authenticated GET of the node's JSON.
async fn get_json(http: &reqwest::Client, url: String, query: &[(&str, String)]) -> Value {
    http.get(url)
        .query(query)
        .header("Authorization", PASSWORD)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The tick thread's figures from `GET /quaver/engine`.
async fn engine_report(http: &reqwest::Client, base: &str, reset: bool) -> Value {
    let url = format!("{base}/quaver/engine");
    let report = get_json(http, url, &[("reset", reset.to_string())]).await;
    report["threads"][0].clone()
}

/// A one-line progress bar on stderr.
fn progress(label: &str, done: usize, total: usize) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    eprint!(
        "\r{label:<28} [{}{}] {done}/{total}   ",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    if done >= total {
        eprintln!();
    }
}

/// The fake member that welcomes the bot into each channel's DAVE group.
const DAVE_MEMBER: u64 = 900_000_000_000_000_001;

#[allow(clippy::too_many_arguments)]
async fn run_step(
    scenario: Scenario,
    source: Source,
    n: usize,
    seconds: u64,
    engine_cpu: Option<usize>,
    harness_cpu: Option<usize>,
    realtime: Option<u8>,
    dave: bool,
    spin_us: u64,
) -> Step {
    let fake = FakeDiscord::start(FakeDiscordOptions {
        decode_payloads: false,
        dave,
        dave_members_before: if dave { vec![DAVE_MEMBER] } else { vec![] },
        // Plain `ws://` (the node allows it): thousands of TLS handshakes would measure
        // the fake's setup, not the node's density.
        tls: false,
        ..Default::default()
    })
    .await;
    // On this runtime, i.e. the harness core, like the fake.
    let media = match source {
        Source::Http => Some(MediaServer::start().await),
        Source::File => None,
    };
    quaver_control::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let node = start_node(n, engine_cpu, harness_cpu, realtime, dave, spin_us).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = rss_kb(node.pid);
    let base = node.base.clone();
    let identifier = match &media {
        Some(m) => m.url(&format!("/media/{}", scenario.file())),
        None => media_dir()
            .join(scenario.file())
            .canonicalize()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    };
    let track = load_track(&http, &base, &identifier).await;

    // N bots, created 64 at a time: a session and a player each.
    let label = format!("{} {n}: players", scenario.name());
    let mut patch_ms = Histogram::<u64>::new(3).unwrap();
    let addr = node.addr;
    let created = std::sync::atomic::AtomicUsize::new(0);
    let bots = futures_util::stream::iter(0..n)
        .map(|i| {
            let guild = 1_000_000 + i as u64;
            let body = json!({"voice": fake.voice_state(guild, USER_ID), "encodedTrack": track});
            let (http, base, created, label) = (http.clone(), base.clone(), &created, &label);
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
                let took = start.elapsed();
                let done = created.fetch_add(1, Ordering::Relaxed) + 1;
                if done % 50 == 0 || done == n {
                    progress(label, done, n);
                }
                (ws, took)
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
    // Until every player's audio arrives at the fake (DAVE-encrypted, with DAVE).
    let label = format!("{} {n}: audio flowing", scenario.name());
    let ready_by = Instant::now() + Duration::from_secs(30 + n as u64 / 20);
    for i in 0..n {
        let guild = 1_000_000 + i as u64;
        let left = ready_by
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        fake.wait_for(guild, left, |v| {
            v.packets.iter().filter(|p| p.dave == dave).count() > 5
        })
        .await;
        if (i + 1) % 100 == 0 || i + 1 == n {
            progress(&label, i + 1, n);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    engine_report(&http, &base, true).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = engine_report(&http, &base, false).await;
    let t0 = Instant::now();
    let cpu0 = thread_cpu_us(node.pid, "quaver-tick-0");
    let process0 = process_cpu_us(node.pid);
    let threads0 = thread_times(node.pid);
    let mut threads = thread_count(node.pid);
    let (softirq0, steal0) = cpu_softirq_steal_ms(engine_cpu);
    let label = format!("{} {n}: measuring", scenario.name());
    for s in 0..seconds {
        progress(&label, s as usize, seconds as usize);
        tokio::time::sleep(Duration::from_secs(1)).await;
        threads = threads.max(thread_count(node.pid));
    }
    progress(&label, seconds as usize, seconds as usize);
    let after = engine_report(&http, &base, false).await;
    let cpu1 = thread_cpu_us(node.pid, "quaver-tick-0");
    let process1 = process_cpu_us(node.pid);
    let threads1 = thread_times(node.pid);
    let (softirq1, steal1) = cpu_softirq_steal_ms(engine_cpu);
    let t1 = Instant::now();
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let ticks = (num(&after, "ticks") - num(&before, "ticks")).max(1.0);
    let lateness = [
        num(&after, "latenessP50Us"),
        num(&after, "latenessP99Us"),
        num(&after, "latenessP999Us"),
        num(&after, "latenessMaxUs"),
    ];
    let nulled = (num(&after, "framesNulled") - num(&before, "framesNulled")) as u64;

    // What the receiver saw in the window: packets short of one per 20 ms per player
    // (a player that received nothing counts fully, with one packet of slack at each
    // edge), and pacing.
    let expected = ((t1 - t0).as_millis() / 20) as u64;
    let mut lost = 0u64;
    let mut received = 0u64;
    let mut dev = Histogram::<u64>::new(3).unwrap();
    let mut errors = Vec::new();
    for i in 0..n {
        let view = fake.connection(1_000_000 + i as u64);
        if let Some(v) = &view {
            errors.extend(v.errors.iter().take(3).cloned());
        }
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
    if !errors.is_empty() {
        eprintln!(
            "# the fake saw protocol errors, e.g. {:?}",
            &errors[..errors.len().min(3)]
        );
    }
    let rss = (rss_kb(node.pid) - rss0) / n as f64;
    let sent = num(&after, "packetsSent") as u64;
    let kernel_drops = fake.kernel_drops().unwrap_or(0);
    let io_threads = threads1
        .values()
        .filter(|(c, _)| *c == ThreadClass::Io)
        .count() as u64;
    let http_requests = media
        .as_ref()
        .map_or(0, |m| m.stats.requests.load(Ordering::Relaxed));
    drop(node);
    for s in sockets {
        s.abort();
    }
    drop(fake);
    // Measured with the node stopped, so nothing else runs on the engine's core.
    let floor_us = floor(scenario, dave);
    let player_ticks = ticks * n as f64;
    Step {
        scenario,
        source,
        players: n,
        dave,
        cost_us: (num(&after, "busyTotalNs") - num(&before, "busyTotalNs")) / 1000.0 / player_ticks,
        cpu_us: (cpu1 - cpu0) / player_ticks,
        process_cpu_us: (process1 - process0) / player_ticks,
        classes: class_cpu(&threads0, &threads1).per(player_ticks),
        threads,
        io_threads,
        http_requests,
        floor_us,
        lateness,
        arrival_dev_p99_us: dev.value_at_quantile(0.99) as f64,
        nulled,
        lost,
        rss_kb_per_player: rss,
        patch_p99_ms: patch_ms.value_at_quantile(0.99) as f64 / 1000.0,
        received,
        engine_sent: sent,
        kernel_drops,
        engine_cpu_softirq_ms_per_s: (softirq1 - softirq0) / (t1 - t0).as_secs_f64(),
        engine_cpu_steal_ms_per_s: (steal1 - steal0) / (t1 - t0).as_secs_f64(),
    }
}

/// The encoded track of `identifier` (a path under `localRoots`, or a URL), loaded once
/// and given to every player.
async fn load_track(http: &reqwest::Client, base: &str, identifier: &str) -> String {
    let url = format!("{base}/v4/loadtracks");
    let res = get_json(http, url, &[("identifier", identifier.to_owned())]).await;
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

/// What each packet must cost at least, measured now on the engine's core the way the
/// engine sends, in tick-like bursts: 1,000 connected sockets taken in turn, each with its own transport
/// cipher (AES-256-GCM) and, with `dave`, its own DAVE encryptor, sending an 80-byte
/// Opus payload to one loopback receiver that a thread on the harness core drains
/// with `recvmmsg`, as the fake does. For transcode also decoding, resampling and
/// encoding a 20 ms frame of the same MP3 (complexity 10).
fn floor(scenario: Scenario, dave: bool) -> f64 {
    use quaver_engine::transport::{
        DaveEncryptor, EncryptionMode, RtpState, SenderKey, TransportCipher,
    };
    const SOCKETS: usize = 1_000;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let engine_core = cores.first().copied();
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = receiver.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let drain = std::thread::spawn(move || drain_with_recvmmsg(&receiver, &stop2));
    let measure = std::thread::spawn(move || {
        if let Some(c) = engine_core {
            core_affinity::set_for_current(c);
        }
        struct Sender {
            socket: std::net::UdpSocket,
            cipher: TransportCipher,
            e2ee: DaveEncryptor,
            rtp: RtpState,
        }
        let mut senders: Vec<Sender> = (0..SOCKETS)
            .map(|i| {
                let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.connect(addr).unwrap();
                socket.set_nonblocking(true).unwrap();
                Sender {
                    socket,
                    cipher: TransportCipher::new(EncryptionMode::Aes256GcmRtpsize, [i as u8; 32]),
                    e2ee: DaveEncryptor::new(SenderKey([i as u8; 16])),
                    rtp: RtpState::new(i as u32 + 1),
                }
            })
            .collect();
        let mut packet = [0u8; 12 + 1275 + 36];
        let payload = 80; // long.opus at 32 kbps
                          // Bursts like ticks: every socket sends once, then a pause in which the
                          // receiver catches up; only the bursts are timed.
        let bursts = 30;
        let n = bursts * SOCKETS;
        let mut busy = Duration::ZERO;
        for _ in 0..bursts {
            let start = Instant::now();
            for s in senders.iter_mut() {
                packet[..12].copy_from_slice(&s.rtp.header());
                packet[12..12 + payload].fill(0x5A);
                let framed = if dave {
                    s.e2ee.encrypt_in_place(&mut packet[12..], payload).unwrap()
                } else {
                    payload
                };
                let len = s
                    .cipher
                    .seal_in_place(&mut packet, framed, s.rtp.nonce)
                    .unwrap();
                let _ = s.socket.send(&packet[..len]);
                s.rtp.advance();
            }
            busy += start.elapsed();
            std::thread::sleep(Duration::from_millis(15));
        }
        let send_us = busy.as_secs_f64() * 1e6 / n as f64;
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

/// Reads `socket` in batches of 64 until `stop`, spinning while it is empty.
fn drain_with_recvmmsg(socket: &std::net::UdpSocket, stop: &std::sync::atomic::AtomicBool) {
    use std::os::fd::AsRawFd;
    const BATCH: usize = 64;
    let mut buffers = vec![[0u8; 2048]; BATCH];
    // SAFETY: plain C structs, valid when zeroed; every pointer set below points into
    // `buffers` / `iovecs`, which outlive the calls.
    let mut iovecs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    // SAFETY: as above.
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    for i in 0..BATCH {
        iovecs[i] = libc::iovec {
            iov_base: buffers[i].as_mut_ptr().cast(),
            iov_len: 2048,
        };
        headers[i].msg_hdr.msg_iov = &mut iovecs[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: the headers point at live buffers of this function.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            std::hint::spin_loop();
        }
    }
}

/// Decoding + resampling (on this thread) and encoding one 20 ms frame of long.mp3.
fn decode_and_encode_us() -> f64 {
    use quaver_engine::codec::FrameEncoder;
    use quaver_engine::decode::{Input, Job, JobSpec, MediaSource, Pump};
    use quaver_engine::opus::OpusEncoder;
    use quaver_engine::ring::{RecordKind, PCM_FRAME_BYTES};
    let path = media_dir().join("long.mp3");
    let spec = JobSpec {
        input: Input::Open(Box::new(move || {
            Ok(Box::new(std::fs::File::open(path).unwrap()) as Box<dyn MediaSource>)
        })),
        extension: Some("mp3".into()),
        start_ms: 0,
        epoch: 1,
        buffer_ms: 1_000,
        resample: ResampleQuality::High,
        encoder_complexity: 10,
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
        "scenario,source,players,dave,cost_us_per_player_tick,cpu_us_per_player_tick,process_cpu_us_per_player_tick,tick_cpu_us_per_player_tick,decode_cpu_us_per_player_tick,io_cpu_us_per_player_tick,control_cpu_us_per_player_tick,threads,floor_us_per_player_tick,lateness_p50_us,lateness_p99_us,lateness_p999_us,lateness_max_us,arrival_dev_p99_us,nulled_frames,lost_packets,rss_kb_per_player,patch_p99_ms,receiver_kernel_drops,engine_cpu_softirq_ms_per_s,engine_cpu_steal_ms_per_s\n",
    );
    for r in results {
        csv.push_str(&format!(
            "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{:.3},{:.0},{:.0},{:.0},{:.0},{:.0},{},{},{:.1},{:.2},{},{:.1},{:.1}\n",
            r.scenario.name(),
            r.source.name(),
            r.players,
            r.dave,
            r.cost_us,
            r.cpu_us,
            r.process_cpu_us,
            r.classes.tick,
            r.classes.decode,
            r.classes.io,
            r.classes.control,
            r.threads,
            r.floor_us,
            r.lateness[0],
            r.lateness[1],
            r.lateness[2],
            r.lateness[3],
            r.arrival_dev_p99_us,
            r.nulled,
            r.lost,
            r.rss_kb_per_player,
            r.patch_p99_ms,
            r.kernel_drops,
            r.engine_cpu_softirq_ms_per_s,
            r.engine_cpu_steal_ms_per_s
        ));
    }
    let _ = std::fs::write(dir.join("density.csv"), csv);
    let _ = std::fs::write(dir.join("density.svg"), svg(results));
    println!("wrote {}/density.csv and density.svg", dir.display());
}

/// `--plot FILE.csv`: redraws the SVG of a CSV this harness wrote, next to it.
fn replot(csv: &std::path::Path) {
    let text = std::fs::read_to_string(csv).expect("the CSV reads");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let steps: Vec<Step> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |name: &str| {
                col(name)
                    .and_then(|i| f.get(i))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            Step {
                scenario: if f.first() == Some(&"transcode") {
                    Scenario::Transcode
                } else {
                    Scenario::Passthrough
                },
                // CSVs from before `--source` played files.
                source: if col("source").and_then(|i| f.get(i)) == Some(&"http") {
                    Source::Http
                } else {
                    Source::File
                },
                players: num("players") as usize,
                dave: col("dave").and_then(|i| f.get(i)) == Some(&"true"),
                cost_us: num("cost_us_per_player_tick"),
                cpu_us: num("cpu_us_per_player_tick"),
                process_cpu_us: num("process_cpu_us_per_player_tick"),
                classes: ClassCpu {
                    tick: num("tick_cpu_us_per_player_tick"),
                    decode: num("decode_cpu_us_per_player_tick"),
                    io: num("io_cpu_us_per_player_tick"),
                    control: num("control_cpu_us_per_player_tick"),
                },
                threads: num("threads") as u64,
                io_threads: 0,
                http_requests: 0,
                floor_us: num("floor_us_per_player_tick"),
                lateness: [
                    num("lateness_p50_us"),
                    num("lateness_p99_us"),
                    num("lateness_p999_us"),
                    num("lateness_max_us"),
                ],
                arrival_dev_p99_us: num("arrival_dev_p99_us"),
                nulled: num("nulled_frames") as u64,
                lost: num("lost_packets") as u64,
                rss_kb_per_player: num("rss_kb_per_player"),
                patch_p99_ms: num("patch_p99_ms"),
                received: 0,
                engine_sent: 0,
                kernel_drops: num("receiver_kernel_drops") as u64,
                engine_cpu_softirq_ms_per_s: num("engine_cpu_softirq_ms_per_s"),
                engine_cpu_steal_ms_per_s: num("engine_cpu_steal_ms_per_s"),
            }
        })
        .collect();
    let out = csv.with_extension("svg");
    std::fs::write(&out, svg(&steps)).expect("the SVG writes");
    println!("wrote {}", out.display());
}

/// A plot panel: title, left edge, and the named series it draws from a step.
type Panel = (
    &'static str,
    f64,
    Box<dyn Fn(&Step) -> Vec<(&'static str, f64)>>,
);

/// Two log-log panels against N: µs per player-tick (cost solid, floor dashed), and
/// tick lateness p50/p99/max with the 1 ms limit; passthrough blue, transcode red.
/// Decade gridlines, so both scenarios (5 µs and 100 µs per player) and lateness from
/// microseconds to tens of milliseconds stay readable on one page.
fn svg(results: &[Step]) -> String {
    let (w, h, pad) = (960.0, 400.0, 60.0);
    let panel_w = w / 2.0;
    let ns = results.iter().map(|r| r.players as f64);
    let min_n = ns.clone().fold(f64::MAX, f64::min).max(1.0);
    let max_n = ns.fold(1.0, f64::max).max(min_n * 2.0);
    let x = |n: usize, left: f64| {
        let t = ((n as f64).ln() - min_n.ln()) / (max_n.ln() - min_n.ln());
        left + pad + t * (panel_w - 1.5 * pad)
    };
    let mut out = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n"
    );
    let panels: [Panel; 2] = [
        (
            "µs per player-tick (solid: engine, dashed: floor)",
            0.0,
            Box::new(|r: &Step| vec![("cost", r.cost_us), ("floor", r.floor_us)]),
        ),
        (
            "tick lateness µs: p50, p99 (thick), max; limit p99 1 ms",
            panel_w,
            Box::new(|r: &Step| {
                vec![
                    ("p50", r.lateness[0]),
                    ("p99", r.lateness[1]),
                    ("max", r.lateness[3]),
                ]
            }),
        ),
    ];
    let colors = [
        ["#1f77b4", "#1f77b4", "#9ecae1"],
        ["#d62728", "#d62728", "#fc9272"],
    ];
    for (title, left, series) in panels.iter() {
        let max_v = results
            .iter()
            .flat_map(|r| series(r).into_iter().map(|(_, v)| v))
            .fold(10.0f64, f64::max);
        let decades = max_v.log10().ceil().max(1.0);
        let y = |v: f64| h - pad - v.max(1.0).log10() / decades * (h - 2.0 * pad);
        let right = left + panel_w - pad / 2.0;
        out.push_str(&format!("<text x='{}' y='24'>{title}</text>\n", left + pad));
        for d in 0..=decades as i32 {
            let v = 10f64.powi(d);
            out.push_str(&format!(
                "<line x1='{x0}' y1='{yv:.1}' x2='{right}' y2='{yv:.1}' stroke='#ddd'/><text x='{xt}' y='{yt:.1}' font-size='10' text-anchor='end'>{label}</text>\n",
                x0 = left + pad,
                yv = y(v),
                xt = left + pad - 4.0,
                yt = y(v) + 3.0,
                label = if v >= 1000.0 {
                    format!("{}k", v / 1000.0)
                } else {
                    format!("{v}")
                }
            ));
        }
        let mut positions: Vec<usize> = results.iter().map(|r| r.players).collect();
        positions.sort_unstable();
        positions.dedup();
        let mut last_label = f64::MIN;
        for &n in &positions {
            let px = x(n, *left);
            // Gridline for every step, a label only where it does not overlap.
            let label = px - last_label >= 28.0;
            if label {
                last_label = px;
            }
            {
                out.push_str(&format!(
                    "<line x1='{px:.1}' y1='{}' x2='{px:.1}' y2='{}' stroke='#eee'/>\n",
                    pad,
                    h - pad
                ));
                if label {
                    out.push_str(&format!(
                        "<text x='{px:.1}' y='{}' font-size='10' text-anchor='middle'>{n}</text>\n",
                        h - pad + 14.0
                    ));
                }
            }
        }
        out.push_str(&format!(
            "<line x1='{0}' y1='{1}' x2='{right}' y2='{1}' stroke='black'/><line x1='{0}' y1='{2}' x2='{0}' y2='{1}' stroke='black'/><text x='{3}' y='{4}' text-anchor='middle'>players (log)</text>\n",
            left + pad,
            h - pad,
            pad,
            left + panel_w / 2.0,
            h - 22.0
        ));
        if title.starts_with("tick lateness") {
            out.push_str(&format!(
                "<line x1='{}' y1='{1:.1}' x2='{right}' y2='{1:.1}' stroke='black' stroke-dasharray='6 4'/>\n",
                left + pad,
                y(1000.0)
            ));
        }
        for (si, scenario) in [Scenario::Passthrough, Scenario::Transcode]
            .iter()
            .enumerate()
        {
            let rows: Vec<&Step> = results.iter().filter(|r| r.scenario == *scenario).collect();
            if rows.is_empty() {
                continue;
            }
            for k in 0..series(rows[0]).len() {
                let name = series(rows[0])[k].0;
                let points: Vec<String> = rows
                    .iter()
                    .map(|r| format!("{:.1},{:.1}", x(r.players, *left), y(series(r)[k].1)))
                    .collect();
                let style = match name {
                    "floor" => " stroke-dasharray='5 3' stroke-width='1.5'",
                    "p99" | "cost" => " stroke-width='2.5'",
                    _ => " stroke-width='1.2'",
                };
                out.push_str(&format!(
                    "<polyline fill='none' stroke='{}'{style} points='{}'/>\n",
                    colors[si][k.min(2)],
                    points.join(" ")
                ));
                for (p, r) in points.iter().zip(&rows) {
                    let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                    out.push_str(&format!(
                        "<circle cx='{px}' cy='{py}' r='2.5' fill='{}'/>\n",
                        colors[si][k.min(2)]
                    ));
                    if matches!(name, "cost" | "p99") && r.over_limit() {
                        out.push_str(&format!(
                            "<circle cx='{px}' cy='{py}' r='6' fill='none' stroke='black'/>\n"
                        ));
                    }
                }
            }
            out.push_str(&format!(
                "<text x='{}' y='{}' fill='{}'>{}</text>\n",
                right - 90.0,
                pad - 18.0 + 14.0 * si as f64,
                colors[si][0],
                scenario.name()
            ));
        }
        out.push_str(&format!(
            "<circle cx='{}' cy='{}' r='6' fill='none' stroke='black'/><text x='{}' y='{}' font-size='10'>over a limit (nulled, lost, p99 &gt; 1 ms)</text>\n",
            left + pad + 10.0,
            h - 8.0,
            left + pad + 20.0,
            h - 4.0
        ));
    }
    out.push_str("</svg>\n");
    out
}
