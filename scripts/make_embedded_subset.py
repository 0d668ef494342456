#!/usr/bin/env python3
"""Cut the embedded Fashion-MNIST subset shipped in crates/opt-core/data/fashion-mnist-subset.

Takes the first N_TRAIN training and the first N_TEST test images (the source files are already
shuffled with a fixed seed) from a directory of the four standard IDX gzip files, and writes them
back as IDX gzip files (mtime 0, so the output is byte-for-byte reproducible).

Usage: python3 scripts/make_embedded_subset.py ../shared/data/fashion-mnist
"""
import gzip
import struct
import sys
from pathlib import Path

N_TRAIN, N_TEST = 10_000, 2_000
OUT = Path(__file__).resolve().parent.parent / "crates/opt-core/data/fashion-mnist-subset"


def read(path):
    data = gzip.decompress(path.read_bytes())
    magic, = struct.unpack(">I", data[:4])
    rank = magic & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return magic, list(dims), data[4 + 4 * rank:]


def write(path, magic, dims, body):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(header + body)


def main(src):
    src = Path(src)
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            name = f"{split}-{kind}.gz"
            magic, dims, body = read(src / name)
            per_item = 1
            for d in dims[1:]:
                per_item *= d
            write(OUT / name, magic, [n] + dims[1:], body[: n * per_item])
            print(f"{name}: {n} of {dims[0]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fashion-mnist")
