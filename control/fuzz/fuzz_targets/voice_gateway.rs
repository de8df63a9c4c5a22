//! Feeds arbitrary server frames to the voice gateway state machine: text frames
//! (as UTF-8, lossily) and binary frames, in any order, with timeouts in between.
//! It must never panic, whatever the server sends. A fixed prelude (Ready, discovery,
//! Session Description with DAVE version 1) comes first, so the DAVE ops (21–31,
//! binary MLS messages parsed by davey/openmls) are reachable.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use quaver_control::voice::gateway::{VoiceGateway, VoiceInfo};

fuzz_target!(|data: &[u8]| {
    let mut g = VoiceGateway::new(VoiceInfo {
        guild_id: 1,
        user_id: 2,
        session_id: "s".into(),
        token: "t".into(),
        max_dave_protocol_version: 1,
        channel_id: 3,
    });
    let now = Instant::now();
    g.on_open(now, false);
    g.handle_text(
        now,
        r#"{"op":2,"seq":1,"d":{"ssrc":5,"ip":"127.0.0.1","port":9,"modes":["aead_aes256_gcm_rtpsize"]}}"#,
    );
    g.discovered(now, "127.0.0.1:9".parse().unwrap());
    let key = format!("[{}]", vec!["1"; 32].join(","));
    g.handle_text(
        now,
        &format!(r#"{{"op":4,"seq":2,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":{key},"dave_protocol_version":1}}}}"#),
    );
    for (i, chunk) in data.split(|&b| b == 0xFF).enumerate() {
        match chunk.first() {
            Some(b) if b % 2 == 0 => g.handle_binary(now, chunk),
            _ => g.handle_text(now, &String::from_utf8_lossy(chunk)),
        }
        g.handle_timeout(now + Duration::from_millis(i as u64 * 997));
        while g.poll_transmit().is_some() {}
        while g.poll_event().is_some() {}
    }
});
