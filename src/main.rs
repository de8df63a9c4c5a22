//! `quaver`: a Lavalink v4 compatible audio node.

// The command line prints usage and the configuration reference to stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use quaver::config::{Config, ConfigSource};
use quaver::server::Running;

const USAGE: &str = "usage: quaver [--config PATH] [--spring.config.location=PATH] [--KEY=VALUE]...
              [--print-config-reference] [--version] [--help]

Runs a Lavalink v4 compatible audio node. Configuration comes from PATH, else
./application.yml if present, else embedded defaults (port 2333, password
youshallnotpass); environment variables override it (SERVER_PORT, ...), and
--KEY=VALUE arguments override those, as Spring ranks them (--server.port=2334).";

enum Command {
    Run {
        config: Option<PathBuf>,
        /// `--key=value` arguments.
        overrides: Vec<(String, String)>,
    },
    PrintReference,
    Version,
    Help,
}

fn parse_args() -> Result<Command, String> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    let mut overrides = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => config = Some(args.next().ok_or("--config needs a path")?.into()),
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            s if s.starts_with("--spring.config.location=") => {
                config = Some(spring_location(&s["--spring.config.location=".len()..])?)
            }
            "--print-config-reference" => return Ok(Command::PrintReference),
            "--version" | "-V" => return Ok(Command::Version),
            "--help" | "-h" => return Ok(Command::Help),
            s => match s.strip_prefix("--").and_then(|kv| kv.split_once('=')) {
                Some((key, value)) if !key.is_empty() => {
                    overrides.push((key.to_owned(), value.to_owned()))
                }
                _ => return Err(format!("unknown argument {s:?}")),
            },
        }
    }
    Ok(Command::Run { config, overrides })
}

/// The file a `--spring.config.location` names: its first location, without Spring's
/// `optional:` and `file:` prefixes; a directory (ending in `/`) means its
/// `application.yml`.
fn spring_location(value: &str) -> Result<PathBuf, String> {
    let first = value.split(',').next().unwrap_or_default().trim();
    let path = first.strip_prefix("optional:").unwrap_or(first);
    let path = path.strip_prefix("file:").unwrap_or(path);
    if path.is_empty() || path.starts_with("classpath:") {
        return Err(format!(
            "--spring.config.location={value}: give a file or a directory"
        ));
    }
    Ok(if path.ends_with('/') {
        PathBuf::from(path).join("application.yml")
    } else {
        PathBuf::from(path)
    })
}

fn init_logging(config: &Config) {
    let root = config.logging.level_root.to_ascii_lowercase();
    let mut filter = root.clone();
    for (logger, level) in &config.logging.levels {
        if logger == "lavalink" || logger == "quaver" {
            let level = level.to_ascii_lowercase();
            filter.push_str(&format!(
                ",quaver={level},quaver_control={level},quaver_engine={level}"
            ));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .finish()
        .with(LogCounter)
        .init();
}

/// Counts every log event the filter lets through, by level, for
/// `logback_appender_total{level}`.
struct LogCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let level = match *event.metadata().level() {
            tracing::Level::TRACE => "trace",
            tracing::Level::DEBUG => "debug",
            tracing::Level::INFO => "info",
            tracing::Level::WARN => "warn",
            tracing::Level::ERROR => "error",
        };
        quaver_control::stats::counters::count_log(level);
    }
}

/// Threads of the control plane's blocking pool, where loading a track probes its
/// file or URL with blocking reads (as lavaplayer loads on a fixed pool of ten). A
/// burst of loads queues for these instead of starting a thread each (tokio's default
/// allows 512); playing never uses them.
const BLOCKING_THREADS: usize = 10;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("quaver: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let command = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quaver: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (explicit, overrides) = match command {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::PrintReference => {
            print!("{}", quaver::config::reference_markdown());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            print!("{}", quaver::server::version_text());
            return ExitCode::SUCCESS;
        }
        Command::Run { config, overrides } => (config, overrides),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let loaded = match Config::load_with_args(explicit.as_deref(), &cwd, env_vars(), overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("quaver: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&loaded.config);
    match &loaded.source {
        ConfigSource::File(p) => tracing::info!(path = %p.display(), "configuration loaded"),
        ConfigSource::Embedded => {
            tracing::info!("no application.yml found; using embedded defaults")
        }
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let running = match Running::start(&loaded.config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP server");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Err(e) = running.shutdown().await {
        tracing::error!(error = %e, "error while shutting down");
    }
    ExitCode::SUCCESS
}

/// The environment, with non-UTF-8 entries converted lossily rather than panicking.
fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spring_config_locations_name_a_file() {
        let file = |v: &str| spring_location(v).unwrap();
        assert_eq!(
            file("/etc/lavalink/application.yml"),
            PathBuf::from("/etc/lavalink/application.yml")
        );
        assert_eq!(
            file("file:./conf/"),
            PathBuf::from("./conf/application.yml")
        );
        assert_eq!(
            file("optional:file:/a.yml,classpath:/b.yml"),
            PathBuf::from("/a.yml")
        );
        assert!(spring_location("classpath:/application.yml").is_err());
        assert!(spring_location("").is_err());
    }
}
