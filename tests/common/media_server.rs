//! A local HTTP server with the test media: ranges, lying content types, stalls,
//! dropped connections, an Icecast-style radio and playlists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream;

use super::media_dir;

/// Request counters, for proving that seeks use ranges instead of re-downloading.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub requests: AtomicU64,
    pub range_requests: AtomicU64,
    pub bytes: AtomicU64,
}

/// A running media server.
pub struct MediaServer {
    pub base: String,
    pub stats: Arc<ServerStats>,
}

impl MediaServer {
    pub async fn start() -> MediaServer {
        let stats = Arc::new(ServerStats::default());
        let app = Router::new()
            .route("/media/{file}", get(media))
            .route("/lying/{file}", get(lying))
            .route("/stall/{file}", get(stall))
            .route("/slow/{file}", get(slow))
            .route("/stall-open/{file}", get(stall_open))
            .route("/drop/{file}", get(drop_midway))
            .route("/radio", get(radio))
            .route("/list.m3u", get(m3u))
            .route("/list.pls", get(pls))
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .with_state(stats.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        MediaServer { base, stats }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("mp3") => "audio/mpeg",
        Some("flac") => "audio/flac",
        Some("ogg") | Some("opus") => "audio/ogg",
        Some("m4a") => "audio/mp4",
        Some("webm") => "audio/webm",
        _ => "application/octet-stream",
    }
}

fn read(file: &str) -> Option<Vec<u8>> {
    if file.contains('/') || file.contains("..") {
        return None;
    }
    std::fs::read(media_dir().join(file)).ok()
}

fn range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes=")?.split('-').next()?.parse().ok()
}

/// Serves `data` honouring `Range: bytes=N-`; `cut` keeps only that fraction of the
/// answered bytes and then fails the connection; `stall` then never finishes.
fn serve(
    stats: &ServerStats,
    headers: &HeaderMap,
    data: Vec<u8>,
    ctype: &str,
    cut: Option<f32>,
    stall: bool,
) -> Response {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let total = data.len() as u64;
    let start = range_start(headers).unwrap_or(0).min(total);
    if headers.contains_key(header::RANGE) {
        stats.range_requests.fetch_add(1, Ordering::Relaxed);
    }
    let body = data[start as usize..].to_vec();
    let len = body.len();
    let keep = cut.map_or(len, |f| (len as f32 * f) as usize);
    stats.bytes.fetch_add(keep as u64, Ordering::Relaxed);
    let first: Result<Bytes, std::io::Error> = Ok(Bytes::from(body[..keep].to_vec()));
    let body = if stall {
        Body::from_stream(stream::iter([first]).chain(stream::pending()))
    } else if cut.is_some() {
        // Fail only after the first part has surely reached the client.
        let broken = stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Err::<Bytes, _>(std::io::Error::other("dropped on purpose"))
        });
        Body::from_stream(stream::iter([first]).chain(broken))
    } else {
        Body::from(Bytes::from(body))
    };
    let status = if headers.contains_key(header::RANGE) {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, ctype.parse().unwrap());
    h.insert(header::CONTENT_LENGTH, len.into());
    h.insert(header::ACCEPT_RANGES, "bytes".parse().unwrap());
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", total.saturating_sub(1))
                .parse()
                .unwrap(),
        );
    }
    res
}

use futures_util::StreamExt;

async fn media(
    State(s): State<Arc<ServerStats>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match read(&file) {
        Some(d) => serve(&s, &headers, d, content_type(&file), None, false),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A FLAC file served as `text/html` at a path without an extension.
async fn lying(State(s): State<Arc<ServerStats>>, headers: HeaderMap) -> Response {
    serve(
        &s,
        &headers,
        read("sine.flac").unwrap(),
        "text/html",
        None,
        false,
    )
}

/// The file, after a second's wait before the response (a slow server).
async fn slow(
    State(s): State<Arc<ServerStats>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    media(State(s), Path(file), headers).await
}

/// The first 64 bytes of the file, then nothing: a track that cannot even open.
async fn stall_open(
    State(s): State<Arc<ServerStats>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match read(&file) {
        Some(d) => {
            let cut = 64.0 / d.len() as f32;
            serve(&s, &headers, d, content_type(&file), Some(cut), true)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn stall(
    State(s): State<Arc<ServerStats>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match read(&file) {
        Some(d) => serve(&s, &headers, d, content_type(&file), Some(0.3), true),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Drops the connection after 40 % of the file; it offers no ranges, so it cannot be
/// resumed.
async fn drop_midway(
    State(s): State<Arc<ServerStats>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.contains_key(header::RANGE) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match read(&file) {
        Some(d) => {
            let mut res = serve(&s, &headers, d, content_type(&file), Some(0.4), false);
            res.headers_mut().remove(header::ACCEPT_RANGES);
            res
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An Icecast-style stream: the MP3 looped, with `StreamTitle` metadata every 8192
/// bytes when asked for, for at most 30 s of audio.
async fn radio(headers: HeaderMap) -> Response {
    const METAINT: usize = 8192;
    let mp3 = read("sine.mp3").unwrap();
    let with_meta = headers.get("icy-metadata").is_some_and(|v| v == "1");
    let mut block = b"StreamTitle='Sine Radio';".to_vec();
    block.resize(block.len().div_ceil(16) * 16, 0);
    let chunks = (0..15).flat_map(move |_| {
        let mut out: Vec<Result<Bytes, std::io::Error>> = Vec::new();
        for piece in mp3.chunks(METAINT) {
            out.push(Ok(Bytes::from(piece.to_vec())));
            if with_meta && piece.len() == METAINT {
                let mut meta = vec![(block.len() / 16) as u8];
                meta.extend_from_slice(&block);
                out.push(Ok(Bytes::from(meta)));
            }
        }
        out
    });
    let mut res = Body::from_stream(stream::iter(chunks)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, "audio/mpeg".parse().unwrap());
    h.insert("icy-name", "Quaver Radio".parse().unwrap());
    if with_meta {
        h.insert("icy-metaint", METAINT.into());
    }
    res
}

async fn m3u(headers: HeaderMap) -> impl IntoResponse {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = format!("#EXTM3U\n#PLAYLIST:Sines\n#EXTINF:2,First sine\nmedia/sine.mp3\n#EXTINF:2,Second sine\nhttp://{host}/media/sine.flac\n");
    ([(header::CONTENT_TYPE, "audio/x-mpegurl")], body)
}

async fn pls() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "audio/x-scpls")],
        "[playlist]\nFile1=/media/sine.ogg\nTitle1=Ogg sine\nNumberOfEntries=1\n",
    )
}
