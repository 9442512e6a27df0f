import { z } from 'zod';
import { JurisdictionSchema, type Jurisdiction } from '../schemas/jurisdiction';
import ch from './ch.json';
import eu from './eu.json';
import uk from './uk.json';
import us from './us.json';

/**
 * Where a jurisdiction's sites break its borders: each site must be in one of its regions, the two sites apart, and no
 * region shared with another jurisdiction (a disaster-recovery copy abroad would be a transfer the law forbids).
 */
export function siteProblems(j: Jurisdiction, others: readonly Jurisdiction[]): string[] {
  const problems: string[] = [];
  if (!j.regions.includes(j.region))
    problems.push(`region: ${j.region} is not one of regions (${j.regions.join(', ')})`);
  for (const role of ['primary', 'dr'] as const) {
    const site = j.sites[role];
    if (j.regions.includes(site.region)) continue;
    const owner = others.find((o) => o.id !== j.id && o.regions.includes(site.region));
    problems.push(
      `sites.${role}: ${site.name} is in region ${site.region}, ` +
        (owner ? `a region of jurisdiction ${owner.id}` : `not one of ${j.id}'s regions (${j.regions.join(', ')})`) +
        `: a ${role === 'dr' ? 'disaster-recovery' : 'primary'} site must be inside its jurisdiction`,
    );
  }
  if (j.sites.primary.name === j.sites.dr.name) problems.push(`sites: primary and dr are one site, ${j.sites.dr.name}`);
  else if (j.sites.primary.location === j.sites.dr.location) {
    problems.push(`sites: primary and dr are both in ${j.sites.dr.location}: a disaster would take both`);
  }
  if (j.sites.primary.region !== j.region) {
    problems.push(`sites.primary: region ${j.sites.primary.region} is not the jurisdiction's region ${j.region}`);
  }
  for (const other of others) {
    if (other.id === j.id) continue;
    const shared = j.regions.filter((r) => other.regions.includes(r));
    if (shared.length > 0) problems.push(`regions: ${shared.join(', ')} also listed by jurisdiction ${other.id}`);
  }
  return problems;
}

/** Which of a jurisdiction's two sites its workers write to: the primary, or the DR site after a failover. */
export type ActiveSite = 'primary' | 'dr';

/**
 * Of a jurisdiction's two sites (as its file names them, or as a stack runs them), the one its workers write to and
 * the one they replicate to, as `steward dr failover` last set them.
 */
export function siteRoles<T>(sites: { primary: T; dr: T }, active: ActiveSite): { active: T; standby: T } {
  return active === 'dr' ? { active: sites.dr, standby: sites.primary } : { active: sites.primary, standby: sites.dr };
}

/**
 * A jurisdiction file's rules, checked against the schema, its file name (`eu.json` holds `eu`) and, given every
 * jurisdiction, its sites' borders.
 */
export function parseJurisdiction(file: string, data: unknown, others?: readonly Jurisdiction[]): Jurisdiction {
  const parsed = JurisdictionSchema.safeParse(data);
  if (!parsed.success) {
    throw new Error(`jurisdictions/${file}: invalid jurisdiction file\n${z.prettifyError(parsed.error)}`);
  }
  if (`${parsed.data.id}.json` !== file) {
    throw new Error(`jurisdictions/${file}: id "${parsed.data.id}" does not match the file name`);
  }
  const problems = others ? siteProblems(parsed.data, others) : [];
  if (problems.length > 0) {
    throw new Error(`jurisdictions/${file}: invalid storage sites\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  return parsed.data;
}

/** Jurisdiction files by name, each parsed and then checked against all the others. */
export function parseJurisdictions(files: Record<string, unknown>): Record<string, Jurisdiction> {
  const parsed = Object.entries(files).map(([file, data]) => [file, parseJurisdiction(file, data)] as const);
  const all = parsed.map(([, j]) => j);
  return Object.fromEntries(parsed.map(([file, j]) => [j.id, parseJurisdiction(file, j, all)]));
}

/** Every jurisdiction Steward knows, validated when this module loads. Pure: safe inside workflows. */
export const JURISDICTIONS: Readonly<Record<string, Jurisdiction>> = Object.freeze(
  parseJurisdictions({ 'ch.json': ch, 'eu.json': eu, 'uk.json': uk, 'us.json': us }),
);

export const JURISDICTION_IDS = Object.keys(JURISDICTIONS).sort();

export class UnknownJurisdictionError extends Error {
  override readonly name = 'UnknownJurisdictionError';
}

export function getJurisdiction(id: string): Jurisdiction {
  const found = JURISDICTIONS[id];
  if (!found) {
    throw new UnknownJurisdictionError(
      `unknown jurisdiction "${id}"; known jurisdictions: ${JURISDICTION_IDS.join(', ')}`,
    );
  }
  return found;
}

/** A jurisdiction id Steward knows: what every workflow and command input names. */
export const KnownJurisdictionSchema = z.string().refine((id) => Object.hasOwn(JURISDICTIONS, id), {
  message: `must be a known jurisdiction: ${JURISDICTION_IDS.join(', ')}`,
});
