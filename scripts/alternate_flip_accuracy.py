#!/usr/bin/env python3
"""What the page's smoothed label gets right on a still face with "alternate mirrored frames".

    scripts/alternate_flip_accuracy.py [--model M] [--data fer2013.csv(.gz)] [--split private|public] [--smoothing A]

With temporal smoothing on (weight A on the past, 0.6 by default), the page classifies every other frame's faces
mirrored (PipelineOptions::alternate_flip), and a face seen for the first time gets both views at once. On a face
that holds still, the smoothed probabilities are the mean of both views on its first frame, A/2 * p(view) +
(1 - A/2) * p(mirrored) or the other way round on its second (depending on which view that frame takes), and after
many frames they settle at weights 1/(1+A) and A/(1+A), swapping with each frame. This prints the accuracy of
each of those mixes on a FER-2013 split, next to one view alone (each frame's own probabilities).

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
    print(f'  one view alone (a frame\'s own probabilities): {accuracy(1.0):.2f}%; the mirrored view alone: '
          f'{accuracy(0.0):.2f}%')
    print('  the smoothed label, frame by frame (weight of the unmirrored view, accuracy), for a face that appears')
    print('  on an unmirrored frame | on a mirrored frame:')
    weights = [0.5, 0.5]  # frame 1: both views
    worst = 100.0
    for frame in range(1, 11):
        acc = [accuracy(w) for w in weights]
        worst = min(worst, *acc)
        print(f'  frame {frame:2d}: {weights[0]:.3f} {acc[0]:6.2f}% | {weights[1]:.3f} {acc[1]:6.2f}%')
        # The next frame takes the other view: mirrored after an unmirrored frame and the other way round.
        mirrored_next = [frame % 2 == 1, frame % 2 == 0]
        weights = [s * w + (1 - s) * (0.0 if m else 1.0) for w, m in zip(weights, mirrored_next)]
    print(f'  settled: {1 / (1 + s):.3f} {accuracy(1 / (1 + s)):.2f}% | {s / (1 + s):.3f} {accuracy(s / (1 + s)):.2f}%')
    print(f'  the lowest of frames 1-10: {worst:.2f}%')


if __name__ == '__main__':
    main()
