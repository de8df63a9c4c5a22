//! M3U (including simple M3U8) and PLS playlists.

/// One playlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute URL.
    pub url: String,
    /// Title from `#EXTINF` or `TitleN`.
    pub title: Option<String>,
}

/// A parsed playlist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Playlist {
    /// `#PLAYLIST:` name, if any.
    pub name: Option<String>,
    /// Entries in order.
    pub entries: Vec<Entry>,
}

/// Whether a response looks like a playlist rather than audio.
pub fn looks_like(content_type: Option<&str>, first_bytes: &[u8]) -> bool {
    let by_type = matches!(
        content_type,
        Some(
            "audio/x-mpegurl"
                | "audio/mpegurl"
                | "application/x-mpegurl"
                | "application/vnd.apple.mpegurl"
                | "audio/x-scpls"
        )
    );
    let text = String::from_utf8_lossy(first_bytes).to_ascii_lowercase();
    by_type || text.starts_with("#extm3u") || text.starts_with("[playlist]")
}

/// Parses M3U or PLS text; relative entries resolve against `base`.
pub fn parse(body: &str, base: &str) -> Playlist {
    if body
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("[playlist]")
    {
        parse_pls(body, base)
    } else {
        parse_m3u(body, base)
    }
}

fn parse_m3u(body: &str, base: &str) -> Playlist {
    let mut list = Playlist::default();
    let mut title = None;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(info) = line.strip_prefix("#EXTINF:") {
            title = info
                .split_once(',')
                .map(|(_, t)| t.trim().to_owned())
                .filter(|t| !t.is_empty());
        } else if let Some(name) = line.strip_prefix("#PLAYLIST:") {
            list.name = Some(name.trim().to_owned());
        } else if !line.starts_with('#') {
            list.entries.push(Entry {
                url: resolve(base, line),
                title: title.take(),
            });
        }
    }
    list
}

fn parse_pls(body: &str, base: &str) -> Playlist {
    let mut files: Vec<(u32, String)> = Vec::new();
    let mut titles: Vec<(u32, String)> = Vec::new();
    for line in body.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        if let Some(n) = key.strip_prefix("file").and_then(|n| n.parse().ok()) {
            files.push((n, value.trim().to_owned()));
        } else if let Some(n) = key.strip_prefix("title").and_then(|n| n.parse().ok()) {
            titles.push((n, value.trim().to_owned()));
        }
    }
    files.sort_by_key(|(n, _)| *n);
    let entries = files
        .into_iter()
        .map(|(n, url)| Entry {
            url: resolve(base, &url),
            title: titles.iter().find(|(m, _)| *m == n).map(|(_, t)| t.clone()),
        })
        .collect();
    Playlist {
        name: None,
        entries,
    }
}

/// Resolves a possibly relative URL against the playlist's URL.
fn resolve(base: &str, entry: &str) -> String {
    if entry.contains("://") {
        return entry.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    if let Some(rest) = entry.strip_prefix('/') {
        let host_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        return format!("{}/{rest}", &base[..host_end]);
    }
    let dir_end = base
        .rfind('/')
        .filter(|&i| i >= scheme_end)
        .map_or(base.len(), |i| i + 1);
    format!("{}{entry}", &base[..dir_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m3u_with_titles_and_relative_urls() {
        let body = "#EXTM3U\n#PLAYLIST:Mix\n#EXTINF:123,First\nsongs/a.mp3\n\n#EXTINF:-1,\n/b.flac\nhttp://other/c.ogg\n";
        let p = parse(body, "http://host:8/lists/mix.m3u");
        assert_eq!(p.name.as_deref(), Some("Mix"));
        assert_eq!(
            p.entries,
            vec![
                Entry {
                    url: "http://host:8/lists/songs/a.mp3".into(),
                    title: Some("First".into())
                },
                Entry {
                    url: "http://host:8/b.flac".into(),
                    title: None
                },
                Entry {
                    url: "http://other/c.ogg".into(),
                    title: None
                },
            ]
        );
    }

    #[test]
    fn pls_in_number_order() {
        let body = "[playlist]\nFile2=http://h/2.mp3\nTitle2=Two\nFile1=http://h/1.mp3\nNumberOfEntries=2\n";
        let p = parse(body, "http://h/x.pls");
        assert_eq!(
            p.entries.iter().map(|e| e.url.as_str()).collect::<Vec<_>>(),
            ["http://h/1.mp3", "http://h/2.mp3"]
        );
        assert_eq!(p.entries[1].title.as_deref(), Some("Two"));
        assert!(looks_like(None, b"[playlist]\nFile1"));
        assert!(looks_like(Some("audio/x-mpegurl"), b"http://"));
        assert!(!looks_like(Some("audio/mpeg"), b"ID3"));
    }
}
