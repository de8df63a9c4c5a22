//! Real Lavalink client libraries drive the real `quaver` binary: Lavalink.py,
//! lavalink-client, Shoukaku and lavaclient, pinned in `tests/clients/` and installed
//! by `.ci/deps`. Each test starts the binary, a media server and the fake Discord voice
//! server, then runs one client script (tests/clients/{node,python}/) that does what a
//! bot does through the library's public API and prints one JSON line per check. The
//! test passes when the script exits 0 and the fake voice server received real Opus
//! audio for the script's guild.

// The scripts' check lines are echoed for the issue notes (`-- --nocapture`).
#![allow(clippy::print_stdout)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_discord::{FakeDiscord, FakeDiscordOptions};
use common::media_server::MediaServer;
use common::*;

/// How long one client script may run before it is killed and the test fails. The
/// scripts bound each of their own steps far below this; this only stops a hang.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);
/// Forced reconnects in Lavalink.py's resume check (`QUAVER_RECONNECTS` overrides, e.g.
/// 200 by hand).
const RECONNECTS: &str = "20";
/// Audio packets the fake must have opened and decoded for the guild: half a second's
/// worth, so the track really played rather than sent a frame or two. (Each script
/// waits for two connected playerUpdates a second apart, about 50 packets.)
const MIN_AUDIO_PACKETS: usize = 25;

fn clients_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
}

/// What to run for one client, or a failure naming `.ci/deps` when it is not installed.
fn client_command(client: &str) -> Command {
    let dir = clients_dir();
    let installed = |path: &Path| {
        assert!(
            path.exists(),
            "{} is missing: the client library suites need `.ci/deps` to install them \
             (npm ci in tests/clients/node, a venv in tests/clients/python)",
            path.display()
        );
    };
    if client == "lavalink_py" {
        let python = dir.join("python/.venv/bin/python");
        installed(&python);
        installed(&dir.join("python/.venv/.installed"));
        let mut c = Command::new(python);
        c.arg(dir.join("python/lavalink_py.py"));
        c
    } else {
        let node_dir = dir.join("node");
        installed(&node_dir.join("node_modules/.installed"));
        let mut c = Command::new("node");
        c.arg(node_dir.join(format!("{client}.mjs")))
            .current_dir(node_dir);
        c
    }
}

/// The output of a finished (or killed) script.
struct ScriptRun {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion, killing it after [`SCRIPT_LIMIT`]. Blocking; run it on
/// a blocking thread so the servers keep running.
fn run_script(mut command: Command) -> ScriptRun {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client script starts (is node / python3 installed? run .ci/deps)");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + SCRIPT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ScriptRun {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Starts the binary, media server and fake voice server, runs `client`'s script
/// against them for `guild`, and checks its exit status and the audio the fake got.
async fn drive(client: &str, guild: u64) {
    let mut command = client_command(client);
    let fake = FakeDiscord::start(FakeDiscordOptions::default()).await;
    let media = MediaServer::start().await;
    let node = TestNode::start_binary(&[]).await;
    let voice = fake.voice_state(guild, USER_ID.parse().unwrap());
    let text = |key: &str| voice[key].as_str().unwrap().to_owned();
    command
        .env("QUAVER_HOST", node.addr.ip().to_string())
        .env("QUAVER_PORT", node.addr.port().to_string())
        .env("QUAVER_PASSWORD", PASSWORD)
        .env("QUAVER_USER_ID", USER_ID)
        .env("QUAVER_GUILD_ID", guild.to_string())
        .env("QUAVER_MEDIA_URL", media.url("/media/long.mp3"))
        .env("QUAVER_MISSING_URL", media.url("/missing"))
        .env("QUAVER_VOICE_ENDPOINT", text("endpoint"))
        .env("QUAVER_VOICE_TOKEN", text("token"))
        .env("QUAVER_VOICE_SESSION_ID", text("sessionId"))
        .env("QUAVER_VOICE_CHANNEL_ID", text("channelId"))
        .env(
            "QUAVER_RECONNECTS",
            std::env::var("QUAVER_RECONNECTS").unwrap_or_else(|_| RECONNECTS.into()),
        )
        .env(
            "QUAVER_SCRIPT_TIMEOUT",
            (SCRIPT_LIMIT.as_secs() - 10).to_string(),
        );
    let run = tokio::task::spawn_blocking(move || run_script(command))
        .await
        .unwrap();
    println!("{client}:\n{}", run.stdout);
    let failed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("\"ok\": false") || l.contains("\"ok\":false"))
        .collect();
    assert!(
        run.status.is_some_and(|s| s.success()) && failed.is_empty(),
        "{client} failed ({}); failed checks:\n{}\n--- stdout:\n{}\n--- stderr:\n{}\n--- quaver log (tail):\n{}",
        match run.status {
            Some(s) => format!("exit {s}"),
            None => format!("killed after {} s", SCRIPT_LIMIT.as_secs()),
        },
        failed.join("\n"),
        run.stdout,
        tail(&run.stderr, 6000),
        tail(&node.log(), 6000),
    );
    let view = fake
        .connection(guild)
        .unwrap_or_else(|| panic!("{client}: the node never connected to the fake voice server"));
    let decoded = view.audio_packets().filter(|p| !p.opus.is_empty()).count();
    assert!(
        decoded >= MIN_AUDIO_PACKETS && view.errors.is_empty(),
        "{client}: {decoded} decoded audio packets (want {MIN_AUDIO_PACKETS}+), errors {:?}; {view:#?}",
        view.errors
    );
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lavalink_py() {
    drive("lavalink_py", 600_000_000_000_000_001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lavalink_client() {
    drive("lavalink_client", 600_000_000_000_000_002).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoukaku() {
    drive("shoukaku", 600_000_000_000_000_003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lavaclient() {
    drive("lavaclient", 600_000_000_000_000_004).await;
}
