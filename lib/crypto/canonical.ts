import canonicalize from 'canonicalize';

/** RFC 8785 JSON canonicalization: the bytes Steward hashes and signs, the same on every machine. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('value cannot be canonicalized as JSON');
  return text;
}
