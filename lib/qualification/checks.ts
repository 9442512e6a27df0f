import type {
  Baseline,
  CheckResult,
  Inventory,
  QualificationPhase,
  QualifyParams,
  ReportContent,
  RequirementsFile,
  Verdict,
} from '../../schemas/qualification';

/** The checks Steward runs, by id: each compares the inventory items it owns with the baseline, and its rules. */
export const CHECKS: Readonly<Record<string, { phase: QualificationPhase; title: string }>> = {
  'iq.tools': { phase: 'IQ', title: 'Temporal and versitygw binaries and versions' },
  'iq.runtime': { phase: 'IQ', title: 'Node.js, Temporal SDK, DuckDB and the npm lockfile' },
  'iq.workflow-code': { phase: 'IQ', title: 'Workflow code' },
  'iq.controlled-files': { phase: 'IQ', title: 'Controlled files (jurisdiction rules, pipelines, requirements)' },
  'iq.buckets': { phase: 'IQ', title: 'Buckets: versioning and Object Lock' },
  'iq.policies': { phase: 'IQ', title: 'Bucket policies' },
  'iq.temporal': { phase: 'IQ', title: 'Temporal search attributes and schedules' },
  'iq.identity': { phase: 'IQ', title: 'Evidence signer certificate' },
  'iq.gpu': { phase: 'IQ', title: 'GPUs and driver' },
  'oq.trust': { phase: 'OQ', title: 'Forged, replayed and wrong-role requests refused' },
  'oq.residency': { phase: 'OQ', title: "Another jurisdiction's buckets refused by storage" },
  'oq.audit': { phase: 'OQ', title: 'Audit trail verified' },
  'oq.certificate': { phase: 'OQ', title: 'Deletion certificates verified by Steward and OpenSSL' },
  'oq.replay': { phase: 'OQ', title: 'Recorded workflow histories replay' },
  'oq.functions': { phase: 'OQ', title: 'Scratch study: curated, rejected, erased, deleted with certificates' },
  'pq.ingestion': { phase: 'PQ', title: "Ingestion's curation of the reference package gives the recorded output" },
  'pq.pipelines': { phase: 'PQ', title: 'Shipped pipelines give the recorded outputs' },
  'pq.throughput': { phase: 'PQ', title: 'Ingestion and pipeline speed within the acceptance range' },
  'pq.variation': { phase: 'PQ', title: 'Seeded randomized step within its stated variation' },
};

export type Evaluated = Pick<ReportContent, 'requirements' | 'checks' | 'deviations' | 'verdict' | 'causes'>;

/** What a check found: each item that differs from the baseline (or is new, or gone) and each rule not met. */
export function findingsOf(check: string, inventory: Inventory, baseline: Baseline | null): string[] {
  const findings: string[] = [];
  for (const r of inventory.rules.filter((x) => x.check === check && !x.ok)) {
    findings.push(`${r.rule}${r.detail ? `: ${r.detail}` : ''}`);
  }
  if (!baseline) return findings;
  const live = new Map(inventory.items.filter((i) => i.check === check).map((i) => [i.id, i]));
  const approved = new Map(baseline.items.filter((i) => i.check === check).map((i) => [i.id, i]));
  for (const [id, item] of live) {
    const was = approved.get(id);
    if (!was) findings.push(`${item.label} (${id}) is not in baseline ${baseline.version}: found ${item.value}`);
    else if (was.value !== item.value) {
      findings.push(`${item.label} (${id}) differs from baseline ${baseline.version}: ${was.value} → ${item.value}`);
    }
  }
  for (const [id, was] of approved) {
    if (!live.has(id)) findings.push(`${was.label} (${id}) of baseline ${baseline.version} is gone`);
  }
  return findings;
}

/**
 * Judges a run: each check of the phases passes when it found nothing, each requirement by its check. NOT QUALIFIED
 * when a check failed, a requirement has no check, a high-risk requirement's check produced no evidence, or there is
 * no approved baseline; PROVISIONAL when it would be QUALIFIED but a check was waived or the source tree has changes
 * that are not committed; QUALIFIED otherwise.
 */
export function evaluate(
  requirements: RequirementsFile,
  phases: readonly QualificationPhase[],
  inventory: Inventory,
  baseline: Baseline | null,
  waive: QualifyParams['waive'],
  evidence: ReadonlyMap<string, CheckResult['evidence']>,
): Evaluated {
  const causes: string[] = [];
  const provisional: string[] = [];
  const wanted = requirements.requirements.filter((r) => phases.includes(r.phase));
  const checkIds = [
    ...new Set(
      Object.entries(CHECKS)
        .filter(([, c]) => phases.includes(c.phase))
        .map(([id]) => id),
    ),
  ];
  const waived = new Map(waive.map((w) => [w.check, w.reason]));
  const checks: CheckResult[] = checkIds.map((id) => {
    const findings = findingsOf(id, inventory, baseline);
    const outcome = waived.has(id) ? 'waived' : findings.length > 0 ? 'failed' : 'passed';
    if (outcome === 'failed') for (const f of findings) causes.push(`${id}: ${f}`);
    if (outcome === 'waived') provisional.push(`${id} waived: ${waived.get(id)!}`);
    return {
      id,
      title: CHECKS[id]!.title,
      covers: wanted.filter((r) => r.check === id).map((r) => r.id),
      outcome,
      findings,
      items: inventory.items.filter((i) => i.check === id).length,
      evidence: evidence.get(id) ?? null,
    };
  });
  for (const w of waive) if (!CHECKS[w.check]) causes.push(`waiver names ${w.check}, which is not a check`);
  const byId = new Map(checks.map((c) => [c.id, c]));
  const outcomes = wanted.map((r) => {
    const check = byId.get(r.check);
    if (!check) {
      causes.push(`${r.id}: its check ${r.check} does not exist, so nothing proves it`);
      return { ...r, outcome: 'no check' as const, checks: [] };
    }
    if (r.risk === 'high' && check.outcome !== 'waived' && !check.evidence) {
      causes.push(`${r.id} (high risk): ${check.id} produced no evidence`);
    }
    if (r.risk === 'high' && check.outcome === 'waived') {
      causes.push(`${r.id} (high risk): its check ${check.id} may not be waived`);
    }
    return { ...r, outcome: check.outcome, checks: [check.id] };
  });
  for (const c of checks) {
    if (c.covers.length === 0) causes.push(`${c.id}: no requirement names this check`);
  }
  if (!baseline) causes.push('no approved baseline: run `steward baseline record` and approve it as QA');
  if (inventory.source.clean === false) {
    provisional.push(`the source tree at ${inventory.source.commit ?? 'an unknown commit'} has uncommitted changes`);
  }
  const verdict: Verdict = causes.length > 0 ? 'NOT QUALIFIED' : provisional.length > 0 ? 'PROVISIONAL' : 'QUALIFIED';
  return {
    requirements: outcomes,
    checks,
    deviations: checks.filter((c) => c.outcome === 'failed').flatMap((c) => c.findings.map((f) => `${c.id}: ${f}`)),
    verdict,
    causes: [...causes, ...provisional],
  };
}
