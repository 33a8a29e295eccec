// Optimizers (PyTorch's SGD, Adam, AdamW) and gradient clipping. The update arithmetic runs on
// the backend (adamUpdate / sgdUpdate); state is kept per parameter and can be saved and restored.
import { getBackend } from '../backends/index.js';
import { checkAdamHyper, checkSgdHyper } from '../backends/validate.js';
import type { NamedTensor } from '../io/safetensors.js';
import { readGrad, type Tensor } from '../core/tensor.js';

/** An optimizer's state for a checkpoint: step count, per-parameter buffers and hyper-parameters. */
export interface OptimizerState {
  step: number;
  /** Named buffers per parameter index, e.g. "0.m", "0.v", "3.momentum". */
  buffers: Map<string, NamedTensor>;
  hyper: Record<string, number | boolean>;
}

/** Base of the optimizers: the parameters, `zeroGrad`, `step`, and a state dict for checkpoints. */
export abstract class Optimizer {
  readonly params: Tensor[];
  lr: number;
  stepCount = 0;
  protected readonly buffers = new Map<string, Float32Array>();

  constructor(params: Tensor[], lr: number) {
    if (!Array.isArray(params) || params.length === 0) throw new RangeError('optimizer: params must be a non-empty array of Tensors');
    this.params = params;
    this.lr = lr;
  }

  /** Sets the gradient of every parameter to zeros. */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  protected buffer(i: number, name: string): Float32Array {
    const key = `${i}.${name}`;
    let b = this.buffers.get(key);
    if (!b) {
      b = new Float32Array(this.params[i].size);
      this.buffers.set(key, b);
    }
    return b;
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    this.params.forEach((p, i) => {
      const grad = readGrad(p);
      if (grad) this.update(p, grad, i);
    });
  }

  protected abstract update(p: Tensor, grad: Float32Array, index: number): void;
  protected abstract hyper(): Record<string, number | boolean>;

  /** The step count, buffers and hyper-parameters, for a checkpoint. */
  stateDict(): OptimizerState {
    const buffers = new Map<string, NamedTensor>();
    for (const [k, v] of this.buffers) buffers.set(k, { shape: [v.length], data: v.slice() });
    return { step: this.stepCount, buffers, hyper: this.hyper() };
  }

  /** Restores a state from `stateDict()` (checks the buffer sizes against the parameters). */
  loadStateDict(state: OptimizerState): void {
    for (const [k, v] of state.buffers) {
      const index = Number(k.split('.')[0]);
      const p = this.params[index];
      if (!p || v.data.length !== p.size) {
        throw new RangeError(`optimizer.loadStateDict: buffer ${k} has ${v.data.length} elements, expected ${p ? p.size : 'a parameter at index ' + index}`);
      }
    }
    this.buffers.clear();
    for (const [k, v] of state.buffers) this.buffers.set(k, v.data.slice());
    this.stepCount = state.step;
    if (typeof state.hyper.lr === 'number') this.lr = state.hyper.lr;
  }
}

/**
 * Options of `SGD` (PyTorch names in camelCase): learning rate, momentum, dampening, weight decay,
 * Nesterov.
 */
export interface SGDOptions { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean }

/**
 * Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's
 * torch.optim.SGD).
 */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;

  constructor(params: Tensor[], o: SGDOptions) {
    super(params, o.lr);
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.weightDecay = o.weightDecay ?? 0;
    this.nesterov = o.nesterov ?? false;
    checkSgdHyper('SGD', this);
  }

  protected update(p: Tensor, grad: Float32Array, i: number): void {
    const firstStep = !this.buffers.has(`${i}.momentum`);
    getBackend().sgdUpdate({
      param: p.data, grad, momentumBuffer: this.buffer(i, 'momentum'), lr: this.lr, momentum: this.momentum,
      dampening: this.dampening, weightDecay: this.weightDecay, nesterov: this.nesterov, firstStep,
    });
  }

  protected hyper(): Record<string, number | boolean> {
    return { lr: this.lr, momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay, nesterov: this.nesterov };
  }
}

/** Options of `Adam` and `AdamW`: learning rate, betas, eps, weight decay. */
export interface AdamOptions { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number }

/** Adam and, with `decoupled: true`, AdamW (PyTorch's torch.optim.Adam / AdamW). */
export class Adam extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decoupled: boolean = false;

  constructor(params: Tensor[], o: AdamOptions = {}) {
    super(params, o.lr ?? 1e-3);
    [this.beta1, this.beta2] = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? this.defaultWeightDecay();
    checkAdamHyper(this.label(), this);
  }

  protected defaultWeightDecay(): number {
    return 0;
  }

  /** The class's name in messages (not constructor.name, which a minifier renames). */
  protected label(): string {
    return 'Adam';
  }

  protected update(p: Tensor, grad: Float32Array, i: number): void {
    getBackend().adamUpdate({
      param: p.data, grad, m: this.buffer(i, 'm'), v: this.buffer(i, 'v'), lr: this.lr, beta1: this.beta1,
      beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, decoupled: this.decoupled, step: this.stepCount,
    });
  }

  protected hyper(): Record<string, number | boolean> {
    return { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }
}

/** Adam with decoupled weight decay (PyTorch's AdamW; default weightDecay 0.01). */
export class AdamW extends Adam {
  protected override readonly decoupled = true;

  protected override defaultWeightDecay(): number {
    return 0.01;
  }

  protected override label(): string {
    return 'AdamW';
  }
}

/**
 * Scales all gradients together so their global 2-norm is at most maxNorm (PyTorch's
 * clip_grad_norm_: factor maxNorm / (norm + 1e-6), applied only when below 1).
 * Returns the total norm before clipping.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be positive, received ${maxNorm}`);
  const backend = getBackend();
  let sq = 0;
  for (const p of params) {
    const g = readGrad(p);
    if (g) sq += backend.sumSquares(g);
  }
  const total = Math.sqrt(sq);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    for (const p of params) {
      const g = readGrad(p);
      if (!g) continue;
      for (let i = 0; i < g.length; i++) g[i] *= coef;
    }
  }
  return total;
}

/** Clamps every gradient element to [-clipValue, clipValue] (PyTorch's clip_grad_value_). */
export function clipGradValue(params: Tensor[], clipValue: number): void {
  if (!(clipValue >= 0)) throw new RangeError(`clipGradValue: clipValue must be non-negative, received ${clipValue}`);
  for (const p of params) {
    const g = readGrad(p);
    if (!g) continue;
    for (let i = 0; i < g.length; i++) g[i] = Math.min(clipValue, Math.max(-clipValue, g[i]));
  }
}
