//! The real `quaver` binary as a child process: a generated `application.yml` in a
//! temporary directory, the log in a file there, killed and cleaned up on drop. Shared
//! by the integration tests ([`super::TestNode::start_binary`]) and the density
//! benchmark.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The binary cargo built for this test or benchmark (the release build for benches).
const BINARY: &str = env!("CARGO_BIN_EXE_quaver");

/// A running `quaver` process.
pub struct NodeProcess {
    child: std::process::Child,
    /// The process id (of `taskset`'s exec, i.e. of quaver itself).
    pub pid: u32,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: PathBuf,
}

impl NodeProcess {
    /// Picks a free loopback port, writes `config(port)` as the node's
    /// `application.yml`, starts the binary (under `taskset -c cpu` when `cpu` is given
    /// and taskset exists) with `env` added, and waits until `/version` answers with
    /// `password`; panics with the node's log if it does not within 20 s.
    pub async fn start(
        config: impl FnOnce(u16) -> String,
        env: &[(&str, &str)],
        cpu: Option<usize>,
        password: &str,
    ) -> NodeProcess {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("quaver-node-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config_path = dir.join("application.yml");
        std::fs::write(&config_path, config(port)).unwrap();
        let log = std::fs::File::create(dir.join("quaver.log")).unwrap();
        let taskset = std::path::Path::new("/usr/bin/taskset");
        // `QUAVER_NODE_WRAPPER="heaptrack -o /tmp/node"` runs the node under a profiler
        // (the pid, and so the node's CPU and RSS figures, are then the wrapper's).
        let wrapper = std::env::var("QUAVER_NODE_WRAPPER").unwrap_or_default();
        let mut words: Vec<String> = wrapper.split_whitespace().map(str::to_owned).collect();
        if let Some(cpu) = cpu.filter(|_| taskset.exists()) {
            words.splice(
                0..0,
                [taskset.display().to_string(), "-c".into(), cpu.to_string()],
            );
        }
        words.push(BINARY.to_owned());
        let mut command = std::process::Command::new(&words[0]);
        command.args(&words[1..]);
        let child = command
            .arg("--config")
            .arg(&config_path)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the quaver binary starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let node = NodeProcess {
            pid: child.id(),
            child,
            addr,
            base: format!("http://{addr}"),
            dir,
        };
        quaver_control::tls::install_crypto_provider();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = http
                .get(format!("{}/version", node.base))
                .header("Authorization", password)
                .send()
                .await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "quaver did not answer on {}; its log:\n{}",
                node.base,
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("quaver.log")).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
