/**
 * Lanes and messages of a counterexample, as the sequence views (Mermaid, HTML) draw them: one lane per actor
 * (a rank, thread or stream), and for each step either a message between two lanes (a send, a receive, an
 * event wait) or a note on the actor's own lane.
 *
 * Models do not declare messages, so they are inferred from what a step says about itself:
 *   - a parameter naming a peer rank (`peer`, `dst`, `src`, `to`, `from`, `rank` other than the actor's own…);
 *   - a parameter whose value names another lane of the same rank (`stream: 'C'` → lane `rank 0 stream C`);
 *   - the step's sentence mentioning another lane (`rank 1 main`, `stream C`, `worker`);
 *   - the action's name (send/isend/recv/irecv/wait/record/allreduce/all_gather…) for the direction and kind.
 * Anything else is a local step.
 */
import type { Data } from '../data.ts';
import type { Trace, TraceStep } from '../trace.ts';

/** Lane of a step without an actor. */
export const NO_ACTOR = 'system';

export type MessageKind = 'send' | 'receive' | 'wait' | 'record' | 'collective' | 'message' | 'local';

export interface StepView {
  readonly step: TraceStep;
  /** Lane index of the step's actor. */
  readonly lane: number;
  readonly kind: MessageKind;
  /** For a message: the lanes it goes from and to (usually one of them is `lane`; a carrier such as `nccl` sits apart). */
  readonly from?: number;
  readonly to?: number;
  /** For a collective with no single peer: every lane it spans. */
  readonly span?: readonly number[];
  /** Whether the step belongs to the cycle of a lasso. */
  readonly inLoop: boolean;
}

export interface Lanes {
  /** Actor names, in display order: by rank, then order of first appearance; actors without a rank last. */
  readonly names: readonly string[];
  readonly steps: readonly StepView[];
}

const RANK = /\brank\s*(\d+)\b/i;

function rankOf(actor: string): number | undefined {
  const m = RANK.exec(actor);
  return m ? Number(m[1]) : undefined;
}

/** The actor's name with its rank taken out: `rank 1 main` → `main` (how lanes of two ranks correspond). */
function roleOf(actor: string): string {
  return actor.replace(RANK, '').replace(/\s+/g, ' ').trim();
}

/** Splits `isendKv`, `all_gather`, `recv-handle` into lower-case words. */
export function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

const COLLECTIVE = /^(all_?reduce|allreduce|all_?gather|allgather|reduce_?scatter|reducescatter|broadcast|bcast|barrier|all_?to_?all|alltoall)$/;

/** The kind of communication an action's name says it is (before any peer is known). */
export function kindOfAction(action: string): MessageKind {
  const flat = action.toLowerCase().replace(/[^a-z0-9]/g, '');
  const ws = words(action);
  if (COLLECTIVE.test(flat) || ws.some((w) => COLLECTIVE.test(w) || w === 'collective') || /allreduce|allgather|reducescatter|alltoall|broadcast|barrier/.test(flat)) {
    return 'collective';
  }
  if (ws.some((w) => /^(i?recv|receive[sd]?|recvs|irecvs|ack(ed|s)?|arrives?|deliver(ed|s)?|consume[sd]?|get)$/.test(w))) return 'receive';
  if (ws.some((w) => /^(wait[sd]?|waiting|synchronize[sd]?|sync(s|ed)?|poll(s|ed)?|join(s|ed)?|observe[sd]?|sees?)$/.test(w))) return 'wait';
  if (ws.some((w) => /^(record[sd]?|signal(s|ed)?|notif(y|ies|ied)|raise[sd]?|set|post(s|ed)?|publish(es|ed)?|fire[sd]?)$/.test(w))) return 'record';
  if (ws.some((w) => /^(i?send[s]?|isends|sent|put[s]?|push(es|ed)?|transfer(s|red)?|dispatch(es|ed)?|copy|copies|p2p|launch(es|ed)?|enqueue[sd]?|submit(s|ted)?)$/.test(w))) return 'send';
  return 'local';
}

/** Parameters that name the other end of a message, and which way it flows. */
const INBOUND_KEY = /^(src|source|from|sender|producer|origin)(_?rank|_?id)?$/i;
const OUTBOUND_KEY = /^(dst|dest|destination|to|target|receiver|recipient|consumer)(_?rank|_?id)?$/i;
const PEER_KEY = /^(peer|remote|other|partner|neighbou?r)(_?rank|_?id)?$/i;

interface Peer {
  readonly rank?: number;
  readonly lane?: string;
  /** Both ends named (`transfer(from=0, to=2)`): the message goes between these ranks, whoever carries it. */
  readonly fromRank?: number;
  readonly toRank?: number;
  /** true: the message comes from the peer; false: it goes to the peer; undefined: decided by the action's kind. */
  readonly inbound?: boolean;
}

function peerOf(step: TraceStep, actor: string, lanes: readonly string[]): Peer | undefined {
  const own = rankOf(actor);
  const params = step.params as Record<string, Data>;
  const ints = Object.entries(params).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isInteger(e[1]));
  const src = ints.find(([k]) => INBOUND_KEY.test(k));
  const dst = ints.find(([k]) => OUTBOUND_KEY.test(k));
  if (src && dst) {
    if (own === src[1]) return { rank: dst[1], inbound: false };
    if (own === dst[1]) return { rank: src[1], inbound: true };
    return { fromRank: src[1], toRank: dst[1] };
  }
  if (src) return { rank: src[1], inbound: true };
  if (dst) return { rank: dst[1], inbound: false };
  for (const [k, v] of Object.entries(params)) {
    if (typeof v !== 'number' || !Number.isInteger(v)) continue;
    if (PEER_KEY.test(k) && v !== own) return { rank: v };
  }
  for (const [k, v] of Object.entries(params)) {
    if (typeof v === 'number' && /^rank$/i.test(k) && own !== undefined && v !== own) return { rank: v };
  }
  // A string parameter naming another lane of the same rank: `stream: 'C'` → `rank 0 stream C`.
  for (const [k, v] of Object.entries(params)) {
    if (typeof v !== 'string') continue;
    const suffix = `${k} ${v}`.toLowerCase();
    const hit = lanes.find((l) => l !== actor && rankOf(l) === own && (l.toLowerCase().endsWith(` ${suffix}`) || l.toLowerCase() === suffix));
    if (hit) return { lane: hit };
  }
  // The step's sentence mentions another lane or another rank (only for steps whose name says they communicate:
  // "allocate on stream C" is no message, "launch on stream C" is).
  if (step.text && kindOfAction(step.action) !== 'local') {
    const text = step.text.toLowerCase();
    const others = lanes.filter((l) => l !== actor).sort((a, b) => b.length - a.length);
    for (const l of others) if (mentions(text, l.toLowerCase())) return { lane: l };
    // Same rank, named by role only: "waits on stream C" in an actor "rank 0 main" → lane "rank 0 stream C".
    for (const l of others) {
      const role = roleOf(l).toLowerCase();
      if (role && rankOf(l) === own && role !== roleOf(actor).toLowerCase() && mentions(text, role)) return { lane: l };
    }
    const m = /\brank\s*(\d+)\b/gi;
    for (let hit = m.exec(step.text); hit; hit = m.exec(step.text)) {
      const r = Number(hit[1]);
      if (own !== undefined && r !== own) return { rank: r };
    }
  }
  return undefined;
}

function mentions(text: string, name: string): boolean {
  let at = text.indexOf(name);
  while (at >= 0) {
    const before = at === 0 ? ' ' : text[at - 1];
    const after = at + name.length >= text.length ? ' ' : text[at + name.length];
    if (!/[a-z0-9_]/.test(before) && !/[a-z0-9_]/.test(after)) return true;
    at = text.indexOf(name, at + 1);
  }
  return false;
}

/**
 * The lane for a peer number: the actor's counterpart (same role) on that rank, else that rank's first lane;
 * for actors without a rank (`thread 0`), the lane with the same name and that number (`thread 1`). A rank
 * that has no lane yet gets one (`rank 3`) when the actor itself is a rank; otherwise there is no peer.
 */
function laneForRank(rank: number, actor: string, lanes: string[]): string | undefined {
  if (rankOf(actor) === undefined) {
    const m = /^(.*?)(\d+)(\D*)$/.exec(actor);
    if (!m) return undefined;
    const name = `${m[1]}${rank}${m[3]}`;
    return lanes.includes(name) ? name : undefined;
  }
  const onRank = lanes.filter((l) => rankOf(l) === rank);
  const role = roleOf(actor);
  const same = onRank.find((l) => roleOf(l) === role);
  if (same) return same;
  if (onRank.length > 0) return onRank[0];
  const fresh = `rank ${rank}`;
  lanes.push(fresh);
  return fresh;
}

export function actorOf(step: TraceStep): string {
  return step.actor ?? NO_ACTOR;
}

/** Lanes and step views of a trace. */
/** Ranks a collective's sentence lists: "group tp0 (ranks 0, 1)", "ranks 0 and 2", "ranks 0-3". */
function ranksIn(text: string | undefined): number[] {
  const m = text ? /\branks\s+(\d+(?:\s*(?:,|and|-|–|to)\s*\d+)*)/i.exec(text) : null;
  if (!m) return [];
  const range = /^(\d+)\s*(?:-|–|to)\s*(\d+)$/.exec(m[1].trim());
  if (range) {
    const out: number[] = [];
    for (let r = Number(range[1]); r <= Number(range[2]) && out.length < 1024; r++) out.push(r);
    return out;
  }
  return m[1].split(/\s*(?:,|and)\s*/).map(Number).filter(Number.isInteger);
}

/** Lanes and step views of a trace. */
export function lanesOf(trace: Trace): Lanes {
  const names: string[] = [];
  for (const s of trace.steps) if (!names.includes(actorOf(s))) names.push(actorOf(s));

  const raw = trace.steps.map((step) => {
    const actor = actorOf(step);
    const kind = kindOfAction(step.action);
    const peer = peerOf(step, actor, names);
    let peerLane: string | undefined;
    let fromLane: string | undefined;
    let toLane: string | undefined;
    if (peer?.lane !== undefined) peerLane = peer.lane;
    else if (peer?.rank !== undefined) peerLane = laneForRank(peer.rank, actor, names);
    else if (peer?.fromRank !== undefined && peer.toRank !== undefined) {
      fromLane = laneForRank(peer.fromRank, `rank ${peer.fromRank}`, names);
      toLane = laneForRank(peer.toRank, `rank ${peer.toRank}`, names);
    }
    const spanRanks = kind === 'collective' ? ranksIn(step.text) : [];
    return { step, actor, kind, peer, peerLane, fromLane, toLane, spanRanks };
  });

  // Display order: by rank, then first appearance; lanes without a rank after.
  const firstSeen = new Map(names.map((n, i) => [n, i]));
  const order = [...names].sort((a, b) => {
    const ra = rankOf(a) ?? Number.POSITIVE_INFINITY;
    const rb = rankOf(b) ?? Number.POSITIVE_INFINITY;
    if (ra !== rb) return ra - rb;
    return firstSeen.get(a)! - firstSeen.get(b)!;
  });
  const index = new Map(order.map((n, i) => [n, i]));
  const loopFrom = trace.loopStart === undefined ? Number.POSITIVE_INFINITY : trace.loopStart + 1;
  const asMessage = (kind: MessageKind): MessageKind => (kind === 'local' || kind === 'collective' ? 'message' : kind);

  const steps: StepView[] = raw.map(({ step, actor, kind, peer, peerLane, fromLane, toLane, spanRanks }) => {
    const lane = index.get(actor)!;
    const inLoop = step.index >= loopFrom;
    if (peerLane !== undefined && peerLane !== actor) {
      const other = index.get(peerLane)!;
      const inbound = peer?.inbound ?? (kind === 'receive' || kind === 'wait');
      const k = asMessage(kind);
      return inbound ? { step, lane, kind: k, from: other, to: lane, inLoop } : { step, lane, kind: k, from: lane, to: other, inLoop };
    }
    if (fromLane !== undefined && toLane !== undefined && fromLane !== toLane) {
      return { step, lane, kind: asMessage(kind), from: index.get(fromLane)!, to: index.get(toLane)!, inLoop };
    }
    if (kind === 'collective' && order.length > 1) {
      // The ranks the sentence lists, else every lane of the same role (each rank's main thread), else all.
      const listed = order.filter((l) => spanRanks.includes(rankOf(l) ?? -1));
      const role = roleOf(actor);
      const peers = order.filter((l) => roleOf(l) === role);
      const chosen = listed.length > 0 ? listed : peers.length > 1 ? peers : order;
      const span = [...new Set(chosen.map((l) => index.get(l)!))].sort((a, b) => a - b);
      return { step, lane, kind, span, inLoop };
    }
    return { step, lane, kind: kind === 'collective' ? 'collective' : 'local', inLoop };
  });
  return { names: order, steps };
}
