// The npm package under node in TypeScript (checked by tests/web/npm.test.mjs: tsc --noEmit with module
// "nodenext" and no "dom", so 'ferkit' resolves to ferkit-node.mjs and ferkit-node.d.ts).
import { loadFerkit, type Face, type ImageDataLike } from 'ferkit';

declare const console: { log(...values: unknown[]): void };  // (no @types/node here)

const ferkit = await loadFerkit({ baseUrl: './node_modules/ferkit/' });
const frame: ImageDataLike = { data: new Uint8Array(64 * 64 * 4), width: 64, height: 64 };
const faces: Face[] = ferkit.classify(frame);
console.log(faces.map((f) => f.label), ferkit.classifyCrops(new Uint8Array(2 * 2304)).length);
// @ts-expect-error: under node classify() takes RGBA pixels, not a canvas
ferkit.classify({ width: 64, height: 64 });
