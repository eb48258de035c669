// Draws the page's app icons (web app manifest): a smiling face on the page's dark background, full bleed so it
// also works as a "maskable" icon (the face stays inside the central safe circle). Writes
// assets/icons/icon-192.png and icon-512.png (committed; run this again only to change the design):
//   node scripts/make_icons.mjs
import { deflateSync } from 'node:zlib';
import { renameSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'assets', 'icons');

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0);
  b.write(type, 4, 'ascii');
  data.copy(b, 8);
  b.writeUInt32BE(crc32(b.subarray(4, 8 + data.length)), 8 + data.length);
  return b;
}
function png(size, rgb) {  // 8-bit RGB, no alpha (the icon is opaque)
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; ihdr[9] = 2;  // bit depth 8, colour type RGB
  const raw = Buffer.alloc(size * (1 + 3 * size));
  for (let y = 0; y < size; y++) rgb.copy(raw, y * (1 + 3 * size) + 1, y * 3 * size, (y + 1) * 3 * size);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
                        chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

// The design in unit coordinates (0..1 across the icon): which colour a point has.
const BACK = [0x1f, 0x21, 0x26], FACE = [0xf2, 0xc1, 0x4e], INK = [0x2a, 0x2d, 0x34];
function colour(x, y) {
  const d = (cx, cy) => Math.hypot(x - cx, y - cy);
  if (d(0.5, 0.5) > 0.3) return BACK;
  if (d(0.41, 0.42) < 0.035 || d(0.59, 0.42) < 0.035) return INK;                      // eyes
  const r = d(0.5, 0.5);
  if (y > 0.52 && r > 0.15 && r < 0.195 && Math.abs(x - 0.5) < 0.16) return INK;       // smile
  return FACE;
}
function draw(size) {
  const S = 4, rgb = Buffer.alloc(size * size * 3);  // 4x4 samples per pixel
  for (let py = 0; py < size; py++)
    for (let px = 0; px < size; px++) {
      const acc = [0, 0, 0];
      for (let sy = 0; sy < S; sy++)
        for (let sx = 0; sx < S; sx++) {
          const c = colour((px + (sx + 0.5) / S) / size, (py + (sy + 0.5) / S) / size);
          for (let k = 0; k < 3; k++) acc[k] += c[k];
        }
      for (let k = 0; k < 3; k++) rgb[(py * size + px) * 3 + k] = Math.round(acc[k] / (S * S));
    }
  return png(size, rgb);
}

mkdirSync(out, { recursive: true });
for (const size of [192, 512]) {
  const file = path.join(out, `icon-${size}.png`);
  writeFileSync(file + '.tmp', draw(size));
  renameSync(file + '.tmp', file);
  console.log(file);
}
