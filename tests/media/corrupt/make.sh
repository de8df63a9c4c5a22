#!/usr/bin/env bash
# Rebuilds the corrupt-media corpus from the committed test media (see README.md).
# Each file makes symphonia 0.5.5 panic; the tests check that the panic ends only its
# own track. Needs only coreutils, plus cargo for the mutation-search file. The offsets
# are those of the committed sine.webm and sine.m4a: regenerating those (../generate.sh)
# means finding these files again (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
# Writes the bytes of printf format $2 into file $1 at offset $3.
poke() { printf "$2" | dd of="$1" bs=1 seek="$3" conv=notrunc status=none; }

# symphonia-format-mkv ebml.rs: "EBML header must be read before calling this function".
# The last SeekHead entry's SeekPosition (at byte 106) points past the end of the file;
# the demuxer seeks there while probing, finds no element and unwraps the missing header.
head -c 512 ../sine.webm > seek-past-end.webm
poke seek-past-end.webm '\xff' 109

# symphonia-codec-aac ics/mod.rs: "index out of bounds: the len is 50 but the index is 50".
# The 11th AAC frame (at byte 3728, a CPE with a common long window) gets max_sfb 57,
# more scale-factor bands than 44.1 kHz has (49); the spectrum decoder indexes past the
# band table. Probing succeeds (only the frame is bad), so this one fails mid-decode.
cp ../sine.m4a aac-max-sfb.m4a
poke aac-max-sfb.m4a '\x1e\x4f' 3729

# symphonia-format-mkv ebml.rs: assertion "invalid position". Found by the seeded
# mutation search (engine/examples/mutate_media.rs), shrunk by truncation.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run -q -p quaver-engine --example mutate_media -- "$out" 400 ../sine.webm >/dev/null
cp "$out"/sine-webm-symphonia-format-mkv-0_5_5_src_ebml_rs_317.bin invalid-position.webm
