#!/usr/bin/env python3
"""Train and evaluate an rnnkit language model with PyTorch, on one machine or many.

`rnnkit export-torch RUN_DIR OUT_DIR` puts this program into OUT_DIR next to a copy of the run's
latest checkpoint (weights, Adam moments and step, carried hidden state, vocabulary, settings).
OUT_DIR is an rnnkit run directory: this program continues training there with the model, the
vocabulary, the truncated-BPTT batching, the learning-rate schedule and the gradient clipping of
`rnnkit train`, and saves its checkpoints in the same format, so that `rnnkit train --resume OUT_DIR`,
`rnnkit sample OUT_DIR` and `rnnkit eval OUT_DIR` take them back.

  torchrun --nproc_per_node 4 rnnkit_lm.py train --data book.txt --steps 20000   # DistributedDataParallel
  python3 rnnkit_lm.py train --data book.txt --steps 20000                       # one process
  python3 rnnkit_lm.py eval --data book.txt --held-out                           # bits per character
  rnnkit train --resume OUT_DIR --data book.txt                                  # back in rnnkit

Several processes split every batch of the run's --batch lanes between them (the batch size must
be a multiple of the number of processes), so N processes compute what one does, N times faster
(gloo on CPUs, NCCL on CUDA GPUs; several machines: torchrun --nnodes ... --rdzv_endpoint ...,
each with a copy of OUT_DIR and the text; the process of rank 0 writes the checkpoints).
Needs PyTorch and NumPy only.
"""
import argparse
import hashlib
import json
import math
import os
import re
import struct
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

PAD_ID, UNK_ID, EOS_ID = 0, 1, 2
WEIGHTS_FILE = 'weights.safetensors'
CHECKPOINT_NAME = re.compile(r'^ckpt-\d+(-\d+)?$')


def fail(message):
    """One line on stderr and exit code 2 (on every process)."""
    sys.stderr.write(f'rnnkit_lm.py: {message}\n')
    sys.exit(2)


# ---- safetensors (the file format of rnnkit's checkpoints): 8-byte header length, JSON header, data ----

def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop('__metadata__', None) or {}
    tensors = {}
    for name, info in header.items():
        if info['dtype'] != 'F32':
            raise ValueError(f'{path}: tensor {name} is {info["dtype"]}, expected F32')
        begin, end = info['data_offsets']
        array = np.frombuffer(data, dtype='<f4', count=(end - begin) // 4, offset=8 + n + begin)
        tensors[name] = torch.from_numpy(array.copy()).reshape(info['shape'])
    return tensors, metadata


def safetensors_bytes(tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        raw = t.detach().to('cpu', torch.float32).contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(',', ':')).encode('utf-8')
    head += b' ' * (-len(head) % 8)
    return struct.pack('<Q', len(head)) + head + b''.join(chunks)


# ---- random numbers: rnnkit's xoshiro128** (the batcher's lane order and offsets come from it) ----

M32 = 0xFFFFFFFF


def rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


class Rng:
    def __init__(self, seed=0):
        x, self.s = seed & M32, []
        for _ in range(4):  # splitmix32
            x = (x + 0x9E3779B9) & M32
            z = ((x ^ (x >> 16)) * 0x85EBCA6B) & M32
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M32
            self.s.append((z ^ (z >> 16)) & M32)

    def next_uint32(self):
        s = self.s
        result = (rotl((s[1] * 5) & M32, 7) * 9) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
        return result

    def int(self, n):
        """Uniform integer in [0, n)."""
        return math.floor(self.next_uint32() / 4294967296 * n)

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.int(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


# ---- text: the run's vocabulary, its tokenization, the held-out split ----

# JavaScript's \s (what rnnkit's word tokenizer splits on)
JS_SPACE = '\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'
WORD_RE = re.compile(rf"[^\W]+(?:['\u2019][^\W]+)*|[^{JS_SPACE}\w]")


def read_text(path):
    """The text of a UTF-8 file, its byte-order mark dropped (as rnnkit reads it)."""
    try:
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8', errors='replace')
    except OSError as e:
        fail(f'cannot read {path}: {e.strerror}')
    if text.startswith('\ufeff'):
        text = text[1:]
    if '\0' in text:
        fail(f'{path} is not a text file (it contains NUL bytes)')
    return text


def text_hash(text):
    """rnnkit's fingerprint of a text: a resumed run checks it trains on the same text."""
    return hashlib.sha256(text.encode('utf-8', errors='surrogatepass')).hexdigest()[:16]


class Vocabulary:
    def __init__(self, saved):
        if saved.get('format') != 'rnnkit-vocab' or saved.get('level') not in ('char', 'word'):
            raise ValueError('not an rnnkit vocabulary')
        self.saved = saved
        self.level = saved['level']
        self.tokens = saved['tokens']
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    def tokenize(self, text):
        if self.level == 'char':
            return list(text)
        out = []
        lines = re.split(r'\r?\n', text)
        for i, line in enumerate(lines):
            out.extend(m.group(0) for m in WORD_RE.finditer(line))
            if i < len(lines) - 1:
                out.append('<eos>')
        return out

    def encode(self, text):
        return torch.tensor([self.ids.get(t, UNK_ID) for t in self.tokenize(text)], dtype=torch.long)


def held_out_start(n, fraction):
    """Where the held-out tail starts: the last `fraction` of the stream (at least 2 tokens)."""
    return n - max(2, math.floor(n * fraction + 0.5))


# ---- truncated-BPTT batches, exactly as rnnkit's trainer draws them ----

class TbpttBatcher:
    """Each epoch the stream (after a random offset in [0, T)) is cut into B contiguous lanes;
    batch i holds the i-th window of T tokens of every lane, so the hidden state carried from one
    batch to the next is the state of the same lane. Lane order and offset come from a seeded Rng."""

    def __init__(self, ids, T, B, seed):
        self.ids, self.T, self.B, self.rng = ids, T, B, Rng(seed)
        self.epoch, self.index, self.offset, self.order, self.started = 0, 0, 0, [], False
        if self.lane_length(T - 1) < T:
            fail(f'{len(ids)} training tokens are too few for batch {B} x seq {T} (need at least {B * T + T})')

    def lane_length(self, offset):
        return (len(self.ids) - offset - 1) // self.B

    @property
    def batches_per_epoch(self):
        return self.lane_length(self.T - 1) // self.T

    def start_epoch(self):
        self.offset = self.rng.int(self.T)
        self.order = self.rng.shuffle(list(range(self.B)))
        self.index, self.started = 0, True

    def next(self, rows):
        """The next batch, the lanes `rows` of it: inputs and targets [T, len(rows)], and whether
        the carried state restarts (the first batch of an epoch)."""
        if not self.started:
            self.start_epoch()
        if self.index >= self.batches_per_epoch:
            self.epoch += 1
            self.start_epoch()
        lane = self.lane_length(self.offset)
        starts = [self.offset + self.order[b] * lane + self.index * self.T for b in rows]
        windows = torch.stack([self.ids[s:s + self.T + 1] for s in starts], dim=1)  # [T + 1, rows]
        reset = self.index == 0
        self.index += 1
        return windows[:-1], windows[1:], reset

    @property
    def epoch_progress(self):
        return self.epoch + (self.index / self.batches_per_epoch if self.started else 0)

    def state(self):
        if not self.started:
            self.start_epoch()
        return {'epoch': self.epoch, 'index': self.index, 'offset': self.offset, 'order': list(self.order), 'rng': list(self.rng.s)}

    def load(self, s):
        if sorted(s['order']) != list(range(self.B)):
            fail(f'the saved batcher state is for batch {len(s["order"])}, not {self.B}')
        self.epoch, self.index, self.offset, self.order = s['epoch'], s['index'], s['offset'], list(s['order'])
        self.rng.s = [v & M32 for v in s['rng']]
        self.started = True


def eval_batches(ids, T, B):
    """Evaluation windows in order: B lanes (fewer for a short text), T steps each, state carried."""
    lanes = max(1, min(B, (len(ids) - 1) // T))
    lane = (len(ids) - 1) // lanes
    streams = torch.stack([ids[b * lane:b * lane + lane + 1] for b in range(lanes)], dim=1)  # [lane + 1, lanes]
    for t0 in range(0, lane, T):
        t1 = min(t0 + T, lane)
        yield streams[t0:t1], streams[t0 + 1:t1 + 1]


# ---- the model: Embedding -> LSTM / GRU / RNN stack -> Linear, rnnkit's parameter names ----

class LanguageModel(nn.Module):
    def __init__(self, config, vocab_size):
        super().__init__()
        self.cell = config['cell']
        layers, p = config['layers'], config['dropout']
        self.embedding = nn.Embedding(vocab_size, config['embed'])
        recurrent = {'lstm': nn.LSTM, 'gru': nn.GRU, 'rnn': nn.RNN}[self.cell]
        setattr(self, self.cell, recurrent(config['embed'], config['hidden'], layers, dropout=p if layers > 1 else 0.0))
        self.fc = nn.Linear(config['hidden'], vocab_size)
        self.drop = nn.Dropout(p)

    def forward(self, tokens, state=None):
        """tokens [T, B] -> logits [T, B, vocab]; state: h [layers, B, hidden] (and c for an LSTM)."""
        output, state = getattr(self, self.cell)(self.drop(self.embedding(tokens)), state)
        return self.fc(self.drop(output)), state


def pack_state(state, cell):
    """rnnkit's carried state (h, c or None) in the form torch's layers take."""
    if state is None:
        return None
    return (state['h'], state['c']) if cell == 'lstm' else state['h']


def unpack_state(state, cell):
    h, c = state if cell == 'lstm' else (state, None)
    return {'h': h.detach(), 'c': c.detach() if c is not None else None}


def learning_rate(c, step):
    """The learning rate of the step-th update (rnnkit's schedules: constant, step, cosine; warm-up)."""
    warmup, lr = c['warmup'], c['lr']
    if warmup > 0 and step <= warmup:
        return lr * step / warmup
    after = step - warmup
    if c['schedule'] == 'constant':
        return lr
    if c['schedule'] == 'step':
        return lr * c['gamma'] ** ((after - 1) // c['stepSize'])
    total = c['decaySteps']
    frac = min(1.0, max(0.0, (after - 1) / (total - warmup))) if total > warmup else 0.0
    return c['minLr'] + 0.5 * (lr - c['minLr']) * (1 + math.cos(math.pi * frac))


def mean_loss(model, ids, T, B, device):
    """Mean cross-entropy (nats per token) over a stream, state carried, no dropout: rnnkit's evaluation."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for inputs, targets in eval_batches(ids, T, B):
            logits, state = model(inputs.to(device), state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.to(device).reshape(-1), reduction='sum').item()
            count += targets.numel()
    model.train(was_training)
    return total / count, count


# ---- checkpoints: rnnkit's run-directory layout (a `latest` pointer, ckpt-<step> directories) ----

def resolve_checkpoint(path):
    if not os.path.isdir(path):
        fail(f'{path}: no such directory (expected a run or checkpoint directory)')
    if os.path.exists(os.path.join(path, WEIGHTS_FILE)):
        return path
    try:
        with open(os.path.join(path, 'latest'), encoding='utf-8') as f:
            name = json.load(f)['checkpoint']
    except (OSError, ValueError, KeyError, TypeError):
        fail(f'{path} holds no checkpoint (neither latest nor {WEIGHTS_FILE})')
    if not isinstance(name, str) or not CHECKPOINT_NAME.match(name):
        fail(f'{os.path.join(path, "latest")} names no checkpoint')
    return os.path.join(path, name)


def read_json(directory, name):
    try:
        with open(os.path.join(directory, name), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f'{os.path.join(directory, name)}: {e}')


def load_checkpoint(path):
    directory = resolve_checkpoint(path)
    config = read_json(directory, 'config.json')
    if config.get('cell') not in ('lstm', 'gru', 'rnn'):
        fail(f'{directory}/config.json: cell {config.get("cell")!r} is not one this program builds (lstm, gru, rnn)')
    try:
        vocab = Vocabulary(read_json(directory, 'vocab.json'))
    except (ValueError, KeyError, TypeError) as e:
        fail(f'{directory}/vocab.json: {e}')
    model = LanguageModel(config, len(vocab.tokens))
    weights, _ = read_checked(directory, WEIGHTS_FILE)
    names = [n for n, _ in model.named_parameters()]
    if sorted(names) != sorted(weights):
        fail(f'{directory}/{WEIGHTS_FILE}: holds {sorted(weights)}, the {config["layers"]}-layer {config["cell"]} of config.json has {sorted(names)}')
    for name, p in model.named_parameters():
        if tuple(weights[name].shape) != tuple(p.shape):
            fail(f'{directory}/{WEIGHTS_FILE}: {name} has shape {list(weights[name].shape)}, config.json and vocab.json give {list(p.shape)}')
    model.load_state_dict(weights)
    return directory, config, vocab, model


def read_checked(directory, name):
    """A safetensors file of a checkpoint; a missing or damaged file is one line naming it."""
    try:
        return read_safetensors(os.path.join(directory, name))
    except FileNotFoundError:
        fail(f'{os.path.join(directory, name)}: missing')
    except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError) as e:
        fail(f'{os.path.join(directory, name)}: not a readable safetensors file ({e})')


def write_durable(path, data):
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_checkpoint(run_dir, step, files):
    """Writes the files aside, renames the directory into place, then points `latest` at it."""
    name = f'ckpt-{step:08d}'
    n = 1
    while os.path.exists(os.path.join(run_dir, name)):
        name, n = f'ckpt-{step:08d}-{n}', n + 1
    tmp = os.path.join(run_dir, f'.{name}.tmp-{os.getpid()}')
    os.makedirs(tmp)
    for file, data in files.items():
        write_durable(os.path.join(tmp, file), data if isinstance(data, bytes) else data.encode('utf-8'))
    os.rename(tmp, os.path.join(run_dir, name))
    pointer = os.path.join(run_dir, f'.latest.tmp-{os.getpid()}')
    write_durable(pointer, (json.dumps({'checkpoint': name, 'step': step}) + '\n').encode('utf-8'))
    os.rename(pointer, os.path.join(run_dir, 'latest'))
    for entry in os.listdir(run_dir):  # the older checkpoints are no longer referenced
        if entry != name and CHECKPOINT_NAME.match(entry):
            for root, dirs, names in os.walk(os.path.join(run_dir, entry), topdown=False):
                for x in names:
                    os.remove(os.path.join(root, x))
                for x in dirs:
                    os.rmdir(os.path.join(root, x))
            os.rmdir(os.path.join(run_dir, entry))
    return os.path.join(run_dir, name)


OPTIMIZER_BUFFERS = {'adam': {'m': 'exp_avg', 'v': 'exp_avg_sq'}, 'adamw': {'m': 'exp_avg', 'v': 'exp_avg_sq'}, 'sgd': {'momentum': 'momentum_buffer'}}


def make_optimizer(config, params):
    if config['optimizer'] == 'sgd':
        return torch.optim.SGD(params, lr=config['lr'], momentum=config['momentum'], weight_decay=config['weightDecay'])
    kind = torch.optim.AdamW if config['optimizer'] == 'adamw' else torch.optim.Adam
    return kind(params, lr=config['lr'], betas=(0.9, 0.999), eps=1e-8, weight_decay=config['weightDecay'])


def load_optimizer(optimizer, params, config, buffers, step):
    """rnnkit's buffers ("<parameter index>.m", ".v", ".momentum") and step into torch's optimizer state."""
    names = OPTIMIZER_BUFFERS[config['optimizer']]
    for i, p in enumerate(params):
        state = {torch_name: buffers[f'{i}.{ours}'].reshape(p.shape).to(p.device).clone()
                 for ours, torch_name in names.items() if f'{i}.{ours}' in buffers}
        if state and config['optimizer'] != 'sgd':
            state['step'] = torch.tensor(float(step))
        if state:
            optimizer.state[p] = state


def optimizer_file(optimizer, params, config, step):
    names = OPTIMIZER_BUFFERS[config['optimizer']]
    buffers = {}
    for i, p in enumerate(params):
        for ours, torch_name in names.items():
            if torch_name in optimizer.state[p]:
                buffers[f'{i}.{ours}'] = optimizer.state[p][torch_name].reshape(-1)
    group = optimizer.param_groups[0]
    if config['optimizer'] == 'sgd':
        hyper = {'lr': group['lr'], 'momentum': group['momentum'], 'dampening': 0, 'weightDecay': group['weight_decay'], 'nesterov': False}
    else:
        hyper = {'lr': group['lr'], 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-8, 'weightDecay': group['weight_decay']}
    return safetensors_bytes(buffers, {'step': step, 'hyper': json.dumps(hyper), 'optimizer': config['optimizer']})


# ---- train ----

def train(args):
    distributed = 'WORLD_SIZE' in os.environ
    cuda = torch.cuda.is_available() and not args.cpu
    if distributed:
        dist.init_process_group('nccl' if cuda else 'gloo')
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}' if cuda else 'cpu')
    if cuda:
        torch.cuda.set_device(device)
    run_dir = args.run
    directory, config, vocab, model = load_checkpoint(run_dir)
    trainer = read_json(directory, 'trainer.json')
    c = config
    if c['batch'] % world:
        fail(f'the batch size {c["batch"]} is not a multiple of the {world} processes (each takes the same number of lanes)')
    for key in ('lr', 'clip', 'valEvery', 'checkpointEvery'):
        if getattr(args, key) is not None:
            c[key] = getattr(args, key)
    data = args.data or (c['source'] if c.get('source') and not c['source'].startswith('dataset:') and c['source'] != 'text' else None)
    if data is None:
        fail(f'give the training text with --data FILE (the run was trained on {c.get("source")})')
    text = read_text(data)
    ids = vocab.encode(text)
    cut = held_out_start(len(ids), c['valFraction'])
    if cut < 2:
        fail(f'{data}: {len(ids)} tokens are too few to split')
    train_ids, val_ids = ids[:cut], ids[cut:]
    if text_hash(text) != trainer['dataHash']:
        if rank == 0:
            print(f'note: {data} is not the text the checkpoint was trained on; training continues on it from a new epoch')
        trainer['batcher'] = None
    if c['schedule'] == 'cosine' and c['decaySteps'] == 0:
        if args.steps is None:
            fail('a cosine schedule needs the number of steps to decay over: give --steps')
        c['decaySteps'] = args.steps

    model.to(device)
    params = list(model.parameters())
    optimizer = make_optimizer(c, params)
    opt_tensors, opt_meta = read_checked(directory, 'optimizer.safetensors')
    step = int(trainer['step'])
    load_optimizer(optimizer, params, c, opt_tensors, int(opt_meta.get('step', step)))
    batcher = TbpttBatcher(train_ids, c['seq'], c['batch'], c['seed'] + 1)
    if trainer['batcher'] is not None:
        batcher.load(trainer['batcher'])
    lanes = c['batch'] // world
    rows = list(range(rank * lanes, (rank + 1) * lanes))  # this process's rows of every batch
    carried_file, carried_meta = read_checked(directory, 'state.safetensors')
    carried = None
    if carried_meta.get('present') == '1' and trainer['batcher'] is not None:
        carried = {k: (carried_file[k][:, rows[0]:rows[-1] + 1].contiguous().to(device) if k in carried_file else None) for k in ('h', 'c')}
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None) if distributed else model
    history = trainer['history']
    if rank == 0:
        print(f'{c["layers"]}-layer {c["cell"].upper()} (hidden {c["hidden"]}, embedding {c["embed"]}), {len(vocab.tokens)} {vocab.level} tokens; '
              f'seq {c["seq"]} x batch {c["batch"]} over {world} process{"es" if world > 1 else ""} ({device.type}); from step {step}', flush=True)

    def validate(max_tokens):
        stream = val_ids[:max_tokens + 1] if 0 < max_tokens < len(val_ids) - 1 else val_ids
        loss, tokens = mean_loss(model, stream, c['seq'], c['batch'], device)
        best = trainer['bestVal'] is None or loss < trainer['bestVal']
        if best:
            trainer['bestVal'], trainer['badValidations'] = loss, 0
        else:
            trainer['badValidations'] += 1
        if history['val'] and history['val'][-1]['step'] == step:
            history['val'][-1]['loss'] = loss
        else:
            history['val'].append({'step': step, 'loss': loss})
        unit = 'bpc' if vocab.level == 'char' else 'bits/token'
        print(f'step {step}: validation loss {loss:.4f}, {loss / math.log(2):.3f} {unit}, perplexity {math.exp(loss):.2f} ({tokens} tokens)', flush=True)
        return loss

    def gather_state(state):
        if state is None:
            return None
        out = {}
        for k, t in state.items():
            if t is None:
                continue
            if distributed:
                parts = [torch.empty_like(t) for _ in range(world)]
                dist.all_gather(parts, t.contiguous())
                t = torch.cat(parts, dim=1)
            out[k] = t.cpu()
        return out

    def save():
        full = gather_state(carried)  # every process takes part in the gather
        if rank != 0:
            return None
        st = dict(trainer, step=step, batcher=batcher.state(), dataHash=text_hash(text), dataTokens=len(ids), history=history)
        files = {
            WEIGHTS_FILE: safetensors_bytes(dict(model.state_dict()), {'format': 'pt', 'producer': 'rnnkit_lm.py'}),
            'optimizer.safetensors': optimizer_file(optimizer, params, c, step),
            'state.safetensors': safetensors_bytes(full or {}, {'present': '1' if full else '0'}),
            'vocab.json': json.dumps(vocab.saved, ensure_ascii=False) + '\n',
            'config.json': json.dumps(c, indent=2) + '\n',
            'trainer.json': json.dumps(st) + '\n',
        }
        where = write_checkpoint(run_dir, step, files)
        print(f'step {step}: checkpoint {where}', flush=True)
        return where

    def stop_now(flag):
        """Every process stops together: rank 0's decision (early stopping) is broadcast."""
        if not distributed:
            return flag
        t = torch.tensor([1 if flag else 0], device=device)
        dist.broadcast(t, 0)
        return bool(t.item())

    if args.steps is None and args.epochs is None:
        fail('give a budget: --steps N (train until step N) or --epochs X')
    started = time.time()
    last_val_step = None
    saved_step = None
    while True:
        if args.steps is not None and step >= args.steps:
            break
        if args.epochs is not None and batcher.epoch_progress >= args.epochs:
            break
        t0 = time.time()
        inputs, targets, reset = batcher.next(rows)
        if reset:
            carried = None
        lr = learning_rate(c, step + 1)
        for group in optimizer.param_groups:
            group['lr'] = lr
        model.train()
        optimizer.zero_grad(set_to_none=False)
        logits, state = net(inputs.to(device), pack_state(carried, c['cell']))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.to(device).reshape(-1))
        loss.backward()  # DistributedDataParallel averages the gradients of the processes: the gradient of the whole batch
        if c['clip'] > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, c['clip']))
        else:
            grad_norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)))
        loss_value = loss.detach().clone()
        if distributed:
            dist.all_reduce(loss_value)
            loss_value /= world
        loss_value = float(loss_value)
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            fail(f'step {step + 1}: non-finite loss ({loss_value}) or gradient norm ({grad_norm}); the step was not applied and no checkpoint was written')
        optimizer.step()
        carried = unpack_state(state, c['cell'])
        step += 1
        seconds = time.time() - t0
        tokens = c['seq'] * c['batch']
        trainer['trainSeconds'] += seconds
        trainer['tokensSeen'] += tokens
        history['train'].append({'step': step, 'loss': loss_value, 'lr': lr, 'gradNorm': grad_norm, 'tps': round(tokens / max(seconds, 1e-9))})
        if rank == 0 and (step % args.log_every == 0):
            print(f'step {step}: loss {loss_value:.4f}, lr {lr:.3g}, grad norm {grad_norm:.3f}, {tokens / max(seconds, 1e-9):,.0f} tokens/s', flush=True)
        stop = False
        if c['valEvery'] > 0 and step % c['valEvery'] == 0:
            if rank == 0:
                validate(c['valTokens'])
                stop = c['patience'] > 0 and trainer['badValidations'] >= c['patience']
            last_val_step = step
            stop = stop_now(stop)
        if c['checkpointEvery'] > 0 and step % c['checkpointEvery'] == 0:
            save()
            saved_step = step
        if stop:
            if rank == 0:
                print(f'step {step}: early stopping ({c["patience"]} validations without improvement)', flush=True)
            break
    if step > 0 and not (last_val_step == step and c['valTokens'] == 0):
        if rank == 0:
            validate(0)
        saved_step = None
    if saved_step != step:
        save()
    if rank == 0:
        print(f'stopped at step {step} after {time.time() - started:.1f} s; continue in rnnkit: rnnkit train --resume {run_dir} --data {data}', flush=True)
    if distributed:
        dist.barrier()  # every process has written its part before any leaves the group
        # Leave here, every file written and both streams flushed, without freeing the model: when
        # PyTorch frees a DistributedDataParallel model it joins the gloo group's threads while
        # holding Python's lock, and a thread still releasing a tensor of an earlier collective waits
        # for that lock, so the process would never exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# ---- eval: bits per character as `rnnkit eval` computes them ----

def evaluate(args):
    directory, config, vocab, model = load_checkpoint(args.run)
    text = read_text(args.data)
    ids = vocab.encode(text)
    what = args.data
    if args.held_out:
        ids = ids[held_out_start(len(ids), config['valFraction']):]
        what += f' (held-out last {round(config["valFraction"] * 100)}%)'
    if len(ids) < 2:
        fail(f'{what}: too short to evaluate (fewer than 2 tokens)')
    loss, tokens = mean_loss(model, ids, args.seq or config['seq'], args.batch or config['batch'], torch.device('cpu'))
    unknown = int((ids == UNK_ID).sum())
    bits = loss / math.log(2)
    if args.json:
        print(json.dumps({'loss': loss, 'bits': bits, 'perplexity': math.exp(loss), 'tokens': tokens, 'unknown': unknown}))
        return
    unit = 'bits per character' if vocab.level == 'char' else 'bits per token'
    print(f'{what}: {bits:.4f} {unit}, perplexity {math.exp(loss):.3f}, loss {loss:.4f} nats over {tokens:,} tokens'
          + (f' ({unknown:,} unknown to the vocabulary)' if unknown else ''))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description='Train (one process or torchrun) and evaluate an rnnkit language model with PyTorch.')
    commands = parser.add_subparsers(dest='command', required=True)
    t = commands.add_parser('train', help='continue training (torchrun for several processes)')
    t.add_argument('--data', help='UTF-8 text file to train on (default: the file the run was trained on)')
    t.add_argument('--steps', type=int, help='train until this step (counting the steps already done)')
    t.add_argument('--epochs', type=float, help='train until this many epochs')
    t.add_argument('--lr', type=float, help='peak learning rate (default: the run\'s)')
    t.add_argument('--clip', type=float, help='clip the gradient norm to this, 0 = off (default: the run\'s)')
    t.add_argument('--val-every', dest='valEvery', type=int, help='validate every n steps (default: the run\'s)')
    t.add_argument('--checkpoint-every', dest='checkpointEvery', type=int, help='save every n steps (default: the run\'s)')
    t.add_argument('--log-every', type=int, default=10, help='print the loss every n steps (default 10)')
    t.add_argument('--run', default=here, help='run directory (default: the directory of this program)')
    t.add_argument('--cpu', action='store_true', help='train on the CPU even when CUDA is present')
    e = commands.add_parser('eval', help='bits per character (or token) of the latest checkpoint on a text')
    e.add_argument('--data', required=True, help='UTF-8 text file to evaluate on')
    e.add_argument('--held-out', action='store_true', help='only the held-out part (the last 5%%), as in training')
    e.add_argument('--seq', type=int, help='window length (default: the training seq)')
    e.add_argument('--batch', type=int, help='lanes read in parallel (default: the training batch)')
    e.add_argument('--run', default=here, help='run or checkpoint directory (default: the directory of this program)')
    e.add_argument('--json', action='store_true', help='print loss, bits, perplexity and tokens as JSON')
    args = parser.parse_args()
    if args.command == 'train':
        train(args)
    else:
        evaluate(args)


if __name__ == '__main__':
    main()
