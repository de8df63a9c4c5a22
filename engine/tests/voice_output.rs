//! `VoiceOutput` over real loopback sockets: what a voice server receives, decrypted
//! and checked as the fake Discord voice server checks it.

mod support;

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quaver_engine::message::{ControlToEngine, NewPlayer, PlayerKey};
use quaver_engine::output::{DatagramBuf, PacketOutput, SendOutcome};
use quaver_engine::transport::voice_output::{KEEPALIVE_TICKS, OPUS_SILENCE};
use quaver_engine::transport::{EncryptionMode, RtpState, TransportCipher, VoiceOutput};
use support::*;

const KEY: [u8; 32] = [0x5A; 32];
const SSRC: u32 = 0xDEAD_BEEF;

/// A receiver and a sender socket connected to it.
fn sockets() -> (UdpSocket, UdpSocket) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    (rx, tx)
}

/// Every datagram that arrives until the receiver has been quiet for its timeout.
fn receive_all(rx: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut buf = [0u8; 2048];
    while let Ok(n) = rx.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// A received RTP packet, opened.
struct Rtp {
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    nonce: u32,
    payload: Vec<u8>,
}

fn open(cipher: &TransportCipher, mut packet: Vec<u8>) -> Rtp {
    assert_eq!(&packet[..2], &[0x80, 0x78], "version 2, no X/CC, PT 120");
    let be32 = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    let seq = u16::from_be_bytes([packet[2], packet[3]]);
    let timestamp = be32(&packet[4..8]);
    let ssrc = be32(&packet[8..12]);
    let nonce = be32(&packet[packet.len() - 4..]);
    let payload = cipher
        .open_in_place(&mut packet)
        .expect("authenticates")
        .to_vec();
    Rtp {
        seq,
        timestamp,
        ssrc,
        nonce,
        payload,
    }
}

fn opus_like(i: u8) -> Vec<u8> {
    let mut p = vec![0xFC, i];
    p.extend((0..100).map(|n| n ^ i));
    p
}

#[test]
fn audio_then_five_silence_frames_in_both_modes() {
    for mode in EncryptionMode::PREFERENCE {
        let (rx, tx) = sockets();
        // Start near every wrap point so the stream crosses them.
        let start = RtpState::with_values(SSRC, u16::MAX - 3, u32::MAX - 960 * 2, u32::MAX - 6);
        let mut out = VoiceOutput::new(tx, TransportCipher::new(mode, KEY), start).unwrap();
        let mut buf = DatagramBuf::new();
        let speaking = out.speaking();
        let stats = out.stats();
        assert!(!speaking.load(Ordering::Acquire));

        for i in 0..10u8 {
            assert_eq!(
                out.send(&opus_like(i), &mut buf),
                SendOutcome::Sent,
                "{mode}"
            );
            assert!(speaking.load(Ordering::Acquire));
        }
        out.audio_stopped();
        for i in 0..10 {
            out.tick_idle(&mut buf);
            assert_eq!(
                speaking.load(Ordering::Acquire),
                i < 4,
                "{mode} idle tick {i}"
            );
        }

        let receiver = TransportCipher::new(mode, KEY);
        let packets: Vec<Rtp> = receive_all(&rx)
            .into_iter()
            .map(|p| open(&receiver, p))
            .collect();
        assert_eq!(
            packets.len(),
            15,
            "{mode}: 10 audio + 5 silence, nothing after"
        );
        for (i, p) in packets.iter().enumerate() {
            let n = i as u32;
            assert_eq!(p.ssrc, SSRC);
            assert_eq!(p.seq, start.seq.wrapping_add(n as u16), "{mode} seq #{i}");
            assert_eq!(
                p.timestamp,
                start.timestamp.wrapping_add(960 * n),
                "{mode} ts #{i}"
            );
            assert_eq!(p.nonce, start.nonce.wrapping_add(n), "{mode} nonce #{i}");
            if i < 10 {
                assert_eq!(p.payload, opus_like(i as u8), "{mode} audio #{i}");
            } else {
                assert_eq!(p.payload, OPUS_SILENCE, "{mode} silence #{i}");
            }
        }
        let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(count(&stats.packets_sent), 10);
        assert_eq!(count(&stats.silence_sent), 5);
        assert_eq!(count(&stats.errors) + count(&stats.would_block), 0);
        let next = out.rtp_state();
        assert_eq!(next.seq, start.seq.wrapping_add(15));
        assert_eq!(next.nonce, start.nonce.wrapping_add(15));
    }
}

#[test]
fn audio_cancels_pending_silence_and_a_second_stop_is_silent() {
    let (rx, tx) = sockets();
    let mode = EncryptionMode::Aes256GcmRtpsize;
    let mut out =
        VoiceOutput::new(tx, TransportCipher::new(mode, KEY), RtpState::new(SSRC)).unwrap();
    let mut buf = DatagramBuf::new();
    out.send(&opus_like(1), &mut buf);
    out.audio_stopped();
    out.tick_idle(&mut buf);
    out.tick_idle(&mut buf);
    out.send(&opus_like(2), &mut buf); // resumes: the three pending silence frames are dropped
    out.tick_idle(&mut buf); // an underrun tick: no stop, so no silence
    out.audio_stopped();
    for _ in 0..6 {
        out.tick_idle(&mut buf);
    }
    out.audio_stopped(); // already silent: nothing more to say
    for _ in 0..6 {
        out.tick_idle(&mut buf);
    }
    let receiver = TransportCipher::new(mode, KEY);
    let payloads: Vec<Vec<u8>> = receive_all(&rx)
        .into_iter()
        .map(|p| open(&receiver, p).payload)
        .collect();
    let silence = OPUS_SILENCE.to_vec();
    let mut expected = vec![opus_like(1), silence.clone(), silence.clone(), opus_like(2)];
    expected.extend(std::iter::repeat_n(silence, 5));
    assert_eq!(payloads, expected);
    assert!(!out.speaking().load(Ordering::Acquire));
}

#[test]
fn keepalive_every_250_ticks_counting_both_kinds() {
    let (rx, tx) = sockets();
    let mode = EncryptionMode::XChaCha20Poly1305Rtpsize;
    let mut out =
        VoiceOutput::new(tx, TransportCipher::new(mode, KEY), RtpState::new(SSRC)).unwrap();
    let mut buf = DatagramBuf::new();
    assert_eq!(KEEPALIVE_TICKS, 250);
    for t in 0..2 * KEEPALIVE_TICKS {
        if t % 2 == 0 {
            out.send(&opus_like(t as u8), &mut buf);
        } else {
            out.tick_idle(&mut buf);
        }
    }
    let keepalives: Vec<Vec<u8>> = receive_all(&rx)
        .into_iter()
        .filter(|p| p.len() == 8)
        .collect();
    assert_eq!(
        keepalives,
        [[0u8, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]
    );
    assert_eq!(out.stats().keepalives_sent.load(Ordering::Relaxed), 2);
}

#[test]
fn a_vanished_receiver_is_counted_never_fatal() {
    let (rx, tx) = sockets();
    drop(rx);
    let mut out = VoiceOutput::new(
        tx,
        TransportCipher::new(EncryptionMode::Aes256GcmRtpsize, KEY),
        RtpState::new(SSRC),
    )
    .unwrap();
    let mut buf = DatagramBuf::new();
    let started = Instant::now();
    let mut failed = 0;
    for i in 0..100u8 {
        if out.send(&opus_like(i), &mut buf) != SendOutcome::Sent {
            failed += 1;
        }
        out.tick_idle(&mut buf);
    }
    out.audio_stopped();
    for _ in 0..300 {
        out.tick_idle(&mut buf);
    }
    assert!(started.elapsed() < Duration::from_secs(1), "a send blocked");
    let stats = out.stats();
    let dropped = stats.errors.load(Ordering::Relaxed) + stats.would_block.load(Ordering::Relaxed);
    assert!(
        failed > 0 && dropped >= failed,
        "failed {failed}, dropped {dropped}"
    );
    assert!(!out.speaking().load(Ordering::Acquire));
}

#[test]
fn oversized_packets_fail_without_sending() {
    let (rx, tx) = sockets();
    let mut out = VoiceOutput::new(
        tx,
        TransportCipher::new(EncryptionMode::Aes256GcmRtpsize, KEY),
        RtpState::new(SSRC),
    )
    .unwrap();
    let mut buf = DatagramBuf::new();
    assert_eq!(out.send(&[0u8; 1276], &mut buf), SendOutcome::Failed);
    assert_eq!(out.send(&[0u8; 1275], &mut buf), SendOutcome::Sent);
    let got = receive_all(&rx);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), 12 + 1275 + 20);
}

/// Through the worker: packets while playing, five silence frames after a stop,
/// because the worker calls `tick_idle` on every tick an output gets no packet.
#[test]
fn worker_sends_silence_after_stop() {
    let (rx, tx) = sockets();
    let mode = EncryptionMode::Aes256GcmRtpsize;
    let out = VoiceOutput::new(tx, TransportCipher::new(mode, KEY), RtpState::new(SSRC)).unwrap();
    let speaking = out.speaking();
    let mut r = rig(2);
    let key = PlayerKey {
        index: 1,
        generation: 1,
    };
    r.send(ControlToEngine::Add(Box::new(NewPlayer {
        key,
        shared: Arc::default(),
        encoder: Some(Box::new(TagEncoder)),
        decoder: Some(Box::new(ConstDecoder(Arc::default()))),
        output: Some(Box::new(out)),
        stuck_after_ticks: 1000,
    })));
    let _writer = r.play_opus(key, 0, 20);
    for _ in 0..8 {
        assert_eq!(r.tick(), 1);
    }
    assert!(speaking.load(Ordering::Acquire));
    r.send(ControlToEngine::Stop(key));
    for _ in 0..10 {
        assert_eq!(r.tick(), 0);
    }
    assert!(!speaking.load(Ordering::Acquire));
    let receiver = TransportCipher::new(mode, KEY);
    let payloads: Vec<Vec<u8>> = receive_all(&rx)
        .into_iter()
        .map(|p| open(&receiver, p).payload)
        .collect();
    assert_eq!(payloads.len(), 13);
    for (i, p) in payloads.iter().enumerate() {
        if i < 8 {
            assert_eq!(p, &[i as u8, 1, 2, 3]);
        } else {
            assert_eq!(p, &OPUS_SILENCE);
        }
    }
}

/// With a DAVE sender key installed, audio leaves as DAVE frames inside the transport
/// seal (nonce 1, 2, … in the ULEB128 trailer), silence stays plain, and removing the
/// key goes back to plain Opus; installing the same key again continues the nonces.
#[test]
fn dave_frames_inside_the_transport_seal() {
    use quaver_engine::transport::dave::{DAVE_MARKER, DAVE_TAG_LEN};
    use quaver_engine::transport::SenderKey;

    let (rx, tx) = sockets();
    let mode = EncryptionMode::Aes256GcmRtpsize;
    let mut out =
        VoiceOutput::new(tx, TransportCipher::new(mode, KEY), RtpState::new(SSRC)).unwrap();
    let mut buf = DatagramBuf::new();
    let stats = out.stats();
    out.set_sender_key(Some(SenderKey([3; 16])));
    assert!(out.dave_active());
    out.send(&opus_like(1), &mut buf);
    out.send(&OPUS_SILENCE, &mut buf);
    out.send(&opus_like(2), &mut buf);
    out.set_sender_key(None);
    out.send(&opus_like(3), &mut buf);
    out.set_sender_key(Some(SenderKey([3; 16])));
    out.send(&opus_like(4), &mut buf);

    let receiver = TransportCipher::new(mode, KEY);
    let payloads: Vec<Vec<u8>> = receive_all(&rx)
        .into_iter()
        .map(|p| open(&receiver, p).payload)
        .collect();
    assert_eq!(payloads.len(), 5);
    let dave_nonce = |p: &[u8], plain: &[u8]| {
        assert_eq!(p.len(), plain.len() + DAVE_TAG_LEN + 1 + 1 + 2, "{p:?}");
        assert_eq!(&p[p.len() - 2..], &DAVE_MARKER);
        assert_ne!(&p[..plain.len()], plain, "encrypted");
        assert_eq!(p[p.len() - 3], 12, "supplemental size");
        p[plain.len() + DAVE_TAG_LEN]
    };
    assert_eq!(dave_nonce(&payloads[0], &opus_like(1)), 1);
    assert_eq!(payloads[1], OPUS_SILENCE);
    assert_eq!(dave_nonce(&payloads[2], &opus_like(2)), 2);
    assert_eq!(payloads[3], opus_like(3), "plain after the key is removed");
    assert_eq!(dave_nonce(&payloads[4], &opus_like(4)), 3, "no nonce reuse");
    assert_eq!(stats.dave_packets_sent.load(Ordering::Relaxed), 3);
}
