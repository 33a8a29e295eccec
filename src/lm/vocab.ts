// Vocabularies for language models: character-level (Unicode code points) or word-level, with
// the special tokens <pad> (id 0), <unk> (id 1) and <eos> (id 2). Saved with the model as JSON.
// The token <-> id table and its frequency ranking are the SymbolTable of the sequence tasks.
import { PAD, SymbolTable, UNK, splitWords } from '../tasks/text.js';

export { PAD, UNK };

/** Whether a vocabulary splits text into characters or words. */
export type VocabLevel = 'char' | 'word';

/** The end-of-sequence token. */
export const EOS = '<eos>';
/** The special tokens, in id order: padding, unknown, end of sequence. */
export const SPECIALS = [PAD, UNK, EOS] as const;
/** Id of the padding token. */
export const PAD_ID = 0;
/** Id of the unknown-token token. */
export const UNK_ID = 1;
/** Id of the end-of-sequence token. */
export const EOS_ID = 2;

/** A vocabulary as saved in a checkpoint. */
export interface VocabularyJSON {
  format: 'rnnkit-vocab';
  version: 1;
  level: VocabLevel;
  tokens: string[];
}

/**
 * Options of `Vocabulary.build`: character or word level, minimum count, and how many of the most
 * frequent tokens to keep.
 */
export interface BuildVocabOptions {
  level?: VocabLevel;
  /** Tokens seen fewer times are left out (they encode as <unk>). Default 1. */
  minCount?: number;
  /** At most this many tokens besides the specials (the most frequent kept). */
  maxSize?: number;
}

/** Splits text into tokens of the given level (no ids). Word level marks each line end with <eos>. */
export function tokenize(text: string, level: VocabLevel): string[] {
  if (level === 'char') return Array.from(text);
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    for (const word of splitWords(line)) out.push(word);
    if (i < lines.length - 1) out.push(EOS);
  });
  return out;
}

/** Maps tokens (characters or words) to ids and back; the special tokens come first. */
export class Vocabulary {
  readonly level: VocabLevel;
  readonly tokens: readonly string[];
  private readonly table: SymbolTable;

  constructor(level: VocabLevel, tokens: readonly string[]) {
    if (level !== 'char' && level !== 'word') throw new RangeError(`Vocabulary: level must be 'char' or 'word', received '${String(level)}'`);
    if (!Array.isArray(tokens)) throw new TypeError(`Vocabulary: tokens must be an array of strings, received ${typeof tokens}`);
    tokens.forEach((t, i) => {
      if (typeof t !== 'string') throw new RangeError(`Vocabulary: token ${i} must be a string, received ${JSON.stringify(t) ?? typeof t}`);
    });
    SPECIALS.forEach((s, i) => {
      if (tokens[i] !== s) throw new RangeError(`Vocabulary: token ${i} must be ${s}, received ${JSON.stringify(tokens[i])}`);
    });
    if (level === 'char') {
      tokens.forEach((t, i) => {
        if (i >= SPECIALS.length && Array.from(t).length !== 1) throw new RangeError(`Vocabulary: a char vocabulary holds single characters, received ${JSON.stringify(t)} at id ${i}`);
      });
    }
    try {
      this.table = new SymbolTable(tokens);
    } catch (e) {
      throw new RangeError((e as Error).message.replace(/^SymbolTable: symbol/, 'Vocabulary: token'));
    }
    this.level = level;
    this.tokens = Object.freeze([...tokens]);
  }

  /** Builds a vocabulary from text: specials first, then tokens by decreasing count (ties: first seen). */
  static build(text: string, options: BuildVocabOptions = {}): Vocabulary {
    const level = options.level ?? 'char';
    const maxSize = options.maxSize === undefined ? undefined : Math.max(0, options.maxSize) + SPECIALS.length;
    const ranked = SymbolTable.build([tokenize(text, level)], { specials: [EOS], minCount: options.minCount ?? 1, maxSize }).symbols.slice(SPECIALS.length);
    // char vocabularies read better in code-point order (deterministic either way)
    if (level === 'char') ranked.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return new Vocabulary(level, [...SPECIALS, ...ranked]);
  }

  /** A vocabulary from `toJSON()` output; throws when it is not one. */
  static fromJSON(json: unknown): Vocabulary {
    const j = json as Partial<VocabularyJSON>;
    if (!j || j.format !== 'rnnkit-vocab' || !Array.isArray(j.tokens)) {
      throw new Error('not an rnnkit vocabulary (expected {"format": "rnnkit-vocab", "level", "tokens"})');
    }
    return new Vocabulary(j.level as VocabLevel, j.tokens);
  }

  /** The vocabulary as JSON, for a checkpoint. */
  toJSON(): VocabularyJSON {
    return { format: 'rnnkit-vocab', version: 1, level: this.level, tokens: [...this.tokens] };
  }

  /** Number of tokens, the special tokens included. */
  get size(): number {
    return this.tokens.length;
  }

  /** The id of a token (the <unk> id when unknown). */
  id(token: string): number {
    return this.table.id(token);
  }

  /** The token of an id; throws a RangeError for an id out of range. */
  token(id: number): string {
    const t = this.tokens[id];
    if (t === undefined) throw new RangeError(`Vocabulary: id ${id} is out of range 0..${this.size - 1}`);
    return t;
  }

  /** Text -> ids; unknown tokens become <unk>. With eos, an <eos> is appended. */
  encode(text: string, options: { eos?: boolean } = {}): Int32Array {
    const toks = tokenize(text, this.level);
    const out = new Int32Array(toks.length + (options.eos ? 1 : 0));
    for (let i = 0; i < toks.length; i++) out[i] = this.id(toks[i]);
    if (options.eos) out[toks.length] = EOS_ID;
    return out;
  }

  /** The text of one token as it appears in decoded output. */
  piece(id: number, previous: number | null = null): string {
    const t = this.token(id);
    if (this.level === 'char') return id === EOS_ID ? '\n' : id === PAD_ID ? '' : t;
    if (id === EOS_ID) return '\n';
    if (id === PAD_ID) return '';
    return previous === null || previous === EOS_ID ? t : ' ' + t;
  }

  /** Ids -> text. Char level: the exact characters (<eos> as a line end, <pad> dropped).
   * Word level: tokens joined by spaces, <eos> as a line end. */
  decode(ids: ArrayLike<number>): string {
    let s = '';
    let prev: number | null = null;
    for (let i = 0; i < ids.length; i++) {
      s += this.piece(ids[i], prev);
      if (ids[i] !== PAD_ID) prev = ids[i];
    }
    return s;
  }
}
