import fc from "fast-check";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../src/io/half.ts";
import {
  bf16Tensor,
  decodeSafetensors,
  encodeSafetensors,
  f16Tensor,
  fromF32,
  SafetensorsError,
  type StDType,
  type StTensor,
  toF32,
} from "../src/io/safetensors.ts";

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const enc = new TextEncoder();
const ITEMSIZE: Record<StDType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8 };
const DTYPES: StDType[] = ["F32", "F16", "BF16", "I32", "I64"];

/** A file from a header string (unpadded unless the caller pads) and a data buffer. */
function build(header: string, buf: Uint8Array = new Uint8Array(0), lenOverride?: bigint): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.length + buf.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(buf, 8 + h.length);
  return out;
}

function bytesOf(d: StTensor["data"]): Uint8Array {
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function headerOf(file: Uint8Array): { n: number; json: string } {
  const n = Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true));
  return { n, json: new TextDecoder().decode(file.subarray(8, 8 + n)) };
}

function expectError(f: () => unknown, ...fragments: string[]): SafetensorsError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  const err = caught as SafetensorsError;
  expect(err.name).toBe("SafetensorsError");
  for (const frag of fragments) expect(err.message).toContain(frag);
  return err;
}

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }); // [] = scalar, 0 = empty

function dataArb(dtype: StDType, n: number): fc.Arbitrary<StTensor["data"]> {
  switch (dtype) {
    case "F32":
      // raw bit patterns: covers NaN payloads, -0, infinities and subnormals
      return fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: n, maxLength: n }).map((a) => {
        const f = new Float32Array(n);
        new Uint32Array(f.buffer).set(a);
        return f;
      });
    case "F16":
    case "BF16":
      return fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: n, maxLength: n }).map((a) => Uint16Array.from(a));
    case "I32":
      return fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: n, maxLength: n }).map((a) => Int32Array.from(a));
    case "I64":
      return fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { minLength: n, maxLength: n }).map((a) => BigInt64Array.from(a));
  }
}

function tensorArb(dtype?: StDType): fc.Arbitrary<StTensor> {
  const dt = dtype === undefined ? fc.constantFrom(...DTYPES) : fc.constant(dtype);
  return fc
    .tuple(dt, shapeArb)
    .chain(([d, shape]) => dataArb(d, product(shape)).map((data) => ({ dtype: d, shape, data }) as StTensor));
}

const nameArb = fc.oneof(
  fc.string({ minLength: 1, maxLength: 8 }),
  fc.constantFrom("a", "b", "layers.0.w", "10", "9", "__proto__", "constructor", "é", "😀", 'q"\\\n'),
).filter((s) => s !== "__metadata__");

const tensorsArb = fc.dictionary(nameArb, tensorArb(), { maxKeys: 5 });
const metaArb = fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 10 }), { maxKeys: 3 }), { nil: undefined });

/** Checks that decoded tensors equal the originals bit for bit. */
function expectSameTensors(got: Record<string, StTensor>, want: Record<string, StTensor>): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const name of Object.keys(want)) {
    const g = got[name];
    const w = want[name];
    expect(Object.getOwnPropertyDescriptor(got, name)).toBeDefined();
    expect(g.dtype).toBe(w.dtype);
    expect(g.shape).toEqual(w.shape);
    expect(g.data.constructor).toBe(w.data.constructor);
    expect(g.data.length).toBe(w.data.length);
    expect(Array.from(bytesOf(g.data))).toEqual(Array.from(bytesOf(w.data)));
  }
}

/** Structural invariants every successfully decoded file must satisfy. */
function checkConsistent(r: ReturnType<typeof decodeSafetensors>): void {
  for (const [k, v] of Object.entries(r.metadata)) {
    if (typeof k !== "string" || typeof v !== "string") throw new Error("metadata not strings");
  }
  for (const name of Object.keys(r.tensors)) {
    const t = r.tensors[name];
    if (name.length === 0 || name === "__metadata__") throw new Error(`bad name ${name}`);
    if (!DTYPES.includes(t.dtype)) throw new Error(`bad dtype ${t.dtype}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error("bad shape");
    const n = t.shape.includes(0) ? 0 : product(t.shape);
    if (t.data.length !== n) throw new Error("data length does not match shape");
    if (t.data.byteLength !== n * ITEMSIZE[t.dtype]) throw new Error("data bytes do not match dtype");
    const ctor = { F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I32: Int32Array, I64: BigInt64Array }[t.dtype];
    if (!(t.data instanceof ctor)) throw new Error("data type does not match dtype");
  }
}

// ---------------------------------------------------------------------------------------------
// half precision
// ---------------------------------------------------------------------------------------------

function h(x: number): number {
  return f32ToF16(new Float32Array([x]))[0];
}
function b(x: number): number {
  return f32ToBf16(new Float32Array([x]))[0];
}
/** A Float32Array holding these exact bit patterns (never via a JS number, which may canonicalise NaN). */
function f32FromBits(...bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}
function fromBits32(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

describe("half", () => {
  test("f32 -> f16 known bit patterns", () => {
    expect(h(1)).toBe(0x3c00);
    expect(h(-2)).toBe(0xc000);
    expect(h(0.5)).toBe(0x3800);
    expect(h(65504)).toBe(0x7bff);
    expect(h(65519)).toBe(0x7bff); // just below the rounding boundary
    expect(h(65520)).toBe(0x7c00); // rounds to inf
    expect(h(1e10)).toBe(0x7c00);
    expect(h(-1e10)).toBe(0xfc00);
    expect(h(Infinity)).toBe(0x7c00);
    expect(h(-Infinity)).toBe(0xfc00);
    expect(h(0)).toBe(0x0000);
    expect(h(-0)).toBe(0x8000);
    expect(h(2 ** -14)).toBe(0x0400); // smallest normal
    expect(h(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(h(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(h(-(2 ** -24))).toBe(0x8001);
    expect(h(2 ** -25)).toBe(0x0000); // tie between 0 and 2^-24: even -> 0
    expect(h(2 ** -25 + 2 ** -40)).toBe(0x0001); // just above the tie
    expect(h(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 ulps: even -> 2
    expect(h(2 ** -26)).toBe(0x0000);
    expect(h(1e-30)).toBe(0x0000);
    expect(h(1 + 2 ** -11)).toBe(0x3c00); // tie: even mantissa kept
    expect(h(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: rounds up to even
    expect(h(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above tie
    expect(h(2 ** -14 - 2 ** -25)).toBe(0x0400); // largest-subnormal + half ulp ties up into the normal range
    const nan = h(NaN);
    expect((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0).toBe(true);
    const [sigNan, negNan] = f32ToF16(f32FromBits(0x7f800001, 0xffc00000)); // low payload must stay NaN
    expect((sigNan & 0x7c00) === 0x7c00 && (sigNan & 0x3ff) !== 0).toBe(true);
    expect(negNan).toBe(0xfe00); // NaN sign kept
  });

  test("f16 -> f32 known bit patterns", () => {
    const f = (bits: number) => f16ToF32(new Uint16Array([bits]))[0];
    expect(f(0x3c00)).toBe(1);
    expect(f(0x7bff)).toBe(65504);
    expect(f(0x0001)).toBe(2 ** -24);
    expect(f(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f(0x0400)).toBe(2 ** -14);
    expect(Object.is(f(0x8000), -0)).toBe(true);
    expect(f(0x7c00)).toBe(Infinity);
    expect(f(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f(0x7e00))).toBe(true);
    expect(Number.isNaN(f(0x7c01))).toBe(true);
    expect(f(0xc000)).toBe(-2);
  });

  test("f16 -> f32 -> f16 is the identity on all 65536 patterns (NaN stays NaN)", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToF16(f16ToF32(all));
    const vals = f16ToF32(all);
    for (let i = 0; i < 65536; i++) {
      const isNan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (isNan) {
        if (!Number.isNaN(vals[i]) || (back[i] & 0x7c00) !== 0x7c00 || (back[i] & 0x3ff) === 0) throw new Error(`NaN ${i}`);
      } else if (back[i] !== i) {
        throw new Error(`pattern ${i.toString(16)} came back as ${back[i].toString(16)}`);
      }
    }
    // f16 values are exact float32 values: compare against an independent decoding
    for (const i of [1, 2, 0x3ff, 0x400, 0x3555, 0x7bff, 0x8001, 0xbc00]) {
      const sign = i & 0x8000 ? -1 : 1;
      const e = (i >>> 10) & 0x1f;
      const m = i & 0x3ff;
      const want = e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
      expect(vals[i]).toBe(want);
    }
  });

  test("f32 -> f16 rounds to nearest even (fast-check over float32 bits)", () => {
    const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        const x = fromBits32(bits);
        const hb = h(x);
        const v = f16ToF32(new Uint16Array([hb]))[0];
        if (Number.isNaN(x)) return Number.isNaN(v);
        if (f16round) return Object.is(v, f16round(x)); // engine reference where available
        // otherwise: no other finite f16 of the same sign is strictly nearer, ties go to even
        if (!Number.isFinite(v)) return Math.abs(x) >= 65520;
        for (const nb of [hb - 1, hb + 1]) {
          if ((nb & 0x7fff) > 0x7bff || nb < 0 || (nb & 0x8000) !== (hb & 0x8000)) continue;
          const w = f16ToF32(new Uint16Array([nb]))[0];
          const dv = Math.abs(x - v);
          const dw = Math.abs(x - w);
          if (dw < dv || (dw === dv && (hb & 1) === 1)) return false;
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  });

  test("bf16 known patterns, ties to even, NaN preserved", () => {
    expect(b(1)).toBe(0x3f80);
    expect(b(-2)).toBe(0xc000);
    expect(b(-0)).toBe(0x8000);
    expect(b(Infinity)).toBe(0x7f80);
    expect(b(-Infinity)).toBe(0xff80);
    expect(b(fromBits32(0x3f808000))).toBe(0x3f80); // tie, even kept
    expect(b(fromBits32(0x3f818000))).toBe(0x3f82); // tie, rounds up to even
    expect(b(fromBits32(0x3f808001))).toBe(0x3f81); // above tie
    expect(b(fromBits32(0x3f807fff))).toBe(0x3f80); // below tie
    expect(b(fromBits32(0x7f7fffff))).toBe(0x7f80); // max float rounds to inf
    expect(b(fromBits32(0x00000001))).toBe(0x0000); // tiny subnormal rounds to 0
    for (const nanBits of [0x7fc00000, 0x7f800001, 0xffffffff, 0x7fffffff, 0xff800001]) {
      const r = f32ToBf16(f32FromBits(nanBits))[0];
      expect((r & 0x7f80) === 0x7f80 && (r & 0x7f) !== 0).toBe(true);
      expect(r & 0x8000).toBe((nanBits >>> 16) & 0x8000);
      expect(Number.isNaN(bf16ToF32(new Uint16Array([r]))[0])).toBe(true);
    }
    expect(bf16ToF32(new Uint16Array([0x3f80, 0xc000, 0x7f80, 0x8000]))).toEqual(new Float32Array([1, -2, Infinity, -0]));
  });

  test("bf16 -> f32 -> bf16 is the identity on all non-NaN patterns; conversion matches truncation model", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToBf16(bf16ToF32(all));
    for (let i = 0; i < 65536; i++) {
      const isNan = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
      if (isNan ? (back[i] & 0x7f80) !== 0x7f80 || (back[i] & 0x7f) === 0 : back[i] !== i) throw new Error(`pattern ${i}`);
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        const x = fromBits32(bits);
        if (Number.isNaN(x)) return true;
        const r = b(x);
        const lo = bits >>> 16;
        const rest = bits & 0xffff;
        const want = rest > 0x8000 || (rest === 0x8000 && (lo & 1) === 1) ? lo + 1 : lo;
        return r === want;
      }),
      { numRuns: 2000 },
    );
  });

  test("arrays at a non-zero byteOffset convert correctly", () => {
    const big = new Float32Array([9, 1, 2, 65504]);
    const sub = big.subarray(1);
    expect(Array.from(f32ToF16(sub))).toEqual([0x3c00, 0x4000, 0x7bff]);
    expect(Array.from(f32ToBf16(sub))).toEqual([0x3f80, 0x4000, 0x4780]);
    expect(f16ToF32(new Uint16Array(0)).length).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// round trips
// ---------------------------------------------------------------------------------------------

describe("safetensors round trip", () => {
  for (const dtype of DTYPES) {
    test(`${dtype}: every shape (scalars, empty) and bit pattern survives`, () => {
      fc.assert(
        fc.property(tensorArb(dtype), (t) => {
          const file = encodeSafetensors({ t });
          const { n } = headerOf(file);
          expect((8 + n) % 8).toBe(0);
          expect(file.length).toBe(8 + n + t.data.byteLength);
          const r = decodeSafetensors(file);
          expectSameTensors(r.tensors, { t });
          expect(r.metadata).toEqual({});
        }),
        { numRuns: 150 },
      );
    });
  }

  test("scalar and empty tensors explicitly", () => {
    const tensors: Record<string, StTensor> = {
      scalar: { dtype: "F32", shape: [], data: new Float32Array([3.5]) },
      empty: { dtype: "I64", shape: [0], data: new BigInt64Array(0) },
      empty2: { dtype: "F16", shape: [3, 0, 2], data: new Uint16Array(0) },
      i: { dtype: "I32", shape: [], data: new Int32Array([-7]) },
    };
    const file = encodeSafetensors(tensors);
    const r = decodeSafetensors(file);
    expectSameTensors(r.tensors, tensors);
    expect(r.tensors.scalar.shape).toEqual([]);
    expect(r.tensors.scalar.data[0]).toBe(3.5);
    expect(r.tensors.empty2.shape).toEqual([3, 0, 2]);
  });

  test("many tensors of mixed dtypes and metadata (fast-check)", () => {
    fc.assert(
      fc.property(tensorsArb, metaArb, (tensors, metadata) => {
        const file = encodeSafetensors(tensors, metadata);
        const { n, json } = headerOf(file);
        expect((8 + n) % 8).toBe(0);
        expect(/^\{.*\} *$/s.test(json)).toBe(true);
        const r = decodeSafetensors(file);
        expectSameTensors(r.tensors, tensors);
        expect(r.metadata).toEqual(metadata ?? {});
        // re-encoding the decoded file reproduces it byte for byte
        expect(Array.from(encodeSafetensors(r.tensors, metadata))).toEqual(Array.from(file));
      }),
      { numRuns: 300 },
    );
  });

  test("writer sorts by name, packs contiguously and puts __metadata__ first", () => {
    const file = encodeSafetensors(
      {
        b: { dtype: "F16", shape: [1], data: new Uint16Array([0x3c00]) },
        a: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
        "10": { dtype: "I32", shape: [1], data: new Int32Array([5]) },
        "9": { dtype: "I32", shape: [1], data: new Int32Array([6]) },
      },
      { format: "pt" },
    );
    const { json } = headerOf(file);
    expect(json.trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},' +
        '"10":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},' +
        '"9":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},' +
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
        '"b":{"dtype":"F16","shape":[1],"data_offsets":[12,14]}}',
    );
    expect(decodeSafetensors(file).metadata).toEqual({ format: "pt" });
  });

  test("unaligned tensor offsets and an unaligned input view decode correctly", () => {
    // "a" (F16, 2 bytes) first puts "b" (F32) and "c" (I64) at odd-multiple-of-2 offsets
    const tensors: Record<string, StTensor> = {
      a: { dtype: "F16", shape: [1], data: new Uint16Array([0x3c00]) },
      b: { dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) },
      c: { dtype: "I64", shape: [1], data: new BigInt64Array([-(2n ** 62n)]) },
    };
    const file = encodeSafetensors(tensors);
    const r = decodeSafetensors(file);
    expectSameTensors(r.tensors, tensors);
    // the whole file at byte offset 3 of a larger buffer
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    expectSameTensors(decodeSafetensors(shifted.subarray(3)).tensors, tensors);
    expect(r.tensors.b.data.byteOffset % 4).toBe(0);
    // decoded data is a copy: mutating the file afterwards does not change it
    file.fill(0);
    expect(r.tensors.b.data[0]).toBe(1.5);
  });

  test("toF32 and the F16/BF16 encoding helpers", () => {
    const x = new Float32Array([1, -2.5, 65504, 0.1, 1e-8]);
    const file = encodeSafetensors({ f32: fromF32(x, [5]), f16: f16Tensor(x), bf16: bf16Tensor(x, [5, 1]) });
    const r = decodeSafetensors(file);
    expect(r.tensors.f16.dtype).toBe("F16");
    expect(r.tensors.bf16.shape).toEqual([5, 1]);
    expect(toF32(r.tensors.f32)).toEqual(x);
    const f16 = toF32(r.tensors.f16);
    const bf = toF32(r.tensors.bf16);
    expect(Array.from(f16.subarray(0, 3))).toEqual([1, -2.5, 65504]);
    expect(f16[3]).toBeCloseTo(0.1, 3);
    expect(f16[4]).toBe(Math.round(1e-8 / 2 ** -24) * 2 ** -24); // a subnormal f16 (or 0)
    expect(Array.from(bf.subarray(0, 2))).toEqual([1, -2.5]);
    expect(Math.abs(bf[2] - 65504) / 65504).toBeLessThan(2 ** -8);
    expect(fromF32(x, [5], "BF16").data).toEqual(f32ToBf16(x));
    expectError(() => toF32({ dtype: "I32", shape: [1], data: new Int32Array([1]) }, "ids"), 'tensor "ids"', "I32", "integer");
    expectError(() => toF32({ dtype: "I64", shape: [0], data: new BigInt64Array(0) }), "I64");
  });
});

// ---------------------------------------------------------------------------------------------
// the Python fixture
// ---------------------------------------------------------------------------------------------

describe("safetensors python fixture", () => {
  // safetensors.torch.save_file({"a": torch.tensor([1., 2.], dtype=torch.float32)}) writes:
  //   u64 LE 56 | {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} (54 bytes) + 2 spaces | 1.0f 2.0f
  const headerText = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const expected = new Uint8Array([
    0x38, 0, 0, 0, 0, 0, 0, 0, // header length 56
    ...enc.encode(headerText), 0x20, 0x20, // 54 bytes of JSON + 2 spaces of padding
    0x00, 0x00, 0x80, 0x3f, // 1.0f
    0x00, 0x00, 0x00, 0x40, // 2.0f
  ]); // prettier-ignore

  test("fixture has the expected layout", () => {
    expect(headerText.length).toBe(54);
    expect(expected.length).toBe(72);
  });

  test("our reader decodes the python bytes", () => {
    const r = decodeSafetensors(expected, { source: "py.safetensors" });
    expect(r.metadata).toEqual({});
    expect(Object.keys(r.tensors)).toEqual(["a"]);
    expect(r.tensors.a.dtype).toBe("F32");
    expect(r.tensors.a.shape).toEqual([2]);
    expect(Array.from(r.tensors.a.data as Float32Array)).toEqual([1, 2]);
  });

  test("our writer produces the same bytes", () => {
    const ours = encodeSafetensors({ a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
    expect(Array.from(ours)).toEqual(Array.from(expected));
  });
});

// ---------------------------------------------------------------------------------------------
// rejections with clear messages
// ---------------------------------------------------------------------------------------------

describe("safetensors errors", () => {
  const src = { source: "checkpoint.safetensors" };

  test("the documented size-mismatch message", () => {
    const file = build('{"layers.0.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}}', new Uint8Array(12));
    const err = expectError(() => decodeSafetensors(file, src));
    expect(err.message).toBe('checkpoint.safetensors: tensor "layers.0.w": data_offsets [0, 12] hold 12 bytes but shape [2, 3] of F32 needs 24');
    expect(err.source).toBe("checkpoint.safetensors");
    expect(err.tensor).toBe("layers.0.w");
  });

  test("header length checks happen before anything else", () => {
    expectError(() => decodeSafetensors(new Uint8Array(0), src), "checkpoint.safetensors:", "too short");
    expectError(() => decodeSafetensors(new Uint8Array(7), src), "7 bytes");
    expectError(() => decodeSafetensors(build("{}", new Uint8Array(0), 2n ** 53n), src), "header length 9007199254740992", "limit");
    expectError(() => decodeSafetensors(build("{}", new Uint8Array(0), 2n ** 64n - 1n), src), "exceeds");
    expectError(() => decodeSafetensors(build("{}", new Uint8Array(0), 3n), src), "header length 3 exceeds the 2 bytes");
    expectError(() => decodeSafetensors(build("{}    "), { maxHeaderBytes: 4 }), "limit of 4");
    expect(decodeSafetensors(build("{}    "), { maxHeaderBytes: 6 }).tensors).toEqual({});
    expect(decodeSafetensors(build("{}    "), { maxHeaderBytes: Infinity }).tensors).toEqual({});
    expectError(() => decodeSafetensors(build("{}"), { maxHeaderBytes: NaN }), "maxHeaderBytes");
  });

  test("bad UTF-8, non-JSON and non-object headers", () => {
    const badUtf8 = new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0xff]);
    expectError(() => decodeSafetensors(badUtf8, src), "UTF-8");
    expectError(() => decodeSafetensors(build("{not json"), src), "checkpoint.safetensors:", "not valid JSON");
    expectError(() => decodeSafetensors(build("[1,2]"), src), "JSON object");
    expectError(() => decodeSafetensors(build("  {}"), src), "JSON object");
    expectError(() => decodeSafetensors(build(""), src), "JSON object");
    expectError(() => decodeSafetensors(build('{"a":1}'), src), 'tensor "a"', "invalid tensor entry");
    expectError(() => decodeSafetensors(build('{"a":{"dtype":"F32","shape":[1]}}'), src), 'tensor "a"', "data_offsets");
    expectError(() => decodeSafetensors(build('{"__metadata__":{"k":1}}'), src), "__metadata__");
    expectError(() => decodeSafetensors(build('{"__metadata__":[]}'), src), "__metadata__");
    expectError(() => decodeSafetensors(build('{"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'), src), "non-empty");
    expect(decodeSafetensors(build('{"__metadata__":null}')).metadata).toEqual({});
  });

  test("bad dtype, shape and offsets", () => {
    const one = (info: string, buf = 4) => decodeSafetensors(build(`{"w":${info}}`, new Uint8Array(buf)), src);
    expectError(() => one('{"dtype":"F64","shape":[1],"data_offsets":[0,4]}'), 'tensor "w"', 'unsupported dtype "F64"');
    expectError(() => one('{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}'), 'tensor "w"', "shape[0]");
    expectError(() => one('{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}'), 'tensor "w"', "shape");
    expectError(() => one('{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}'), 'tensor "w"', "shape");
    expectError(() => one('{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]}'), 'tensor "w"', "shape");
    expectError(() => one('{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}'), 'tensor "w"', "shape");
    expectError(() => one('{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,4]}'), 'tensor "w"', "more than 2^31 elements");
    expectError(() => one('{"dtype":"F32","shape":[1],"data_offsets":[4,0]}'), "end before they begin");
    expectError(() => one('{"dtype":"F32","shape":[1],"data_offsets":[0,8]}'), "run past the end of the 4-byte data buffer");
    expectError(() => one('{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}'), "data_offsets");
    expectError(() => one('{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}'), "data_offsets");
    expectError(() => one('{"dtype":"F32","shape":[1],"data_offsets":[0,4]}', 8), "bytes [4, 8) belong to no tensor");
    // a zero dimension makes any product zero
    expect(one('{"dtype":"F32","shape":[9007199254740991,0],"data_offsets":[0,0]}', 0).tensors.w.data.length).toBe(0);
  });

  test("overlapping and holey layouts", () => {
    const two = (a: string, b2: string, buf: number) =>
      decodeSafetensors(
        build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":${a}},"b":{"dtype":"F32","shape":[1],"data_offsets":${b2}}}`, new Uint8Array(buf)),
        src,
      );
    expectError(() => two("[0,4]", "[2,6]", 6), "overlap");
    expectError(() => two("[0,4]", "[0,4]", 4), "overlap");
    expectError(() => two("[0,4]", "[8,12]", 12), "hole", "bytes [4, 8)");
    expectError(() => two("[4,8]", "[8,12]", 12), "hole", "bytes [0, 4)");
    expect(Object.keys(two("[4,8]", "[0,4]", 8).tensors).sort()).toEqual(["a", "b"]);
  });

  test("hostile names stay plain own properties", () => {
    const file = build(
      '{"__proto__":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"__proto__":"x","toString":"y"}}',
      new Uint8Array([1, 0, 0, 0]),
    );
    const r = decodeSafetensors(file);
    expect(Object.keys(r.tensors)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(r.tensors)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(r.tensors, "__proto__")!.value.data[0]).toBe(1);
    expect(Object.getOwnPropertyDescriptor(r.metadata, "__proto__")!.value).toBe("x");
    expect(r.metadata.toString).toBe("y");
    expectError(() => decodeSafetensors(build('{"__metadata__":{"__proto__":1}}')), "__metadata__");
  });

  test("writer validation", () => {
    const f = (data: StTensor["data"], shape: number[], dtype: StDType = "F32") => encodeSafetensors({ w: { dtype, shape, data } });
    expectError(() => f(new Float32Array(5), [2, 3]), 'tensor "w"', "data has 5 elements but shape [2, 3] needs 6");
    expectError(() => f(new Float32Array(2), [2], "I32"), 'tensor "w"', "I32 needs data as Int32Array, got Float32Array");
    expectError(() => f(new Uint16Array(2), [2], "F32"), "Float32Array");
    expectError(() => f(new Int32Array(1), [-1], "I32"), "shape[0] = -1");
    expectError(() => f(new Int32Array(1), [1.5], "I32"), "shape[0] = 1.5");
    expectError(() => f(new Int32Array(1), [1], "U8" as StDType), "unsupported dtype");
    expectError(() => encodeSafetensors({ "": { dtype: "I32", shape: [], data: new Int32Array(1) } }), "non-empty");
    expectError(() => encodeSafetensors({ __metadata__: { dtype: "I32", shape: [], data: new Int32Array(1) } }), "reserved");
    expectError(() => encodeSafetensors({ "\ud800": { dtype: "I32", shape: [], data: new Int32Array(1) } }), "surrogate");
    expectError(() => encodeSafetensors({}, { k: 1 as unknown as string }), "metadata", "must be a string");
    expect(decodeSafetensors(encodeSafetensors({})).tensors).toEqual({});
  });
});

// ---------------------------------------------------------------------------------------------
// fuzz
// ---------------------------------------------------------------------------------------------

describe("safetensors fuzz", () => {
  /** Decodes; returns "ok" or "err"; anything but a SafetensorsError fails the property. */
  function probe(bytes: Uint8Array): "ok" | "err" {
    let r: ReturnType<typeof decodeSafetensors>;
    try {
      r = decodeSafetensors(bytes, { source: "fuzz.safetensors", maxHeaderBytes: 1 << 16 });
    } catch (e) {
      if (e instanceof SafetensorsError && e.message.startsWith("fuzz.safetensors: ")) return "err";
      throw e;
    }
    checkConsistent(r);
    // a successful decode re-encodes to a file that decodes to the same tensors
    const again = decodeSafetensors(encodeSafetensors(r.tensors, r.metadata));
    expectSameTensors(again.tensors, r.tensors);
    return "ok";
  }

  const smallTensors = fc.dictionary(
    fc.constantFrom("a", "b", "c", "w.0", "__proto__"),
    fc.tuple(fc.constantFrom(...DTYPES), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 })).chain(([d, s]) =>
      dataArb(d, product(s)).map((data) => ({ dtype: d, shape: s, data }) as StTensor),
    ),
    { maxKeys: 3 },
  );
  const validFile = fc.tuple(smallTensors, fc.option(fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }), { nil: undefined })).map(([t, m]) => encodeSafetensors(t, m));

  const withLength = (file: Uint8Array, len: bigint) => {
    const c = file.slice();
    if (c.length >= 8) new DataView(c.buffer).setBigUint64(0, len, true);
    return c;
  };

  const truncated = fc.tuple(validFile, fc.nat()).map(([f, k]) => f.slice(0, k % (f.length + 1)));
  const lengthSmash = fc
    .tuple(
      validFile,
      fc.oneof(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.constantFrom(2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 32n, 2n ** 31n, 0n, 1n, 7n),
        fc.integer({ min: 0, max: 300 }).map(BigInt),
      ),
    )
    .map(([f, len]) => withLength(f, len));
  const byteFlips = fc
    .tuple(validFile, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([f, flips]) => {
      const c = f.slice();
      for (const [i, v] of flips) if (c.length > 0) c[i % c.length] = v;
      return c;
    });
  const randomBytes = fc.uint8Array({ maxLength: 64 });
  const headerPrefixWithGarbage = fc.tuple(fc.integer({ min: 0, max: 80 }), fc.uint8Array({ maxLength: 80 })).map(([n, rest]) => {
    const c = new Uint8Array(8 + rest.length);
    new DataView(c.buffer).setBigUint64(0, BigInt(n), true);
    c.set(rest, 8);
    return c;
  });
  const nonJson = fc.tuple(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 16 })).map(([s, buf]) => build(s, buf));
  const jsonOfWrongShape = fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.uint8Array({ maxLength: 16 })).map(([v, buf]) => build(JSON.stringify(v) ?? "", buf));
  const objectOfWrongShape = fc
    .tuple(fc.dictionary(fc.constantFrom("a", "b", "__metadata__", "__proto__", ""), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), fc.uint8Array({ maxLength: 16 }))
    .map(([v, buf]) => build(JSON.stringify(v), buf));

  // structured hostile headers: plausible keys with hostile values
  const num = fc.oneof(
    { weight: 5, arbitrary: fc.integer({ min: 0, max: 24 }) },
    { weight: 1, arbitrary: fc.integer({ min: -5, max: -1 }) },
    { weight: 1, arbitrary: fc.constantFrom(0.5, 1.5, 1e300, 2 ** 53, 2 ** 53 + 2, 2 ** 31, 2 ** 32, 65536, -0, Number.MAX_SAFE_INTEGER) },
  );
  const numText = fc.oneof({ weight: 8, arbitrary: num.map(String) }, { weight: 1, arbitrary: fc.constantFrom("1e400", "-1e400", '"4"', "null", "true", "[]", "{}") });
  const infoText = fc
    .record({
      dtype: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...DTYPES) }, { weight: 1, arbitrary: fc.constantFrom("F64", "U8", "f32", "", "BOOL") }),
      shape: fc.array(numText, { maxLength: 4 }),
      offs: fc.array(numText, { minLength: 1, maxLength: 3 }).map((a) => (a.length === 1 ? [a[0], a[0]] : a)),
      extra: fc.boolean(),
    })
    .map(({ dtype, shape, offs, extra }) => `{"dtype":"${dtype}","shape":[${shape.join(",")}],"data_offsets":[${offs.join(",")}]${extra ? ',"x":1' : ""}}`);
  const hostileHeader = fc
    .tuple(fc.array(fc.tuple(fc.constantFrom("a", "b", "c", "__proto__", "__metadata__"), infoText), { maxLength: 3 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 7 }))
    .map(([entries, bufLen, pad]) => build(`{${entries.map(([k, v]) => `"${k}":${v}`).join(",")}}${" ".repeat(pad)}`, new Uint8Array(bufLen)));

  // plausible layouts: right sizes, but offsets that may overlap, leave holes or run out of range
  const layout = fc
    .array(fc.tuple(fc.constantFrom("F32", "F16", "I64"), fc.integer({ min: 0, max: 3 }), fc.integer({ min: -4, max: 4 })), { minLength: 1, maxLength: 3 })
    .chain((ts) => fc.tuple(fc.constant(ts), fc.integer({ min: -8, max: 8 })))
    .map(([ts, slack]) => {
      let off = 0;
      const parts = ts.map(([dt, n, jitter], i) => {
        const bytes = n * ITEMSIZE[dt as StDType];
        const begin = Math.max(0, off + jitter);
        off = begin + bytes;
        return `"t${i}":{"dtype":"${dt}","shape":[${n}],"data_offsets":[${begin},${begin + bytes}]}`;
      });
      return build(`{${parts.join(",")}}`, new Uint8Array(Math.max(0, off + slack)));
    });

  const cases: [string, fc.Arbitrary<Uint8Array>, number][] = [
    ["truncated valid files", truncated, 4500],
    ["random header lengths (huge, larger than the file)", lengthSmash, 4500],
    ["random byte flips of valid files", byteFlips, 6000],
    ["random bytes", randomBytes, 2400],
    ["header length prefix with random bytes", headerPrefixWithGarbage, 2400],
    ["non-JSON headers", nonJson, 2400],
    ["JSON of the wrong shape", jsonOfWrongShape, 2400],
    ["objects of the wrong shape", objectOfWrongShape, 2400],
    ["hostile tensor entries (negative/float/huge shapes and offsets)", hostileHeader, 4500],
    ["overlapping, holey and out-of-range layouts", layout, 3000],
  ];
  const total = cases.reduce((s, c) => s + c[2], 0);

  test(`fuzz plan has at least 10,000 cases (${total})`, () => {
    expect(total).toBeGreaterThanOrEqual(10_000);
  });

  for (const [name, arb, numRuns] of cases) {
    test(`decode never throws anything but SafetensorsError: ${name} (${numRuns} runs)`, () => {
      const seen = { ok: 0, err: 0 };
      fc.assert(
        fc.property(arb, (bytes) => {
          seen[probe(bytes)]++;
        }),
        { numRuns },
      );
      expect(seen.ok + seen.err).toBe(numRuns);
    });
  }

  test("the layout fuzz reaches both outcomes", () => {
    const seen = { ok: 0, err: 0 };
    fc.assert(fc.property(layout, (bytes) => void seen[probe(bytes)]++), { numRuns: 300, seed: 42 });
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen.err).toBeGreaterThan(0);
  });
});
