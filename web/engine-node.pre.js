// --pre-js of dist/ferkit-engine.mjs: under node, 3.1.6 would fetch() the .wasm by file URL, which node's fetch
// cannot do; read it from beside the module instead (unless the caller passed wasmBinary or instantiateWasm).
// (require and __dirname come from engine-node.extern-pre.js; both are undefined in browsers.)
if (typeof require == 'function' && !Module['wasmBinary'] && !Module['instantiateWasm'])
  Module['wasmBinary'] = require('fs').readFileSync(require('path').join(__dirname, 'ferkit-engine.wasm'));
