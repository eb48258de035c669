#!/usr/bin/env node
// Batch-1 latency of the "seed" CNN in WebAssembly under node, side by side in one process:
//   ferkit   ferkit's own wasm engine, build/wasm/dist/ferkit-engine.mjs (cmake --preset wasm && cmake --build
//            build/wasm); its C API: _fk_create(model, len, detector, len), _fk_buffer(bytes) -> input pointer,
//            _fk_classify_crops(n, out) -> n*7 probabilities, _fk_last_error()
//   ort      onnxruntime-web (npm), wasm backend, 1 thread, SIMD (its only wasm build has SIMD)
//   tfjs     @tensorflow/tfjs layers model (tf.sequential) on @tensorflow/tfjs-backend-wasm, SIMD, 1 thread
//   tfjs-ops (optional, --engines) the same network as raw tfjs fused ops, without the layers API
// All run the same architecture with the same weights, read from the .ferkit model file (format:
// core/model_io.h); the ONNX model is written by bench/wasm_latency_onnx.mjs. Before timing, every engine's
// probabilities on a few random crops are checked against a float64 JS reference (and against ferkit):
// max abs difference <= --tol, else the script exits 1 without timing.
//
// Usage (from the repository root, after `npm install`, which brings the devDependencies):
//   node bench/wasm_latency.mjs [--runs N] [--json]
// Options:
//   --runs N          timed runs per engine (default 300, at least 200 recommended)
//   --warmup N        untimed runs per engine first (default 50)
//   --json            print one JSON object on stdout (the table and progress go to stderr)
//   --engines LIST    comma-separated subset/order of ferkit,ort,tfjs,tfjs-ops (default ferkit,ort,tfjs)
//   --engine PATH     ferkit engine module (default build/wasm/dist/ferkit-engine.mjs)
//   --model PATH      model file holding the seed architecture (default assets/models/seed/seed.ferkit)
//   --detector PATH   face detector passed to _fk_create (default assets/detector/blazeface.ferkit)
//   --native PATH     native Google Benchmark binary for context (default build/release/bench/bench_seed;
//                     run with --benchmark_filter=Inference/seed/1, OMP_NUM_THREADS=--native-threads)
//   --native-threads N  (default 1, like the wasm engines); --no-native skips it
//   --check N         crops in the correctness check (default 6); --tol X (default 1e-4)
//   --check-only      only the correctness check
// Each timed run is one crop, batch 1, end to end: uint8 48x48 grey crop in (converted to pixel/255 floats in
// JS for ort/tfjs, by the engine for ferkit), 7 probabilities out as a JS typed array. Runs are sequential; in each
// round every engine runs once, the engines' order cycling through all permutations, so drift in machine load
// hits all of them alike. Reported: median, p10, p90, min (ms, wall clock) and the ratio median/median(ferkit)
// (> 1: slower than ferkit), plus the median CPU time of this process per run (process.cpuUsage: less affected
// by other processes than wall time). The machine's load average is printed with the numbers: on a loaded
// machine wall times are noisy.
//
// Emscripten 3.1.6 (Debian) output under node 20: an EXPORT_ES6 module that may run under node uses `require`
// and `__dirname`, which an ES module does not have, and its async wasm loader uses fetch() on a file path
// ("Failed to parse URL"). The engine's own --extern-pre-js/--pre-js (web/engine-node*.js) handle both, so this
// script imports it as is, as a user would; if that fails it prints why, then retries with `require`/`__dirname`
// globals and `wasmBinary` (the .wasm beside the .mjs) and says in the table's version column that it needed them.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { loadFerkitModel, NUM_CLASSES, randomCrops, referenceForward, SIDE, toInput } from './wasm_latency_model.mjs';
import { seedOnnx } from './wasm_latency_onnx.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const PIXELS = SIDE * SIDE;

// ---- arguments ---------------------------------------------------------------------------------------------
function parseArgs(argv) {
  const o = {
    runs: 300, warmup: 50, json: false, engines: ['ferkit', 'ort', 'tfjs'],
    engine: path.join(root, 'build/wasm/dist/ferkit-engine.mjs'),
    model: path.join(root, 'assets/models/seed/seed.ferkit'),
    detector: path.join(root, 'assets/detector/blazeface.ferkit'),
    native: path.join(root, 'build/release/bench/bench_seed'), nativeThreads: 1, noNative: false,
    check: 6, tol: 1e-4, checkOnly: false,
  };
  const usage = () => {
    const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    const end = text.findIndex((l) => l.startsWith('import '));
    return text.slice(1, end).join('\n');
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const int = (min) => {
      const v = Number(val());
      if (!Number.isInteger(v) || v < min) throw new Error(`${a} needs an integer >= ${min}`);
      return v;
    };
    switch (a) {
      case '--runs': o.runs = int(1); break;
      case '--warmup': o.warmup = int(0); break;
      case '--json': o.json = true; break;
      case '--engines': o.engines = val().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--engine': o.engine = path.resolve(val()); break;
      case '--model': o.model = path.resolve(val()); break;
      case '--detector': o.detector = path.resolve(val()); break;
      case '--native': o.native = path.resolve(val()); break;
      case '--native-threads': o.nativeThreads = int(1); break;
      case '--no-native': o.noNative = true; break;
      case '--check': o.check = int(1); break;
      case '--tol': o.tol = Number(val()); break;
      case '--check-only': o.checkOnly = true; break;
      case '-h': case '--help': console.log(usage()); process.exit(0); break;
      default: throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  for (const e of o.engines) if (!ENGINES[e]) throw new Error(`unknown engine ${e}: one of ${Object.keys(ENGINES).join(',')}`);
  if (new Set(o.engines).size !== o.engines.length) throw new Error('--engines lists an engine twice');
  return o;
}

// ---- engines -----------------------------------------------------------------------------------------------
// Each: async init(model, opts) -> { label, version, classify(crop: Uint8Array) -> Float32Array(7) | Promise }.

async function initFerkit(model, opts) {
  const file = opts.engine;
  if (!existsSync(file)) {
    throw new Error(`ferkit engine not found: ${path.relative(process.cwd(), file) || file} ` +
                    '(build it with: cmake --preset wasm && cmake --build build/wasm; or pass --engine PATH, ' +
                    'or leave it out with --engines ort,tfjs)');
  }
  const dir = path.dirname(file);
  const wasmFile = file.replace(/\.m?js$/, '.wasm');
  const print = (s) => log(`[ferkit] ${s}`);
  const load = async (helped) => {
    const moduleOpts = { print, printErr: print };
    if (helped) {
      // What Emscripten 3.1.6's node code path lacks in an ES module (see the header): require/__dirname globals
      // and the wasm bytes, so that nothing is fetched.
      const g = globalThis;
      if (typeof g.require === 'undefined') g.require = createRequire(pathToFileURL(file));
      if (typeof g.__dirname === 'undefined') g.__dirname = dir;
      if (typeof g.__filename === 'undefined') g.__filename = file;
      moduleOpts.locateFile = (p) => path.join(dir, p);
      if (existsSync(wasmFile)) moduleOpts.wasmBinary = readFileSync(wasmFile);
    }
    const mod = await import(pathToFileURL(file).href);
    const factory = mod.default;
    if (typeof factory !== 'function') throw new Error(`its default export is ${typeof factory}, not the module factory`);
    return factory(moduleOpts);
  };
  let M, loadedHow = 'as is';
  try {
    M = await load(false);
  } catch (e) {
    const plainError = `${e && e.stack || e}`;
    log(`ferkit engine: loading ${file} as is failed:\n${plainError}\nretrying with require/__dirname globals and wasmBinary`);
    try {
      M = await load(true);
      loadedHow = `only with require/__dirname globals + wasmBinary (as is: ${plainError.split('\n')[0]})`;
    } catch (e2) {
      const hint = /Import #\d+/.test(String(e2)) ? `\n(hint: ${path.basename(file)} and ${path.basename(wasmFile)} ` +
        'look like outputs of different links, e.g. a rebuild in progress: rebuild, or wait for it)' : '';
      throw new Error(`loading ${file} failed, as is: ${plainError}\nand with the workarounds: ${e2 && e2.stack || e2}${hint}`);
    }
  }
  for (const f of ['_fk_create', '_fk_buffer', '_fk_classify_crops', '_fk_last_error', '_malloc', '_free']) {
    if (typeof M[f] !== 'function') throw new Error(`${file} does not export ${f}`);
  }
  const heap = () => {
    if (M.HEAPU8) return M.HEAPU8;
    const mem = M.wasmMemory || (M.asm && M.asm.memory) || (M.wasmExports && M.wasmExports.memory);
    if (!mem) throw new Error(`${file}: no HEAPU8 (export it with -sEXPORTED_RUNTIME_METHODS=HEAPU8)`);
    return new Uint8Array(mem.buffer);
  };
  const lastError = () => {
    const p = M._fk_last_error();
    if (!p) return '';
    const h = heap();
    let end = p;
    while (h[end] !== 0) end++;
    return new TextDecoder().decode(h.subarray(p, end));
  };
  const copyIn = (bytes) => {
    const p = M._malloc(bytes.length);
    if (!p) throw new Error('_malloc failed');
    heap().set(bytes, p);
    return p;
  };
  const modelPtr = copyIn(model.bytes);
  const detector = existsSync(opts.detector) ? new Uint8Array(readFileSync(opts.detector)) : null;
  const detectorPtr = detector ? copyIn(detector) : 0;
  // fk_create: 1 on success, 0 with fk_last_error() set on failure.
  const rc = M._fk_create(modelPtr, model.bytes.length, detectorPtr, detector ? detector.length : 0);
  const err = lastError();
  if (rc !== 1 || err) throw new Error(`_fk_create returned ${rc}: ${err || '(no message)'}`);
  const outPtr = M._malloc(4 * NUM_CLASSES);
  const classify = (crop) => {
    const inPtr = M._fk_buffer(PIXELS);
    heap().set(crop, inPtr);
    M._fk_classify_crops(1, outPtr);  // void; on error: NaNs out and fk_last_error() set
    const h = heap();
    return new Float32Array(h.buffer, h.byteOffset + outPtr, NUM_CLASSES).slice();
  };
  // A first call, checked for errors (the correctness check then rejects any NaN output).
  classify(new Uint8Array(PIXELS));
  const e2 = lastError();
  if (e2) throw new Error(`_fk_classify_crops: ${e2}`);
  return { label: 'ferkit wasm', version: `${path.relative(root, file)} (loaded ${loadedHow})`, classify, loadedHow };
}

async function initOrt(model) {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  if ('simd' in ort.env.wasm) ort.env.wasm.simd = true;  // 1.30 ships only SIMD builds; the flag is legacy
  ort.env.logLevel = 'warning';
  const onnx = seedOnnx(model.layers, 1);
  const session = await ort.InferenceSession.create(onnx, {
    executionProviders: ['wasm'], graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const x = new Float32Array(PIXELS);
  const classify = async (crop) => {
    toInput(crop, x);
    const out = await session.run({ x: new ort.Tensor('float32', x, [1, SIDE, SIDE, 1]) });
    return out.probs.data;  // Float32Array(7), copied out of wasm memory by ORT
  };
  return { label: 'onnxruntime-web', version: `onnxruntime-web ${ort.env.versions.web} (wasm, 1 thread, SIMD), ONNX ${onnx.length} B`, classify };
}

let tfModule = null;
async function tfWasm() {
  if (tfModule) return tfModule;
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  // The non-threaded SIMD binary (tfjs-backend-wasm-simd.wasm): one thread like the others.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend did not initialise');
  await tf.ready();
  if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))) throw new Error('tfjs: no WebAssembly SIMD support detected');
  tfModule = tf;
  return tf;
}

async function initTfjs(model) {
  const tf = await tfWasm();
  const L = model.layers;
  const m = tf.sequential();
  L.convs.forEach(({ cout }, i) => {
    m.add(tf.layers.conv2d({ filters: cout, kernelSize: 3, padding: 'same', activation: 'relu', useBias: true,
                             ...(i === 0 ? { inputShape: [SIDE, SIDE, 1] } : {}) }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }));
    m.add(tf.layers.dropout({ rate: 0.25 }));
  });
  m.add(tf.layers.flatten());  // row-major HWC, like ferkit's flatten
  L.denses.forEach(({ out }, i) => {
    const last = i === L.denses.length - 1;
    m.add(tf.layers.dense({ units: out, activation: last ? 'softmax' : 'relu' }));
    if (!last) m.add(tf.layers.dropout({ rate: 0.5 }));
  });
  // tfjs kernels: conv [kh, kw, cin, cout] (= ferkit's HWIO), dense [in, out] (= ferkit's).
  const weights = [];
  for (const { cin, cout, w, b } of L.convs) weights.push(tf.tensor4d(w, [3, 3, cin, cout]), tf.tensor1d(b));
  for (const { in: nin, out, w, b } of L.denses) weights.push(tf.tensor2d(w, [nin, out]), tf.tensor1d(b));
  m.setWeights(weights);
  weights.forEach((t) => t.dispose());
  const x = new Float32Array(PIXELS);
  const classify = (crop) => {
    toInput(crop, x);
    const y = tf.tidy(() => m.predict(tf.tensor4d(x, [1, SIDE, SIDE, 1])));
    const d = y.dataSync();
    y.dispose();
    return d;
  };
  return { label: 'tfjs (layers)', version: `@tensorflow/tfjs ${tf.version.tfjs}, backend ${tf.getBackend()} (SIMD, 1 thread)`, classify };
}

async function initTfjsOps(model) {
  const tf = await tfWasm();
  const L = model.layers;
  const convs = L.convs.map(({ cin, cout, w, b }) => ({ w: tf.tensor4d(w, [3, 3, cin, cout]), b: tf.tensor1d(b) }));
  const denses = L.denses.map(({ in: nin, out, w, b }) => ({ w: tf.tensor2d(w, [nin, out]), b: tf.tensor1d(b) }));
  const x = new Float32Array(PIXELS);
  const classify = (crop) => {
    toInput(crop, x);
    const y = tf.tidy(() => {
      let t = tf.tensor4d(x, [1, SIDE, SIDE, 1]);
      for (const c of convs) {
        t = tf.fused.conv2d({ x: t, filter: c.w, strides: 1, pad: 'same', bias: c.b, activation: 'relu' });
        t = tf.maxPool(t, 2, 2, 'valid');
      }
      t = tf.reshape(t, [1, -1]);
      denses.forEach((d, i) => {
        const last = i === denses.length - 1;
        t = tf.fused.matMul({ a: t, b: d.w, bias: d.b, activation: last ? 'linear' : 'relu' });
      });
      return tf.softmax(t);
    });
    const d = y.dataSync();
    y.dispose();
    return d;
  };
  return { label: 'tfjs (raw ops)', version: `@tensorflow/tfjs ${tf.version.tfjs} fused ops, backend ${tf.getBackend()}`, classify };
}

const ENGINES = { ferkit: initFerkit, ort: initOrt, tfjs: initTfjs, 'tfjs-ops': initTfjsOps };

// ---- helpers -----------------------------------------------------------------------------------------------
let quietStdout = false;
function log(...a) { (quietStdout ? console.error : console.log)(...a); }

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function permutations(xs) {
  if (xs.length <= 1) return [xs.slice()];
  const out = [];
  xs.forEach((x, i) => {
    for (const p of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...p]);
  });
  return out;
}

function loadNow() {
  let up = '';
  try { up = execFileSync('uptime', { encoding: 'utf8' }).trim(); } catch { /* no uptime(1) */ }
  return { loadavg: os.loadavg().map((v) => Number(v.toFixed(2))), uptime: up };
}

function runNative(opts) {
  if (opts.noNative) return null;
  if (!existsSync(opts.native)) return { skipped: `${path.relative(root, opts.native)} not built` };
  try {
    const out = execFileSync(opts.native, ['--benchmark_filter=Inference/seed/1', '--benchmark_format=json'], {
      encoding: 'utf8', timeout: 120000, env: { ...process.env, OMP_NUM_THREADS: String(opts.nativeThreads) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (!out.trim()) return { skipped: `${path.relative(root, opts.native)} printed nothing for Inference/seed/1` };
    const j = JSON.parse(out);
    const b = (j.benchmarks || []).find((x) => /^BM_Inference\/seed\/1(\/|$)/.test(x.name));
    if (!b) return { skipped: 'no BM_Inference/seed/1 in its output' };
    const toMs = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3 }[b.time_unit] ?? NaN;
    return {
      binary: path.relative(root, opts.native), name: b.name, threads: opts.nativeThreads, iterations: b.iterations,
      real_ms: b.real_time * toMs, cpu_ms: b.cpu_time * toMs,
      note: 'Google Benchmark mean over its iterations; the seed model with random weights (same architecture)',
    };
  } catch (e) {
    return { skipped: `running ${opts.native} failed: ${e.message.split('\n')[0]}` };
  }
}

const maxAbs = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const fmt = (v, d = 3) => (v == null || Number.isNaN(v) ? 'n/a' : v.toFixed(d));

// ---- main --------------------------------------------------------------------------------------------------
async function main() {
  const opts = parseArgs(process.argv.slice(2));
  quietStdout = opts.json;
  const model = loadFerkitModel(opts.model);
  log(`model: ${path.relative(root, opts.model)} (${model.params.length} params, seed architecture)`);

  const engines = [];
  for (const name of opts.engines) {
    const t0 = performance.now();
    const e = await ENGINES[name](model, opts);
    e.name = name;
    e.initMs = performance.now() - t0;
    log(`init ${name.padEnd(8)} ${fmt(e.initMs, 0).padStart(6)} ms  ${e.version}`);
    engines.push(e);
  }

  // Correctness: every engine against the float64 reference and against the first engine (ferkit when present).
  const checkCrops = randomCrops(opts.check, 777);
  const check = { tol: opts.tol, crops: opts.check, vs_reference: {}, vs_first: {}, ok: true };
  for (const e of engines) { check.vs_reference[e.name] = 0; check.vs_first[e.name] = 0; }
  const argmaxAgree = Object.fromEntries(engines.map((e) => [e.name, 0]));
  for (const crop of checkCrops) {
    const ref = referenceForward(model.layers, crop);
    const refArg = ref.indexOf(Math.max(...ref));
    const outs = [];
    for (const e of engines) {
      const p = Array.from(await e.classify(crop));
      if (p.length !== NUM_CLASSES || p.some((v) => !Number.isFinite(v))) throw new Error(`${e.name}: bad output ${p}`);
      outs.push(p);
      check.vs_reference[e.name] = Math.max(check.vs_reference[e.name], maxAbs(p, ref));
      if (p.indexOf(Math.max(...p)) === refArg) argmaxAgree[e.name]++;
    }
    engines.forEach((e, i) => { check.vs_first[e.name] = Math.max(check.vs_first[e.name], maxAbs(outs[i], outs[0])); });
  }
  log(`\ncorrectness on ${opts.check} random crops (max |p - p_ref| over 7 classes; reference: float64 JS; tol ${opts.tol}):`);
  for (const e of engines) {
    const r = check.vs_reference[e.name], f = check.vs_first[e.name];
    const ok = r <= opts.tol && f <= opts.tol;
    check.ok &&= ok;
    log(`  ${e.name.padEnd(9)} vs reference ${r.toExponential(2)}   vs ${engines[0].name} ${f.toExponential(2)}   ` +
        `top-1 agrees ${argmaxAgree[e.name]}/${opts.check}   ${ok ? 'OK' : 'FAIL'}`);
  }
  check.top1_agree = argmaxAgree;
  if (!check.ok) {
    log('correctness check FAILED: not timing engines that disagree');
    if (opts.json) console.log(JSON.stringify({ check }, null, 1));
    process.exit(1);
  }
  if (opts.checkOnly) {
    if (opts.json) console.log(JSON.stringify({ check }, null, 1));
    return;
  }

  // Timing.
  const pool = randomCrops(64, 4242);
  const perms = permutations(engines.map((_, i) => i));
  const times = engines.map(() => new Float64Array(opts.runs));
  const cpuTimes = engines.map(() => new Float64Array(opts.runs));
  const loadBefore = loadNow();
  log(`\nwarm-up ${opts.warmup} + timed ${opts.runs} runs per engine, batch 1, order cycling through ${perms.length} permutations`);
  log(`load before: ${loadBefore.uptime || loadBefore.loadavg.join(' ')}`);
  let sink = 0;
  const wall0 = performance.now();
  for (let r = -opts.warmup; r < opts.runs; r++) {
    const crop = pool[((r % pool.length) + pool.length) % pool.length];
    const order = perms[((r % perms.length) + perms.length) % perms.length];
    for (const i of order) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      let p = engines[i].classify(crop);
      if (p && typeof p.then === 'function') p = await p;
      const dt = performance.now() - t0;
      const c = process.cpuUsage(c0);
      sink += p[0];
      if (r >= 0) { times[i][r] = dt; cpuTimes[i][r] = (c.user + c.system) / 1000; }
    }
  }
  const wallS = (performance.now() - wall0) / 1000;
  const loadAfter = loadNow();
  if (!Number.isFinite(sink)) throw new Error('non-finite output while timing');

  const results = engines.map((e, i) => {
    const s = Array.from(times[i]).sort((a, b) => a - b);
    const cs = Array.from(cpuTimes[i]).sort((a, b) => a - b);
    return {
      engine: e.name, label: e.label, version: e.version, runs: opts.runs,
      median_ms: quantile(s, 0.5), p10_ms: quantile(s, 0.1), p90_ms: quantile(s, 0.9),
      min_ms: s[0], mean_ms: s.reduce((a, v) => a + v, 0) / s.length, cpu_median_ms: quantile(cs, 0.5),
      init_ms: e.initMs,
    };
  });
  const base = results.find((r) => r.engine === 'ferkit');
  for (const r of results) {
    r.ratio_vs_ferkit = base ? r.median_ms / base.median_ms : null;
    r.cpu_ratio_vs_ferkit = base ? r.cpu_median_ms / base.cpu_median_ms : null;
  }

  const native = runNative(opts);

  const cols = ['engine', 'median ms', 'p10 ms', 'p90 ms', 'min ms', 'x ferkit', 'cpu median ms', 'cpu x ferkit'];
  const ratio = (v) => (v == null ? 'n/a' : fmt(v, 2));
  const rows = results.map((r) => [r.label, fmt(r.median_ms), fmt(r.p10_ms), fmt(r.p90_ms), fmt(r.min_ms),
                                   ratio(r.ratio_vs_ferkit), fmt(r.cpu_median_ms), ratio(r.cpu_ratio_vs_ferkit)]);
  if (native && !native.skipped) {
    rows.push([`native x86-64 (${native.threads} thr, mean)`, fmt(native.real_ms), '', '', '',
               ratio(base ? native.real_ms / base.median_ms : null), fmt(native.cpu_ms),
               ratio(base ? native.cpu_ms / base.cpu_median_ms : null)]);
  }
  const widths = cols.map((c, j) => Math.max(c.length, ...rows.map((r) => r[j].length)));
  const line = (r) => r.map((v, j) => (j === 0 ? v.padEnd(widths[j]) : v.padStart(widths[j]))).join('  ');
  log(`\nbatch-1 latency, seed CNN, node ${process.version}, ${os.cpus()[0]?.model || 'cpu'} x${os.cpus().length}` +
      ` (timed part: ${wallS.toFixed(1)} s)`);
  log(line(cols));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) log(line(r));
  log('x ferkit = median / ferkit median (> 1: slower than ferkit); cpu = this process\'s user+system CPU time ' +
      'per run (process.cpuUsage), less sensitive than wall time to other processes on a loaded machine');
  if (native?.skipped) log(`native: ${native.skipped}`);
  else if (native) log(`native: ${native.binary} ${native.name}, OMP_NUM_THREADS=${native.threads}: real ${fmt(native.real_ms)} ms, cpu ${fmt(native.cpu_ms)} ms (${native.note})`);
  log(`load after:  ${loadAfter.uptime || loadAfter.loadavg.join(' ')}`);

  if (opts.json) {
    console.log(JSON.stringify({
      benchmark: 'wasm_latency', batch: 1, runs: opts.runs, warmup: opts.warmup,
      node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length,
      load_before: loadBefore, load_after: loadAfter, timed_wall_s: wallS,
      model: path.relative(root, opts.model), check, results, native,
    }, null, 1));
  }
}

main().catch((e) => {
  console.error(`wasm_latency: ${e && e.message || e}`);
  process.exit(2);
});
