/**
 * Certificate ids: `cert-<jurisdiction>-<32 hex>`. Certificates stored together in one bundle share their first 16 hex
 * digits, which name the bundle. Pure: workflows mint ids from their deterministic `uuid4`, so a replay mints the same.
 */
export function mintCertificateIds(
  jurisdiction: string,
  count: number,
  bundled: boolean,
  uuid: () => string,
): string[] {
  const hex = () => uuid().replaceAll('-', '');
  if (!bundled) return Array.from({ length: count }, () => `cert-${jurisdiction}-${hex()}`);
  const bundle = hex().slice(0, 16);
  return Array.from({ length: count }, () => `cert-${jurisdiction}-${bundle}${hex().slice(0, 16)}`);
}
