//! Every key Quaver knows, in the order the reference lists them.
//!
//! Lavalink's keys keep Lavalink's meaning; `quaver.*` keys are Quaver's own. A key
//! that must win over a wildcard sibling (`logging.level.root` over `logging.level.*`)
//! comes first.

use std::path::PathBuf;

use super::keys::{Check, Key, Kind, PluginField, Shown};
use super::{RateLimitStrategy, ResamplingQuality};

/// Narrows a number the key table has already range-checked.
fn fit<T: TryFrom<i64>>(value: i64) -> T {
    match T::try_from(value) {
        Ok(v) => v,
        Err(_) => unreachable!("key table range does not fit its field: {value}"),
    }
}

const MS: &str = "ms";
const S: &str = "s";

/// The table.
pub(crate) static KEYS: &[Key] = &[
    // ---- server.* ----
    Key {
        path: "server.port",
        kind: Kind::Int {
            min: 1,
            max: 65535,
            set: |c, v| c.server.port = fit(v),
        },
        default: Shown::Value("2333"),
        unit: "",
        doc: "TCP port of the REST and WebSocket server.",
    },
    Key {
        path: "server.address",
        kind: Kind::Ip(|c, v| c.server.address = v),
        default: Shown::Value("0.0.0.0"),
        unit: "",
        doc: "Local address to listen on; `0.0.0.0` or `::` for every interface.",
    },
    Key {
        path: "server.http2.enabled",
        kind: Kind::Bool(|c, v| c.server.http2_enabled = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Also serve HTTP/2 (cleartext upgrade) besides HTTP/1.1.",
    },
    // ---- lavalink.server.* ----
    Key {
        path: "lavalink.server.password",
        kind: Kind::OptText(|c, v| c.lavalink.password = v),
        default: Shown::Value("youshallnotpass"),
        unit: "",
        doc: "Value clients must send in the `Authorization` header. `null` leaves it unset: \
              REST then refuses every request and WebSocket accepts only a missing header.",
    },
    Key {
        path: "lavalink.server.sources.youtube",
        kind: Kind::Bool(|c, v| c.lavalink.sources.youtube = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Register the YouTube source (search prefix `ytsearch:`).",
    },
    Key {
        path: "lavalink.server.sources.bandcamp",
        kind: Kind::Bool(|c, v| c.lavalink.sources.bandcamp = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Register the Bandcamp source.",
    },
    Key {
        path: "lavalink.server.sources.soundcloud",
        kind: Kind::Bool(|c, v| c.lavalink.sources.soundcloud = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Register the SoundCloud source (search prefix `scsearch:`).",
    },
    Key {
        path: "lavalink.server.sources.twitch",
        kind: Kind::Bool(|c, v| c.lavalink.sources.twitch = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Register the Twitch source.",
    },
    Key {
        path: "lavalink.server.sources.vimeo",
        kind: Kind::Bool(|c, v| c.lavalink.sources.vimeo = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Register the Vimeo source.",
    },
    Key {
        path: "lavalink.server.sources.nico",
        kind: Kind::Bool(|c, v| c.lavalink.sources.nico = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Register the Niconico source (reported as `niconico`).",
    },
    Key {
        path: "lavalink.server.sources.http",
        kind: Kind::Bool(|c, v| c.lavalink.sources.http = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Register the plain HTTP(S) source, tried after every other source. Without a \
              proxy it reveals the node's address to the hosts it fetches from.",
    },
    Key {
        path: "lavalink.server.sources.local",
        kind: Kind::Bool(|c, v| c.lavalink.sources.local = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Register the local file source (see `quaver.sources.localRoots`).",
    },
    Key {
        path: "lavalink.server.filters.volume",
        kind: Kind::Bool(|c, v| c.lavalink.filters.volume = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `volume` filter. A disabled filter is left out of `/v4/info` and \
              rejected with 400 when a client uses it; the same holds for every filter below.",
    },
    Key {
        path: "lavalink.server.filters.equalizer",
        kind: Kind::Bool(|c, v| c.lavalink.filters.equalizer = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the 15-band `equalizer` filter.",
    },
    Key {
        path: "lavalink.server.filters.karaoke",
        kind: Kind::Bool(|c, v| c.lavalink.filters.karaoke = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `karaoke` filter.",
    },
    Key {
        path: "lavalink.server.filters.timescale",
        kind: Kind::Bool(|c, v| c.lavalink.filters.timescale = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `timescale` filter (speed, pitch, rate).",
    },
    Key {
        path: "lavalink.server.filters.tremolo",
        kind: Kind::Bool(|c, v| c.lavalink.filters.tremolo = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `tremolo` filter.",
    },
    Key {
        path: "lavalink.server.filters.vibrato",
        kind: Kind::Bool(|c, v| c.lavalink.filters.vibrato = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `vibrato` filter.",
    },
    Key {
        path: "lavalink.server.filters.distortion",
        kind: Kind::Bool(|c, v| c.lavalink.filters.distortion = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `distortion` filter.",
    },
    Key {
        path: "lavalink.server.filters.rotation",
        kind: Kind::Bool(|c, v| c.lavalink.filters.rotation = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `rotation` filter.",
    },
    Key {
        path: "lavalink.server.filters.channelMix",
        kind: Kind::Bool(|c, v| c.lavalink.filters.channel_mix = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `channelMix` filter.",
    },
    Key {
        path: "lavalink.server.filters.lowPass",
        kind: Kind::Bool(|c, v| c.lavalink.filters.low_pass = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Offer the `lowPass` filter.",
    },
    Key {
        path: "lavalink.server.nonAllocatingFrameBuffer",
        kind: Kind::Bool(|c, v| c.lavalink.non_allocating_frame_buffer = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Lavalink's allocation-free frame buffer. Quaver's frame rings never allocate \
              while playing, so this is accepted and changes nothing.",
    },
    Key {
        path: "lavalink.server.bufferDurationMs",
        kind: Kind::Int {
            min: i64::MIN,
            max: i64::MAX,
            set: |c, v| c.lavalink.buffer_duration_ms = v,
        },
        default: Shown::Value("400"),
        unit: MS,
        doc: "Audio queued ahead of the sender per connection. 0 or less disables the queue; \
              values from 1 to 39 fall back to the default.",
    },
    Key {
        path: "lavalink.server.frameBufferDurationMs",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            set: |c, v| c.lavalink.frame_buffer_duration_ms = fit(v),
        },
        default: Shown::Value("5000"),
        unit: MS,
        doc: "Audio a network track reads ahead, as compressed bytes; the decoded frame \
              ring holds at most 0.5 s of it (0.3 s when decoded to PCM). Values below 200 fall back to the default.",
    },
    Key {
        path: "lavalink.server.opusEncodingQuality",
        kind: Kind::Int {
            min: 0,
            max: 10,
            set: |c, v| c.lavalink.opus_encoding_quality = fit(v),
        },
        default: Shown::Value("10"),
        unit: "",
        doc: "Opus encoder complexity when audio is re-encoded: 10 sounds best and costs the \
              most CPU.",
    },
    Key {
        path: "lavalink.server.resamplingQuality",
        kind: Kind::Choice {
            options: &["LOW", "MEDIUM", "HIGH"],
            set: |c, i| {
                c.lavalink.resampling_quality = [
                    ResamplingQuality::Low,
                    ResamplingQuality::Medium,
                    ResamplingQuality::High,
                ][i]
            },
        },
        default: Shown::Value("LOW"),
        unit: "",
        doc: "Resampler quality for sources not at 48 kHz and for timescale; HIGH costs the \
              most CPU.",
    },
    Key {
        path: "lavalink.server.trackStuckThresholdMs",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            set: |c, v| c.lavalink.track_stuck_threshold_ms = fit(v),
        },
        default: Shown::Value("10000"),
        unit: MS,
        doc: "A playing track that yields no audio for this long raises `TrackStuckEvent`; \
              values below 100 fall back to the default.",
    },
    Key {
        path: "lavalink.server.useSeekGhosting",
        kind: Kind::Bool(|c, v| c.lavalink.use_seek_ghosting = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Keep playing already-buffered audio while a seek is in progress instead of \
              going silent.",
    },
    Key {
        path: "lavalink.server.youtubePlaylistLoadLimit",
        kind: Kind::OptInt {
            min: 0,
            max: i32::MAX as i64,
            set: |c, v| c.lavalink.youtube_playlist_load_limit = v.map(fit),
        },
        default: Shown::Note("unset (the source's own limit)"),
        unit: "pages",
        doc: "Most pages of 100 tracks read from one YouTube playlist.",
    },
    Key {
        path: "lavalink.server.playerUpdateInterval",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
            set: |c, v| c.lavalink.player_update_interval_s = fit(v),
        },
        default: Shown::Value("5"),
        unit: S,
        doc: "How often each connected player sends a `playerUpdate` message.",
    },
    Key {
        path: "lavalink.server.youtubeSearchEnabled",
        kind: Kind::Bool(|c, v| c.lavalink.youtube_search_enabled = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Allow `ytsearch:` and `ytmsearch:` identifiers.",
    },
    Key {
        path: "lavalink.server.soundcloudSearchEnabled",
        kind: Kind::Bool(|c, v| c.lavalink.soundcloud_search_enabled = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Allow `scsearch:` identifiers.",
    },
    Key {
        path: "lavalink.server.soundcloudFilterOutPreviewTracks",
        kind: Kind::Bool(|c, v| c.lavalink.soundcloud_filter_out_preview_tracks = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Drop SoundCloud tracks that only offer a 30-second preview.",
    },
    Key {
        path: "lavalink.server.gc-warnings",
        kind: Kind::Bool(|c, v| c.lavalink.gc_warnings = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Lavalink's JVM garbage-collector warnings. Quaver has no collector: accepted, \
              changes nothing.",
    },
    Key {
        path: "lavalink.server.ratelimit.ipBlocks",
        kind: Kind::List {
            item: Check::Cidr,
            set: |c, v| c.lavalink.ratelimit.ip_blocks = v,
        },
        default: Shown::Note("empty"),
        unit: "",
        doc: "Address blocks to send outgoing source requests from. The route planner (and its \
              REST endpoints) exists only when this is not empty.",
    },
    Key {
        path: "lavalink.server.ratelimit.excludedIps",
        kind: Kind::List {
            item: Check::Ip,
            set: |c, v| c.lavalink.ratelimit.excluded_ips = v,
        },
        default: Shown::Note("empty"),
        unit: "",
        doc: "Addresses inside `ipBlocks` that must never be used.",
    },
    Key {
        path: "lavalink.server.ratelimit.strategy",
        kind: Kind::Choice {
            options: &[
                "RotateOnBan",
                "LoadBalance",
                "NanoSwitch",
                "RotatingNanoSwitch",
            ],
            set: |c, i| {
                c.lavalink.ratelimit.strategy = [
                    RateLimitStrategy::RotateOnBan,
                    RateLimitStrategy::LoadBalance,
                    RateLimitStrategy::NanoSwitch,
                    RateLimitStrategy::RotatingNanoSwitch,
                ][i]
            },
        },
        default: Shown::Value("RotateOnBan"),
        unit: "",
        doc: "How the route planner picks an address: switch after a ban, spread requests \
              at random, or step through a /64 by nanosecond clock (with or without rotation).",
    },
    Key {
        path: "lavalink.server.ratelimit.retryLimit",
        kind: Kind::Int {
            min: -1,
            max: i32::MAX as i64,
            set: |c, v| c.lavalink.ratelimit.retry_limit = fit(v),
        },
        default: Shown::Value("-1"),
        unit: "retries",
        doc: "Retries on a rate-limited request: -1 the source's default, 0 without limit.",
    },
    Key {
        path: "lavalink.server.ratelimit.searchTriggersFail",
        kind: Kind::Bool(|c, v| c.lavalink.ratelimit.search_triggers_fail = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Whether a 429 answer to a search marks the address as failing.",
    },
    Key {
        path: "lavalink.server.youtubeConfig.email",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.youtube_config.email = v,
        },
        default: Shown::Value(""),
        unit: "",
        doc: "Google account e-mail for age-restricted YouTube videos (deprecated by YouTube).",
    },
    Key {
        path: "lavalink.server.youtubeConfig.password",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.youtube_config.password = v,
        },
        default: Shown::Value(""),
        unit: "",
        doc: "Password of that Google account.",
    },
    Key {
        path: "lavalink.server.httpConfig.proxyHost",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.http_config.proxy_host = v,
        },
        default: Shown::Value(""),
        unit: "",
        doc: "HTTP proxy (host name or address) for the HTTP source; empty means direct.",
    },
    Key {
        path: "lavalink.server.httpConfig.proxyPort",
        kind: Kind::Int {
            min: 1,
            max: 65535,
            set: |c, v| c.lavalink.http_config.proxy_port = fit(v),
        },
        default: Shown::Value("3128"),
        unit: "",
        doc: "Port of that proxy.",
    },
    Key {
        path: "lavalink.server.httpConfig.proxyUser",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.http_config.proxy_user = v,
        },
        default: Shown::Value(""),
        unit: "",
        doc: "User for the proxy's basic authentication; empty sends none.",
    },
    Key {
        path: "lavalink.server.httpConfig.proxyPassword",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.http_config.proxy_password = v,
        },
        default: Shown::Value(""),
        unit: "",
        doc: "Password for the proxy's basic authentication.",
    },
    Key {
        path: "lavalink.server.timeouts.connectTimeoutMs",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            set: |c, v| c.lavalink.timeouts.connect_timeout_ms = fit(v),
        },
        default: Shown::Value("3000"),
        unit: MS,
        doc: "Time allowed to open a connection to a source; 0 waits forever.",
    },
    Key {
        path: "lavalink.server.timeouts.connectionRequestTimeoutMs",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            set: |c, v| c.lavalink.timeouts.connection_request_timeout_ms = fit(v),
        },
        default: Shown::Value("3000"),
        unit: MS,
        doc: "Time allowed to wait for a free pooled connection; 0 waits forever.",
    },
    Key {
        path: "lavalink.server.timeouts.socketTimeoutMs",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            set: |c, v| c.lavalink.timeouts.socket_timeout_ms = fit(v),
        },
        default: Shown::Value("3000"),
        unit: MS,
        doc: "Longest silence allowed between two reads from a source; 0 waits forever.",
    },
    // ---- lavalink.plugins ----
    Key {
        path: "lavalink.plugins[].dependency",
        kind: Kind::Plugin(PluginField::Dependency),
        default: Shown::Note("none"),
        unit: "",
        doc: "Maven coordinates of a Lavalink plugin. Quaver runs no JVM plugins: entries are \
              accepted so a Lavalink file loads, and reported at startup.",
    },
    Key {
        path: "lavalink.plugins[].repository",
        kind: Kind::Plugin(PluginField::Repository),
        default: Shown::Note("the default repository"),
        unit: "",
        doc: "Maven repository to fetch that plugin from.",
    },
    Key {
        path: "lavalink.plugins[].snapshot",
        kind: Kind::Plugin(PluginField::Snapshot),
        default: Shown::Value("false"),
        unit: "",
        doc: "Fetch that plugin from the snapshot repository.",
    },
    Key {
        path: "lavalink.pluginsDir",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.plugins_dir = v.into(),
        },
        default: Shown::Value("./plugins"),
        unit: "",
        doc: "Directory Lavalink keeps plugin jars in; accepted, not read.",
    },
    Key {
        path: "lavalink.defaultPluginRepository",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.default_plugin_repository = v,
        },
        default: Shown::Value("https://maven.lavalink.dev/releases"),
        unit: "",
        doc: "Repository for plugin entries without one; accepted, not read.",
    },
    Key {
        path: "lavalink.defaultPluginSnapshotRepository",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.lavalink.default_plugin_snapshot_repository = v,
        },
        default: Shown::Value("https://maven.lavalink.dev/snapshots"),
        unit: "",
        doc: "Repository for snapshot plugin entries without one; accepted, not read.",
    },
    Key {
        path: "plugins.*",
        kind: Kind::Ignored,
        default: Shown::Note("none"),
        unit: "",
        doc: "Per-plugin settings of Lavalink plugins; accepted, not read (one startup warning).",
    },
    // ---- metrics.* ----
    Key {
        path: "metrics.prometheus.enabled",
        kind: Kind::Bool(|c, v| c.metrics.prometheus_enabled = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Serve Prometheus metrics (the list is in *What works today*).",
    },
    Key {
        path: "metrics.prometheus.endpoint",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| {
                c.metrics.prometheus_endpoint_configured = !v.is_empty();
                c.metrics.prometheus_endpoint = if v.is_empty() {
                    "/metrics".to_owned()
                } else {
                    v
                };
            },
        },
        default: Shown::Note("unset (served at /metrics)"),
        unit: "",
        doc: "Path of the metrics endpoint. When set, that path needs no `Authorization`; \
              when unset, `/metrics` is served and needs it like every other route.",
    },
    // ---- sentry.* ----
    Key {
        path: "sentry.dsn",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.sentry.dsn = v,
        },
        default: Shown::Value(""),
        unit: "",
        doc: "Sentry project DSN; accepted, Quaver reports nothing to Sentry.",
    },
    Key {
        path: "sentry.environment",
        kind: Kind::Text {
            check: Check::Any,
            set: |c, v| c.sentry.environment = v,
        },
        default: Shown::Value(""),
        unit: "",
        doc: "Sentry environment name; accepted, not used.",
    },
    Key {
        path: "sentry.tags.*",
        kind: Kind::Map {
            value: Check::Any,
            env_join: "_",
            set: |c, name, v| {
                c.sentry.tags.insert(name, v);
            },
        },
        default: Shown::Note("none"),
        unit: "",
        doc: "Tags for Sentry events, one per name; accepted, not used. From the environment, \
              `SENTRY_TAGS_SOME_KEY` names the tag `some_key`.",
    },
    // ---- logging.* ----
    Key {
        path: "logging.file.path",
        kind: Kind::OptText(|c, v| {
            c.logging.file_path = v.filter(|p| !p.is_empty()).map(PathBuf::from)
        }),
        default: Shown::Note("unset (standard output only)"),
        unit: "",
        doc: "Directory for the rolling log file, in addition to standard output.",
    },
    Key {
        path: "logging.level.root",
        kind: Kind::Text {
            check: Check::LogLevel,
            set: |c, v| c.logging.level_root = v,
        },
        default: Shown::Value("INFO"),
        unit: "",
        doc: "Level of every logger without its own entry.",
    },
    Key {
        path: "logging.level.*",
        kind: Kind::Map {
            value: Check::LogLevel,
            env_join: ".",
            set: |c, name, v| {
                c.logging.levels.insert(name, v);
            },
        },
        default: Shown::Note("none"),
        unit: "",
        doc: "Level of one logger by name (`lavalink`, `quaver`, a module path). From the \
              environment, `LOGGING_LEVEL_A_B` names the logger `a.b`.",
    },
    Key {
        path: "logging.request.enabled",
        kind: Kind::Bool(|c, v| c.logging.request_enabled = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Log each REST request.",
    },
    Key {
        path: "logging.request.includeClientInfo",
        kind: Kind::Bool(|c, v| c.logging.request_include_client_info = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Add the client's address to request log lines.",
    },
    Key {
        path: "logging.request.includeHeaders",
        kind: Kind::Bool(|c, v| c.logging.request_include_headers = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Add request headers (with `Authorization` masked) to request log lines.",
    },
    Key {
        path: "logging.request.includeQueryString",
        kind: Kind::Bool(|c, v| c.logging.request_include_query_string = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Add the query string to request log lines.",
    },
    Key {
        path: "logging.request.includePayload",
        kind: Kind::Bool(|c, v| c.logging.request_include_payload = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Add the request body to request log lines.",
    },
    Key {
        path: "logging.request.maxPayloadLength",
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
            set: |c, v| c.logging.request_max_payload_length = fit(v),
        },
        default: Shown::Value("10000"),
        unit: "bytes",
        doc: "Longest request body logged; longer ones are cut.",
    },
    Key {
        path: "logging.request.beforeRequest",
        kind: Kind::Bool(|c, v| c.logging.request_before_request = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Also log a line when a request arrives, not only when it completes.",
    },
    Key {
        path: "logging.logback.rollingpolicy.max-file-size",
        kind: Kind::Text {
            check: Check::DataSize,
            set: |c, v| c.logging.max_file_size = v,
        },
        default: Shown::Value("1GB"),
        unit: "",
        doc: "Size at which the log file is rolled over.",
    },
    Key {
        path: "logging.logback.rollingpolicy.max-history",
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
            set: |c, v| c.logging.max_history = fit(v),
        },
        default: Shown::Value("30"),
        unit: "days",
        doc: "How long rolled-over log files are kept.",
    },
    // ---- spring.* ----
    Key {
        path: "spring.*",
        kind: Kind::Ignored,
        default: Shown::Note("none"),
        unit: "",
        doc: "Spring Boot's own settings; accepted, not read.",
    },
    // ---- quaver.* ----
    Key {
        path: "quaver.engine.threads",
        kind: Kind::OptInt {
            min: 1,
            max: 4096,
            set: |c, v| c.quaver.engine_threads = v.map(fit),
        },
        default: Shown::Note("one per core minus one, at least one"),
        unit: "threads",
        doc: "Number of audio tick threads; each one mixes, encodes and sends its share of \
              the players every 20 ms.",
    },
    Key {
        path: "quaver.engine.cpus",
        kind: Kind::CpuList(|c, v| c.quaver.engine_cpus = v),
        default: Shown::Note("empty (not pinned)"),
        unit: "",
        doc: "CPU ids to pin tick threads to, one per thread in order.",
    },
    Key {
        path: "quaver.engine.realtimePriority",
        kind: Kind::OptInt {
            min: 1,
            max: 99,
            set: |c, v| c.quaver.engine_realtime_priority = v.map(fit),
        },
        default: Shown::Note("unset (normal scheduling)"),
        unit: "",
        doc: "SCHED_FIFO priority for tick threads (needs CAP_SYS_NICE).",
    },
    Key {
        path: "quaver.engine.spinUs",
        kind: Kind::Int {
            min: 0,
            max: 20_000,
            set: |c, v| c.quaver.engine_spin_us = fit(v),
        },
        default: Shown::Value("1000"),
        unit: "µs",
        doc: "Tick threads sleep until this long before each deadline, then spin to it. \
              Sleeping alone wakes 0.2–2.6 ms late on a busy kernel; see tuning.md.",
    },
    Key {
        path: "quaver.engine.maxPlayers",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
            set: |c, v| c.quaver.engine_max_players = fit(v),
        },
        default: Shown::Value("10000"),
        unit: "players",
        doc: "Player capacity, reserved at startup; creating one more player fails with an \
              error response instead of growing.",
    },
    Key {
        path: "quaver.decode.threads",
        kind: Kind::OptInt {
            min: 1,
            max: 4096,
            set: |c, v| c.quaver.decode_threads = v.map(fit),
        },
        default: Shown::Note("one per core"),
        unit: "threads",
        doc: "Size of the decoder pool that fills players' frame buffers ahead of time.",
    },
    Key {
        path: "quaver.voice.allowInsecureEndpoints",
        kind: Kind::Bool(|c, v| c.quaver.voice_allow_insecure_endpoints = v),
        default: Shown::Value("false"),
        unit: "",
        doc: "Accept `ws://host:port` voice endpoints; meant for tests against a local fake \
              voice server.",
    },
    Key {
        path: "quaver.voice.dave",
        kind: Kind::Bool(|c, v| c.quaver.voice_dave = v),
        default: Shown::Value("true"),
        unit: "",
        doc: "Advertise DAVE end-to-end encryption (`max_dave_protocol_version: 1`). Since \
              2026-03-02 Discord closes non-DAVE connections with 4017 except in Stage \
              channels; turn it off only to test that.",
    },
    Key {
        path: "quaver.voice.extraCaCertificates",
        kind: Kind::List {
            item: Check::Any,
            set: |c, v| {
                c.quaver.voice_extra_ca_certificates = v.into_iter().map(PathBuf::from).collect()
            },
        },
        default: Shown::Note("empty"),
        unit: "",
        doc: "PEM files of CA certificates trusted for `wss://` voice servers in addition to \
              the bundled web PKI roots (Discord's certificates need none): for a \
              TLS-intercepting proxy, or a test voice server. Read at startup; an unreadable \
              file fails every voice connection with a `WebSocketClosedEvent` saying why.",
    },
    Key {
        path: "quaver.sources.localRoots",
        kind: Kind::List {
            item: Check::Any,
            set: |c, v| c.quaver.local_roots = v.into_iter().map(PathBuf::from).collect(),
        },
        default: Shown::Note("empty"),
        unit: "",
        doc: "Directories the local source may read from; files elsewhere are answered \
              like missing ones.",
    },
    Key {
        path: "quaver.sources.ioThreads",
        kind: Kind::Int {
            min: 1,
            max: 64,
            set: |c, v| c.quaver.io_threads = fit(v),
        },
        default: Shown::Value("1"),
        unit: "threads",
        doc: "Threads that fetch network tracks. Fetches are async, so one thread serves \
              thousands of streams (about 0.2 µs of CPU per player-tick at 1 000 players); \
              add one only if `quaver-io-*` threads run near a full core.",
    },
    Key {
        path: "quaver.server.maxConnections",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
            set: |c, v| c.quaver.server_max_connections = fit(v),
        },
        default: Shown::Value("1000"),
        unit: "connections",
        doc: "Most connections that have not authenticated yet (no REST request with the \
              password, no WebSocket); one more closes the oldest of them. Authenticated \
              connections do not count and are never closed for it. Lowered to half the \
              open-file limit when that is smaller.",
    },
    Key {
        path: "quaver.server.headerTimeoutMs",
        kind: Kind::Int {
            min: 100,
            max: 3_600_000,
            set: |c, v| c.quaver.server_header_timeout_ms = fit(v),
        },
        default: Shown::Value("10000"),
        unit: "ms",
        doc: "Time an unauthenticated connection gets to send a complete request head, \
              counted from its first byte after connecting or after its last response.",
    },
    Key {
        path: "quaver.server.idleTimeoutMs",
        kind: Kind::Int {
            min: 100,
            max: 3_600_000,
            set: |c, v| c.quaver.server_idle_timeout_ms = fit(v),
        },
        default: Shown::Value("10000"),
        unit: "ms",
        doc: "Time an unauthenticated connection may stay silent, after connecting or \
              after its last response, before it is closed.",
    },
    Key {
        path: "quaver.server.bodyTimeoutMs",
        kind: Kind::Int {
            min: 100,
            max: 3_600_000,
            set: |c, v| c.quaver.server_body_timeout_ms = fit(v),
        },
        default: Shown::Value("30000"),
        unit: "ms",
        doc: "Time any request gets to deliver its whole body after its head; a late \
              body is answered with 408 and the connection closed.",
    },
];
