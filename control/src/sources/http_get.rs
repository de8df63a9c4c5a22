//! The HTTP GET behind playback fetches: one HTTP/1.1 connection per request, never
//! pooled, with a small read buffer.
//!
//! Why not a general client (reqwest): its hyper connections grow their read buffer
//! up to ~400 KB when the server is fast (any CDN is), keep it while the track plays,
//! and park finished connections in a pool with their buffers. At 100 HTTP players
//! that was 60 MB of the node's ~80 MB heap, over twice the rest of a player. A
//! fetch has one connection at a time and reads from it at the audio's pace, so
//! here each connection is owned by the fetch that opened it, reads at most
//! [`READ_BUFFER`] at a time, and closes when the fetch drops it.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderValue, HOST, LOCATION, RANGE, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

use super::http::HttpTimeouts;

/// The most a connection reads from its socket at once: hyper's smallest maximum.
/// An idle connection (its stream's read-ahead full) keeps this buffer; a larger one
/// saves nothing but a read call per 8 KiB (a second of 64 kb/s audio).
const READ_BUFFER: usize = 8 * 1024;
/// Redirects followed before giving up (browsers and reqwest stop at 10 or 20).
const MAX_REDIRECTS: usize = 10;

/// Why a GET failed. Its `Display` is the sentence a track exception carries.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("invalid URL {0}")]
    Url(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {host}: {source}")]
    Connect {
        host: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("the server did not answer (socket timeout)")]
    AnswerTimeout,
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
}

/// A response whose body is still on its connection.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
}

impl Response {
    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            let frame = poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                    // Trailers: nothing we use.
                }
            }
        }
    }

    /// A header's value as trimmed text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }
}

/// Makes GET requests, each on a connection of its own; cheap to clone.
#[derive(Clone)]
pub struct HttpGet {
    tls: TlsConnector,
    user_agent: HeaderValue,
    timeouts: HttpTimeouts,
}

impl std::fmt::Debug for HttpGet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGet")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl HttpGet {
    /// A client trusting the web PKI roots.
    pub fn new(timeouts: HttpTimeouts) -> Result<HttpGet, String> {
        let tls = crate::tls::client_config(crate::tls::web_pki_roots())?;
        Ok(HttpGet {
            tls: TlsConnector::from(Arc::new(tls)),
            user_agent: HeaderValue::from_static(concat!("Quaver/", env!("CARGO_PKG_VERSION"))),
            timeouts,
        })
    }

    /// GETs `url` from byte `from` on (a `Range` request unless 0), following
    /// redirects. Any status comes back as a response; the caller judges it.
    pub async fn get(&self, url: &str, from: u64) -> Result<Response, GetError> {
        let mut url = Url::parse(url).map_err(|e| GetError::Url(format!("{url}: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.get_once(&url, from).await?;
            let redirect = matches!(response.status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let location = response.header(LOCATION.as_str()).map(str::to_owned);
            match location {
                Some(location) if redirect => {
                    url = url
                        .join(&location)
                        .map_err(|e| GetError::Url(format!("{location}: {e}")))?;
                }
                _ => return Ok(response),
            }
        }
        Err(GetError::TooManyRedirects)
    }

    /// One request on a new connection.
    async fn get_once(&self, url: &Url, from: u64) -> Result<Response, GetError> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(GetError::Url(format!("{url}: scheme {other}"))),
        };
        let host = url
            .host_str()
            .ok_or_else(|| GetError::Url(format!("{url}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| GetError::Url(format!("{url}: no port")))?;
        let connect = async {
            let tcp = connect_tcp(&host, port).await?;
            let _ = tcp.set_nodelay(true);
            if !tls {
                return self.handshake(TokioIo::new(tcp)).await;
            }
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| GetError::Url(format!("{url}: {e}")))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|source| GetError::Tls {
                    host: host.clone(),
                    source,
                })?;
            self.handshake(TokioIo::new(stream)).await
        };
        let mut sender = tokio::time::timeout(self.timeouts.connect, connect)
            .await
            .map_err(|_| GetError::ConnectTimeout(host.clone()))??;

        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let mut request = Request::get(if target.is_empty() { "/" } else { target })
            .header(HOST, authority)
            .header(USER_AGENT, self.user_agent.clone())
            .header("accept", "*/*");
        if from > 0 {
            request = request.header(RANGE, format!("bytes={from}-"));
        }
        let request = request
            .body(String::new())
            .map_err(|e| GetError::Url(format!("{url}: {e}")))?;
        let response = tokio::time::timeout(self.timeouts.socket, sender.send_request(request))
            .await
            .map_err(|_| GetError::AnswerTimeout)??;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// An HTTP/1.1 handshake on `io`; the connection runs as a task of its own on
    /// this I/O thread until its response body is done or dropped.
    async fn handshake<T>(
        &self,
        io: T,
    ) -> Result<hyper::client::conn::http1::SendRequest<String>, GetError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(READ_BUFFER)
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            // Its errors reach the body reader.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// A TCP connection to the first address of `host` that answers.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, GetError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| GetError::Resolve {
            host: host.to_owned(),
            source,
        })?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(GetError::Connect {
        host: host.to_owned(),
        source: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn timeouts(secs: u64) -> HttpTimeouts {
        HttpTimeouts {
            connect: Duration::from_secs(secs),
            socket: Duration::from_secs(secs),
        }
    }

    /// A one-shot server that answers each connection with the next canned response
    /// and returns the requests it saw.
    async fn serve(answers: Vec<String>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    n += s.read(&mut buf[n..]).await.unwrap();
                }
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        (base, task)
    }

    /// Our TLS configuration needs no process-wide default rustls provider.
    #[test]
    fn the_client_builds_with_our_tls() {
        HttpGet::new(timeouts(1)).expect("the client builds");
    }

    #[tokio::test]
    async fn follows_a_relative_redirect_and_asks_for_the_range() {
        let body = "x".repeat(100_000);
        let (base, seen) = serve(vec![
            "HTTP/1.1 302 Found\r\nLocation: /there?a=1\r\nContent-Length: 0\r\n\r\n".into(),
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-100004/100005\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        ])
        .await;
        let get = HttpGet::new(timeouts(5)).unwrap();
        let mut response = get.get(&format!("{base}/here"), 5).await.unwrap();
        assert_eq!(response.status, StatusCode::PARTIAL_CONTENT);
        let mut got = 0;
        while let Some(chunk) = response.chunk().await.unwrap() {
            got += chunk.len();
        }
        assert_eq!(got, body.len());
        let seen = seen.await.unwrap();
        assert!(seen[0].starts_with("GET /here HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(
            seen[1].starts_with("GET /there?a=1 HTTP/1.1\r\n"),
            "{}",
            seen[1]
        );
        assert!(
            seen[1].to_ascii_lowercase().contains("range: bytes=5-\r\n"),
            "{}",
            seen[1]
        );
        assert!(
            seen[1].to_ascii_lowercase().contains("host: 127.0.0.1:"),
            "{}",
            seen[1]
        );
    }

    #[tokio::test]
    async fn a_redirect_loop_ends_in_an_error() {
        let answer = "HTTP/1.1 301 Moved\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n";
        let (base, _seen) = serve(vec![answer.to_owned(); MAX_REDIRECTS + 1]).await;
        let get = HttpGet::new(timeouts(5)).unwrap();
        let e = get.get(&format!("{base}/again"), 0).await.err().unwrap();
        assert!(matches!(e, GetError::TooManyRedirects), "{e}");
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let get = HttpGet::new(timeouts(5)).unwrap();
        let e = get
            .get(&format!("http://127.0.0.1:{port}/x"), 0)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, GetError::Connect { .. }), "{e}");
        assert!(
            e.to_string().starts_with("cannot connect to 127.0.0.1"),
            "{e}"
        );
    }
}
