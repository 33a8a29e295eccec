// Helpers every kernel module uses: float32 / int32 loads and stores at byte offsets, and the
// vector multiply-add (fused in the relaxed-SIMD build, as GCC fuses a * b + c on AVX2 / AVX-512).

// @ts-ignore: decorator
@inline export function ld(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
// @ts-ignore: decorator
@inline export function st(p: usize, i: i32, v: f32): void {
  store<f32>(p + (<usize>i << 2), v);
}
// @ts-ignore: decorator
@inline export function ldi(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}
// @ts-ignore: decorator
@inline export function at(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}
// @ts-ignore: decorator
@inline export function vs(v: f32): v128 {
  return f32x4.splat(v);
}
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  // c + a * b
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(c, f32x4.mul(a, b));
  }
}

// Loads and stores of an element group: 4 lanes (full), or one element splat into every lane and
// lane 0 stored back (a row's tail goes through the same vector code as its body).
// @ts-ignore: decorator
@inline export function get(p: usize, full: bool): v128 {
  return full ? v128.load(p) : f32x4.splat(load<f32>(p));
}
// @ts-ignore: decorator
@inline export function put(p: usize, v: v128, full: bool): void {
  if (full) v128.store(p, v);
  else store<f32>(p, f32x4.extract_lane(v, 0));
}
