// Tensor: float32 data with a shape, an optional gradient, and a small tape autograd.
//
// Every differentiable op records a GradNode (its inputs, its outputs and a backward closure).
// loss.backward() sorts the nodes reachable from the loss topologically and runs their backward
// closures from the loss down to the leaves. A node may have several outputs (a recurrent layer
// returns output, hN and cN from one fused op); it runs once, after every consumer of any of its
// outputs has run. Gradients of leaves (parameters) accumulate across backward calls until
// zeroGrad(), as in PyTorch. After backward the graph is released. zeroGrad() makes `grad` null
// (PyTorch's set_to_none) but keeps the array for the next backward when nobody outside rnnkit
// has read it, so a training loop allocates no new gradient arrays per step.

/**
 * The operation that produced a tensor, as recorded on the tape: its name, its inputs, and how it
 * sends the gradient back to them.
 */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Reads the gradients of the node's outputs, adds into the inputs' gradients. */
  backward(): void;
}

let gradEnabled = true;

/** Runs fn without recording operations for autograd (inference). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs fn with recording on or off (an async op finishing in the mode it started with). */
export function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Async form of noGrad: fn starts with recording off, and the async calls it starts
 * (layer.forwardAsync) take the mode when they are called, so their results carry no graph.
 * The mode is restored as soon as fn has started: work that runs while fn awaits (a training step,
 * another request) records as usual, and overlapping calls never change each other's mode.
 * Operations fn runs after its first await record as usual.
 */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  return await noGrad(fn);
}

/** Whether operations record a graph for backward now (false inside `noGrad`). */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function checkShape(shape: readonly number[], where: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`${where}: shape must be an array of non-negative integers, received ${JSON.stringify(shape)}`);
  }
}

let peekValues: (t: Tensor) => Float32Array;
let shareStorage: (from: Tensor, to: Tensor) => void;
let peekGrad: (t: Tensor) => Float32Array | null;

/**
 * A float32 tensor (row-major `data` with a `shape`) that records the operations applied to it
 * when it requires a gradient, so `backward()` can compute every gradient of a scalar.
 */
export class Tensor {
  /**
   * The values and their change counter, shared by the tensors made with detach(). The counter
   * moves only once someone watches it (read `version`), so tensors nobody keeps a copy of pay
   * nothing for it.
   */
  #storage: { readonly data: Float32Array; version: number; watched: boolean };
  /** The size of each dimension ([] for a scalar). */
  readonly shape: readonly number[];
  /** The gradient being accumulated (see `grad`). */
  #grad: Float32Array | null = null;
  /** Whether `#grad` was handed out through `grad` (then it is the caller's, never reused). */
  #gradShared = false;
  /** A gradient array dropped by zeroGrad() that nobody outside rnnkit read: the next one. */
  #spareGrad: Float32Array | null = null;
  /**
   * The gradient accumulated by `backward()` (same layout as `data`), or null before any backward
   * and after `zeroGrad()`. An array read here is yours: rnnkit never writes it after the next
   * `zeroGrad()`. An array nobody read is zeroed and reused by the backward after `zeroGrad()`.
   */
  get grad(): Float32Array | null {
    if (this.#grad) this.#gradShared = true;
    return this.#grad;
  }

  set grad(g: Float32Array | null) {
    this.#grad = g;
    this.#gradShared = g !== null;
  }

  /** Whether operations on this tensor are recorded for backward (true for parameters). */
  requiresGrad: boolean;
  /** The op that produced this tensor (null for leaves and after backward). */
  node: GradNode | null = null;

  constructor(data: Float32Array | ArrayLike<number>, shape?: readonly number[], requiresGrad = false) {
    const array = data instanceof Float32Array ? data : Float32Array.from(data);
    const s = shape ?? [array.length];
    checkShape(s, 'Tensor');
    if (shapeSize(s) !== array.length) {
      throw new RangeError(`Tensor: data has ${array.length} elements but shape ${formatShape(s)} needs ${shapeSize(s)}`);
    }
    this.#storage = { data: array, version: 0, watched: false };
    this.shape = Object.freeze([...s]);
    this.requiresGrad = requiresGrad;
  }

  /**
   * The values, row-major. Handing them out counts as a possible write (`version` moves), so a
   * backend that keeps a copy of a parameter (wasm linear memory) reads it again before its next
   * use. After writing through an array kept from before a forward call, call `markChanged()`.
   */
  get data(): Float32Array {
    const s = this.#storage;
    if (s.watched) s.version++;
    return s.data;
  }

  /** Change counter of the values: from its first read on, moves on every `data` access and `markChanged()`. */
  get version(): number {
    const s = this.#storage;
    s.watched = true;
    return s.version;
  }

  /** Tells rnnkit the values changed (after writing through a `data` array kept from earlier). */
  markChanged(): void {
    this.#storage.version++;
  }

  static {
    peekValues = (t) => t.#storage.data;
    peekGrad = (t) => t.#grad;
    shareStorage = (from, to) => {
      to.#storage = from.#storage;
    };
  }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], requiresGrad = false): Tensor {
    checkShape(shape, 'Tensor.zeros');
    return new Tensor(new Float32Array(shapeSize(shape)), shape, requiresGrad);
  }

  /** A tensor filled with one value. */
  static full(shape: readonly number[], value: number, requiresGrad = false): Tensor {
    checkShape(shape, 'Tensor.full');
    return new Tensor(new Float32Array(shapeSize(shape)).fill(value), shape, requiresGrad);
  }

  /** A scalar tensor (shape []). */
  static scalar(value: number, requiresGrad = false): Tensor {
    return new Tensor(Float32Array.of(value), [], requiresGrad);
  }

  /** Number of elements. */
  get size(): number {
    return this.#storage.data.length;
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.#storage.data.length !== 1) throw new RangeError(`item(): tensor has ${this.#storage.data.length} elements, expected 1`);
    return this.#storage.data[0];
  }

  /** The values as a plain array, row-major. */
  toArray(): number[] {
    return Array.from(this.#storage.data);
  }

  /**
   * The gradient buffer the ops accumulate into, zeros on first use (the array zeroGrad() kept, or
   * a new one). The next backward after `zeroGrad()` may reuse it: to keep a gradient, read `grad`.
   */
  ensureGrad(): Float32Array {
    if (!this.#grad) {
      const spare = this.#spareGrad;
      this.#spareGrad = null;
      this.#grad = spare ? spare.fill(0) : new Float32Array(this.#storage.data.length);
      this.#gradShared = false;
    }
    return this.#grad;
  }

  /**
   * Sets the gradient to none: `grad` is null until the next backward (PyTorch's
   * zero_grad(set_to_none=True)), so optimizers skip a parameter no backward reached. The array is
   * kept for that next backward unless it was read through `grad`.
   */
  zeroGrad(): void {
    if (this.#grad && !this.#gradShared) this.#spareGrad = this.#grad;
    this.#grad = null;
    this.#gradShared = false;
  }

  /** The same data without history (for truncated BPTT: carry a state, cut the graph). */
  detach(): Tensor {
    const t = new Tensor(peekValues(this), this.shape, false);
    shareStorage(this, t);
    return t;
  }

  /** A deep copy without history. */
  clone(): Tensor {
    return new Tensor(this.#storage.data.slice(), this.shape, false);
  }

  /**
   * Backpropagates from this tensor. A scalar needs no argument (the gradient is 1); any other
   * tensor needs the gradient arriving at it, of the same size.
   */
  backward(gradient?: Float32Array | ArrayLike<number>): void {
    if (!this.requiresGrad) {
      throw new Error('backward(): this tensor does not require a gradient (no parameter or input with requiresGrad was used, or it was computed under noGrad)');
    }
    if (gradient === undefined && this.#storage.data.length !== 1) {
      throw new RangeError(`backward(): a gradient is needed for a tensor of shape ${formatShape(this.shape)}; only a one-element tensor defaults to 1`);
    }
    if (gradient !== undefined && gradient.length !== this.#storage.data.length) {
      throw new RangeError(`backward(): gradient has ${gradient.length} elements, expected ${this.#storage.data.length} for shape ${formatShape(this.shape)}`);
    }
    const g = this.ensureGrad();
    if (gradient === undefined) g[0] += 1;
    else for (let i = 0; i < g.length; i++) g[i] += gradient[i];

    const order = topologicalOrder(this.node);
    for (let i = order.length - 1; i >= 0; i--) order[i].backward();
    releaseGraph(this, order);
  }
}

/**
 * A tensor's values for a kernel that only reads them: unlike `t.data`, the access does not move
 * `t.version` (the recurrent op hands weights and their versions to the backend this way).
 */
export function readValues(t: Tensor): Float32Array {
  return peekValues(t);
}

/**
 * A tensor's gradient for rnnkit's own reading and updating (optimizers, gradient clipping):
 * unlike `t.grad`, the access does not hand the array out, so zeroGrad() may reuse it.
 */
export function readGrad(t: Tensor): Float32Array | null {
  return peekGrad(t);
}

/** Nodes reachable from root, each after all the nodes it depends on (iterative DFS). */
function topologicalOrder(root: GradNode | null): GradNode[] {
  const order: GradNode[] = [];
  if (!root) return order;
  const visited = new Set<GradNode>();
  const stack: Array<{ node: GradNode; next: number }> = [{ node: root, next: 0 }];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next < top.node.inputs.length) {
      const child = top.node.inputs[top.next++].node;
      if (child && !visited.has(child)) {
        visited.add(child);
        stack.push({ node: child, next: 0 });
      }
    } else {
      order.push(top.node);
      stack.pop();
    }
  }
  return order;
}

const nodeOutputs = new WeakMap<GradNode, readonly Tensor[]>();

function releaseGraph(root: Tensor, order: GradNode[]): void {
  root.node = null;
  for (const node of order) {
    for (const out of nodeOutputs.get(node) ?? []) out.node = null;
  }
}

/**
 * Records an op for autograd when recording is on and any input requires a gradient.
 * The outputs get requiresGrad and the node; backward runs once per backward pass.
 */
/**
 * Records an op for backward when recording is on and an input needs a gradient. `enabled`: the
 * recording mode to use instead of the current one (an async op passes the mode it started with).
 */
export function recordOp(
  name: string, inputs: readonly Tensor[], outputs: readonly Tensor[], backward: () => void, enabled = gradEnabled,
): void {
  if (!enabled || !inputs.some((t) => t.requiresGrad)) return;
  const node: GradNode = { name, inputs, backward };
  nodeOutputs.set(node, outputs);
  for (const out of outputs) {
    out.requiresGrad = true;
    out.node = node;
  }
}

/** True when an op's result will need a gradient (so the op should keep what backward needs). */
export function needsGrad(...inputs: Array<Tensor | null | undefined>): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}
