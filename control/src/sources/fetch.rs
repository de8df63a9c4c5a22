//! Playback fetches: every network track's bytes come through one async task on a
//! small fixed set of I/O threads, into the track's
//! [`StreamBuffer`](quaver_engine::decode::stream::StreamBuffer), which the decode job
//! reads without ever waiting. No thread per stream, whatever the number of players.
//!
//! The task is a thin shell around the buffer's sans-IO plan: connect where the plan
//! says (a `Range` request after the first), read while it says read, wait while the
//! read-ahead is full, stop when the job is gone. A dropped or stalled connection
//! (no byte for `socketTimeoutMs`) is resumed where it stopped, a few times in a row
//! at most, when the server takes ranges.
//!
//! The I/O threads run their own current-thread runtimes rather than the control
//! plane's: fetches are the node's busiest sockets (one per playing network track),
//! and keeping them apart keeps REST and WebSocket latency out of their way and lets
//! the density bench account for their CPU on their own (`io_cpu_us_per_player_tick`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quaver_engine::decode::stream::{Plan, Readahead, StreamBuffer, StreamHead};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::http::HttpTimeouts;
use super::http_get::{HttpGet, Response};

/// Reconnections in a row (without a byte in between) before a stream fails.
const MAX_RETRIES: u32 = 3;
/// Pause before reconnecting, times the number of failures in a row.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The I/O threads: each runs a current-thread tokio runtime for fetch tasks.
#[derive(Debug)]
pub struct IoThreads {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl IoThreads {
    /// Starts `n` I/O threads (`quaver-io-N`).
    pub fn start(n: usize) -> std::io::Result<IoThreads> {
        let mut io = IoThreads {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // Name resolution (getaddrinfo) is the only blocking work here.
                .max_blocking_threads(2)
                .thread_name(format!("quaver-io-{i}-dns"))
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            io.handles.push(runtime.handle().clone());
            io.stops.push(stop);
            io.threads.push(
                std::thread::Builder::new()
                    .name(format!("quaver-io-{i}"))
                    .spawn(move || {
                        let _ = runtime.block_on(stopped);
                        runtime.shutdown_timeout(Duration::from_millis(100));
                    })?,
            );
        }
        Ok(io)
    }
}

impl Drop for IoThreads {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts fetches on the I/O threads, round robin. The threads stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Fetcher {
    /// Held so the threads live as long as any clone (stopped on the last drop).
    _io: Arc<IoThreads>,
    lanes: Arc<[Handle]>,
    client: HttpGet,
    next: Arc<AtomicUsize>,
    timeouts: HttpTimeouts,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("threads", &self.lanes.len())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl Fetcher {
    /// A fetcher on `io`'s threads.
    pub fn new(io: IoThreads, timeouts: HttpTimeouts) -> std::io::Result<Fetcher> {
        let client = HttpGet::new(timeouts).map_err(std::io::Error::other)?;
        Ok(Fetcher {
            lanes: io.handles.clone().into(),
            _io: Arc::new(io),
            client,
            next: Arc::new(AtomicUsize::new(0)),
            timeouts,
        })
    }

    /// Starts fetching `url` into a new buffer that reads `readahead` ahead.
    pub fn stream(&self, url: String, readahead: Readahead) -> Arc<StreamBuffer> {
        let notify = Arc::new(Notify::new());
        let wake = notify.clone();
        let buffer = Arc::new(StreamBuffer::sized(
            readahead,
            Arc::new(move || wake.notify_one()),
        ));
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let task = Fetch {
            client: self.client.clone(),
            url,
            buffer: buffer.clone(),
            notify,
            timeouts: self.timeouts,
        };
        self.lanes[lane].spawn(task.run());
        buffer
    }
}

/// An open connection: its response, the offset of its next byte, bytes it delivered
/// that the full cache could not take yet, and when it last made progress.
struct Connection {
    response: Response,
    at: u64,
    pending: Bytes,
    progress: Instant,
}

struct Fetch {
    client: HttpGet,
    url: String,
    buffer: Arc<StreamBuffer>,
    notify: Arc<Notify>,
    timeouts: HttpTimeouts,
}

/// Why a connection could not be made.
struct ConnectError {
    message: String,
    /// Retrying cannot help (the server answered, and not with the body).
    fatal: bool,
}

impl Fetch {
    async fn run(self) {
        let mut connection: Option<Connection> = None;
        let mut failures = 0u32;
        loop {
            match self.buffer.plan(connection.as_ref().map(|c| c.at)) {
                Plan::Stop => return,
                Plan::Wait => {
                    self.notify.notified().await;
                    // Time spent not asking for bytes is not a stall.
                    if let Some(c) = &mut connection {
                        c.progress = Instant::now();
                    }
                }
                Plan::Connect(at) => {
                    connection = None;
                    let seekable = self.buffer.head().is_some_and(|h| h.seekable);
                    if at > 0 && !seekable {
                        self.buffer.fail(
                            "the connection to the server was lost, and the server does not \
                             support range requests"
                                .into(),
                        );
                        return;
                    }
                    if failures > 0 {
                        tokio::time::sleep(RETRY_BACKOFF * failures).await;
                    }
                    match self.connect(at).await {
                        Ok(c) => connection = Some(c),
                        Err(e) => {
                            failures += 1;
                            let first = self.buffer.head().is_none();
                            if e.fatal || first || failures > MAX_RETRIES {
                                self.buffer.fail(e.message);
                                return;
                            }
                        }
                    }
                }
                Plan::Read => {
                    let Some(c) = &mut connection else {
                        continue;
                    };
                    if !c.pending.is_empty() {
                        let n = self.buffer.store(c.at, &c.pending);
                        c.at += n as u64;
                        let _ = c.pending.split_to(n);
                        if n == 0 {
                            self.notify.notified().await;
                            c.progress = Instant::now();
                        }
                        continue;
                    }
                    let deadline = c.progress + self.timeouts.socket;
                    let read = tokio::select! {
                        read = tokio::time::timeout_at(deadline, c.response.chunk()) => read,
                        // The plan may have changed (a seek elsewhere, the job gone).
                        _ = self.notify.notified() => continue,
                    };
                    let lost = match read {
                        Ok(Ok(Some(bytes))) => {
                            failures = 0;
                            c.progress = Instant::now();
                            let n = self.buffer.store(c.at, &bytes);
                            c.at += n as u64;
                            c.pending = bytes.slice(n..);
                            continue;
                        }
                        Ok(Ok(None)) => {
                            if self.buffer.body_ended(c.at) {
                                connection = None;
                                continue;
                            }
                            "the server closed the connection before the end of the file".to_owned()
                        }
                        Ok(Err(e)) => format!("the connection to the server was lost: {e}"),
                        Err(_) => "the server stopped sending (socket timeout)".to_owned(),
                    };
                    connection = None;
                    failures += 1;
                    let seekable = self.buffer.head().is_some_and(|h| h.seekable);
                    if !seekable || failures > MAX_RETRIES {
                        self.buffer.fail(lost);
                        return;
                    }
                }
            }
        }
    }

    /// Opens a connection at `at` (a `Range` request unless 0) and reports it to the
    /// buffer, with the head on the first one.
    async fn connect(&self, at: u64) -> Result<Connection, ConnectError> {
        let response = self
            .client
            .get(&self.url, at)
            .await
            .map_err(|e| ConnectError {
                message: e.to_string(),
                fatal: false,
            })?;
        let status = response.status.as_u16();
        if !(200..300).contains(&status) {
            return Err(ConnectError {
                message: format!("Not success status code: {status}"),
                fatal: true,
            });
        }
        if at > 0 && status != 206 {
            return Err(ConnectError {
                message: format!("the server did not honour a range request (status {status})"),
                fatal: true,
            });
        }
        self.buffer.connected(head_of(&response, at));
        Ok(Connection {
            response,
            at,
            pending: Bytes::new(),
            progress: Instant::now(),
        })
    }
}

/// What a response says about the whole body.
fn head_of(response: &Response, at: u64) -> StreamHead {
    let content_length = response
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    let length = if response.status.as_u16() == 206 {
        // `Content-Range: bytes a-b/total`
        response
            .header("content-range")
            .and_then(|v| v.rsplit('/').next())
            .and_then(|t| t.parse().ok())
            .or(content_length.map(|l| l + at))
    } else {
        content_length
    };
    let icy = response
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("icy-"));
    StreamHead {
        length,
        seekable: length.is_some()
            && !icy
            && response
                .header("accept-ranges")
                .is_some_and(|v| v.eq_ignore_ascii_case("bytes")),
    }
}
