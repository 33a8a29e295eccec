// Text to ids: a symbol vocabulary (characters, phonemes, given tokens) and a word tokenizer
// with a capped vocabulary. Id 0 is always padding and id 1 the unknown symbol; special
// symbols (e.g. '<s>', '</s>') follow, then the symbols in order of frequency.

/** The padding token of a symbol table. */
export const PAD = '<pad>';
/** The unknown-symbol token of a symbol table. */
export const UNK = '<unk>';

/** Options of a symbol table: size cap, minimum count, and its special symbols. */
export interface SymbolTableOptions {
  /** Keep at most this many symbols, specials included (the most frequent win; ties by first appearance). */
  maxSize?: number;
  /** Drop symbols seen fewer times than this (default 1). */
  minCount?: number;
  /** Extra special symbols after <pad> and <unk>, e.g. ['<s>', '</s>']. */
  specials?: string[];
}

/** A symbol <-> id table. padId = 0, unkId = 1. */
export class SymbolTable {
  readonly symbols: string[];
  private readonly index = new Map<string, number>();
  readonly padId = 0;
  readonly unkId = 1;

  constructor(symbols: readonly string[]) {
    if (symbols[0] !== PAD || symbols[1] !== UNK) throw new RangeError(`SymbolTable: the first two symbols must be ${PAD} and ${UNK}`);
    this.symbols = [...symbols];
    this.symbols.forEach((s, i) => {
      if (this.index.has(s)) throw new RangeError(`SymbolTable: symbol ${JSON.stringify(s)} appears twice (ids ${this.index.get(s)} and ${i})`);
      this.index.set(s, i);
    });
  }

  /** Counts the symbols of every sequence and keeps the most frequent. */
  static build(sequences: Iterable<Iterable<string>>, options: SymbolTableOptions = {}): SymbolTable {
    const counts = new Map<string, number>();
    for (const seq of sequences) for (const s of seq) counts.set(s, (counts.get(s) ?? 0) + 1);
    const specials = [PAD, UNK, ...(options.specials ?? [])];
    const minCount = options.minCount ?? 1;
    const ranked = [...counts.entries()]
      .filter(([s, n]) => n >= minCount && !specials.includes(s))
      .map(([s, n], order) => ({ s, n, order }))
      .sort((a, b) => b.n - a.n || a.order - b.order)
      .map((e) => e.s);
    const room = (options.maxSize ?? Infinity) - specials.length;
    if (room < 0) throw new RangeError(`SymbolTable.build: maxSize ${options.maxSize} is smaller than the ${specials.length} special symbols`);
    return new SymbolTable([...specials, ...ranked.slice(0, room)]);
  }

  /** Number of symbols, the special ones included. */
  get size(): number {
    return this.symbols.length;
  }

  /** The id of a symbol (unkId when unknown). */
  id(symbol: string): number {
    return this.index.get(symbol) ?? this.unkId;
  }

  /** Whether the symbol is in the table. */
  has(symbol: string): boolean {
    return this.index.has(symbol);
  }

  /** Symbols -> ids (unknown symbols -> unkId). */
  encode(symbols: Iterable<string>): number[] {
    const out: number[] = [];
    for (const s of symbols) out.push(this.id(s));
    return out;
  }

  /** Ids -> symbols (an id out of range -> <unk>). */
  decode(ids: Iterable<number>): string[] {
    const out: string[] = [];
    for (const i of ids) out.push(this.symbols[i] ?? UNK);
    return out;
  }

  /** The symbols in id order. */
  toJSON(): string[] {
    return [...this.symbols];
  }
}

/**
 * Options of `WordTokenizer.fit`: beside the symbol-table options, lower-casing and the
 * word-splitting pattern.
 */
export interface WordTokenizerOptions extends SymbolTableOptions {
  /** Lower-case before splitting (default true). */
  lowercase?: boolean;
  /** Splits a text into words (default: splitWords). */
  split?: (text: string) => string[];
}

// Words: runs of letters/digits/underscores with inner apostrophes ("don't", "whale’s"), or one
// other non-space character (punctuation).
const WORD = /[\p{L}\p{N}_]+(?:['’][\p{L}\p{N}_]+)*|[^\s\p{L}\p{N}_]/gu;

/**
 * The one word splitter of rnnkit (word tokenizers and word-level language-model vocabularies):
 * words of letters, digits and underscores with inner apostrophes, and single punctuation marks.
 */
export function splitWords(text: string): string[] {
  return text.match(WORD) ?? [];
}

/** Word-level tokenizer with a capped vocabulary (out-of-vocabulary words map to <unk>). */
export class WordTokenizer {
  readonly vocab: SymbolTable;
  private readonly lowercase: boolean;
  private readonly splitFn: (text: string) => string[];

  private constructor(vocab: SymbolTable, lowercase: boolean, split: (text: string) => string[]) {
    this.vocab = vocab;
    this.lowercase = lowercase;
    this.splitFn = split;
  }

  /** Builds the vocabulary from training texts: at most maxSize words (specials included). */
  static fit(texts: Iterable<string>, options: WordTokenizerOptions = {}): WordTokenizer {
    const lowercase = options.lowercase ?? true;
    const split = options.split ?? splitWords;
    const words = function* () { for (const t of texts) yield split(lowercase ? t.toLowerCase() : t); };
    return new WordTokenizer(SymbolTable.build(words(), options), lowercase, split);
  }

  /** Restores a tokenizer from its vocabulary symbols (e.g. saved with vocab.toJSON()). */
  static fromVocabulary(symbols: readonly string[], options: { lowercase?: boolean; split?: (text: string) => string[] } = {}): WordTokenizer {
    return new WordTokenizer(new SymbolTable(symbols), options.lowercase ?? true, options.split ?? splitWords);
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  /** The words of a text (lower-cased first when the tokenizer lower-cases). */
  tokenize(text: string): string[] {
    return this.splitFn(this.lowercase ? text.toLowerCase() : text);
  }

  /** Word ids of a text, optionally only its first maxLength words. */
  encode(text: string, maxLength = Infinity): number[] {
    const words = this.tokenize(text);
    return this.vocab.encode(words.length > maxLength ? words.slice(0, maxLength) : words);
  }

  /** Word ids -> the words joined by spaces. */
  decode(ids: Iterable<number>): string {
    return this.vocab.decode(ids).join(' ');
  }
}
