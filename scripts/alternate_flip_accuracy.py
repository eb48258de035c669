#!/usr/bin/env python3
"""What the page's smoothed label gets right on a still face with "alternate mirrored frames".

    scripts/alternate_flip_accuracy.py [--model M] [--data fer2013.csv(.gz)] [--split private|public] [--smoothing A]

With temporal smoothing on (weight A on the past, 0.6 by default), the page classifies every other frame's faces
mirrored (PipelineOptions::alternate_flip). On a face that holds still, the smoothed probabilities after two frames
are A * p(view) + (1 - A) * p(mirrored view), and after many frames they settle at weights 1/(1+A) and A/(1+A),
swapping with each frame. This prints the accuracy of each of those mixes on a FER-2013 split, next to one view
(what every frame got before) and plain flip averaging (0.5 / 0.5, `fer-train eval --tta`: twice the work).

It writes the split's faces as BMP files into a temporary folder (deleted at the end; nothing goes into the
repository), runs `fer-train predict --json` on them and on their mirror images, and mixes the probabilities.
Standard library only. FER_TRAIN overrides the fer-train binary (default build/release/native/fer-train).
"""
import argparse
import csv
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
NAMES = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']


def write_bmp(path, pixels):
    """48x48 grey pixels (bytes, row-major) as a 24-bit BMP (rows of 144 bytes: no padding)."""
    data = b''.join(bytes((v, v, v)) for y in range(47, -1, -1) for v in pixels[y * 48:(y + 1) * 48])
    header = b'BM' + struct.pack('<IHHI', 54 + len(data), 0, 0, 54)
    header += struct.pack('<IiiHHIIiiII', 40, 48, 48, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    with open(path, 'wb') as f:
        f.write(header + data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default=os.path.join(ROOT, 'assets', 'models', 'default.ferkit'))
    ap.add_argument('--data', default=os.path.join(ROOT, '..', 'shared', 'data', 'fer2013', 'fer2013.csv.gz'))
    ap.add_argument('--split', choices=['private', 'public'], default='private')
    ap.add_argument('--smoothing', type=float, default=0.6, help='the page\'s smoothing strength (default 0.6)')
    a = ap.parse_args()
    fer = os.environ.get('FER_TRAIN', os.path.join(ROOT, 'build', 'release', 'native', 'fer-train'))
    if not os.access(fer, os.X_OK):
        sys.exit(f'{fer} is missing: cmake --preset release && cmake --build --preset release')
    usage = {'private': 'PrivateTest', 'public': 'PublicTest'}[a.split]
    opener = gzip.open if a.data.endswith('.gz') else open
    labels, faces = [], []
    with opener(a.data, 'rt', newline='') as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            if row['Usage'] != usage:
                continue
            px = row['pixels'].split()
            if len(px) != 48 * 48:
                sys.exit(f'{a.data}:{line}: field "pixels": expected 2304 values, got {len(px)}')
            labels.append(int(row['emotion']))
            faces.append(bytes(int(v) for v in px))
    with tempfile.TemporaryDirectory() as tmp:
        views = {}
        for tag in ('view', 'mirrored'):
            files = []
            for i, px in enumerate(faces):
                if tag == 'mirrored':
                    px = b''.join(px[y * 48:(y + 1) * 48][::-1] for y in range(48))
                files.append(os.path.join(tmp, f'{tag}{i:05d}.bmp'))
                write_bmp(files[-1], px)
            out = subprocess.run([fer, 'predict', '--json', '--model', a.model] + files, check=True,
                                 capture_output=True, text=True).stdout
            views[tag] = [[r['probabilities'][k] for k in NAMES] for r in json.loads(out)]

    def accuracy(w):  # w on the unmirrored view
        right = 0
        for p, q, label in zip(views['view'], views['mirrored'], labels):
            mix = [w * x + (1 - w) * y for x, y in zip(p, q)]
            right += mix.index(max(mix)) == label
        return 100.0 * right / len(labels)

    s = a.smoothing
    print(f'{a.model} on {usage} ({len(labels)} faces), smoothing {s}:')
    rows = [('one view (each frame alone)', 1.0), ('the mirrored view alone', 0.0),
            (f'two frames: {s:g} view + {1 - s:g} mirrored', s),
            (f'still face, settled, view frame: {1 / (1 + s):.3f} view', 1 / (1 + s)),
            (f'still face, settled, mirrored frame: {s / (1 + s):.3f} view', s / (1 + s)),
            ('flip averaging (0.5 / 0.5, twice the work)', 0.5)]
    for what, w in rows:
        print(f'  {what:48s} {accuracy(w):6.2f}%')


if __name__ == '__main__':
    main()
