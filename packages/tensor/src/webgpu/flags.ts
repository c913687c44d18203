/**
 * The WebGPU spec's flag values (GPUBufferUsage, GPUMapMode, GPUShaderStage), as constants of our
 * own: the globals of those names exist under Dawn, Deno and browsers at run time, but not in
 * every type environment (`deno check` of a program that imports this package has no
 * GPUBufferUsage), and the values are fixed by the spec.
 */
export const BufferUsage = {
  MAP_READ: 0x0001, MAP_WRITE: 0x0002, COPY_SRC: 0x0004, COPY_DST: 0x0008, INDEX: 0x0010,
  VERTEX: 0x0020, UNIFORM: 0x0040, STORAGE: 0x0080, INDIRECT: 0x0100, QUERY_RESOLVE: 0x0200,
} as const;
export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;
export const ShaderStage = { VERTEX: 0x1, FRAGMENT: 0x2, COMPUTE: 0x4 } as const;
