// The page's fine-tuning worker: runs core/finetune.h in ferkit-engine.wasm off the main thread, so the camera
// view keeps its frame rate while the model trains. Started by shell/ferkit-shell.js (new Worker(url, {type:
// 'module'})); one fine-tuning at a time, the worker kept for the next; the page cancels by terminating it.
//   in:  {type: 'start', model: Uint8Array, crops: Uint8Array (n*2304), labels: Uint8Array (n), settings: {}}
//        {type: 'warm', model: Uint8Array}  a tiny throw-away fine-tuning of that model (one made-up crop per
//                                           expression, one epoch), so the first real one runs at full speed
//   out: {type: 'progress', progress}  after every slice (fk_ft_progress's JSON, parsed)
//        {type: 'done', model: Uint8Array (a .ferkit file), progress}
//        {type: 'error', message}
import createFerkitEngine from './ferkit-engine.mjs';

const enginePromise = createFerkitEngine();
// The engine's WebAssembly memory in bytes, for benchmarks that watch it over time (bench/soak_page.mjs).
self.ferkitEngineBytes = async () => (await enginePromise).HEAPU8.length;

// Training runs in slices of SLICE_MS with PAUSE_MS between them: on a 2-core machine the page (its main thread
// and the browser's compositor) needs most of the other core and some of this one to keep the camera view
// smooth; the pauses give it that, at the cost of a longer fine-tuning (bench/finetune_page.mjs measures both
// for a choice of slice and pause: 70/20 gave 1.25-1.45 s for 70 samples at 28-31 frames/s, 30/30 2.1-2.2 s;
// docs/teaching.md#speed). Progress is reported after each slice.
const SLICE_MS = 70, PAUSE_MS = 20;

function copyIn(M, bytes) {
  const p = M._malloc(Math.max(bytes.length, 1));
  if (!p) throw new Error('out of memory');
  M.HEAPU8.set(bytes, p);
  return p;
}

// Copies the inputs into the engine and starts a fine-tuning there (fk_ft_begin keeps copies of what it needs, so
// the inputs are freed at once). Throws with the engine's message if it cannot start.
function begin(M, model, crops, labels, settings) {
  const json = new TextEncoder().encode(JSON.stringify(settings || {}) + '\0');
  const ptrs = [];
  try {
    for (const bytes of [model, crops, labels, json]) ptrs.push(copyIn(M, bytes));
    if (!M._fk_ft_begin(ptrs[0], model.length, ptrs[1], ptrs[2], labels.length, ptrs[3]))
      throw new Error(M.UTF8ToString(M._fk_last_error()));
  } finally {
    for (const p of ptrs) M._free(p);
  }
}

let tuning = false;  // a fine-tuning is under way (it yields between slices)

async function finetune({ model, crops, labels, settings }) {
  const M = await enginePromise;
  tuning = true;
  try {
    begin(M, model, crops, labels, settings);
    const progress = () => JSON.parse(M.UTF8ToString(M._fk_ft_progress()));
    for (;;) {
      const r = M._fk_ft_run(SLICE_MS);
      if (r < 0) throw new Error(M.UTF8ToString(M._fk_last_error()));
      if (r === 0) break;
      postMessage({ type: 'progress', progress: progress() });
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    }
    const size = M._fk_ft_finish();
    if (!size) throw new Error(M.UTF8ToString(M._fk_last_error()));
    const out = M.HEAPU8.slice(M._fk_ft_result(), M._fk_ft_result() + size);
    postMessage({ type: 'done', model: out, progress: progress() }, [out.buffer]);
  } finally {
    M._fk_ft_end();
    tuning = false;
  }
}

// Runs whole, without yielding: a 'start' that arrives meanwhile waits for it (about half a second). Skipped if a
// fine-tuning already runs (the engine holds one at a time).
async function warm({ model }) {
  const M = await enginePromise;
  if (tuning) return;
  const crops = new Uint8Array(7 * 2304), labels = Uint8Array.from([0, 1, 2, 3, 4, 5, 6]);
  for (let i = 0; i < crops.length; i++) crops[i] = (i * 7 + (i >> 11) * 31) & 255;
  try {
    begin(M, model, crops, labels, { epochs: 1, views: 1, holdout: 0 });
    while (M._fk_ft_run(1000) === 1) { /* train */ }
    M._fk_ft_finish();
  } finally {
    M._fk_ft_end();
  }
}

onmessage = (e) => {
  if (e.data && e.data.type === 'warm' && e.data.model) {
    warm(e.data).catch(() => { /* a failed warm-up only costs the first fine-tuning its speed */ });
    return;
  }
  if (!e.data || e.data.type !== 'start') return;
  finetune(e.data).catch((err) => postMessage({ type: 'error', message: String(err && err.message || err) }));
};
