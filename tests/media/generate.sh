#!/usr/bin/env bash
# Regenerates the test media: 2 s of a 1 kHz sine (0.5 full scale), stereo, in every
# format the engine decodes. Needs ffmpeg with libmp3lame, libvorbis and libopus.
# The files are committed so tests need no encoder; run this only to change them.
# corrupt/ holds files made from these that make the decoder panic (corrupt/make.sh).
set -euo pipefail
cd "$(dirname "$0")"
src=(-f lavfi -i "sine=frequency=1000:sample_rate=44100:duration=2,volume=0.5" -ac 2)
src48=(-f lavfi -i "sine=frequency=1000:sample_rate=48000:duration=2,volume=0.5" -ac 2)
q=(-hide_banner -loglevel error -y)
out=(-map_metadata -1 -fflags +bitexact)
ffmpeg "${q[@]}" "${src[@]}" "${out[@]}" -c:a libmp3lame -b:a 128k -metadata title="Sine 1k" -metadata artist="Quaver Tests" sine.mp3
ffmpeg "${q[@]}" "${src[@]}" "${out[@]}" -c:a flac sine.flac
ffmpeg "${q[@]}" "${src[@]}" "${out[@]}" -c:a libvorbis -q:a 3 sine.ogg
ffmpeg "${q[@]}" "${src[@]}" "${out[@]}" -c:a aac -b:a 128k sine.m4a
ffmpeg "${q[@]}" "${src48[@]}" "${out[@]}" -c:a libopus -b:a 96k -frame_duration 20 sine.opus
ffmpeg "${q[@]}" "${src48[@]}" "${out[@]}" -c:a libopus -b:a 96k -frame_duration 20 sine.webm
# One minute, for the density benchmark (small bitrates keep the files small).
long=(-f lavfi -i "sine=frequency=440:sample_rate=48000:duration=60,volume=0.5" -ac 2)
long44=(-f lavfi -i "sine=frequency=440:sample_rate=44100:duration=60,volume=0.5" -ac 2)
ffmpeg "${q[@]}" "${long[@]}" "${out[@]}" -c:a libopus -b:a 32k -frame_duration 20 long.opus
ffmpeg "${q[@]}" "${long44[@]}" "${out[@]}" -c:a libmp3lame -b:a 64k long.mp3
