import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { UserError } from '../runtime/errors';

/**
 * A jurisdiction's network on this machine, as separate hosts: its primary storage site in one network namespace, its
 * disaster-recovery site in a second, its workers in a third, and point-to-point links from the host and from the
 * workers to each site, and from the host to the workers. Nothing routes between links (no namespace forwards, and the
 * workers' namespace has no default route), so a worker reaches its own jurisdiction's sites and the host's Temporal
 * frontend, and no other jurisdiction's site: a network fact, not only a credential.
 */
export interface JurisdictionNetwork {
  jurisdiction: string;
  siteNetns: string;
  drNetns: string;
  workerNetns: string;
  /** The primary site as the host (the CLI, `steward up`, the storage inspector) reaches it. */
  siteFromHost: string;
  /** The primary site as the jurisdiction's workers reach it. */
  siteFromWorkers: string;
  /** The disaster-recovery site as the host reaches it. */
  drFromHost: string;
  /** The disaster-recovery site as the jurisdiction's workers reach it. */
  drFromWorkers: string;
  /** The host (Temporal's frontend) as the workers reach it. */
  hostFromWorkers: string;
  /** The host's ends of its links, by what they lead to: a link is cut by setting its end down. */
  hostLinks: { site: string; dr: string; workers: string };
}

/** `ip` with its arguments; throws a UserError naming the command and what it said. */
function ip(args: string[]): string {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.error) throw new UserError(`cannot run \`ip\` (iproute2) for the site network: ${result.error.message}`);
  if (result.status !== 0) throw new UserError(`ip ${args.join(' ')}: ${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

/** Whether this process may create network namespaces (root with iproute2). */
export function canIsolateSites(): boolean {
  if (process.getuid?.() !== 0) return false;
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).status === 0;
}

/** A short tag of a data dir: its namespaces' and links' names, so that two stacks on one machine never share one. */
export function networkTag(dataDir: string): string {
  return createHash('sha256').update(dataDir).digest('hex').slice(0, 5);
}

function addressesInUse(): string {
  return ip(['-o', '-4', 'addr', 'show']);
}

/** The third octet of 10.213.X.0/24 for a data dir's links: derived from its tag, moved on while another holds it. */
function subnetOctet(tag: string): number {
  const used = addressesInUse();
  const start = parseInt(tag, 16) % 250;
  for (let i = 0; i < 250; i++) {
    const octet = (start + i) % 250;
    if (!used.includes(`10.213.${octet}.`)) return octet;
  }
  throw new UserError('no free 10.213.X.0/24 subnet for the site network');
}

/** Removes a data dir's namespaces (the links inside them go with them); those absent are skipped. */
export function removeNetworks(dataDir: string): void {
  const tag = networkTag(dataDir);
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of listed.split('\n')) {
    const name = line.split(' ')[0];
    if (name?.startsWith(`stw${tag}`)) spawnSync('ip', ['netns', 'delete', name]);
  }
}

/**
 * Creates each jurisdiction's namespaces and links, replacing any a stack of this data dir left behind. Addresses are
 * 10.213.X.(32k + …) for the k-th jurisdiction: host–site /30 at +0, host–workers at +4, workers–site at +8, host–DR at
 * +12, workers–DR at +16.
 */
export function createNetworks(dataDir: string, jurisdictions: string[]): JurisdictionNetwork[] {
  removeNetworks(dataDir);
  const tag = networkTag(dataDir);
  const octet = subnetOctet(tag);
  return jurisdictions.map((jurisdiction, k) => {
    const base = k * 32;
    const address = (offset: number) => `10.213.${octet}.${base + offset}`;
    const siteNetns = `stw${tag}-${jurisdiction}-site`;
    const drNetns = `stw${tag}-${jurisdiction}-dr`;
    const workerNetns = `stw${tag}-${jurisdiction}-workers`;
    for (const ns of [siteNetns, drNetns, workerNetns]) {
      ip(['netns', 'add', ns]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const link = (
      a: { ns?: string; name: string; address: string },
      b: { ns: string; name: string; address: string },
    ) => {
      ip(['link', 'add', a.name, 'type', 'veth', 'peer', 'name', b.name]);
      if (a.ns) ip(['link', 'set', a.name, 'netns', a.ns]);
      ip(['link', 'set', b.name, 'netns', b.ns]);
      for (const end of [a, b]) {
        const where = end.ns ? ['-n', end.ns] : [];
        ip([...where, 'addr', 'add', `${end.address}/30`, 'dev', end.name]);
        ip([...where, 'link', 'set', end.name, 'up']);
      }
    };
    const j = jurisdiction.slice(0, 2);
    // Interface names are unique on the machine (each is created on the host before it moves): stw<tag><j><end>.
    const name = (end: string) => `stw${tag}${j}${end}`;
    link({ name: name('hs'), address: address(1) }, { ns: siteNetns, name: name('sh'), address: address(2) });
    link({ name: name('hw'), address: address(5) }, { ns: workerNetns, name: name('wh'), address: address(6) });
    link(
      { ns: workerNetns, name: name('ws'), address: address(9) },
      { ns: siteNetns, name: name('sw'), address: address(10) },
    );
    link({ name: name('hd'), address: address(13) }, { ns: drNetns, name: name('dh'), address: address(14) });
    link(
      { ns: workerNetns, name: name('wd'), address: address(17) },
      { ns: drNetns, name: name('dw'), address: address(18) },
    );
    return {
      jurisdiction,
      siteNetns,
      drNetns,
      workerNetns,
      siteFromHost: address(2),
      siteFromWorkers: address(10),
      drFromHost: address(14),
      drFromWorkers: address(18),
      hostFromWorkers: address(5),
      hostLinks: { site: name('hs'), dr: name('hd'), workers: name('hw') },
    };
  });
}

/** A command run inside a network namespace. */
export function inNetns(
  netns: string | undefined,
  command: string,
  args: string[],
): { command: string; args: string[] } {
  return netns ? { command: 'ip', args: ['netns', 'exec', netns, command, ...args] } : { command, args };
}

/** One end of a link of the address plan: its namespace (the host's own where none) and its interface. */
export interface LinkEnd {
  netns: string | undefined;
  link: string;
}

/**
 * The link in `netns` that leads to the site at `endpoint`: each link is a /30 whose lower address is this end and
 * whose upper one the site's. Used to cut a site off as a network fact (tests, the fault campaign).
 */
export function linkTowards(netns: string | undefined, endpoint: string): LinkEnd {
  const address = new URL(endpoint).hostname;
  const near = address.replace(/\d+$/, (n) => String(Number(n) - 1));
  const shown = spawnSync('ip', [...(netns ? ['-n', netns] : []), '-o', '-4', 'addr', 'show'], {
    encoding: 'utf8',
  }).stdout;
  const line = shown.split('\n').find((l) => l.includes(` ${near}/30`));
  if (!line) throw new Error(`no link to ${address} in ${netns ?? 'the host namespace'}:\n${shown}`);
  return { netns, link: line.split(/\s+/)[1]!.replace(/@.*$/, '') };
}

/** Sets a link down (the site behind it unreachable from this end) or up again. */
export function setLink(end: LinkEnd, state: 'up' | 'down'): void {
  const run = spawnSync('ip', [...(end.netns ? ['-n', end.netns] : []), 'link', 'set', end.link, state], {
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`ip link set ${end.link} ${state} failed: ${run.stderr}`);
}
