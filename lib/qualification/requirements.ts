import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { z } from 'zod';
import { UserError } from '../runtime/errors';
import { INSTALL_ROOT } from '../runtime/install';
import { RequirementsFileSchema, type RequirementsFile } from '../../schemas/qualification';
import { CHECKS } from './checks';

/** Steward's qualification requirements, shipped with it (a controlled file). */
export const REQUIREMENTS_FILE = path.join(INSTALL_ROOT, 'qualification', 'requirements.yaml');

/**
 * Parses a requirements file: YAML, checked against its schema, each requirement naming a check Steward has for its
 * phase, ids unique. Errors name the file, the requirement and the field.
 */
export function parseRequirements(text: string, file: string): RequirementsFile {
  let data: unknown;
  try {
    data = yaml.load(text, { filename: file, schema: yaml.JSON_SCHEMA });
  } catch (error) {
    throw new UserError(`${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  const parsed = RequirementsFileSchema.safeParse(data);
  if (!parsed.success) throw new UserError(`${file}: invalid requirements file\n${z.prettifyError(parsed.error)}`);
  const seen = new Set<string>();
  for (const [i, r] of parsed.data.requirements.entries()) {
    const where = `${file}: requirements[${i}] (${r.id})`;
    if (seen.has(r.id)) throw new UserError(`${where}: id: ${r.id} appears twice`);
    seen.add(r.id);
    if (!r.id.startsWith(`${r.phase}-`)) throw new UserError(`${where}: id: must start with its phase, ${r.phase}-`);
    const check = CHECKS[r.check];
    if (check && check.phase !== r.phase) {
      throw new UserError(`${where}: check: ${r.check} is a ${check.phase} check, the requirement is ${r.phase}`);
    }
  }
  return parsed.data;
}

export function loadRequirements(file = REQUIREMENTS_FILE): RequirementsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UserError(`${file}: cannot read the requirements file (${(error as NodeJS.ErrnoException).code})`);
  }
  return parseRequirements(text, file);
}
