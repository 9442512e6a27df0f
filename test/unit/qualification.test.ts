import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getJurisdiction } from '../../jurisdictions';
import {
  assessChange,
  controlledFiles,
  controlledKind,
  loadedRulesSha256,
  uncontrolledFiles,
  type ChangeInputs,
} from '../../lib/qualification/change';
import { datasetRetention } from '../../lib/retention/rules';
import { INSTALL_ROOT } from '../../lib/runtime/install';
import type { DatasetRecord } from '../../schemas/dataset';
import type { RunDocument } from '../../schemas/preprocess';
import { sha256 } from '../helpers';
import { CHECKS, evaluate } from '../../lib/qualification/checks';
import { driftFindings, findingKey } from '../../lib/qualification/deviations';
import { loadRequirements, parseRequirements } from '../../lib/qualification/requirements';
import type { Baseline, CheckResult, Inventory } from '../../schemas/qualification';

const requirements = loadRequirements();

function inventory(overrides: Partial<Record<string, string>> = {}, clean: boolean | null = true): Inventory {
  const items = Object.keys(CHECKS).map((check) => ({
    check,
    id: `${check.replace('iq.', 'item.')}.one`,
    label: `${check} item`,
    value: overrides[check] ?? 'v1',
  }));
  return {
    takenAt: '2026-12-05T10:00:00.000Z',
    jurisdiction: 'eu',
    worker: { identity: 'w', hostname: 'h' },
    source: { commit: 'abc', clean },
    items,
    rules: [{ check: 'iq.buckets', rule: 'bucket b has versioning enabled', ok: true }],
  };
}

const baseline: Baseline = {
  format: 'steward-baseline/1',
  jurisdiction: 'eu',
  version: 3,
  recordedAt: '2026-12-01T10:00:00.000Z',
  source: { commit: 'abc', clean: true },
  items: inventory().items,
};

const evidence = new Map<string, CheckResult['evidence']>(
  Object.keys(CHECKS).map((c) => [c, { check: c, key: `e/${c}.json`, sha256: 'a'.repeat(64), bytes: 1 }]),
);

describe('qualification requirements and verdicts', () => {
  it('ships a requirement for every IQ check, each check covering one', () => {
    const judged = evaluate(requirements, ['IQ'], inventory(), baseline, [], evidence);
    expect(judged.verdict).toBe('QUALIFIED');
    expect(judged.checks.every((c) => c.covers.length > 0)).toBe(true);
  });

  it('names a changed binary hash as the cause of NOT QUALIFIED', () => {
    const judged = evaluate(requirements, ['IQ'], inventory({ 'iq.tools': 'v2' }), baseline, [], evidence);
    expect(judged.verdict).toBe('NOT QUALIFIED');
    expect(judged.causes).toEqual(['iq.tools: iq.tools item (item.tools.one) differs from baseline 3: v1 → v2']);
    expect(judged.requirements.find((r) => r.id === 'IQ-01')!.outcome).toBe('failed');
    expect(judged.deviations).toHaveLength(1);
  });

  it('is NOT QUALIFIED with no baseline, a broken rule, a requirement without a check, or missing evidence', () => {
    expect(evaluate(requirements, ['IQ'], inventory(), null, [], evidence).causes).toContain(
      'no approved baseline: run `steward baseline record` and approve it as QA',
    );
    const broken = inventory();
    broken.rules[0]!.ok = false;
    expect(evaluate(requirements, ['IQ'], broken, baseline, [], evidence).causes).toContain(
      'iq.buckets: bucket b has versioning enabled',
    );
    const extra = {
      ...requirements,
      requirements: [
        ...requirements.requirements,
        {
          id: 'IQ-99',
          text: 'a requirement nothing proves',
          risk: 'low' as const,
          phase: 'IQ' as const,
          check: 'iq.nothing',
        },
      ],
    };
    expect(evaluate(extra, ['IQ'], inventory(), baseline, [], evidence).causes).toContain(
      'IQ-99: its check iq.nothing does not exist, so nothing proves it',
    );
    const noEvidence = new Map(evidence);
    noEvidence.delete('iq.buckets');
    expect(evaluate(requirements, ['IQ'], inventory(), baseline, [], noEvidence).causes).toContain(
      'IQ-05 (high risk): iq.buckets produced no evidence',
    );
  });

  it('is PROVISIONAL with a waived low-risk check or an unclean tree, NOT QUALIFIED with a waived high-risk one', () => {
    const waivedLow = evaluate(
      requirements,
      ['IQ'],
      inventory({ 'iq.gpu': 'other' }),
      baseline,
      [{ check: 'iq.gpu', reason: 'GPU node being replaced' }],
      evidence,
    );
    expect(waivedLow.verdict).toBe('PROVISIONAL');
    expect(evaluate(requirements, ['IQ'], inventory({}, false), baseline, [], evidence).verdict).toBe('PROVISIONAL');
    const waivedHigh = evaluate(
      requirements,
      ['IQ'],
      inventory(),
      baseline,
      [{ check: 'iq.tools', reason: 'x y z' }],
      evidence,
    );
    expect(waivedHigh.verdict).toBe('NOT QUALIFIED');
    expect(waivedHigh.causes).toContain('IQ-01 (high risk): its check iq.tools may not be waived');
  });

  it('rejects a requirements file with the file, requirement and field named', () => {
    const base = 'format: steward-requirements/1\nrequirements:\n';
    const r = (id: string, phase: string, check: string) =>
      `  - {id: ${id}, phase: ${phase}, risk: high, check: ${check}, text: "some requirement text"}\n`;
    expect(() =>
      parseRequirements(base + r('IQ-01', 'IQ', 'iq.tools') + r('IQ-01', 'IQ', 'iq.gpu'), 'req.yaml'),
    ).toThrow('req.yaml: requirements[1] (IQ-01): id: IQ-01 appears twice');
    expect(() => parseRequirements(base + r('OQ-01', 'OQ', 'iq.tools'), 'req.yaml')).toThrow(
      'req.yaml: requirements[0] (OQ-01): check: iq.tools is a IQ check, the requirement is OQ',
    );
    expect(() => parseRequirements(base + r('IQ-1', 'IQ', 'iq.tools'), 'req.yaml')).toThrow(
      /req\.yaml: invalid requirements file[\s\S]*id/,
    );
    expect(() => parseRequirements('format: [', 'req.yaml')).toThrow(/^req\.yaml: not valid YAML/);
  });

  it('finds drift as each difference from the baseline with its requirements and highest risk, none without one', () => {
    expect(driftFindings(requirements, inventory(), baseline)).toEqual([]);
    const drifted = driftFindings(requirements, inventory({ 'iq.policies': 'v2', 'iq.temporal': 'v9' }), baseline);
    expect(drifted).toEqual([
      {
        check: 'iq.policies',
        requirements: ['IQ-06'],
        risk: 'high',
        text: 'iq.policies item (item.policies.one) differs from baseline 3: v1 → v2',
      },
      {
        check: 'iq.temporal',
        requirements: ['IQ-07'],
        risk: 'medium',
        text: 'iq.temporal item (item.temporal.one) differs from baseline 3: v1 → v9',
      },
    ]);
    expect(driftFindings(requirements, inventory({ 'iq.policies': 'v2' }), null)).toEqual([]);
    // The same finding maps to the same deviation; another value or jurisdiction to another.
    expect(findingKey('eu', drifted[0]!)).toBe(findingKey('eu', { ...drifted[0]! }));
    expect(findingKey('eu', drifted[0]!)).not.toBe(findingKey('us', drifted[0]!));
    expect(findingKey('eu', drifted[0]!)).not.toBe(findingKey('eu', drifted[1]!));
    expect(findingKey('eu', drifted[0]!)).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('change impact', () => {
  const eu = getJurisdiction('eu');
  const file = (name: string) => readFileSync(path.join(INSTALL_ROOT, name));
  const dataset = (datasetId: string, dataClass: string, runJob?: string) =>
    ({
      datasetId,
      studyId: 'ST-1',
      dataClass,
      createdAt: '2026-01-10T09:00:00.000Z',
      retention: datasetRetention(dataClass, eu.retention[dataClass]!, { curation: '2026-01-10T09:00:00.000Z' }),
      run: runJob ? { jobId: runJob, bucket: 'b', key: 'k', versionId: null, sha256: 'a'.repeat(64) } : null,
    }) as unknown as DatasetRecord;
  const inputs = (over: Partial<ChangeInputs>): ChangeInputs => ({
    jurisdiction: eu,
    file: 'jurisdictions/eu.json',
    current: file('jurisdictions/eu.json'),
    proposed: null,
    datasets: [],
    studies: new Map(),
    runs: new Map(),
    requirements,
    now: '2026-12-05T10:00:00.000Z',
    ...over,
  });

  it('names each dataset whose retain-until moves, by how many days, and only those', () => {
    const rules = JSON.parse(file('jurisdictions/eu.json').toString('utf8'));
    rules.retention['real-world'].duration = 'P11Y';
    const impact = assessChange(
      inputs({
        proposed: Buffer.from(JSON.stringify(rules)),
        datasets: [dataset('DS-RW', 'real-world'), dataset('DS-CT', 'clinical-trial')],
      }),
    );
    expect(impact.dryRun.every((c) => c.ok)).toBe(true);
    expect(impact.changedFields).toEqual(['retention.real-world.duration']);
    expect(impact.retention).toEqual([
      {
        datasetId: 'DS-RW',
        rule: 'real-world',
        from: '2036-01-10T09:00:00.000Z',
        to: '2037-01-10T09:00:00.000Z',
        days: 366,
      },
    ]);
    expect(impact.loadedSha256).not.toBe(loadedRulesSha256(eu));
  });

  it('refuses by its dry run a removed rule in use, a rewritten pipeline version with outputs, an unchanged file', () => {
    const rules = JSON.parse(file('jurisdictions/eu.json').toString('utf8'));
    delete rules.retention['real-world'];
    const removed = assessChange(
      inputs({ proposed: Buffer.from(JSON.stringify(rules)), datasets: [dataset('DS-RW', 'real-world')] }),
    );
    expect(removed.dryRun.find((c) => !c.ok)?.detail).toBe(
      'retention: real-world removed, but datasets of that class exist',
    );
    const pipeline = 'pipelines/vitals-standardize/1.0.0.json';
    const doc = JSON.parse(file(pipeline).toString('utf8'));
    const run = { pipeline: { ref: 'vitals-standardize@1.0.0', name: 'vitals-standardize' } } as unknown as RunDocument;
    const rewritten = assessChange(
      inputs({
        file: pipeline,
        current: file(pipeline),
        proposed: Buffer.from(JSON.stringify({ ...doc, steps: doc.steps.slice(0, 1) })),
        datasets: [dataset('DS-OUT', 'preprocessing-output', 'job-1')],
        runs: new Map([['job-1', run]]),
      }),
    );
    expect(rewritten.pipelines).toEqual([{ pipeline: 'vitals-standardize@1.0.0', outputs: ['DS-OUT'] }]);
    expect(rewritten.dryRun.find((c) => !c.ok)?.check).toBe('no outputs made by what it replaces');
    const misnamed = assessChange(
      inputs({ file: 'pipelines/vitals-standardize/2.0.0.json', current: undefined, proposed: file(pipeline) }),
    );
    expect(misnamed.dryRun.find((c) => !c.ok)?.detail).toContain(
      'names itself vitals-standardize@1.0.0, not vitals-standardize@2.0.0',
    );
    const same = assessChange(inputs({ proposed: file('jurisdictions/eu.json') }));
    expect(same.dryRun.map((c) => c.ok)).toEqual([false]);
  });

  it('knows controlled files by their place, and allows an approved change being applied', async () => {
    expect(controlledKind('jurisdictions/eu.json')).toBe('jurisdiction');
    expect(controlledKind('pipelines/gpu-reference/run.py')).toBe('pipeline');
    expect(controlledKind('qualification/requirements.yaml')).toBe('requirements');
    expect(controlledKind('lib/auth/roles.ts')).toBeNull();
    expect(controlledKind('pipelines/../lib/x.json')).toBeNull();
    const files = await controlledFiles('eu', INSTALL_ROOT);
    expect(files).toContain('jurisdictions/eu.json');
    expect(files).not.toContain('jurisdictions/us.json');
    const items = await Promise.all(
      files.map(async (f) => ({ check: 'iq.controlled-files', id: `file.${f}`, label: f, value: sha256(file(f)) })),
    );
    const approved: Baseline = { ...baseline, items };
    expect(await uncontrolledFiles(approved, INSTALL_ROOT)).toEqual([]);
    const other: Baseline = {
      ...approved,
      items: items.map((i) => (i.id === 'file.jurisdictions/eu.json' ? { ...i, value: 'b'.repeat(64) } : i)),
    };
    expect(await uncontrolledFiles(other, INSTALL_ROOT)).toEqual([
      `jurisdictions/eu.json has SHA-256 ${sha256(file('jurisdictions/eu.json'))}, baseline 3 records ${'b'.repeat(64)}`,
    ]);
    expect(
      await uncontrolledFiles(
        other,
        INSTALL_ROOT,
        new Map([['jurisdictions/eu.json', sha256(file('jurisdictions/eu.json'))]]),
      ),
    ).toEqual([]);
  });
});
