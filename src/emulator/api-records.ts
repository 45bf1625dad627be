/**
 * What reached the submission API, in arrival order, and which document uuids it has accepted (for the
 * duplicate flag: the agent delivers at least once, so a resend after a lost answer must show up as such).
 * Bounded: past the caps the oldest records are dropped (`total` still counts them).
 */
import type { ApiSubmission } from './types.js';

export interface ApiRecords {
  /** The seq the next record will get. */
  nextSeq(): number;
  /** Appends a record built with nextSeq(); `bytes` is the size of its raw body (for the memory cap). */
  add(record: ApiSubmission, bytes: number): void;
  /** Records with seq > since (all without), oldest first, at most `limit`. */
  list(since?: number, limit?: number): ApiSubmission[];
  /** Whether `key` (a path or kind, and a uuid) was accepted before. */
  seen(key: string): boolean;
  accept(key: string): void;
  /** Records made since the last clear (kept or dropped). */
  readonly total: number;
  /** Records flagged duplicate since the last clear. */
  readonly duplicates: number;
  clear(): void;
}

export const MAX_RECORDS = 100_000;
/** The raw bodies kept, at most; a benchmark must not grow the emulator without bound. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;
const MAX_ACCEPTED = 1_000_000;

export function createApiRecords(): ApiRecords {
  // A ring: records[head..] are live; compacted when the dead prefix grows large.
  let records: ApiSubmission[] = [];
  let sizes: number[] = [];
  let head = 0;
  let bytes = 0;
  let seq = 0;
  let duplicates = 0;
  const accepted = new Set<string>();

  const dropOldest = (): void => {
    bytes -= sizes[head] ?? 0;
    head += 1;
    if (head > 4096 && head * 2 > records.length) {
      records = records.slice(head);
      sizes = sizes.slice(head);
      head = 0;
    }
  };

  return {
    nextSeq: () => seq + 1,
    add(record, size) {
      seq = record.seq;
      if (record.duplicate) duplicates += 1;
      records.push(record);
      sizes.push(size);
      bytes += size;
      while (records.length - head > MAX_RECORDS || (bytes > MAX_RECORD_BYTES && records.length - head > 1)) dropOldest();
    },
    list(since = 0, limit = MAX_RECORDS) {
      const out: ApiSubmission[] = [];
      // Seqs are consecutive, so the first one wanted is found by arithmetic.
      const first = records[head];
      const start = first ? head + Math.max(0, since - first.seq + 1) : records.length;
      for (let i = start; i < records.length && out.length < limit; i++) out.push(structuredClone(records[i]!));
      return out;
    },
    seen: (key) => accepted.has(key),
    accept(key) {
      if (accepted.size >= MAX_ACCEPTED) accepted.delete(accepted.values().next().value as string);
      accepted.add(key);
    },
    get total() {
      return seq;
    },
    get duplicates() {
      return duplicates;
    },
    clear() {
      records = [];
      sizes = [];
      head = 0;
      bytes = 0;
      seq = 0;
      duplicates = 0;
      accepted.clear();
    },
  };
}
