import { createHash } from 'node:crypto';

/** RFC 9162 Merkle tree hashing: leaves as H(0x00 || data), nodes as H(0x01 || left || right), SHA-256. */
function sha256(...parts: Buffer[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

export function leafHash(data: Buffer): Buffer {
  return sha256(Buffer.from([0]), data);
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  return sha256(Buffer.from([1]), left, right);
}

/** The largest power of two smaller than n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function subtreeHash(leaves: readonly Buffer[], from: number, to: number): Buffer {
  const n = to - from;
  if (n === 0) return sha256();
  if (n === 1) return leaves[from]!;
  const k = split(n);
  return nodeHash(subtreeHash(leaves, from, from + k), subtreeHash(leaves, from + k, to));
}

/** MTH(D[n]) over leaf hashes (RFC 9162 §2.1.1). */
export function merkleRoot(leafHashes: readonly Buffer[]): Buffer {
  return subtreeHash(leafHashes, 0, leafHashes.length);
}

/** PATH(m, D[n]): the audit path of leaf m (RFC 9162 §2.1.3.1). */
export function inclusionPath(leafHashes: readonly Buffer[], m: number): Buffer[] {
  const path = (index: number, from: number, to: number): Buffer[] => {
    const n = to - from;
    if (n <= 1) return [];
    const k = split(n);
    return index < k
      ? [...path(index, from, from + k), subtreeHash(leafHashes, from + k, to)]
      : [...path(index - k, from + k, to), subtreeHash(leafHashes, from, from + k)];
  };
  if (m < 0 || m >= leafHashes.length) throw new RangeError(`leaf ${m} is outside a tree of ${leafHashes.length}`);
  return path(m, 0, leafHashes.length);
}

/** Whether `path` proves leaf `leafIndex` with hash `leaf` is in the tree of `treeSize` with `root` (§2.1.3.2). */
export function verifyInclusion(
  leaf: Buffer,
  leafIndex: number,
  treeSize: number,
  path: readonly Buffer[],
  root: Buffer,
): boolean {
  if (leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}
