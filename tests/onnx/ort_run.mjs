// ONNX Runtime (onnxruntime-web's WebAssembly CPU backend, under node) as the reference for tests/test_onnx.cpp:
//   node tests/onnx/ort_run.mjs MODEL.onnx INPUT.f32 N C H W OUTPUT.f32
// INPUT.f32: N*C*H*W float32 values (little-endian) fed to the graph's only input; OUTPUT.f32: its outputs, one after
// another in the graph's order.
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web';

const [model, input, n, c, h, w, output] = process.argv.slice(2);
if (!output) {
  console.error('usage: node ort_run.mjs MODEL.onnx INPUT.f32 N C H W OUTPUT.f32');
  process.exit(2);
}
ort.env.wasm.numThreads = 1;
const session = await ort.InferenceSession.create(readFileSync(model));
const bytes = readFileSync(input);
const data = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
const dims = [n, c, h, w].map(Number);
const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
const result = await session.run(feeds);
const parts = session.outputNames.map((name) => result[name].data);
writeFileSync(output, Buffer.concat(parts.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength))));
console.log(`${session.inputNames[0]} [${dims}] -> ` +
            session.outputNames.map((name) => `${name} [${result[name].dims}]`).join(', '));
