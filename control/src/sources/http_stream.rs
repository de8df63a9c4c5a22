//! A seekable byte stream over HTTP: reads the body as it arrives (never downloads the
//! whole file first), seeks with `Range` requests, and resumes from where it was when
//! a connection drops, a few times before giving up.

use std::io::{self, Read, Seek, SeekFrom};

use quaver_engine::decode::MediaSource;
use ureq::{Agent, BodyReader};

/// Reconnections allowed per stream after a dropped or stalled connection.
const MAX_RETRIES: u32 = 3;

/// Largest `icy-metaint` honoured. Icecast sends 16 000 and SHOUTcast 8 192 or 32 768;
/// a larger value is a broken or hostile server, and its metadata is ignored (the
/// stream still plays: the decoder never asks for metadata).
pub const MAX_ICY_METAINT: usize = 1 << 18;

/// What the first response said.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// `Content-Type`, lowercased, without parameters.
    pub content_type: Option<String>,
    /// Total length, when the server states it.
    pub length: Option<u64>,
    /// `Accept-Ranges: bytes` with a known length.
    pub seekable: bool,
    /// Any `icy-*` header (an Icecast/SHOUTcast stream).
    pub icy: bool,
    /// `icy-name`.
    pub icy_name: Option<String>,
    /// `icy-metaint`: audio bytes between metadata blocks, when asked for (at most
    /// [`MAX_ICY_METAINT`]; a larger value is left out).
    pub icy_metaint: Option<usize>,
}

/// An HTTP body as a `Read + Seek` source for the decoder.
pub struct HttpStream {
    agent: Agent,
    url: String,
    reader: Option<BodyReader<'static>>,
    pos: u64,
    head: Head,
    retries: u32,
}

impl std::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream")
            .field("url", &self.url)
            .field("pos", &self.pos)
            .field("head", &self.head)
            .finish()
    }
}

/// Why a URL could not be opened, with the status when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// Description.
    pub message: String,
}

impl HttpStream {
    /// Opens `url` (a GET from byte 0). `icy_metadata` asks Icecast servers to
    /// interleave metadata (only for probing: the decoder must not see it).
    pub fn open(agent: &Agent, url: &str, icy_metadata: bool) -> Result<HttpStream, OpenError> {
        let mut req = agent.get(url);
        if icy_metadata {
            req = req.header("Icy-MetaData", "1");
        }
        let resp = req.call().map_err(|e| OpenError {
            status: None,
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(OpenError {
                status: Some(status),
                message: format!("Not success status code: {status}"),
            });
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let length = header("content-length").and_then(|v| v.parse().ok());
        let icy_name = header("icy-name");
        // The server chooses this number: bound it before anything is sized by it.
        let icy_metaint = header("icy-metaint")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|m| (1..=MAX_ICY_METAINT).contains(m));
        let icy = resp
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("icy-"));
        let head = Head {
            content_type: header("content-type").map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            }),
            length,
            seekable: length.is_some()
                && !icy
                && header("accept-ranges").is_some_and(|v| v.eq_ignore_ascii_case("bytes")),
            icy,
            icy_name,
            icy_metaint,
        };
        let reader = resp.into_body().into_reader();
        Ok(HttpStream {
            agent: agent.clone(),
            url: url.to_owned(),
            reader: Some(reader),
            pos: 0,
            head,
            retries: 0,
        })
    }

    /// What the server said about the body.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Reconnects at the current position with a `Range` request.
    fn reconnect(&mut self) -> io::Result<()> {
        let resp = self
            .agent
            .get(&self.url)
            .header("Range", format!("bytes={}-", self.pos))
            .call()
            .map_err(|e| io::Error::other(format!("reconnecting failed: {e}")))?;
        match resp.status().as_u16() {
            206 => {}
            200 if self.pos == 0 => {}
            s => {
                return Err(io::Error::other(format!(
                    "the server did not honour a range request (status {s})"
                )))
            }
        }
        self.reader = Some(resp.into_body().into_reader());
        Ok(())
    }

    fn unfinished(&self) -> bool {
        self.head.length.is_some_and(|l| self.pos < l)
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.reader.is_none() {
                self.reconnect()?;
            }
            let result = self.reader.as_mut().map_or(Ok(0), |r| r.read(buf));
            match result {
                Ok(0) if self.unfinished() && !buf.is_empty() => {}
                Ok(n) => {
                    self.pos += n as u64;
                    if n > 0 {
                        self.retries = 0;
                    }
                    return Ok(n);
                }
                Err(e) if !self.head.seekable || self.retries >= MAX_RETRIES => {
                    return Err(io::Error::other(format!(
                        "the connection to the server was lost: {e}"
                    )));
                }
                Err(_) => {}
            }
            // The body ended early or failed: resume where it stopped.
            if !self.head.seekable || self.retries >= MAX_RETRIES {
                return Err(io::Error::other(
                    "the server closed the connection before the end of the file",
                ));
            }
            self.retries += 1;
            self.reader = None;
        }
    }
}

impl Seek for HttpStream {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::Current(d) => self.pos as i64 + d,
            SeekFrom::End(d) => {
                self.head
                    .length
                    .ok_or_else(|| io::Error::other("unknown length"))? as i64
                    + d
            }
        };
        let target =
            u64::try_from(target).map_err(|_| io::Error::other("seek before the start"))?;
        if target == self.pos {
            return Ok(target);
        }
        if !self.head.seekable {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the server does not support range requests",
            ));
        }
        self.pos = target;
        self.reader = None;
        Ok(target)
    }
}

impl MediaSource for HttpStream {
    fn is_seekable(&self) -> bool {
        self.head.seekable
    }

    fn byte_len(&self) -> Option<u64> {
        self.head.length
    }
}
