/**
 * What the control plane hands the data plane: the effective state of every service.
 * The reconciler (src/balancer/reconciler.ts) turns it into map writes; nothing else writes maps.
 */
import { LB_ACTIONS, LB_REASONS } from './lb.generated';

export type Protocol = 'tcp' | 'udp';
export type ForwardingMode = 'nat' | 'dsr';

export interface DataplaneBackend {
  address: string;         // IPv4 dotted quad
  port: number;            // 0 = keep the client's destination port
  weight: number;          // integer >= 0; 0 = drained (no new flows)
  /** false = health checks say down: out of the table AND its cached flows move elsewhere. */
  healthy: boolean;
  /** true = no new flows, existing (cached) flows stay. */
  draining: boolean;
}

export interface DataplaneService {
  name: string;            // unique; stable key for ids across reconciles
  vip: string;             // IPv4 dotted quad
  port: number;            // 0 = every port of the protocol
  protocol: Protocol;
  mode: ForwardingMode;
  tableSize: number;       // Maglev M (prime)
  backends: DataplaneBackend[];
}

export interface DataplaneSettings {
  fragPolicy: 'drop' | 'pass';
  sampleRate: number;      // 1 in N packets to the event ring; 0 = off
  flowCache: boolean;
  /** Send back out the ingress interface by redirect instead of XDP_TX (set by the kernel driver
   * when an attached interface is a veth; docs/datapath.md). Absent = false. */
  txRedirect?: boolean;
  /** How long a removed NAT backend's reverse entry stays (its late packets still translated);
   * absent = DEFAULT_REVERSE_GRACE_SECONDS (300 s), 0 = removed at once. */
  reverseGraceSeconds?: number;
  /** The transition sweep period: a moved Maglev slot stays marked (its packets consult the flow
   * cache) for at least two periods and until no remembered flow on an earlier backend was sent
   * for one; absent = DEFAULT_TRANSITION_SECONDS (60 s). docs/decisions.md "Stateless steady state". */
  transitionSeconds?: number;
}

/** settings.reverseGraceSeconds when absent (the config's default). */
export const DEFAULT_REVERSE_GRACE_SECONDS = 300;

export interface DataplaneState {
  services: DataplaneService[];
  settings: DataplaneSettings;
}

/** Verdict reasons by number (LB_REASON_* of bpf/lb_abi.h, generated into lb.generated.ts). */
export const REASONS = LB_REASONS;
export type Reason = (typeof REASONS)[number];

/** XDP actions by number (LB_ACTION_*). */
export const XDP_ACTIONS = LB_ACTIONS;
export type XdpAction = (typeof XDP_ACTIONS)[number];

export interface FlowCounters { fwdPackets: number; fwdBytes: number; revPackets: number; revBytes: number }
export interface PacketCounter { packets: number; bytes: number }

/** Counters summed over CPUs, as read at `at` (ms since the epoch). */
export interface StatsSnapshot {
  at: number;
  services: Record<string, FlowCounters>;                 // by service name
  backends: Record<string, Record<string, FlowCounters>>; // service name -> "address:port" -> counters
  /** service name -> "address:port" -> the data-plane backend id the counters belong to. A
   * backend removed and added back gets a new id and counters from 0: a different id between
   * two snapshots is a counter reset. Absent when the driver has no ids. */
  backendIds?: Record<string, Record<string, number>>;
  actions: Record<XdpAction, PacketCounter>;
  reasons: Record<Reason, PacketCounter>;
}

/** One decoded ring-buffer record. */
export interface TraceEvent {
  tsNs: number; ifindex: number; pktLen: number;
  service: string | null; backend: string | null;   // names resolved by the data plane
  serviceId: number; backendId: number;
  /** dotted IPv4 (family 4, or a frame that was not IP: 0.0.0.0), canonical IPv6 (family 6) */
  saddr: string; daddr: string; sport: number; dport: number; proto: number;
  /** 4 or 6; absent when the frame was not IP (not_ip, vlan, a truncated Ethernet header) */
  family?: 4 | 6;
  action: XdpAction; reason: Reason;
}
