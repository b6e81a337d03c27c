#!/usr/bin/env python3
"""Reads the event log that tensorboard_write wrote with TensorBoard's own reader and checks
it against the writer's expected.json (CTest tools.tensorboard, in the venv of the fixture
tools.tensorboard.venv):

- each event file, through EventFileLoader: the file version first, then the session start;
- the directory, through EventAccumulator, as `tensorboard --logdir` merges it: every tag,
  every step once (a resumed run's session start drops what the stopped run logged past
  its checkpoint), every value bit for bit as a float;
- the sample grids: their steps, their size, and their PNG decoded to that many pixels;
- a copy of a file with one byte of its last record changed: the reader stops before that
  record, so its CRC checks ran on these files.

Run: tensorboard_read.py <log dir>
"""

import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

from tensorboard.backend.event_processing import event_accumulator, event_file_loader


def event_files(log_dir):
    return sorted(
        os.path.join(log_dir, name) for name in os.listdir(log_dir) if name.startswith("events.out.tfevents.")
    )


def load(path):
    return list(event_file_loader.EventFileLoader(path).Load())


def as_float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def decode_png(data):
    """Width, height, channels and the raw scanlines of a non-interlaced 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, header = 8, b"", None
    while at < len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + n]
        (crc,) = struct.unpack(">I", data[at + 8 + n : at + 12 + n])
        assert zlib.crc32(kind + body) == crc, f"PNG chunk {kind} fails its CRC"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0, header
    channels = {0: 1, 2: 3}[color]
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + width * channels), "PNG data does not match its size"
    return width, height, channels


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    log_dir = argv[1]
    with open(os.path.join(log_dir, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)

    files = event_files(log_dir)
    assert len(files) == expected["files"], f"{len(files)} event files, expected {expected['files']}"
    starts = []
    for path in files:
        events = load(path)
        assert events[0].file_version == "brain.Event:2", path
        assert events[0].wall_time > 1.6e9, path
        assert events[1].session_log.status == events[1].session_log.START, path
        starts.append(events[1].step)
    assert starts == expected["session_starts"], f"session starts {starts}"

    acc = event_accumulator.EventAccumulator(
        log_dir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    assert sorted(tags["scalars"]) == sorted(expected["scalars"]), f"scalar tags {tags['scalars']}"
    checked = 0
    for tag, pairs in expected["scalars"].items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        want = [(step, as_float32(value)) for step, value in pairs]
        assert got == want, f"{tag}: TensorBoard shows {got}, expected {want}"
        checked += len(got)

    image = expected["image"]
    assert tags["images"] == [image["tag"]], f"image tags {tags['images']}"
    grids = acc.Images(image["tag"])
    assert [g.step for g in grids] == image["steps"], f"grids at steps {[g.step for g in grids]}"
    for g in grids:
        assert (g.width, g.height) == (image["width"], image["height"]), (g.width, g.height)
        assert decode_png(g.encoded_image_string) == (image["width"], image["height"], image["channels"])

    # One changed byte in the last record: TensorBoard's reader refuses that record.
    scratch = tempfile.mkdtemp(prefix="forgery_tensorboard_")
    try:
        copy = os.path.join(scratch, os.path.basename(files[-1]))
        shutil.copyfile(files[-1], copy)
        with open(copy, "r+b") as f:
            f.seek(-6, os.SEEK_END)
            byte = f.read(1)
            f.seek(-6, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0x01]))
        assert len(load(copy)) == len(load(files[-1])) - 1, "a corrupted record was read"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"tensorboard read {len(files)} event files: {checked} scalars under {len(expected['scalars'])} tags "
        f"and {len(grids)} {image['width']} x {image['height']} grids, as written"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
