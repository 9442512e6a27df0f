import { createHash, createPublicKey, sign, verify } from 'node:crypto';
import {
  AuditSegmentSchema,
  SegmentHeadSchema,
  type AuditEvent,
  type AuditSegment,
  type InclusionProof,
  type AuditTrailHead,
  type SegmentHead,
} from '../../schemas/audit';
import { canonicalJson } from '../crypto/canonical';
import { chainProblem } from '../pki/x509';
import { inclusionPath, leafHash, merkleRoot, verifyInclusion } from './merkle';

export const ZERO_HASH = '0'.repeat(64);

function hex(buffer: Buffer): string {
  return buffer.toString('hex');
}

export function eventLeafHash(event: AuditEvent): Buffer {
  return leafHash(Buffer.from(canonicalJson(event)));
}

/** The chain hash of an event: SHA-256 of the previous event's chain hash and this event's leaf hash. */
export function chainHash(previous: string, event: AuditEvent): string {
  return hex(createHash('sha256').update(Buffer.from(previous, 'hex')).update(eventLeafHash(event)).digest());
}

export function headHash(head: SegmentHead): string {
  return hex(createHash('sha256').update(canonicalJson(head)).digest());
}

export interface SealInput {
  jurisdiction: string;
  seq: number;
  firstPosition: number;
  prevEventHash: string;
  prevSegmentHash: string;
  sealedAt: string;
  events: AuditEvent[];
  signer: { certificatePem: string; privateKeyPem: string };
}

/**
 * Seals events into a segment: positions, chain hashes, the Merkle root, and the head signed by the evidence signer.
 * Deterministic (RSA PKCS#1 v1.5 signatures are): the same input gives the same bytes, so a retried seal is identical.
 */
export function sealSegment(input: SealInput): AuditSegment {
  let previous = input.prevEventHash;
  const entries = input.events.map((event, i) => {
    previous = chainHash(previous, event);
    return { position: input.firstPosition + i, hash: previous, event };
  });
  const head: SegmentHead = {
    format: 'steward-audit-head/1',
    jurisdiction: input.jurisdiction,
    seq: input.seq,
    firstPosition: input.firstPosition,
    count: entries.length,
    prevEventHash: input.prevEventHash,
    lastEventHash: previous,
    merkleRoot: hex(merkleRoot(input.events.map(eventLeafHash))),
    prevSegmentHash: input.prevSegmentHash,
    sealedAt: input.sealedAt,
  };
  const signature = sign('sha256', Buffer.from(canonicalJson(head)), input.signer.privateKeyPem).toString('base64');
  return {
    format: 'steward-audit-segment/1',
    head,
    signature,
    signerCertificate: input.signer.certificatePem,
    entries,
  };
}

export interface TrailProblem {
  /** The segment (its sequence number), when the problem is about one. */
  segment?: number;
  /** The event's chain position, when the problem is about one. */
  position?: number;
  eventId?: string;
  problem: string;
}

/** Whether a head's signature verifies with its signer certificate, which must chain to the CA. */
function signatureProblem(head: SegmentHead, signature: string, signerPem: string, caPem: string): string | undefined {
  const chain = chainProblem(signerPem, caPem, new Date(head.sealedAt));
  if (chain) return `signer certificate: ${chain}`;
  const ok = verify(
    'sha256',
    Buffer.from(canonicalJson(head)),
    createPublicKey(signerPem),
    Buffer.from(signature, 'base64'),
  );
  return ok ? undefined : 'the head signature does not verify: the head was altered';
}

/**
 * Recomputes a jurisdiction's trail from its stored segments (in the order found, keyed by sequence number): each
 * segment's schema and signature, every event's chain hash, each Merkle root, the links between segments, and that
 * no event id appears twice. Every problem names the segment and, where it can, the position and event.
 */
export function verifyTrail(
  stored: ReadonlyMap<number, unknown>,
  caPem: string,
): { problems: TrailProblem[]; events: number; segments: number } {
  const problems: TrailProblem[] = [];
  const seqs = [...stored.keys()].sort((a, b) => a - b);
  const seen = new Map<string, number>();
  let expectedSeq = 0;
  let expectedPosition = 0;
  let prevEventHash = ZERO_HASH;
  let prevSegmentHash = ZERO_HASH;
  let events = 0;
  for (const seq of seqs) {
    if (seq !== expectedSeq) {
      problems.push({
        segment: expectedSeq,
        position: expectedPosition,
        problem: `segments ${expectedSeq}–${seq - 1} are missing`,
      });
    }
    const parsed = AuditSegmentSchema.safeParse(stored.get(seq));
    if (!parsed.success) {
      problems.push({
        segment: seq,
        problem: `not a valid audit segment (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})`,
      });
      expectedSeq = seq + 1;
      continue;
    }
    const segment = parsed.data;
    const { head } = segment;
    const signed = signatureProblem(head, segment.signature, segment.signerCertificate, caPem);
    if (signed) problems.push({ segment: seq, problem: signed });
    if (head.seq !== seq)
      problems.push({ segment: seq, problem: `stored as segment ${seq} but its head says ${head.seq}` });
    if (seq === expectedSeq && head.prevSegmentHash !== prevSegmentHash) {
      problems.push({ segment: seq, problem: 'does not link to the previous segment (previous segment hash differs)' });
    }
    if (seq === expectedSeq && head.firstPosition !== expectedPosition) {
      problems.push({
        segment: seq,
        position: expectedPosition,
        problem: `starts at position ${head.firstPosition}, expected ${expectedPosition}`,
      });
    }
    if (seq === expectedSeq && head.prevEventHash !== prevEventHash) {
      problems.push({
        segment: seq,
        position: head.firstPosition,
        problem: 'does not continue the event chain of the previous segment',
      });
    }
    let previous = head.prevEventHash;
    segment.entries.forEach((entry, i) => {
      const position = head.firstPosition + i;
      const where = { segment: seq, position, eventId: entry.event.id };
      if (entry.position !== position) {
        problems.push({
          ...where,
          problem: `event stored at position ${entry.position}, expected ${position}: events were removed, inserted or reordered`,
        });
      }
      const recomputed = chainHash(previous, entry.event);
      if (recomputed !== entry.hash) {
        problems.push({
          ...where,
          problem:
            'event does not match its chain hash: it was altered, or an event before it was removed, inserted or reordered',
        });
      }
      const earlier = seen.get(entry.event.id);
      if (earlier !== undefined)
        problems.push({ ...where, problem: `event id already recorded at position ${earlier}` });
      seen.set(entry.event.id, position);
      previous = entry.hash;
    });
    if (segment.entries.length !== head.count) {
      problems.push({
        segment: seq,
        problem: `holds ${segment.entries.length} events, its signed head says ${head.count}`,
      });
    }
    if (previous !== head.lastEventHash) {
      problems.push({ segment: seq, problem: 'its events do not end at the signed last event hash' });
    }
    if (hex(merkleRoot(segment.entries.map((e) => eventLeafHash(e.event)))) !== head.merkleRoot) {
      problems.push({ segment: seq, problem: 'its events do not match the signed Merkle root' });
    }
    events += segment.entries.length;
    expectedSeq = seq + 1;
    expectedPosition = head.firstPosition + head.count;
    prevEventHash = head.lastEventHash;
    prevSegmentHash = headHash(head);
  }
  return { problems, events, segments: seqs.length };
}

/**
 * What the live trail's head (kept by its workflow, out of reach of the storage account) says storage should hold:
 * a trail cut short at the end is found here, where the segments alone cannot tell.
 */
export function tailProblems(head: AuditTrailHead | undefined, segments: ReadonlyMap<number, unknown>): TrailProblem[] {
  if (!head || head.seq === 0) return [];
  const last = Math.max(-1, ...segments.keys());
  if (last >= head.seq - 1) {
    const parsed = AuditSegmentSchema.safeParse(segments.get(head.seq - 1));
    if (!parsed.success || headHash(parsed.data.head) === head.prevSegmentHash) return [];
    return [{ segment: head.seq - 1, problem: 'is not the segment the live trail sealed under this number' }];
  }
  return [
    {
      segment: last + 1,
      position: head.position,
      problem: `the live trail has sealed ${head.seq} segments (${head.position} events) but storage holds segments up to ${last}: segments ${last + 1}–${head.seq - 1} are missing`,
    },
  ];
}

/** An inclusion proof of one event of a segment: the event, its Merkle audit path and the signed head. */
export function proveInclusion(segment: AuditSegment, eventId: string, caPem: string): InclusionProof {
  const index = segment.entries.findIndex((e) => e.event.id === eventId);
  if (index < 0) throw new Error(`event ${eventId} is not in segment ${segment.head.seq}`);
  const leaves = segment.entries.map((e) => eventLeafHash(e.event));
  return {
    format: 'steward-audit-proof/1',
    event: segment.entries[index]!.event,
    leafIndex: index,
    treeSize: leaves.length,
    path: inclusionPath(leaves, index).map(hex),
    head: segment.head,
    signature: segment.signature,
    signerCertificate: segment.signerCertificate,
    caCertificate: caPem,
  };
}

/** Checks an inclusion proof offline against a CA certificate; returns the problems (none: the event is proven). */
export function verifyProof(proof: InclusionProof, caPem: string): string[] {
  const problems: string[] = [];
  const head = SegmentHeadSchema.parse(proof.head);
  const signed = signatureProblem(head, proof.signature, proof.signerCertificate, caPem);
  if (signed) problems.push(signed);
  if (proof.treeSize !== head.count)
    problems.push(`the proof is for a tree of ${proof.treeSize} events, the head has ${head.count}`);
  const ok = verifyInclusion(
    eventLeafHash(proof.event),
    proof.leafIndex,
    proof.treeSize,
    proof.path.map((p) => Buffer.from(p, 'hex')),
    Buffer.from(head.merkleRoot, 'hex'),
  );
  if (!ok) problems.push('the event and its audit path do not lead to the signed Merkle root: the event was altered');
  return problems;
}
