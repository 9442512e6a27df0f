import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkSourceSignature, type SourceTrust } from '../../lib/package/source';
import { signDetached } from '../../lib/pki/cms';
import { generateKeyPair, issueCertificate } from '../../lib/pki/x509';
import type { SourceRegistry } from '../../schemas/source';

const ca = (() => {
  const pair = generateKeyPair(2048);
  const certificatePem = issueCertificate({
    commonName: 'Test CA',
    unit: 'ca',
    publicKeyPem: pair.publicKeyPem,
    validDays: 30,
    ca: true,
    selfPrivateKeyPem: pair.privateKeyPem,
  });
  return { certificatePem, privateKeyPem: pair.privateKeyPem };
})();

function source(name: string, issuer?: typeof ca) {
  const pair = generateKeyPair(2048);
  const certificatePem = issueCertificate({
    commonName: name,
    unit: 'source',
    publicKeyPem: pair.publicKeyPem,
    validDays: 30,
    ...(issuer ? { issuer } : { selfPrivateKeyPem: pair.privateKeyPem }),
  });
  const x509 = new X509Certificate(certificatePem);
  return {
    certificatePem,
    privateKeyPem: pair.privateKeyPem,
    fingerprint: x509.fingerprint256.replaceAll(':', '').toLowerCase(),
    serial: x509.serialNumber.toLowerCase().replace(/^0+/, ''),
  };
}

const lab = source('Lab EDC');
const other = source('Someone Else');
const issued = source('CA-issued EDC', ca);

function registry(...sources: { certificatePem: string; fingerprint: string }[]): SourceRegistry {
  return {
    format: 'steward-sources/1',
    jurisdiction: 'eu',
    studyId: 'ST-1',
    required: true,
    sources: sources.map((s, i) => ({
      name: `source ${i + 1}`,
      fingerprint: s.fingerprint,
      certificatePem: s.certificatePem,
      registeredAt: '2026-12-01T00:00:00.000Z',
      registeredBy: {
        printedName: 'Demo Steward',
        role: 'steward',
        signedAt: '2026-12-01T00:00:00.000Z',
        meaning: 'register',
        recordSha256: '0'.repeat(64),
        certificateSerial: '01',
        certificateFingerprint: '0'.repeat(64),
        signature: 'AA==',
      },
    })),
  };
}

function trust(overrides: Partial<SourceTrust> = {}): SourceTrust {
  return {
    registry: registry(lab, issued),
    required: true,
    caPem: ca.certificatePem,
    revoked: new Set(),
    now: new Date(),
    ...overrides,
  };
}

const manifest = Buffer.from(JSON.stringify({ format: 'steward-package/1', studyId: 'ST-1', files: [] }));
const reader = (files: Record<string, Buffer>) => async (name: string) => files[name];
const signed = (signer: { certificatePem: string; privateKeyPem: string }, content = manifest) => ({
  'manifest.json': content,
  'manifest.json.p7s': signDetached(content, signer, []),
});

describe('source signatures', () => {
  it('authenticate a JSON package signed by a registered source, and name the signer', async () => {
    const result = await checkSourceSignature('json', reader(signed(lab)), trust());
    expect(result.problems).toEqual([]);
    expect(result.signature).toMatchObject({
      source: 'source 1',
      registered: true,
      fingerprint: lab.fingerprint,
      signedFile: 'manifest.json',
    });
  });

  it('refuse an unsigned, an otherwise signed, an altered and a revoked package where signatures are required', async () => {
    const rule = async (files: Record<string, Buffer>, t = trust()) =>
      (await checkSourceSignature('json', reader(files), t)).problems.map((p) => `${p.file}: ${p.rule}`);
    expect(await rule({ 'manifest.json': manifest })).toEqual([
      'manifest.json.p7s: required: the study accepts only packages whose manifest a registered source signed',
    ]);
    expect(await rule(signed(other))).toEqual([
      'manifest.json.p7s: signed by a certificate that is not a registered source of the study',
    ]);
    const altered = { ...signed(lab), 'manifest.json': Buffer.from(manifest.toString().replace('ST-1', 'ST-2')) };
    expect(await rule(altered)).toEqual([
      'manifest.json.p7s: does not verify: the content does not match the signed message digest: it was changed after signing',
    ]);
    expect(await rule({ ...signed(lab), 'manifest.json.p7s': Buffer.from('not DER') })).toHaveLength(1);
    expect(await rule(signed(issued), trust({ revoked: new Set([issued.serial]) }))).toEqual([
      'manifest.json.p7s: signed by "source 2", whose certificate is revoked',
    ]);
    expect(await rule(signed(lab), trust({ now: new Date(Date.now() + 60 * 86_400_000) }))).toEqual([
      'manifest.json.p7s: signed by "source 1", whose certificate is not valid now',
    ]);
  });

  it('where none is required, accept an unsigned package and record an unregistered signer as such', async () => {
    const optional = trust({ required: false, registry: undefined });
    expect(await checkSourceSignature('json', reader({ 'manifest.json': manifest }), optional)).toEqual({
      problems: [],
      signature: null,
    });
    const unregistered = await checkSourceSignature('json', reader(signed(other)), optional);
    expect(unregistered.signature).toMatchObject({ registered: false, fingerprint: other.fingerprint });
    expect(unregistered.signature!.source).toContain('Someone Else');
  });

  it('in a bag, the signed tag manifest must list the payload manifest, bag-info.txt and the metadata as they are', async () => {
    const files: Record<string, Buffer> = {
      'manifest-sha256.txt': Buffer.from(`${'a'.repeat(64)}  data/visits.csv\n`),
      'bag-info.txt': Buffer.from('Payload-Oxum: 1.1\n'),
      'steward.json': Buffer.from('{"studyId":"ST-1"}\n'),
    };
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const tagManifest = Buffer.from(
      Object.entries(files)
        .map(([f, b]) => `${sha(b)}  ${f}\n`)
        .join(''),
    );
    const bag = {
      ...files,
      'tagmanifest-sha256.txt': tagManifest,
      'tagmanifest-sha256.txt.p7s': signDetached(tagManifest, lab, []),
    };
    expect((await checkSourceSignature('bagit', reader(bag), trust())).problems).toEqual([]);
    const relabelled = { ...bag, 'steward.json': Buffer.from('{"studyId":"ST-2"}\n') };
    expect((await checkSourceSignature('bagit', reader(relabelled), trust())).problems).toEqual([
      { file: 'steward.json', rule: 'does not match its SHA-256 in the signed tag manifest' },
    ]);
  });
});
