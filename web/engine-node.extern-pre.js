// Prepended to dist/ferkit-engine.mjs (--extern-pre-js). Emscripten 3.1.6's node code path calls require() and
// reads __dirname, which an ES module does not have: give it both under node. Browsers never run the import.
const __ferkitNode = typeof process == 'object' && typeof process.versions == 'object' &&
                     typeof process.versions.node == 'string';
const require = __ferkitNode ? (await import('node:module')).createRequire(import.meta.url) : undefined;
const __dirname = __ferkitNode ? require('node:path').dirname(require('node:url').fileURLToPath(import.meta.url)) : '';
