// ferkit-node.mjs: the API of ferkit.mjs for node (the npm package's "node" export; import 'ferkit' under node
// resolves here). The same engine and assets, read from files instead of fetched:
//
//   import { loadFerkit } from 'ferkit';
//   const ferkit = await loadFerkit();                    // ferkit-engine.wasm, assets/ beside this module
//   ferkit.classify({ data, width, height });             // RGBA pixels (ImageData-like): node has no canvas
//   ferkit.classifyCrops(crops);                          // n * 2304 bytes of 48x48 grey crops
//
// loadFerkit({ baseUrl, modelUrl, detectorUrl }): as in ferkit.mjs, with file paths or file: URLs (relative paths
// are taken from the current directory); baseUrl is the folder holding ferkit-engine.wasm and assets/.
// classify() takes ImageData-like objects only ({data: RGBA bytes, width, height}).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import createFerkitEngine from './ferkit-engine.mjs';
import { ferkitApi } from './ferkit-api.mjs';

function fileUrl(where) {
  const s = String(where && typeof where === 'object' && 'href' in where ? where.href : where);  // a URL, {href} or a path
  if (/^file:/i.test(s)) return new URL(s);
  if (/^[a-z][a-z0-9+.-]+:/i.test(s)) throw new Error(`ferkit: under node, ${s} must be a file path or file: URL`);
  return pathToFileURL(path.resolve(s));
}

async function readBytes(url, what) {
  try {
    return new Uint8Array(await readFile(url));
  } catch (e) {
    throw new Error(`ferkit: could not read the ${what} ${fileURLToPath(url)}: ${e.message}`);
  }
}

export async function loadFerkit({ baseUrl, modelUrl, detectorUrl } = {}) {
  let base = new URL('.', import.meta.url);
  if (baseUrl !== undefined) {
    base = fileUrl(baseUrl);
    if (!base.pathname.endsWith('/')) base = new URL(base.pathname + '/', base);
  }
  const wasm = new URL('ferkit-engine.wasm', base);
  const model = modelUrl ? fileUrl(modelUrl) : new URL('assets/default.ferkit', base);
  const detector = detectorUrl ? fileUrl(detectorUrl) : new URL('assets/blazeface.ferkit', base);
  const [wasmBinary, modelBytes, detectorBytes] = await Promise.all([
    readBytes(wasm, 'engine'), readBytes(model, 'model'), readBytes(detector, 'face detector')]);
  const M = await createFerkitEngine({ wasmBinary });
  return ferkitApi(M, modelBytes, detectorBytes);
}
