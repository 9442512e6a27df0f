import { describe, expect, it } from 'vitest';
import {
  planReplication,
  turnManifest,
  versionRef,
  type Manifest,
  type ManifestEntry,
} from '../../lib/storage/replication';
import type { StoredVersion } from '../../lib/storage/versions';

const version = (key: string, versionId: string, lastModified: string, deleteMarker = false): StoredVersion => ({
  key,
  versionId,
  bytes: deleteMarker ? 0 : 10,
  deleteMarker,
  lastModified,
});
const entry = (key: string, source: string, replica: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
  key,
  source,
  replica,
  deleteMarker: false,
  sha256: null,
  bytes: 10,
  copiedAt: '2026-12-01T00:00:00.000Z',
  ...extra,
});
const manifest = (entries: ManifestEntry[]): Manifest => ({
  format: 'steward-replication-manifest/1',
  bucket: 'b',
  entries: Object.fromEntries(entries.map((e) => [versionRef(e.key, e.source), e])),
});
const now = new Date('2026-12-07T12:00:00.000Z');

describe('replication plan', () => {
  it("copies what has no replica, a key's versions oldest first, and leaves replicated versions alone", () => {
    const primary = [
      version('a', 'a3', '2026-12-07T11:00:03.000Z'),
      version('a', 'a2', '2026-12-07T11:00:02.000Z', true),
      version('a', 'a1', '2026-12-07T11:00:01.000Z'),
      version('b', 'b1', '2026-12-07T10:00:00.000Z'),
    ];
    const plan = planReplication(primary, [version('a', 'r1', 'x')], manifest([entry('a', 'a1', 'r1')]), now);
    expect(plan.copy.map((v) => v.versionId)).toEqual(['b1', 'a2', 'a3']);
    expect(plan.prune).toEqual([]);
    expect(plan.drop).toEqual([]);
    expect(plan.unknown).toEqual([]);
  });

  it('prunes the replica of a deleted source only after the grace, so an erasure deletes and certifies it first', () => {
    const gone = manifest([entry('a', 'a1', 'r1')]);
    const dr = [version('a', 'r1', 'x')];
    const first = planReplication([], dr, gone, now);
    expect(first.sourceGone).toEqual([versionRef('a', 'a1')]);
    expect(first.prune).toEqual([]);

    const marked = manifest([entry('a', 'a1', 'r1', { sourceGoneSince: '2026-12-07T11:59:30.000Z' })]);
    expect(planReplication([], dr, marked, now, 60_000).prune).toEqual([]);
    expect(planReplication([], dr, marked, now, 20_000).prune.map(([ref]) => ref)).toEqual([versionRef('a', 'a1')]);
    // A listing that missed the source, then found it again: the mark is cleared, nothing is pruned.
    const back = planReplication([version('a', 'a1', 't')], dr, marked, now, 20_000);
    expect(back.prune).toEqual([]);
    expect(back.sourceBack).toEqual([versionRef('a', 'a1')]);
  });

  it('drops entries whose replica was deleted at the DR site and copies their source again', () => {
    const plan = planReplication([version('a', 'a1', 't')], [], manifest([entry('a', 'a1', 'r1')]), now);
    expect(plan.drop).toEqual([versionRef('a', 'a1')]);
    expect(plan.copy.map((v) => v.versionId)).toEqual(['a1']);
  });

  it('names DR versions no entry knows: a replica a crash left out of the manifest, or a write at the DR site', () => {
    const plan = planReplication(
      [version('a', 'a1', 't')],
      [version('a', 'r1', 'x'), version('a', 'r9', 'y')],
      manifest([entry('a', 'a1', 'r1')]),
      now,
    );
    expect(plan.unknown.map((v) => v.versionId)).toEqual(['r9']);
    expect(plan.copy).toEqual([]);
  });

  it('turns a manifest after a failover: the DR replicas become sources of the primary versions they copy', () => {
    const forward = manifest([
      entry('a', 'a1', 'r1'),
      entry('m', 'm1', 'rm', { deleteMarker: true, bytes: 0 }),
      // Deleted at the primary before the failover, its replica waiting for the grace: deleted, not copied back.
      entry('g', 'g1', 'rg', { sourceGoneSince: '2026-12-07T11:59:50.000Z' }),
    ]);
    const { manifest: turned, doomed } = turnManifest(forward);
    expect(doomed).toEqual([{ key: 'g', versionId: 'rg' }]);
    expect(Object.keys(turned.entries).sort()).toEqual([versionRef('a', 'r1'), versionRef('m', 'rm')]);
    expect(turned.entries[versionRef('a', 'r1')]).toMatchObject({ source: 'r1', replica: 'a1' });
    expect(turned.entries[versionRef('m', 'rm')]).toMatchObject({ source: 'rm', replica: 'm1', deleteMarker: true });

    // From the DR site (now copied from) to the primary: what the DR site wrote since is copied, and nothing else.
    const dr = [version('a', 'r1', 't1'), version('m', 'rm', 't2', true), version('n', 'd1', 't3')];
    const primary = [version('a', 'a1', 't0'), version('m', 'm1', 't1', true)];
    const plan = planReplication(dr, primary, turned, now);
    expect(plan.copy.map((v) => v.versionId)).toEqual(['d1']);
    expect(plan.unknown).toEqual([]);
    expect(plan.drop).toEqual([]);
    // And back, after a failback: the forward entries again.
    expect(turnManifest(turned).manifest.entries[versionRef('a', 'a1')]).toMatchObject({ source: 'a1', replica: 'r1' });
  });

  it('neither copies nor reports held versions: written at a site before its failover, never replicated', () => {
    const held: Manifest = { ...manifest([]), held: [versionRef('a', 'p0')] };
    const plan = planReplication(
      [version('a', 'p0', 't0'), version('b', 'b1', 't1')],
      [version('a', 'p0', 't0')],
      held,
      now,
    );
    expect(plan.copy.map((v) => v.versionId)).toEqual(['b1']);
    expect(plan.unknown).toEqual([]);
  });
});
