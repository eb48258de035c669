// Helpers for bench/wasm_latency.mjs: reads a .ferkit model file (format in core/model_io.h) holding the
// "seed" architecture, slices its params into per-layer tensors, and runs a plain-JS float64 reference
// forward pass (the ground truth that ferkit's engine, onnxruntime-web and tfjs are checked against).
import { readFileSync } from 'node:fs';

export const SIDE = 48;
export const NUM_CLASSES = 7;

// The seed spec as ferkit writes it (core/spec.cpp). The file's "spec" must match this, up to blank lines.
export const SEED_SPEC = [
  'input 48 48 1',
  'conv 32 3 1 same', 'relu', 'maxpool 2 2', 'dropout 0.25',
  'conv 64 3 1 same', 'relu', 'maxpool 2 2', 'dropout 0.25',
  'conv 128 3 1 same', 'relu', 'maxpool 2 2', 'dropout 0.25',
  'flatten',
  'dense 256', 'relu', 'dropout 0.5',
  'dense 128', 'relu', 'dropout 0.5',
  'dense 7', 'softmax',
];

// Layer shapes of the seed network: conv weights HWIO (w[(ky*3+kx)*cin + ci][cout]), dense weights w[in][out].
export const SEED_CONVS = [{ cin: 1, cout: 32 }, { cin: 32, cout: 64 }, { cin: 64, cout: 128 }];
export const SEED_DENSES = [{ in: 6 * 6 * 128, out: 256 }, { in: 256, out: 128 }, { in: 128, out: NUM_CLASSES }];

// CRC-32 (IEEE), as core/model_io.cpp computes it.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// Parses a .ferkit file. Returns { bytes, header, params: Float32Array, layers: {convs, denses} }.
export function loadFerkitModel(path) {
  const bytes = new Uint8Array(readFileSync(path));
  const fail = (why) => { throw new Error(`${path}: ${why}`); };
  if (bytes.length < 20) fail('too short for a ferkit model');
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== 'FERKITMD') fail(`bad magic ${JSON.stringify(magic)}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== 1) fail(`format version ${version}, this script reads 1`);
  const hlen = dv.getUint32(12, true);
  if (16 + hlen + 4 > bytes.length) fail('header runs past the end');
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + hlen)));
  const crcStored = dv.getUint32(bytes.length - 4, true);
  const crc = crc32(bytes.subarray(0, bytes.length - 4));
  if (crc !== crcStored) fail(`CRC mismatch (stored ${crcStored.toString(16)}, computed ${crc.toString(16)})`);
  const spec = String(header.spec || '').split('\n').map((s) => s.trim()).filter(Boolean);
  if (spec.join('\n') !== SEED_SPEC.join('\n')) fail(`not the seed architecture:\n${header.spec}`);
  let off = 16 + hlen;
  let params = null;
  for (const b of header.blobs || []) {
    const n = b.count * 4;
    if (off + n > bytes.length - 4) fail(`blob ${b.name} runs past the end`);
    if (b.name === 'params') params = new Float32Array(bytes.slice(off, off + n).buffer);  // copy: aligned
    off += n;
  }
  if (!params) fail('no "params" blob');
  // Slice params in layer order: per conv w then b, per dense w then b.
  let p = 0;
  const take = (n) => { const v = params.subarray(p, p + n); p += n; return v; };
  const convs = SEED_CONVS.map(({ cin, cout }) => ({ cin, cout, w: take(9 * cin * cout), b: take(cout) }));
  const denses = SEED_DENSES.map(({ in: nin, out }) => ({ in: nin, out, w: take(nin * out), b: take(out) }));
  if (p !== params.length) fail(`params hold ${params.length} floats, the seed network needs ${p}`);
  return { bytes, header, params, layers: { convs, denses } };
}

// Deterministic pseudo-random grey crops (uint8, 48x48), mulberry32.
export function randomCrops(count, seed = 12345) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const crops = [];
  for (let i = 0; i < count; i++) {
    const c = new Uint8Array(SIDE * SIDE);
    // Half noise, half smooth gradients plus noise (closer to a face crop's statistics).
    const smooth = i % 2 === 1;
    const a = next() * 2 - 1, b = next() * 2 - 1;
    for (let y = 0; y < SIDE; y++)
      for (let x = 0; x < SIDE; x++) {
        const v = smooth ? 128 + 80 * (a * (x / SIDE - 0.5) + b * (y / SIDE - 0.5)) + 40 * (next() - 0.5) : 256 * next();
        c[y * SIDE + x] = Math.max(0, Math.min(255, Math.floor(v)));
      }
    crops.push(c);
  }
  return crops;
}

// Pixel bytes -> float input x = pixel/255 (the model's preprocess: mean 0, std 1, scale 1/255).
export function toInput(crop, out = new Float32Array(SIDE * SIDE)) {
  for (let i = 0; i < crop.length; i++) out[i] = crop[i] / 255;
  return out;
}

// Plain-JS float64 forward pass of the seed network for one crop; returns 7 probabilities (Float64Array).
export function referenceForward(layers, crop) {
  let h = SIDE, w = SIDE;
  let x = Float64Array.from(crop, (v) => v / 255);
  for (const { cin, cout, w: W, b: B } of layers.convs) {
    // conv 3x3 same (zero padding 1), NHWC, weights HWIO
    const y = new Float64Array(h * w * cout);
    for (let oy = 0; oy < h; oy++)
      for (let ox = 0; ox < w; ox++) {
        const acc = new Float64Array(cout);
        for (let co = 0; co < cout; co++) acc[co] = B[co];
        for (let ky = 0; ky < 3; ky++) {
          const iy = oy + ky - 1;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < 3; kx++) {
            const ix = ox + kx - 1;
            if (ix < 0 || ix >= w) continue;
            for (let ci = 0; ci < cin; ci++) {
              const xv = x[(iy * w + ix) * cin + ci];
              const row = ((ky * 3 + kx) * cin + ci) * cout;
              for (let co = 0; co < cout; co++) acc[co] += xv * W[row + co];
            }
          }
        }
        for (let co = 0; co < cout; co++) y[(oy * w + ox) * cout + co] = Math.max(0, acc[co]);  // relu
      }
    // maxpool 2x2 stride 2
    const ph = h >> 1, pw = w >> 1;
    const z = new Float64Array(ph * pw * cout);
    for (let py = 0; py < ph; py++)
      for (let px = 0; px < pw; px++)
        for (let co = 0; co < cout; co++) {
          let m = -Infinity;
          for (let dy = 0; dy < 2; dy++)
            for (let dx = 0; dx < 2; dx++) m = Math.max(m, y[((2 * py + dy) * w + 2 * px + dx) * cout + co]);
          z[(py * pw + px) * cout + co] = m;
        }
    x = z, h = ph, w = pw;
  }
  // flatten: NHWC order already; dense layers, relu between, softmax at the end
  layers.denses.forEach(({ in: nin, out, w: W, b: B }, li) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) y[o] = B[o];
    for (let i = 0; i < nin; i++) {
      const xv = x[i];
      if (xv === 0) continue;
      const row = i * out;
      for (let o = 0; o < out; o++) y[o] += xv * W[row + o];
    }
    if (li < layers.denses.length - 1) for (let o = 0; o < out; o++) y[o] = Math.max(0, y[o]);
    x = y;
  });
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, v) => a + v, 0);
  return e.map((v) => v / s);
}
