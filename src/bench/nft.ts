/**
 * The conventional kernel load balancers, set up and removed by name inside the lb namespace:
 * nftables DNAT with a jhash map (`table ip`, or `table ip6` for an IPv6 VIP) and iptables DNAT
 * with the statistic match.
 */
import { run, tryRun } from './exec';

/** The one nftables table the benchmarks create (in their own namespace). */
export const NFT_TABLE = 'xlbb_dnat';

export interface DnatSpec {
  netns: string;
  vip: string;
  /** 0 = every port of the protocol. */
  port: number;
  proto: 'tcp' | 'udp';
  backends: string[];
}

/** The nftables family of a VIP: `ip6` for IPv6 text, else `ip`. */
export function nftFamily(vip: string): 'ip' | 'ip6' {
  return vip.includes(':') ? 'ip6' : 'ip';
}

/**
 * The nft script: prerouting DNAT picking a backend by jhash of the client's address and port,
 * in the VIP's family (IPv6: `table ip6`, `ip6 daddr`, `jhash ip6 saddr`).
 * @throws Error on no backends or a backend of the other family than the VIP.
 */
export function nftDnatScript(spec: DnatSpec): string {
  if (spec.backends.length === 0) throw new Error('nftables DNAT: no backends');
  const family = nftFamily(spec.vip);
  const other = spec.backends.find((b) => nftFamily(b) !== family);
  if (other) throw new Error(`nftables DNAT: backend ${other} is not of the VIP ${spec.vip}'s family`);
  const map = spec.backends.map((b, i) => `${i} : ${b}`).join(', ');
  const portMatch = spec.port ? ` ${spec.proto} dport ${spec.port}` : ` meta l4proto ${spec.proto}`;
  return `table ${family} ${NFT_TABLE} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ${family} daddr ${spec.vip}${portMatch} dnat to jhash ${family} saddr . ${spec.proto} sport mod ${spec.backends.length} map { ${map} }
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
  }
}
`;
}

/**
 * Installs the nftables DNAT table (replacing a leftover of the same name).
 * @throws Error when nft refuses the script.
 */
export function addNftDnat(spec: DnatSpec): void {
  removeNftDnat(spec.netns);
  run('nft', ['-f', '-'], { netns: spec.netns, input: nftDnatScript(spec) });
}

/** Removes the benchmark's nftables tables (both families); a missing one is fine. */
export function removeNftDnat(netns: string): void {
  tryRun('nft', ['delete', 'table', 'ip', NFT_TABLE], { netns });
  tryRun('nft', ['delete', 'table', 'ip6', NFT_TABLE], { netns });
}

/** The iptables rules: for N backends, rule i takes 1/(N-i) of what is left, the last takes all. */
export function iptablesDnatRules(spec: DnatSpec): string[][] {
  if (spec.backends.length === 0) throw new Error('iptables DNAT: no backends');
  const n = spec.backends.length;
  return spec.backends.map((backend, i) => {
    const rule = ['-t', 'nat', '-A', 'PREROUTING', '-d', spec.vip, '-p', spec.proto];
    if (spec.port) rule.push('--dport', String(spec.port));
    if (i < n - 1) rule.push('-m', 'statistic', '--mode', 'random', '--probability', (1 / (n - i)).toFixed(8));
    rule.push('-m', 'comment', '--comment', 'xlbb', '-j', 'DNAT', '--to-destination', backend);
    return rule;
  });
}

/**
 * Installs iptables (nf_tables backend) DNAT rules in the namespace's own nat table.
 * @throws Error when iptables refuses a rule.
 */
export function addIptablesDnat(spec: DnatSpec): void {
  removeIptablesDnat(spec.netns);
  for (const rule of iptablesDnatRules(spec)) run('iptables', rule, { netns: spec.netns });
}

/**
 * Removes what addIptablesDnat made: iptables-nft keeps the namespace's `ip nat` table, which
 * only the benchmark's namespace holds, so flushing and deleting it there is exact.
 */
export function removeIptablesDnat(netns: string): void {
  tryRun('iptables', ['-t', 'nat', '-F'], { netns });
  tryRun('nft', ['delete', 'table', 'ip', 'nat'], { netns });
}
