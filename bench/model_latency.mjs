#!/usr/bin/env node
// Batch-1 latency of ferkit's wasm engine (build/wasm/dist/ferkit-engine.mjs) for several model files, side by
// side in one process: the numbers for the model table (docs/results.md). Any architecture works (the
// engine-comparison bench, bench/wasm_latency.mjs, needs the seed architecture for onnxruntime and tfjs).
//
//   node bench/model_latency.mjs [--runs N] [--json] MODEL.ferkit [MODEL.ferkit ...]
//   (default models: assets/models/seed/seed.ferkit assets/models/default.ferkit)
//
// Each timed run: one 48x48 grey crop in (fk_buffer + fk_classify_crops), 7 probabilities out. The models take
// turns in blocks of 10 runs (fk_create switches the engine's model between blocks, untimed), so drift in machine
// load hits all alike. Reported: median, p10, p90 (ms) and the ratio to the first model's median.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let runs = 400, json = false;
const models = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--runs') runs = Number(args[++i]);
  else if (args[i] === '--json') json = true;
  else if (args[i].startsWith('--')) throw new Error(`unknown option ${args[i]} (see the header of ${process.argv[1]})`);
  else models.push(args[i]);
}
if (!models.length) models.push(path.join(root, 'assets/models/seed/seed.ferkit'), path.join(root, 'assets/models/default.ferkit'));
if (!(runs >= 10)) throw new Error('--runs must be at least 10');

const engineFile = path.join(process.env.FERKIT_DIST || path.join(root, 'build/wasm/dist'), 'ferkit-engine.mjs');
const { default: createEngine } = await import(pathToFileURL(engineFile).href);
const M = await createEngine({ print: () => {}, printErr: (s) => console.error(s) });
const lastError = () => M.UTF8ToString(M._fk_last_error());
const detector = new Uint8Array(readFileSync(path.join(root, 'assets/detector/blazeface.ferkit')));

function use(bytes, withDetector) {
  const m = M._malloc(bytes.length), c = withDetector ? M._malloc(detector.length) : 0;
  M.HEAPU8.set(bytes, m);
  if (c) M.HEAPU8.set(detector, c);
  const ok = M._fk_create(m, bytes.length, c, c ? detector.length : 0);
  M._free(m);
  if (c) M._free(c);
  if (ok !== 1) throw new Error(lastError());
}

const entries = models.map((file) => ({ file, bytes: new Uint8Array(readFileSync(file)), times: [] }));
use(entries[0].bytes, true);
for (const e of entries) {
  use(e.bytes, false);
  e.info = JSON.parse(M.UTF8ToString(M._fk_model_info()));
}

let seed = 12345;
const crop = new Uint8Array(48 * 48).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
const out = M._malloc(7 * 4);
const once = () => {
  M.HEAPU8.set(crop, M._fk_buffer(crop.length));
  M._fk_classify_crops(1, out);
};
for (const e of entries) {  // warm-up
  use(e.bytes, false);
  for (let i = 0; i < 20; ++i) once();
}
for (let done = 0; done < runs; done += 10) {
  for (const e of entries) {
    use(e.bytes, false);
    for (let i = 0; i < 10; ++i) {
      const t0 = performance.now();
      once();
      e.times.push(performance.now() - t0);
    }
  }
}
if (lastError()) throw new Error(lastError());
M._free(out);

const q = (s, p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
const rows = entries.map((e) => {
  const s = e.times.slice().sort((a, b) => a - b);
  return { model: path.relative(process.cwd(), e.file), name: e.info.name, params: e.info.params, macs: e.info.macs,
           bytes: e.bytes.length, median_ms: q(s, 0.5), p10_ms: q(s, 0.1), p90_ms: q(s, 0.9) };
});
for (const r of rows) r.ratio = r.median_ms / rows[0].median_ms;
if (json) {
  console.log(JSON.stringify({ node: process.version, load: os.loadavg()[0], runs, rows }, null, 2));
} else {
  console.log(`ferkit wasm engine, batch 1, ${runs} runs per model, node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`);
  console.log('model | params | MACs | file bytes | median ms | p10 | p90 | x first');
  for (const r of rows)
    console.log(`${r.model} | ${r.params} | ${r.macs} | ${r.bytes} | ${r.median_ms.toFixed(3)} | ${r.p10_ms.toFixed(3)} | ` +
                `${r.p90_ms.toFixed(3)} | ${r.ratio.toFixed(2)}`);
}
