/**
 * settings.tx_redirect on the loaded bpf/lb.o (BPF_PROG_TEST_RUN inside the namespace
 * xlbt-dl-sb, one veth pair xlbt-dl-s0/xlbt-dl-s1): a packet sent back out the ingress
 * interface (an ICMP echo reply to a VIP) is XDP_TX by default, XDP_REDIRECT through tx_ports
 * when tx_redirect is on (what the daemon sets on veth, docs/datapath.md), and XDP_TX again
 * when the ingress interface is not in tx_ports. The reply's bytes are the same either way.
 * The same for the ICMP time exceeded answer to a TTL-1 packet to a NAT VIP.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { enterNetns } from '../src/bpf';
import { Dataplane } from '../src/dataplane/dataplane';
import { Balancer } from '../src/balancer/balancer';
import { DataplaneInspector } from '../src/dataplane/inspect';
import { encodeU32, LbSettingsCodec } from '../src/dataplane/abi';
import { buildFrame, parseFrame, checksumProblems } from '../src/dataplane/packet';
import type { DataplaneState } from '../src/dataplane/types';
import { kernelTestSkip } from './support/kernel-env';

const NETNS = 'xlbt-dl-sb';
const VIP = '198.18.100.1';
const XDP_TX = 3;
const XDP_REDIRECT = 4;

const skipReason = kernelTestSkip('the send-back (tx_redirect) test');

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}

function cleanup(): void {
  try { ip('netns', 'del', NETNS); } catch { /* not there */ }
}

function state(txRedirect: boolean | undefined): DataplaneState {
  return {
    services: [{
      name: 'web', vip: VIP, port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
      backends: [{ address: '198.18.1.2', port: 8080, weight: 1, healthy: true, draining: false }],
    }],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, ...(txRedirect === undefined ? {} : { txRedirect }) },
  };
}

describe('sending back out the ingress interface (settings.tx_redirect)', { skip: skipReason }, () => {
  let dp: Dataplane | null = null;
  let lb: Balancer | null = null;
  let view: DataplaneInspector | null = null;
  let restore: (() => void) | null = null;
  let ifindex = 0;
  let mac = '';

  before(() => {
    cleanup();
    ip('netns', 'add', NETNS);
    ip('-n', NETNS, 'link', 'add', 'xlbt-dl-s0', 'type', 'veth', 'peer', 'name', 'xlbt-dl-s1');
    ip('-n', NETNS, 'link', 'set', 'xlbt-dl-s0', 'up');
    ip('-n', NETNS, 'link', 'set', 'xlbt-dl-s1', 'up');
    const link = (JSON.parse(ip('-j', '-n', NETNS, 'link', 'show', 'dev', 'xlbt-dl-s0')) as Array<{ ifindex: number; address: string }>)[0];
    ifindex = link.ifindex;
    mac = link.address;
    restore = enterNetns(NETNS); // the test run's ingress ifindex and tx_ports refer to this namespace
    dp = Dataplane.load({ hashSeed: 5, maxServices: 8, maxBackends: 32, maxFlows: 64 });
    lb = new Balancer(dp);
    view = new DataplaneInspector(dp, lb.reconciler);
  });

  after(() => {
    dp?.close();
    restore?.();
    cleanup();
  });

  const echo = (): Buffer => buildFrame({
    eth: { src: '02:00:00:00:00:09', dst: mac },
    ip: { src: '198.18.0.2', dst: VIP, proto: 1, ttl: 64 },
    icmp: { type: 8, rest: 0x12340001, payload: Buffer.from('xlbt-dl-send-back') },
  });

  test('XDP_TX by default; a redirect to the ingress interface with tx_redirect; XDP_TX when it is not in tx_ports', () => {
    lb!.applyState(state(undefined));
    assert.equal(LbSettingsCodec.decode(dp!.map('settings').lookup(encodeU32(0))!).txRedirect, 0);
    const tx = dp!.testRun(echo(), ifindex);
    assert.equal(tx.retval, XDP_TX);
    const reply = parseFrame(tx.data);
    assert.equal(reply.icmp?.type, 0, 'an echo reply');
    assert.equal(reply.ipv4?.dst, '198.18.0.2');

    lb!.applyState(state(true));
    assert.equal(LbSettingsCodec.decode(dp!.map('settings').lookup(encodeU32(0))!).txRedirect, 1);
    // Not in tx_ports (the program is not attached there): still XDP_TX.
    const notThere = dp!.testRun(echo(), ifindex);
    assert.equal(notThere.retval, XDP_TX);
    dp!.map('tx_ports').update(encodeU32(ifindex), encodeU32(ifindex));
    const redirected = dp!.testRun(echo(), ifindex);
    assert.equal(redirected.retval, XDP_REDIRECT);
    assert.deepEqual(redirected.data, tx.data, 'the same reply either way');
    const reasons = view!.readStats().reasons;
    assert.ok(reasons.icmp_echo.packets >= 3, JSON.stringify(reasons.icmp_echo));
    const actions = view!.readStats().actions;
    assert.ok(actions.redirect.packets >= 1 && actions.tx.packets >= 2, JSON.stringify(actions));

    lb!.applyState(state(false));
    assert.equal(dp!.testRun(echo(), ifindex).retval, XDP_TX);
  });

  // A TCP segment to the NAT VIP with TTL 1: the program answers ICMP time exceeded itself
  // (ttl_expired), back out the ingress interface like an echo reply, so on veth it needs the
  // same redirect (an XDP_TX'd answer waited for the peer's next wake-up).
  const expiring = (): Buffer => buildFrame({
    eth: { src: '02:00:00:00:00:09', dst: mac },
    ip: { src: '198.18.0.2', dst: VIP, proto: 6, ttl: 1 },
    tcp: { sport: 40001, dport: 80, flags: 0x02 },
  });

  test('ICMP time exceeded for a TTL-1 packet to a NAT VIP: XDP_TX by default, a redirect with tx_redirect', () => {
    lb!.applyState(state(undefined));
    const tx = dp!.testRun(expiring(), ifindex);
    assert.equal(tx.retval, XDP_TX);
    const answer = parseFrame(tx.data);
    assert.deepEqual({ type: answer.icmp?.type, code: answer.icmp?.code, src: answer.ipv4?.src, dst: answer.ipv4?.dst, to: answer.dst },
      { type: 11, code: 0, src: VIP, dst: '198.18.0.2', to: '02:00:00:00:00:09' });
    assert.deepEqual(checksumProblems(tx.data), []);

    lb!.applyState(state(true));
    dp!.map('tx_ports').update(encodeU32(ifindex), encodeU32(ifindex));
    const redirected = dp!.testRun(expiring(), ifindex);
    assert.equal(redirected.retval, XDP_REDIRECT, 'tx_redirect: the time exceeded answer is redirected to the ingress interface');
    assert.deepEqual(redirected.data, tx.data, 'the same answer either way');
    assert.ok(view!.readStats().reasons.ttl.packets >= 2, JSON.stringify(view!.readStats().reasons.ttl));
  });
});
