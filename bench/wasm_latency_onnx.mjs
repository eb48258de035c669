// A minimal ONNX writer for bench/wasm_latency.mjs: a protobuf encoder for the few messages an inference
// graph needs (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), and the seed
// network built from ferkit's weights. Field numbers are those of onnx/onnx.proto (IR version 8, opset 13).

// ---- protobuf wire format -------------------------------------------------------------------------------
const VARINT = 0, FIXED32 = 5, LEN = 2;

class Msg {
  constructor() { this.parts = []; this.size = 0; }
  push(bytes) { this.parts.push(bytes); this.size += bytes.length; return this; }
  varintRaw(v) {
    // v: number or bigint; negatives are encoded as 64-bit two's complement (10 bytes), as protobuf does.
    let x = BigInt.asUintN(64, BigInt(v));
    const out = [];
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) byte |= 0x80;
      out.push(byte);
    } while (x !== 0n);
    return this.push(Uint8Array.from(out));
  }
  tag(field, wire) { return this.varintRaw((field << 3) | wire); }
  int(field, v) { return this.tag(field, VARINT).varintRaw(v); }
  bytes(field, b) { return this.tag(field, LEN).varintRaw(b.length).push(b); }
  string(field, s) { return this.bytes(field, new TextEncoder().encode(s)); }
  msg(field, m) { return this.bytes(field, m.finish()); }
  float(field, f) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, f, true);
    return this.tag(field, FIXED32).push(b);
  }
  packedInts(field, vs) {
    const inner = new Msg();
    for (const v of vs) inner.varintRaw(v);
    return this.bytes(field, inner.finish());
  }
  finish() {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

// ---- ONNX messages ----------------------------------------------------------------------------------------
const FLOAT = 1;  // TensorProto.DataType.FLOAT
const INT64 = 7;  // TensorProto.DataType.INT64
const ATTR_INT = 2, ATTR_INTS = 7;  // AttributeProto.AttributeType

// TensorProto: dims=1, data_type=2, name=8, raw_data=9 (little-endian)
function tensor(name, dims, data) {
  const m = new Msg();
  m.packedInts(1, dims);
  if (data instanceof Float32Array) {
    m.int(2, FLOAT);
    m.string(8, name);
    m.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } else if (data instanceof BigInt64Array) {
    m.int(2, INT64);
    m.string(8, name);
    m.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } else throw new Error(`tensor ${name}: unsupported data`);
  return m;
}

// AttributeProto: name=1, i=3, ints=8, type=20
function attr(name, value) {
  const m = new Msg().string(1, name);
  if (Array.isArray(value)) { m.packedInts(8, value); m.int(20, ATTR_INTS); } else { m.int(3, value); m.int(20, ATTR_INT); }
  return m;
}

// NodeProto: input=1, output=2, name=3, op_type=4, attribute=5
function node(op, inputs, outputs, attrs = {}, name = outputs[0]) {
  const m = new Msg();
  for (const i of inputs) m.string(1, i);
  for (const o of outputs) m.string(2, o);
  m.string(3, name);
  m.string(4, op);
  for (const [k, v] of Object.entries(attrs)) m.msg(5, attr(k, v));
  return m;
}

// ValueInfoProto: name=1, type=2 -> TypeProto.tensor_type=1 -> {elem_type=1, shape=2 -> dim=1 -> dim_value=1}
function valueInfo(name, dims) {
  const shape = new Msg();
  for (const d of dims) shape.msg(1, new Msg().int(1, d));
  const tt = new Msg().int(1, FLOAT).msg(2, shape);
  return new Msg().string(1, name).msg(2, new Msg().msg(1, tt));
}

// GraphProto: node=1, name=2, initializer=5, input=11, output=12
function graph(name, nodes, initializers, inputs, outputs) {
  const g = new Msg();
  for (const n of nodes) g.msg(1, n);
  g.string(2, name);
  for (const t of initializers) g.msg(5, t);
  for (const v of inputs) g.msg(11, v);
  for (const v of outputs) g.msg(12, v);
  return g;
}

// ModelProto: ir_version=1, producer_name=2, producer_version=3, graph=7, opset_import=8 -> {domain=1, version=2}
function model(g, opset = 13) {
  return new Msg()
    .int(1, 8)
    .string(2, 'ferkit-bench')
    .string(3, '1')
    .msg(7, g)
    .msg(8, new Msg().string(1, '').int(2, opset))
    .finish();
}

// ---- the seed network -------------------------------------------------------------------------------------
// HWIO conv weights (w[(ky*3+kx)*cin + ci][co]) -> OIHW (ONNX Conv).
export function hwioToOihw(w, cin, cout, k = 3) {
  const out = new Float32Array(w.length);
  for (let ky = 0; ky < k; ky++)
    for (let kx = 0; kx < k; kx++)
      for (let ci = 0; ci < cin; ci++)
        for (let co = 0; co < cout; co++)
          out[((co * cin + ci) * k + ky) * k + kx] = w[((ky * k + kx) * cin + ci) * cout + co];
  return out;
}

// Builds the seed network as ONNX bytes: input "x" [batch,48,48,1] (NHWC, pixel/255), output "probs" [batch,7].
// NHWC -> Transpose -> 3 x (Conv, Relu, MaxPool) -> Transpose back to NHWC -> Flatten (so the dense weights keep
// ferkit's [in][out] order) -> Gemm, Relu, Gemm, Relu, Gemm -> Softmax. Dropout is the identity at inference.
export function seedOnnx(layers, batch = 1) {
  const nodes = [], inits = [];
  nodes.push(node('Transpose', ['x'], ['x_nchw'], { perm: [0, 3, 1, 2] }));
  let cur = 'x_nchw';
  layers.convs.forEach(({ cin, cout, w, b }, i) => {
    inits.push(tensor(`conv${i}_w`, [cout, cin, 3, 3], hwioToOihw(w, cin, cout)));
    inits.push(tensor(`conv${i}_b`, [cout], Float32Array.from(b)));
    nodes.push(node('Conv', [cur, `conv${i}_w`, `conv${i}_b`], [`conv${i}`],
                    { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1], dilations: [1, 1], group: 1 }));
    nodes.push(node('Relu', [`conv${i}`], [`relu${i}`]));
    nodes.push(node('MaxPool', [`relu${i}`], [`pool${i}`], { kernel_shape: [2, 2], strides: [2, 2] }));
    cur = `pool${i}`;
  });
  nodes.push(node('Transpose', [cur], ['pool_nhwc'], { perm: [0, 2, 3, 1] }));
  nodes.push(node('Flatten', ['pool_nhwc'], ['flat'], { axis: 1 }));
  cur = 'flat';
  layers.denses.forEach(({ in: nin, out, w, b }, i) => {
    inits.push(tensor(`dense${i}_w`, [nin, out], Float32Array.from(w)));
    inits.push(tensor(`dense${i}_b`, [out], Float32Array.from(b)));
    nodes.push(node('Gemm', [cur, `dense${i}_w`, `dense${i}_b`], [`dense${i}`], { transA: 0, transB: 0 }));
    cur = `dense${i}`;
    if (i < layers.denses.length - 1) {
      nodes.push(node('Relu', [cur], [`drelu${i}`]));
      cur = `drelu${i}`;
    }
  });
  nodes.push(node('Softmax', [cur], ['probs'], { axis: 1 }));
  const g = graph('ferkit_seed', nodes, inits, [valueInfo('x', [batch, 48, 48, 1])], [valueInfo('probs', [batch, 7])]);
  return model(g);
}
