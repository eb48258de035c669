#!/usr/bin/env python3
"""Cross-fitted teacher soft targets for ferkit's trainer, computed on a GPU with PyTorch.

ferkit's own trainer runs on CPUs; on this project's 2-core machine a large teacher network takes most of a day.
This script trains K large VGG-style networks on a GPU, each on K-1 of K folds of the FER-2013 Training rows, and
predicts the fold each one did not see (10-view test-time augmentation). The result is an out-of-fold
distribution over the 7 classes for every Training row: a teacher's opinion of each face that was not memorized
from its label. `fer-train train --soft-targets FILE` blends it into the training targets, as it does FER+ votes.

Three steps, because the GPU machine cannot read ../shared and takes at most 64 MiB of files with the repository:
  1. here (pure Python, no numpy; about 5 min):
       python3 scripts/teacher_gpu.py pack ../shared/data/fer2013/fer2013.csv.gz .gpu/fer-tp.xz \
           --keep Training,PublicTest
     (median-edge-predicted pixels, xz-compressed: 48.5 MB; a CRC-32 of the pixels lets the GPU side check its
     decoding; PrivateTest is left out to fit, and is not needed: the teachers are only judged on PublicTest)
  2. on the GPU machine, once per seed (about 5 min each on an H200):
       python3 scripts/teacher_gpu.py train .gpu/fer-tp.xz --out DIR --budget 500 --batch 256 --lr 0.1 \
           --max-epochs 100 --seed S
     writes DIR/soft_targets.csv (one row per Training row, in fer2013.csv order) and DIR/teacher_log.json.
  3. here: python3 scripts/teacher_gpu.py average OUT.csv DIR1/soft_targets.csv DIR2/soft_targets.csv
Nothing from FER-2013 is written to DIR except the teacher's predictions.
`unpack PACK OUT.csv` (numpy) writes a pack back out as a fer2013.csv, so that ferkit's own trainer can run on that
machine's CPU cores (session 9 packed `--keep Training` and ran `fer-train train --data OUT.csv` there).
"""
import argparse
import json
import math
import os
import struct
import sys
import time
import zlib

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
USAGE = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
MAGIC = b"FERMED1"


# ---------------------------------------------------------------- pack (pure Python: runs without numpy)
def med_residuals(img):
    """Residuals of the median edge detector (LOCO-I / JPEG-LS) predictor: a = left, b = above, c = above-left."""
    out = bytearray(2304)
    for y in range(48):
        r = y * 48
        for x in range(48):
            if x > 0 and y > 0:
                a, b, c = img[r + x - 1], img[r + x - 48], img[r + x - 49]
                pr = min(a, b) if c >= max(a, b) else (max(a, b) if c <= min(a, b) else a + b - c)
            elif x > 0:
                pr = img[r + x - 1]
            elif y > 0:
                pr = img[r - 48]
            else:
                pr = 0
            out[r + x] = (img[r + x] - pr) & 255
    return out


def cmd_pack(src, dst, keep):
    import gzip
    import lzma
    labels, usage, res = bytearray(), bytearray(), bytearray()
    crc = 0
    opener = gzip.open if src.endswith(".gz") else open
    with opener(src, "rt") as f:
        head = f.readline().strip()
        if head != "emotion,pixels,Usage":
            sys.exit(f"{src}:1: expected the header 'emotion,pixels,Usage', got '{head}'")
        for line_no, line in enumerate(f, start=2):
            fields = line.rstrip("\r\n").split(",")
            if len(fields) != 3:
                sys.exit(f"{src}:{line_no}: expected 3 fields, got {len(fields)}")
            img = bytes(int(v) for v in fields[1].split())
            if len(img) != 2304:
                sys.exit(f"{src}:{line_no}: expected 2304 pixels, got {len(img)}")
            u = fields[2].strip()
            if u not in USAGE:
                sys.exit(f"{src}:{line_no}: Usage '{u}', expected Training, PublicTest or PrivateTest")
            if u not in keep:
                continue
            labels.append(int(fields[0]))
            usage.append(USAGE[u])
            crc = zlib.crc32(img, crc)
            res += med_residuals(img)
    n = len(labels)
    blob = MAGIC + struct.pack("<II", n, crc) + labels + usage + res
    tmp = dst + ".tmp"
    with open(tmp, "wb") as o:
        o.write(lzma.compress(bytes(blob), preset=9 | lzma.PRESET_EXTREME))
    os.replace(tmp, dst)
    print(f"{dst}: {n} rows, pixel crc32 {crc:08x}, {os.path.getsize(dst)} bytes")


def cmd_average(srcs, dst):
    """Row-wise mean of soft-target files with the same header and row count (several runs' out-of-fold targets)."""
    tables = []
    for src in srcs:
        with open(src) as f:
            lines = f.read().splitlines()
        if not lines or lines[0] != ",".join(CLASSES):
            sys.exit(f"{src}:1: expected the header '{','.join(CLASSES)}'")
        rows = [[float(v) for v in line.split(",")] for line in lines[1:] if line]
        if tables and len(rows) != len(tables[0]):
            sys.exit(f"{src}: {len(rows)} rows, but {srcs[0]} has {len(tables[0])}")
        tables.append(rows)
    tmp = dst + ".tmp"
    with open(tmp, "w") as o:
        o.write(",".join(CLASSES) + "\n")
        for rows in zip(*tables):
            o.write(",".join("%.4f" % (sum(col) / len(rows)) for col in zip(*rows)) + "\n")
    os.replace(tmp, dst)
    print(f"{dst}: mean of {len(tables)} files, {len(tables[0])} rows")


# ---------------------------------------------------------------- train (numpy + PyTorch on a GPU)
def load_packed(path):
    import lzma
    import numpy as np
    raw = lzma.decompress(open(path, "rb").read())
    if raw[:len(MAGIC)] != MAGIC:
        sys.exit(f"{path}: not a packed FER-2013 file (bad magic)")
    at = len(MAGIC)
    n, crc = struct.unpack("<II", raw[at:at + 8])
    at += 8
    labels = np.frombuffer(raw, np.uint8, n, at).astype(np.int64)
    usage = np.frombuffer(raw, np.uint8, n, at + n)
    res = np.frombuffer(raw, np.uint8, n * 2304, at + 2 * n).reshape(n, 48, 48)
    r = np.ascontiguousarray(res.transpose(1, 2, 0)).astype(np.int16)  # (48, 48, n): contiguous per pixel
    out = np.zeros_like(r)
    zero = np.zeros(n, np.int16)
    for y in range(48):
        for x in range(48):
            if x > 0 and y > 0:
                a, b, c = out[y, x - 1], out[y - 1, x], out[y - 1, x - 1]
                lo, hi = np.minimum(a, b), np.maximum(a, b)
                pr = np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))
            elif x > 0:
                pr = out[y, x - 1]
            elif y > 0:
                pr = out[y - 1, 0]
            else:
                pr = zero
            out[y, x] = (r[y, x] + pr) & 255
    pix = np.ascontiguousarray(out.astype(np.uint8).transpose(2, 0, 1))
    got = zlib.crc32(pix.tobytes())
    if got != crc:
        sys.exit(f"{path}: decoded pixels have crc32 {got:08x}, expected {crc:08x}")
    return labels, usage, pix


def cmd_unpack(src, dst):
    """A fer2013.csv (emotion,pixels,Usage) from a packed file, for ferkit's own trainer on the device machine's
    CPU cores (fer-train reads CSV). Written to a temporary name, then renamed."""
    labels, usage, pix = load_packed(src)
    names = {v: k for k, v in USAGE.items()}
    text = [str(v) for v in range(256)]
    tmp = dst + ".tmp"
    with open(tmp, "w") as o:
        o.write("emotion,pixels,Usage\n")
        for label, use, img in zip(labels.tolist(), usage.tolist(), pix.reshape(len(labels), -1).tolist()):
            o.write(f"{label},{' '.join([text[v] for v in img])},{names[use]}\n")
    os.replace(tmp, dst)
    print(f"{dst}: {len(labels)} rows")


def build_vgg(width, fc, dropout):
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2)]
    w = width
    return nn.Sequential(*block(1, w), *block(w, 2 * w), *block(2 * w, 4 * w), *block(4 * w, 8 * w),
                         nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * w * 9, fc), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(fc, len(CLASSES)))


MEAN, STD = 0.508, 0.255


def augment(x, gen):
    """x: (B, 1, 48, 48) floats in [0, 1] on the GPU. Random flip, rotation +-15 deg, scale +-15%, shift +-4 px,
    then random erasing (p 0.5, 2-20% of the area, filled with noise)."""
    import torch
    import torch.nn.functional as F
    B, dev = x.shape[0], x.device

    def u(lo, hi):
        return torch.rand(B, device=dev, generator=gen) * (hi - lo) + lo
    ang = u(-math.radians(15), math.radians(15))
    sc = u(0.85, 1.15)
    sign = torch.where(torch.rand(B, device=dev, generator=gen) < 0.5, -1.0, 1.0)
    tx, ty = u(-1 / 6, 1 / 6), u(-1 / 6, 1 / 6)  # normalized coordinates: 1/6 of the half-width is 4 px
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    area = u(0.02, 0.20) * 2304
    aspect = torch.exp(u(math.log(0.3), math.log(3.3)))
    h = torch.sqrt(area * aspect).clamp(1, 47)
    w = torch.sqrt(area / aspect).clamp(1, 47)
    y0 = u(0, 1) * (48 - h)
    x0 = u(0, 1) * (48 - w)
    ar = torch.arange(48, device=dev, dtype=torch.float32)
    my = (ar[None, :] >= y0[:, None]) & (ar[None, :] < (y0 + h)[:, None])
    mx = (ar[None, :] >= x0[:, None]) & (ar[None, :] < (x0 + w)[:, None])
    on = (torch.rand(B, device=dev, generator=gen) < 0.5)[:, None, None]
    mask = (my[:, :, None] & mx[:, None, :] & on)[:, None]
    noise = torch.rand(x.shape, device=dev, generator=gen)
    return torch.where(mask, noise, x)


def views(x):
    """10 test views of (B, 1, 48, 48): centre and 4 shifts of 2 px, each also flipped."""
    import torch.nn.functional as F
    p = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for dy, dx in ((2, 2), (0, 2), (4, 2), (2, 0), (2, 4)):
        v = p[:, :, dy:dy + 48, dx:dx + 48]
        yield v
        yield v.flip(3)


def predict(model, pix_u8, batch=1024, tta=True):
    import torch
    model.eval()
    out = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for i in range(0, pix_u8.shape[0], batch):
            x = (pix_u8[i:i + batch].float()[:, None] / 255.0 - MEAN) / STD
            vs = list(views(x)) if tta else [x]
            acc = 0
            for v in vs:
                acc = acc + torch.softmax(model(v.contiguous(memory_format=torch.channels_last)).float(), 1)
            out.append(acc / len(vs))
    model.train()
    return torch.cat(out)


def train_one(X, Y, epochs, args, seed, log_prefix, steps_cap=None):
    """Trains one network on X (uint8 (n, 48, 48) on the GPU), Y (int64 (n,)). Returns the model."""
    import torch
    import torch.nn.functional as F
    dev = X.device
    torch.manual_seed(seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    model = build_vgg(args.width, args.fc, args.dropout).to(dev).to(memory_format=torch.channels_last)
    decay = [p for n_, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n_, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, nesterov=True)
    n = X.shape[0]
    spe = n // args.batch
    total = epochs * spe if steps_cap is None else steps_cap
    warm = min(spe, total)

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    step = 0
    t0 = time.time()
    while step < total:
        perm = torch.randperm(n, device=dev, generator=gen)
        run_loss, run_n = 0.0, 0
        for i in range(spe):
            if step >= total:
                break
            idx = perm[i * args.batch:(i + 1) * args.batch]
            x = augment(X[idx].float()[:, None] / 255.0, gen)
            x = ((x - MEAN) / STD).contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), Y[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if i % 50 == 0:
                run_loss += loss.item()
                run_n += 1
        if steps_cap is None:
            print(f"{log_prefix} epoch {step // spe}/{epochs} loss {run_loss / max(1, run_n):.3f} "
                  f"{time.time() - t0:.0f}s", flush=True)
    return model


def accuracy(probs, labels):
    return float((probs.argmax(1) == labels).float().mean())


def cmd_train(args):
    import numpy as np
    import torch
    t_start = time.time()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    labels, usage, pix = load_packed(args.data)
    dev = torch.device("cuda")
    print(f"loaded {len(labels)} rows in {time.time() - t_start:.1f}s on {torch.cuda.get_device_name(0)}",
          flush=True)
    tr, pu, pr = (np.where(usage == u)[0] for u in (0, 1, 2))
    Xtr = torch.from_numpy(pix[tr]).to(dev)
    Ytr = torch.from_numpy(labels[tr]).to(dev)
    Xpu, Ypu = torch.from_numpy(pix[pu]).to(dev), torch.from_numpy(labels[pu]).to(dev)
    Xpr, Ypr = torch.from_numpy(pix[pr]).to(dev), torch.from_numpy(labels[pr]).to(dev)
    if args.smoke:
        Xtr, Ytr = Xtr[:2048], Ytr[:2048]

    # Stratified folds over the Training rows.
    rng = np.random.default_rng(args.seed)
    ytr = labels[tr][:Xtr.shape[0]]
    fold = np.zeros(len(ytr), np.int64)
    for c in range(len(CLASSES)):
        idx = np.where(ytr == c)[0]
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % args.folds
    fold_t = torch.from_numpy(fold).to(dev)

    # Time the training step on this machine, then choose the epochs that fit the budget.
    spe = int((fold != 0).sum()) // args.batch
    probe = 20 if args.smoke else 60
    train_one(Xtr[fold_t != 0], Ytr[fold_t != 0], 1, args, args.seed, "probe", steps_cap=probe // 3)
    torch.cuda.synchronize()
    t0 = time.time()
    train_one(Xtr[fold_t != 0], Ytr[fold_t != 0], 1, args, args.seed, "probe", steps_cap=probe)
    torch.cuda.synchronize()
    step_s = (time.time() - t0) / probe
    left = args.budget - (time.time() - t_start)
    epochs = int(left / (args.folds * spe * step_s * 1.08))
    epochs = max(1, min(args.max_epochs, epochs))
    if args.smoke:
        epochs = 1
    print(f"{step_s * 1000:.1f} ms a step of {args.batch}, {spe} steps an epoch: {epochs} epochs for each of "
          f"{args.folds} folds ({left:.0f}s left of the budget)", flush=True)

    oof = torch.zeros(Xtr.shape[0], len(CLASSES), device=dev)
    ens_pu = torch.zeros(Xpu.shape[0], len(CLASSES), device=dev)
    ens_pr = torch.zeros(Xpr.shape[0], len(CLASSES), device=dev)
    log = {"device": torch.cuda.get_device_name(0), "epochs": epochs, "folds": args.folds,
           "args": {k: v for k, v in vars(args).items() if k != "func"}, "fold_results": []}
    for k in range(args.folds):
        t_fold = time.time()
        m = fold_t != k
        model = train_one(Xtr[m], Ytr[m], epochs, args, args.seed + 1 + k, f"fold {k}")
        oof[~m] = predict(model, Xtr[~m])
        p_pu, p_pr = predict(model, Xpu), (predict(model, Xpr) if len(pr) else ens_pr)
        p_pu_plain = predict(model, Xpu, tta=False)
        ens_pu += p_pu
        ens_pr += p_pr
        r = {"fold": k, "seconds": round(time.time() - t_fold, 1),
             "heldout_acc_tta": accuracy(oof[~m], Ytr[~m]),
             "public_acc": accuracy(p_pu_plain, Ypu), "public_acc_tta": accuracy(p_pu, Ypu),
             "private_acc_tta": accuracy(p_pr, Ypr) if len(pr) else None}
        log["fold_results"].append(r)
        print(json.dumps(r), flush=True)
        del model
    log["ensemble_public_acc"] = accuracy(ens_pu, Ypu)
    log["ensemble_private_acc"] = accuracy(ens_pr, Ypr) if len(pr) else None
    log["oof_training_acc"] = accuracy(oof, Ytr)
    conf = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.int64)
    for t, p in zip(Ytr.cpu().tolist(), oof.argmax(1).cpu().tolist()):
        conf[t, p] += 1
    log["oof_recall"] = {c: float(conf[i, i]) / max(1, int(conf[i].sum())) for i, c in enumerate(CLASSES)}
    log["oof_mean_max_prob"] = float(oof.max(1).values.mean())
    log["seconds"] = round(time.time() - t_start, 1)
    print(json.dumps({k: v for k, v in log.items() if k != "fold_results"}), flush=True)

    os.makedirs(args.out, exist_ok=True)
    rows = oof.cpu().numpy()
    path = os.path.join(args.out, "soft_targets.csv")
    with open(path + ".tmp", "w") as f:
        f.write(",".join(CLASSES) + "\n")
        for row in rows:
            f.write(",".join(f"{v:.5f}" for v in row) + "\n")
    os.replace(path + ".tmp", path)
    with open(os.path.join(args.out, "teacher_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"wrote {path} ({len(rows)} rows)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack fer2013.csv(.gz) into a small file for the GPU machine")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--keep", default="Training,PublicTest,PrivateTest",
                   help="the Usage values to pack (the GPU machine takes at most 64 MiB with the repository)")
    u = sub.add_parser("unpack", help="write a fer2013.csv from a packed file (numpy), for fer-train")
    u.add_argument("src")
    u.add_argument("dst")
    v = sub.add_parser("average", help="row-wise mean of several soft-target files (pure Python)")
    v.add_argument("out")
    v.add_argument("srcs", nargs="+")
    t = sub.add_parser("train", help="train the K fold teachers and write out-of-fold soft targets")
    t.add_argument("data", help="a file written by 'pack'")
    t.add_argument("--out", required=True)
    t.add_argument("--budget", type=float, default=420, help="seconds for the whole run (sets the epochs)")
    t.add_argument("--max-epochs", type=int, default=80)
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--width", type=int, default=64)
    t.add_argument("--fc", type=int, default=1024)
    t.add_argument("--dropout", type=float, default=0.4)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.05)
    t.add_argument("--wd", type=float, default=5e-4)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--smoke", action="store_true", help="tiny run through every step (checks the machine)")
    a = ap.parse_args()
    if a.cmd == "pack":
        cmd_pack(a.src, a.dst, a.keep.split(","))
    elif a.cmd == "unpack":
        cmd_unpack(a.src, a.dst)
    elif a.cmd == "average":
        cmd_average(a.srcs, a.out)
    else:
        cmd_train(a)


if __name__ == "__main__":
    main()
