import {
  PARAMETER_REFERENCE,
  PipelineSpecSchema,
  type PipelineParameters,
  type PipelineSpec,
} from '../../schemas/preprocess';

/** A pipeline that cannot run as written: which field, and which rule. Pure, safe inside workflows. */
export class PipelineError extends Error {
  constructor(
    readonly ref: string,
    readonly field: string,
    readonly rule: string,
  ) {
    super(`pipeline ${ref}${field ? `, field ${field}` : ''}: ${rule}`);
  }
}

function substitute(
  value: unknown,
  parameters: PipelineParameters,
  at: string,
  ref: string,
  used: Set<string>,
): unknown {
  if (typeof value === 'string') {
    const name = PARAMETER_REFERENCE.exec(value)?.[1];
    if (name === undefined) return value;
    if (!(name in parameters)) {
      throw new PipelineError(ref, at, `names parameter "${name}", which the parameters do not give`);
    }
    used.add(name);
    return parameters[name];
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, parameters, `${at}[${i}]`, ref, used));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substitute(v, parameters, at ? `${at}.${k}` : k, ref, used)]),
    );
  }
  return value;
}

/**
 * The pipeline a document describes once its parameters are in place: every whole string `${name}` in the document
 * becomes parameter `name`. The command of an external pipeline is left as written (it reads the parameters file).
 * Throws a PipelineError naming the field and the rule.
 */
export function resolvePipeline(
  ref: string,
  document: Record<string, unknown>,
  parameters: PipelineParameters,
): PipelineSpec {
  const used = new Set<string>();
  const { command, ...rest } = document;
  const filled = {
    ...(substitute(rest, parameters, '', ref, used) as Record<string, unknown>),
    ...(command === undefined ? {} : { command }),
  };
  const parsed = PipelineSpecSchema.safeParse(filled);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new PipelineError(ref, issue.path.join('.'), issue.message);
  }
  return parsed.data;
}
