//! Deterministic mutation search for inputs that make the decoder panic.
//!
//! `cargo run -p quaver-engine --example mutate_media -- OUT_DIR [ITERATIONS] [FILES…]`
//!
//! Mutates each file (by default `tests/media/sine.*`) `ITERATIONS` times (default
//! 300) with a seeded generator, runs every mutant through the same path as playback
//! (`probe::inspect`, then `Job::open` and its pumps, the ring drained as the engine
//! would), and catches panics. For each panic site it keeps the smallest mutant,
//! shrunk by truncation while it still panics at the same site, as
//! `OUT_DIR/<file>-<site>.bin`, and prints a summary. The same arguments always find
//! the same files; `tests/media/corrupt/` was made this way (see its README).
//! With `ITERATIONS` 0 it runs the given files as they are and says where each panics.

// A command-line tool: what it prints is its result.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use quaver_engine::decode::guard::{self, Panic};
use quaver_engine::decode::{probe, Input, Job, JobReport, JobSpec, MediaSource, Pump};

/// xorshift64*: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few byte-level mutations, half of them within the first 4 KiB, where the
/// container's structure lives.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    let count = 1 + rng.below(8);
    for _ in 0..count {
        if data.is_empty() {
            break;
        }
        let span = if rng.below(2) == 0 {
            data.len().min(4096)
        } else {
            data.len()
        };
        let at = rng.below(span);
        match rng.below(6) {
            0 => data[at] = rng.next() as u8,
            1 => data[at] ^= 1 << rng.below(8),
            2 => data[at] = [0x00, 0xFF, 0x7F, 0x80, 0x01][rng.below(5)],
            3 => {
                let len = 1 + rng.below(16);
                let from = rng.below(data.len());
                let chunk: Vec<u8> = data[from..(from + len).min(data.len())].to_vec();
                let end = (at + chunk.len()).min(data.len());
                data[at..end].copy_from_slice(&chunk[..end - at]);
            }
            4 => {
                let len = 1 + rng.below(8);
                data.drain(at..(at + len).min(data.len()));
            }
            _ => {
                let len = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
        }
    }
    data
}

fn source(bytes: &[u8]) -> Box<dyn MediaSource> {
    Box::new(Cursor::new(bytes.to_vec()))
}

/// Runs `bytes` through the probe and a whole decode; the first panic, if any.
fn run(bytes: &[u8], extension: &str) -> Option<Panic> {
    if let Err(e) = probe::inspect(source(bytes), Some(extension)) {
        if let Some(at) = e.find("the decoder panicked: ") {
            // inspect guards itself; its message carries the panic.
            return Some(Panic {
                message: e[at..].to_owned(),
                location: e
                    .rsplit_once("(at ")
                    .map(|(_, l)| l.trim_end_matches(')').to_owned()),
            });
        }
    }
    let owned = bytes.to_vec();
    let spec = JobSpec {
        input: Input::Open(Box::new(move || {
            Ok(Box::new(Cursor::new(owned)) as Box<dyn MediaSource>)
        })),
        extension: Some(extension.to_owned()),
        start_ms: 0,
        epoch: 0,
        buffer_ms: 400,
        resample: Default::default(),
        encoder_complexity: 10,
    };
    guard::catch(|| {
        let Ok((mut job, JobReport::Ready { mut frames, .. })) = Job::open(spec) else {
            return;
        };
        let mut buf = vec![0u8; quaver_engine::ring::PCM_FRAME_BYTES];
        for _ in 0..2_000 {
            if job.pump(8, &mut |_| {}) == Pump::Finished {
                break;
            }
            while frames.read(&mut buf).is_some() {}
        }
    })
    .err()
}

/// The panic site without the column, as the key a mutant is filed under.
fn site(p: &Panic) -> String {
    let at = p.location.clone().unwrap_or_else(|| p.message.clone());
    let mut parts: Vec<&str> = at.rsplitn(3, ':').collect();
    parts.reverse();
    let file = parts[0].rsplit('/').take(3).collect::<Vec<_>>();
    let file: Vec<&str> = file.into_iter().rev().collect();
    format!("{}:{}", file.join("/"), parts.get(1).unwrap_or(&""))
}

/// Truncates `bytes` while it still panics at `want`.
fn shrink(mut bytes: Vec<u8>, extension: &str, want: &str) -> Vec<u8> {
    let mut step = bytes.len() / 2;
    while step > 0 {
        let cut = bytes.len().saturating_sub(step);
        if cut > 0 && run(&bytes[..cut], extension).is_some_and(|p| site(&p) == want) {
            bytes.truncate(cut);
        } else {
            step /= 2;
        }
    }
    bytes
}

fn main() {
    guard::install_hook();
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .expect("usage: mutate_media OUT_DIR [ITERATIONS] [FILES…]"),
    );
    let iterations: u64 = args.next().map_or(300, |n| n.parse().expect("ITERATIONS"));
    let mut files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if files.is_empty() {
        let media = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/media");
        for ext in ["webm", "m4a", "mp3", "ogg", "flac", "opus"] {
            files.push(media.join(format!("sine.{ext}")));
        }
    }
    std::fs::create_dir_all(&out).expect("OUT_DIR");
    // Per site: how often it was hit, and the smallest mutant with its file and seed.
    let mut found: BTreeMap<String, (usize, Vec<u8>, String, u64)> = BTreeMap::new();
    for (n, file) in files.iter().enumerate() {
        let seed = std::fs::read(file).expect("a seed file");
        let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if iterations == 0 {
            // Check mode: run the files as they are.
            match run(&seed, extension) {
                Some(p) => println!("{name}: panics at {}: {}", site(&p), p.message),
                None => println!("{name}: no panic"),
            }
            continue;
        }
        let mut panics = 0;
        for i in 0..iterations {
            let seed_no = (n as u64) << 32 | i;
            let mut rng = Rng::new(seed_no);
            let mutant = mutate(&seed, &mut rng);
            let Some(p) = run(&mutant, extension) else {
                continue;
            };
            panics += 1;
            let key = site(&p);
            let entry = found
                .entry(key)
                .or_insert((0, Vec::new(), String::new(), 0));
            entry.0 += 1;
            if entry.1.is_empty() || mutant.len() < entry.1.len() {
                *entry = (entry.0, mutant, name.clone(), seed_no);
            }
        }
        println!("{name}: {panics} of {iterations} mutants panicked");
    }
    for (key, (count, bytes, name, seed_no)) in found {
        let small = shrink(bytes, name.rsplit('.').next().unwrap_or(""), &key);
        let file = format!(
            "{}-{}.bin",
            name.replace('.', "-"),
            key.replace(['/', ':', '.'], "_")
        );
        std::fs::write(out.join(&file), &small).expect("write");
        println!(
            "{count:4}× {key}: smallest from {name}, seed {seed_no:#x} → {file} ({} bytes)",
            small.len()
        );
    }
}
