//! Per-packet sealing cost, for the record: run with
//! `cargo test --release -p quaver-engine --test seal_cost -- --ignored --nocapture`.

use std::hint::black_box;
use std::time::Instant;

use quaver_engine::transport::crypto::SEAL_OVERHEAD;
use quaver_engine::transport::rtp::RTP_HEADER_LEN;
use quaver_engine::transport::{EncryptionMode, RtpState, TransportCipher};

#[test]
#[ignore = "a timing, not a check; meaningful only in release builds"]
fn seal_cost_per_packet() {
    const PAYLOAD: usize = 160;
    const PACKETS: u32 = 200_000;
    for mode in EncryptionMode::PREFERENCE {
        let cipher = TransportCipher::new(mode, [3; 32]);
        let mut state = RtpState::new(1);
        let mut buf = [0u8; RTP_HEADER_LEN + PAYLOAD + SEAL_OVERHEAD];
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..PACKETS {
                buf[..RTP_HEADER_LEN].copy_from_slice(&state.header());
                let n = cipher.seal_in_place(black_box(&mut buf), PAYLOAD, state.nonce);
                black_box(n.unwrap());
                state.advance();
            }
            best = best.min(start.elapsed().as_nanos() as f64 / PACKETS as f64);
        }
        eprintln!("{mode}: {best:.0} ns per {PAYLOAD}-byte packet (best of 5 runs)");
    }
}
