import { z } from 'zod';
import { JurisdictionSchema, type Jurisdiction } from '../schemas/jurisdiction';
import ch from './ch.json';
import eu from './eu.json';
import uk from './uk.json';
import us from './us.json';

/** A jurisdiction file's rules, checked against the schema and its file name (`eu.json` holds `eu`). */
export function parseJurisdiction(file: string, data: unknown): Jurisdiction {
  const parsed = JurisdictionSchema.safeParse(data);
  if (!parsed.success) {
    throw new Error(`jurisdictions/${file}: invalid jurisdiction file\n${z.prettifyError(parsed.error)}`);
  }
  if (`${parsed.data.id}.json` !== file) {
    throw new Error(`jurisdictions/${file}: id "${parsed.data.id}" does not match the file name`);
  }
  return parsed.data;
}

/** Every jurisdiction Steward knows, validated when this module loads. Pure: safe inside workflows. */
export const JURISDICTIONS: Readonly<Record<string, Jurisdiction>> = Object.freeze({
  ch: parseJurisdiction('ch.json', ch),
  eu: parseJurisdiction('eu.json', eu),
  uk: parseJurisdiction('uk.json', uk),
  us: parseJurisdiction('us.json', us),
});

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
