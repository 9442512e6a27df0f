import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import path from 'node:path';
import type { Payload } from '@temporalio/common';
import { allowed, denialMessage } from '../auth/roles';
import { verifyIdentityCertificate } from '../auth/request';
import { AesGcmPayloadCodec } from '../crypto/codec';
import type { KeyStore } from '../crypto/keystore';
import type { TrustAnchor } from '../pki/authority';
import type { Principal } from '../../schemas/common';
import { SignedRequestSchema } from '../../schemas/request';
import { decodeToken, verifyCodecGrant, type GrantVerdict } from './grant';
import { payloadDigest } from './locate';

/** One decode or encode request as the audit trail records it: who, how identified, what, allowed or not. */
export interface CodecAccess {
  /** `failure`: allowed, but the payloads could not be decoded or encoded. */
  outcome: 'success' | 'denied' | 'failure';
  principal: Principal | null;
  reason?: string;
  operation: 'decode' | 'encode';
  via: 'grant' | 'bearer' | 'client-certificate' | 'none';
  namespace: string | null;
  origin: string | null;
  payloads: number;
  /** The first 16 hex digits of each encrypted payload's SHA-256: what an auditor matches against the histories. */
  digests: string[];
}

export interface CodecServerOptions {
  keys: KeyStore;
  trust: TrustAnchor;
  /** The jurisdiction whose audit trail records the accesses (and whose grants are accepted). */
  jurisdiction: string;
  /** Web UI origins allowed by CORS (exactly these: scheme, host and port). */
  uiOrigins: readonly string[];
  /** Grants named in the URL (`/grant/<id>/decode`), one `<id>.json` each: the embedded stack's way in for its UI. */
  grantsDir?: string;
  /** HTTPS; with `clientCa`, a client certificate issued by the Steward CA identifies the caller too. */
  tls?: { cert: string; key: string; requestClientCertificate: boolean };
  /** Records an access; the response waits until it is durable. */
  record: (access: CodecAccess) => Promise<void>;
}

const MAX_BODY = 8 * 1024 * 1024;

/** What a request has shown of itself so far: what a failed one is audited with. */
interface Seen {
  operation?: 'decode' | 'encode';
  origin?: string | null;
  namespace?: string | null;
  principal?: Principal;
  via?: CodecAccess['via'];
  digests?: string[];
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface ProtoJsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

function fromJson(p: ProtoJsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  };
}

function toJson(p: Payload): ProtoJsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Steward's codec server (the Temporal remote codec protocol): decodes and encodes payloads with the key store's payload
 * keys, for ops and auditor identities only, and records every request, allowed or refused, in the audit trail. CORS
 * allows the configured UI origins and no other.
 */
export function createCodecServer(options: CodecServerOptions): http.Server {
  const codec = new AesGcmPayloadCodec(options.keys);
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const seen: Seen = {};
    void handle(req, res, seen).catch(async (error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      const reason = error instanceof HttpError ? error.message : 'codec server error';
      // A request for payloads that failed is an access attempt too: recorded before it is answered.
      if (seen.operation) {
        await options
          .record({
            operation: seen.operation,
            outcome: status >= 500 ? 'failure' : 'denied',
            principal: seen.principal ?? null,
            reason: `${status}: ${status >= 500 ? 'the payloads could not be decoded or encoded' : reason}`,
            via: seen.via ?? 'none',
            namespace: seen.namespace ?? null,
            origin: seen.origin ?? null,
            payloads: seen.digests?.length ?? 0,
            digests: seen.digests ?? [],
          })
          .catch(() => undefined);
      }
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(reason);
    });
  };

  async function identify(
    req: IncomingMessage,
    grantId: string | undefined,
  ): Promise<{ verdict: GrantVerdict | undefined; via: CodecAccess['via'] }> {
    const trust = { caPem: options.trust.caPem(), revoked: await options.trust.revoked(), now: new Date() };
    const authorization = req.headers.authorization;
    if (grantId !== undefined) {
      if (!options.grantsDir || !/^[0-9a-f]{32}$/.test(grantId)) {
        return { verdict: { ok: false, reason: 'no such grant' }, via: 'grant' };
      }
      const file = path.join(options.grantsDir, `${grantId}.json`);
      if (!existsSync(file)) return { verdict: { ok: false, reason: 'no such grant' }, via: 'grant' };
      const request = SignedRequestSchema.parse(JSON.parse(await readFile(file, 'utf8')));
      const verdict = verifyCodecGrant(request, options.jurisdiction, trust);
      if (verdict.ok && verdict.grantId !== grantId) {
        return { verdict: { ok: false, reason: 'the grant file holds another grant' }, via: 'grant' };
      }
      return { verdict, via: 'grant' };
    }
    if (authorization?.startsWith('Bearer ')) {
      const request = decodeToken(authorization.slice('Bearer '.length).trim());
      if (!request)
        return { verdict: { ok: false, reason: 'the bearer token is not a Steward codec grant' }, via: 'bearer' };
      return { verdict: verifyCodecGrant(request, options.jurisdiction, trust), via: 'bearer' };
    }
    const socket = req.socket as TLSSocket;
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined;
    if (peer?.raw) {
      const certificate = verifyIdentityCertificate(
        new X509Certificate(peer.raw).toString(),
        trust,
        'the client certificate is not a Steward identity',
      );
      if (!certificate.ok) return { verdict: certificate, via: 'client-certificate' };
      const { principal } = certificate;
      if (!allowed(principal, 'codec.decode')) {
        return {
          verdict: { ok: false, reason: denialMessage(principal, 'codec.decode'), claimed: principal },
          via: 'client-certificate',
        };
      }
      return {
        verdict: { ok: true, principal, grantId: 'client-certificate', expiresAt: '' },
        via: 'client-certificate',
      };
    }
    return { verdict: undefined, via: 'none' };
  }

  async function handle(req: IncomingMessage, res: ServerResponse, seen: Seen): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://codec');
    const segments = url.pathname.split('/').filter(Boolean);
    const operation = segments.at(-1);
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : null;
    seen.origin = origin;
    seen.namespace = typeof req.headers['x-namespace'] === 'string' ? req.headers['x-namespace'] : null;
    const originAllowed = origin === null || options.uiOrigins.includes(origin);
    const cors: Record<string, string> =
      origin && originAllowed
        ? {
            'access-control-allow-origin': origin,
            vary: 'Origin',
            'access-control-allow-methods': 'POST, OPTIONS',
            'access-control-allow-headers': 'content-type, x-namespace, authorization',
            'access-control-max-age': '600',
          }
        : { vary: 'Origin' };
    if (url.pathname === '/health' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (operation !== 'decode' && operation !== 'encode') {
      res.writeHead(404, { 'content-type': 'text/plain', ...cors }).end('POST …/decode or …/encode');
      return;
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(originAllowed ? 204 : 403, cors).end();
      return;
    }
    seen.operation = operation;
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST, OPTIONS');
      throw new HttpError(405, `${req.method ?? 'this method'} is not allowed: POST …/${operation}`);
    }
    const grantId = segments.length >= 3 && segments.at(-3) === 'grant' ? segments.at(-2) : undefined;
    const body = await readBody(req);
    let payloads: ProtoJsonPayload[];
    try {
      payloads = (JSON.parse(body.toString('utf8')) as { payloads?: ProtoJsonPayload[] }).payloads ?? [];
      if (!Array.isArray(payloads)) throw new Error('payloads is not a list');
    } catch {
      throw new HttpError(400, 'the body must be {"payloads": [...]} (Temporal payloads as proto JSON)');
    }
    const namespace = typeof req.headers['x-namespace'] === 'string' ? req.headers['x-namespace'] : null;
    seen.digests = payloads.map((p) => payloadDigest(Buffer.from(p.data ?? '', 'base64')));
    const access: Omit<CodecAccess, 'outcome' | 'principal' | 'via'> = {
      operation,
      namespace,
      origin,
      payloads: payloads.length,
      digests: payloads.map((p) => payloadDigest(Buffer.from(p.data ?? '', 'base64'))),
    };
    const refuse = async (status: number, reason: string, via: CodecAccess['via'], principal: Principal | null) => {
      await options.record({ ...access, outcome: 'denied', principal, reason, via });
      res.writeHead(status, { 'content-type': 'text/plain', ...cors }).end(reason);
    };
    if (!originAllowed) return refuse(403, `origin ${origin} is not allowed`, 'none', null);
    const { verdict, via } = await identify(req, grantId);
    if (!verdict) {
      return refuse(
        401,
        'no identity presented: a codec grant (URL or bearer token) or a client certificate is required',
        via,
        null,
      );
    }
    if (!verdict.ok) return refuse(403, verdict.reason, via, verdict.claimed ?? null);
    seen.principal = verdict.principal;
    seen.via = via;
    const input = payloads.map(fromJson);
    const output = operation === 'decode' ? await codec.decode(input) : await codec.encode(input);
    // Durable in the audit trail before anything is answered.
    await options.record({ ...access, outcome: 'success', principal: verdict.principal, via });
    res
      .writeHead(200, { 'content-type': 'application/json', ...cors })
      .end(JSON.stringify({ payloads: output.map(toJson) }));
  }

  return options.tls
    ? https.createServer(
        {
          cert: options.tls.cert,
          key: options.tls.key,
          requestCert: options.tls.requestClientCertificate,
          // Checked by Steward against its CA and CRL, so that a refusal is answered and audited, not dropped.
          rejectUnauthorized: false,
        },
        handler,
      )
    : http.createServer(handler);
}

/** The audit event of an access. */
export function accessEvent(access: CodecAccess) {
  return {
    action: 'payloads.decoded' as const,
    outcome: access.outcome,
    principal: access.principal,
    ...(access.reason ? { reason: access.reason } : {}),
    targets: {},
    details: {
      operation: access.operation,
      via: access.via,
      namespace: access.namespace,
      origin: access.origin,
      payloads: access.payloads,
      digests: access.digests.join(' '),
    },
  };
}
