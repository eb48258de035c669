#!/usr/bin/python3
"""PyTorch reference benchmark for the ferkit "seed" architecture, or any ferkit spec (--spec).

Compare side by side with the C++ Google Benchmark build/release/bench/bench_seed
(BM_TrainStep/seed/64 images/s, BM_Inference/seed/1 latency, BM_Inference/seed/64 images/s),
or run bench/compare_seed.sh to get both in one table.

--spec FILE builds the network from a ferkit spec file (bench_seed --print-spec NAME writes a built-in's: conv,
dwconv, bn, relu, maxpool, dropout, flatten, dense, gap, save/add identity shortcuts), as bench/train_speed.sh does
for the default's vgg-xs-fw2.

Measured, with torch.set_num_threads(--threads):
  * training: batch 64, forward (train mode, dropout on) + cross-entropy + backward + optimizer step (--optimizer:
    Adam(lr 1e-3), or SGD with Nesterov momentum 0.9 and weight decay 5e-4 as the default's recipe) on random data,
    after warm-up; images/s over --seconds of wall time.
  * inference: eval mode under torch.inference_mode(); batch-1 latency (median of per-call times,
    microseconds) and batch-64 throughput (images/s).
As in the C++ benchmark, every timed call starts from uint8 pixels (the uint8 -> float/255 conversion
is inside the timed region; it is negligible next to the network).

Uses the Debian torch: run with /usr/bin/python3 (apt-get install python3-torch).
  /usr/bin/python3 bench/torch_seed.py --threads 1 --seconds 3 [--json]

Caveat: Debian's torch is built with BLAS=generic and by default resolves libblas.so.3 to the netlib
*reference* BLAS (~1.5 GFLOP/s). nn.Linear (forward and backward) and the non-oneDNN convolution path
(used for batch-1 3x3 convs, see ConvParams::use_mkldnn) then run through it, which makes PyTorch look far
slower than it is. The BLAS in use is printed (and is in the JSON); the script warns when it is netlib.
For a fair reference, point libblas.so.3 at OpenBLAS without touching the system, e.g.
  apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb /tmp/openblas
  LD_LIBRARY_PATH=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread bench/torch_seed.py ...
(OPENBLAS_NUM_THREADS / MKL_NUM_THREADS default to --threads.)
"""
import argparse
import json
import os
import statistics
import sys
import time

# torch is imported in main(), after the thread count is known: a BLAS loaded with torch (e.g. OpenBLAS
# via LD_LIBRARY_PATH, see below) reads its thread count from the environment when it is loaded.
torch = nn = F = None

NUM_CLASSES = 7
SEED_PARAMS = 1_306_375


def blas_library() -> str:
    """Path of the BLAS shared library mapped into this process (after importing torch)."""
    libs = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if any(k in name for k in ("blas", "mkl_rt", "mkl_core", "blis")) and path not in libs:
                libs.append(path)
    return ", ".join(os.path.realpath(p) for p in libs) or "unknown (none mapped)"


def is_reference_blas(blas: str) -> bool:
    return "/blas/libblas.so" in blas and not any(k in blas for k in ("openblas", "mkl", "blis", "atlas"))


def seed_model():
    """The seed architecture, NCHW: input N x 1 x 48 x 48, output N x 7 logits."""

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25)]

    return nn.Sequential(
        *block(1, 32),    # 48 -> 24
        *block(32, 64),   # 24 -> 12
        *block(64, 128),  # 12 -> 6
        nn.Flatten(),     # 6*6*128 = 4608
        nn.Linear(6 * 6 * 128, 256), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(256, 128), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(128, NUM_CLASSES),  # softmax is in the loss
    )


def chain(steps):
    """Layers in turn, with ferkit's 'save X' / 'add X' residual shortcuts (identity shortcuts only). (A class made
    here: torch is imported in main().)"""

    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([m for m in steps if isinstance(m, nn.Module)])
            self.steps = [m if isinstance(m, tuple) else None for m in steps]

        def forward(self, x):
            saved, i = {}, 0
            for s in self.steps:
                if s is None:
                    x = self.layers[i](x)
                    i += 1
                elif s[0] == "save":
                    saved[s[1]] = x
                else:
                    x = x + saved[s[1]]
            return x

    return Chain()


def same_padding(k, stride, h, w):
    """TensorFlow's 'same' padding as (left, right, top, bottom): at stride 2 the extra row and column are at the
    bottom and right, as in ferkit."""
    ph = max((-(-h // stride) - 1) * stride + k - h, 0)
    pw = max((-(-w // stride) - 1) * stride + k - w, 0)
    return (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)


def spec_model(text, where):
    """A ferkit spec (core/spec.h's language) as an NCHW network: conv, dwconv, bn, relu, maxpool, dropout, flatten,
    gap, dense, and save/add identity shortcuts. The flatten order differs from ferkit's NHWC, which changes nothing
    in the arithmetic."""
    layers, shape, flat = [], None, False  # flat: after flatten, gap or dense (N x C, no map)
    saved = {}  # name -> shape at the save
    for lineno, raw in enumerate(text.splitlines(), 1):
        t = raw.split("#")[0].split()
        if not t:
            continue
        op, a = t[0], t[1:]
        def bad(why):
            sys.exit(f"{where}:{lineno}: '{raw.strip()}': {why}")
        if op == "input":
            shape = [int(a[2]), int(a[0]), int(a[1])]  # C, H, W
            continue
        if shape is None:
            bad("expected 'input H W C' first")
        c, h, w = shape
        if op in ("conv", "dwconv"):
            depthwise = op == "dwconv"
            if depthwise:
                a = [str(c)] + a
            n, k = int(a[0]), int(a[1])
            stride = int(a[2]) if len(a) > 2 and a[2].isdigit() else 1
            same = "same" in a or (depthwise and "valid" not in a)
            pad = same_padding(k, stride, h, w) if same else (0, 0, 0, 0)
            if pad[0] == pad[1] and pad[2] == pad[3]:
                layers.append(nn.Conv2d(c, n, k, stride=stride, padding=(pad[2], pad[0]), groups=c if depthwise else 1))
            else:
                layers += [nn.ZeroPad2d(pad), nn.Conv2d(c, n, k, stride=stride, groups=c if depthwise else 1)]
            h, w = (h + pad[2] + pad[3] - k) // stride + 1, (w + pad[0] + pad[1] - k) // stride + 1
            shape = [n, h, w]
        elif op == "save":
            saved[a[0]] = list(shape)
            layers.append(("save", a[0]))
        elif op == "add":
            if a[0] not in saved:
                bad(f"no 'save {a[0]}' before it")
            if saved[a[0]] != shape:
                bad("only identity shortcuts (the saved shape) are built here")
            layers.append(("add", a[0]))
        elif op == "bn":
            layers.append(nn.BatchNorm1d(c) if flat else nn.BatchNorm2d(c))
        elif op == "relu":
            # (not in place right after a save: the shortcut holds that tensor)
            layers.append(nn.ReLU(inplace=not (layers and isinstance(layers[-1], tuple))))
        elif op == "maxpool":
            k = int(a[0])
            stride = int(a[1]) if len(a) > 1 else k
            layers.append(nn.MaxPool2d(k, stride))
            shape = [c, (h - k) // stride + 1, (w - k) // stride + 1]
        elif op == "dropout":
            layers.append(nn.Dropout(float(a[0])))
        elif op == "flatten":
            layers.append(nn.Flatten())
            shape, flat = [c * h * w, 1, 1], True
        elif op == "gap":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            shape, flat = [c, 1, 1], True
        elif op == "dense":
            if not flat:
                bad("a dense layer needs a flatten or gap before it")
            layers.append(nn.Linear(c, int(a[0])))
            shape = [int(a[0]), 1, 1]
        elif op == "softmax":
            pass  # in the loss
        else:
            bad(f"'{op}' is not built by this script (conv, dwconv, bn, relu, maxpool, dropout, flatten, gap, dense, "
                "save, add)")
    return chain(layers)


MEMORY_FORMAT = None  # set in main() from --layout


def to_input(px_u8):
    return px_u8.float().div_(255.0).contiguous(memory_format=MEMORY_FORMAT)


def random_pixels(n, gen):
    return torch.randint(0, 256, (n, 1, 48, 48), dtype=torch.uint8, generator=gen)


def bench_train(model, batch, seconds, gen, optimizer="adam"):
    px = random_pixels(batch, gen)
    labels = torch.arange(batch) % NUM_CLASSES
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()

    def step():
        logits = model(to_input(px))
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    warm_end = time.perf_counter() + min(1.0, 0.25 * seconds)
    for i in range(1000):  # at least 3 warm-up steps (allocations, Adam state, oneDNN primitives)
        step()
        if i >= 2 and time.perf_counter() >= warm_end:
            break
    steps, times = 0, []
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        s = time.perf_counter()
        step()
        e = time.perf_counter()
        times.append(e - s)
        steps += 1
        if e >= end and steps >= 3:
            break
    elapsed = time.perf_counter() - t0
    return {
        "batch": batch,
        "steps": steps,
        "images_per_s": steps * batch / elapsed,
        "step_ms_median": statistics.median(times) * 1e3,
    }


def bench_infer(model, batch, seconds, gen):
    px = random_pixels(batch, gen)
    model.eval()
    with torch.inference_mode():
        warm_end = time.perf_counter() + min(0.5, 0.2 * seconds)
        for i in range(100000):
            torch.softmax(model(to_input(px)), dim=1)
            if i >= 5 and time.perf_counter() >= warm_end:
                break
        times = []
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            s = time.perf_counter()
            probs = torch.softmax(model(to_input(px)), dim=1)
            e = time.perf_counter()
            times.append(e - s)
            if e >= end and len(times) >= 5:
                break
        elapsed = time.perf_counter() - t0
    assert probs.shape == (batch, NUM_CLASSES)
    return {
        "batch": batch,
        "calls": len(times),
        "images_per_s": len(times) * batch / elapsed,
        "latency_us_median": statistics.median(times) * 1e6,
        "latency_us_mean": elapsed / len(times) * 1e6,
        "latency_us_p90": sorted(times)[int(0.9 * (len(times) - 1))] * 1e6,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: os.cpu_count())")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3)")
    ap.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc",
                    help="activation/weight memory format: nhwc = torch.channels_last (default; same layout as "
                         "ferkit, and oneDNN runs it without reorders), nchw = torch.contiguous_format")
    ap.add_argument("--spec", help="a ferkit spec file to build instead of the seed (see above)")
    ap.add_argument("--optimizer", choices=("adam", "sgd-nesterov"), default="adam",
                    help="the training step's optimizer (default adam)")
    ap.add_argument("--train-only", action="store_true", help="measure the training step only")
    ap.add_argument("--json", action="store_true", help="also print one JSON line with the results")
    args = ap.parse_args()
    if args.threads < 1 or args.seconds <= 0:
        ap.error("--threads must be >= 1 and --seconds > 0")

    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    global torch, nn, F, MEMORY_FORMAT
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    blas = blas_library()
    if is_reference_blas(blas):
        print(f"warning: torch uses the netlib reference BLAS ({blas}); Linear layers and batch-1 convs will be "
              "very slow. See the header of this script for using OpenBLAS via LD_LIBRARY_PATH.", file=sys.stderr)

    torch.set_num_threads(args.threads)
    MEMORY_FORMAT = torch.channels_last if args.layout == "nhwc" else torch.contiguous_format
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)

    if args.spec:
        with open(args.spec) as f:
            model = spec_model(f.read(), args.spec)
        arch = os.path.splitext(os.path.basename(args.spec))[0]
    else:
        model, arch = seed_model(), "seed"
    model = model.to(memory_format=MEMORY_FORMAT)
    n_params = sum(p.numel() for p in model.parameters())
    if arch == "seed" and n_params != SEED_PARAMS:
        print(f"warning: {n_params} parameters, expected {SEED_PARAMS}", file=sys.stderr)

    train = bench_train(model, 64, args.seconds, gen, args.optimizer)
    nan = {"latency_us_median": float("nan"), "latency_us_p90": float("nan"), "latency_us_mean": float("nan"),
           "images_per_s": float("nan"), "calls": 0}
    inf1 = nan if args.train_only else bench_infer(model, 1, args.seconds, gen)
    inf64 = nan if args.train_only else bench_infer(model, 64, args.seconds, gen)

    print(f"PyTorch {torch.__version__}  {arch} ({n_params:,} params)  optimizer={args.optimizer}  threads={torch.get_num_threads()}  layout={args.layout}  seconds={args.seconds:g}")
    print(f"  BLAS: {blas}{'  (netlib reference BLAS: slow!)' if is_reference_blas(blas) else ''}")
    rows = [
        ("train step, batch 64", f"{train['images_per_s']:10.1f} images/s", f"median step {train['step_ms_median']:.2f} ms, {train['steps']} steps"),
        ("inference, batch 1", f"{inf1['latency_us_median']:10.1f} us", f"median latency, p90 {inf1['latency_us_p90']:.1f} us, {inf1['calls']} calls"),
        ("inference, batch 64", f"{inf64['images_per_s']:10.1f} images/s", f"median call {inf64['latency_us_median'] / 1e3:.2f} ms, {inf64['calls']} calls"),
    ]
    for name, value, note in rows[:1] if args.train_only else rows:
        print(f"  {name:<22} {value:<20} ({note})")

    if args.json:
        print(json.dumps({
            "framework": "pytorch",
            "torch_version": torch.__version__,
            "arch": arch,
            "optimizer": args.optimizer,
            "params": n_params,
            "threads": torch.get_num_threads(),
            "blas": blas,
            "reference_blas": is_reference_blas(blas),
            "layout": args.layout,
            "seconds": args.seconds,
            "train_images_per_s": train["images_per_s"],
            "train_step_ms_median": train["step_ms_median"],
            "infer1_latency_us": inf1["latency_us_median"],
            "infer1_latency_us_p90": inf1["latency_us_p90"],
            "infer1_latency_us_mean": inf1["latency_us_mean"],
            "infer1_images_per_s": inf1["images_per_s"],
            "infer64_images_per_s": inf64["images_per_s"],
            "infer64_latency_us": inf64["latency_us_median"],
        }))


if __name__ == "__main__":
    main()
