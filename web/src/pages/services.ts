// Services: each service's VIP, mode and backends with weight, health, drain state, live rates
// and Maglev share. Admins get add/remove/weight/drain controls, each behind a confirmation;
// viewers get the same page with no controls at all.
import { request } from '../api';
import { splitHostPortList } from '../address';
import type { BackendView, ServiceView, TransitionsView } from '../api-types';
import { confirmDialog } from '../dialog';
import { addr, addrCell, badge, bar, focusByKey, h, replaceChildren, table } from '../dom';
import { formatBps, formatEndpoint, formatPercent, formatPps } from '../format';
import { errorBanner, markUpdated, pageHeader, updatedLabel, type MountPage, type PageContext } from '../page';
import { store } from '../store';
import { healthBadge } from './overview';
import { transitionBadgeText } from '../transition-badge';

type RateCells = { fwdPps: HTMLElement; fwdBps: HTMLElement; revPps: HTMLElement };

export const mountServices: MountPage = (container, ctx) => {
  const list = h('div');
  const error = errorBanner();
  const asOf = updatedLabel('stats-at');
  replaceChildren(container,
    pageHeader('Services', asOf, ctx.isAdmin
      ? h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-action': 'add-service', 'data-focus-key': 'add-service|',
        onclick: () => void addServiceDialog() }, '+ Add service')
      : h('span', { class: 'badge badge-muted' }, 'read-only: log in as admin to change')),
    error, list);
  // Rate cells are updated in place every second so that buttons keep their focus.
  let cells = new Map<string, RateCells>();

  const renderStructure = () => {
    const focusKey = (document.activeElement as HTMLElement | null)?.dataset?.focusKey;
    cells = new Map();
    if (store.services.length === 0) {
      replaceChildren(list, h('p', { class: 'empty' }, 'No services configured yet.'));
      return;
    }
    replaceChildren(list, store.services.map((svc) => servicePanel(svc, ctx, cells)));
    updateRates();
    focusByKey(list, focusKey);
  };

  const updateRates = () => {
    const latest = store.latest;
    if (!latest) return;
    markUpdated(asOf, latest.at, 'rates at');
    for (const svc of latest.services) {
      setRates(cells.get(svc.name), svc);
      for (const be of svc.backends) setRates(cells.get(`${svc.name}|${be.key}`), be);
    }
  };

  // Transitions (moved Maglev slots) every 5 s and after each change: a badge per service.
  let transitions: TransitionsView | null = null;
  let stopped = false;
  const updateTransitions = () => {
    for (const el of list.querySelectorAll<HTMLElement>('[data-field="transition"]')) {
      const t = transitions?.services.find((s) => s.service === el.dataset.service);
      const text = transitionBadgeText(t ?? null, transitions);
      el.hidden = text === null;
      el.textContent = text?.label ?? '';
      el.title = text?.title ?? '';
    }
  };
  const pollTransitions = async () => {
    try {
      transitions = await request<TransitionsView>('GET', '/transitions');
    } catch {
      transitions = null; // an older daemon, or a moment without one: no badge
    }
    if (!stopped) updateTransitions();
  };
  const timer = setInterval(() => void pollTransitions(), 5000);
  const offServices = store.on('services', () => { renderStructure(); updateTransitions(); void pollTransitions(); });
  const offStats = store.on('stats', updateRates);
  renderStructure();
  void pollTransitions();
  return () => { stopped = true; clearInterval(timer); offServices(); offStats(); };
};


function setRates(target: RateCells | undefined, rates: { fwdPps: number; fwdBps: number; revPps: number }): void {
  if (!target) return;
  target.fwdPps.textContent = formatPps(rates.fwdPps);
  target.fwdBps.textContent = formatBps(rates.fwdBps);
  target.revPps.textContent = formatPps(rates.revPps);
}

function rateCells(): RateCells & { tds: HTMLElement[] } {
  const fwdPps = h('td', { class: 'num' }, '—');
  const fwdBps = h('td', { class: 'num wide-only' }, '—');
  const revPps = h('td', { class: 'num' }, '—');
  return { fwdPps, fwdBps, revPps, tds: [fwdPps, fwdBps, revPps] };
}

function servicePanel(svc: ServiceView, ctx: PageContext, cells: Map<string, RateCells>): HTMLElement {
  const svcRates = h('span', { class: 'muted' });
  const svcCells = { fwdPps: h('span'), fwdBps: h('span'), revPps: h('span') };
  cells.set(svc.name, svcCells);
  svcRates.append('in ', svcCells.fwdPps, ' · ', svcCells.fwdBps, ' · out ', svcCells.revPps);
  const hc = svc.healthCheck;
  const meta = h('div', { class: 'service-meta' },
    h('span', { 'data-field': 'vip' }, addr(formatEndpoint(svc.vip, svc.port, svc.protocol))),
    badge(svc.mode.toUpperCase(), svc.mode === 'nat' ? 'info' : 'warn'),
    h('span', { class: 'muted small' }, `Maglev table ${svc.tableSize ?? 'default'} slots`),
    h('span', { class: 'badge badge-warn', 'data-field': 'transition', 'data-service': svc.name, hidden: true }),
    h('span', { class: 'muted small' }, hc
      ? `health: ${hc.type}${hc.path ? ` ${hc.path}` : ''} every ${hc.intervalMs} ms (rise ${hc.rise}, fall ${hc.fall})` +
        (hc.initialState === 'up' ? ', new backends in at once' : '') +
        (hc.slowStart ? `, slow start ${hc.slowStart.durationMs / 1000} s` : '')
      : 'no health check'),
    svcRates);
  const addButton = ctx.isAdmin
    ? h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-action': 'add-backend', 'data-focus-key': `add|${svc.name}`,
      onclick: () => void addBackendDialog(svc) }, '+ Add backend')
    : null;
  const headers = ['Backend', { text: 'Weight', num: true }, 'Status',
    { text: 'In pkt/s', num: true }, { text: 'In bytes/s', num: true, cls: 'wide-only' }, { text: 'Out pkt/s', num: true }, 'Maglev share'];
  if (ctx.isAdmin) headers.push('Actions');
  const rows = svc.backends.map((b) => {
    const rc = rateCells();
    cells.set(`${svc.name}|${b.key}`, rc);
    return h('tr', { 'data-backend': b.key },
      addrCell(b.key),
      h('td', { class: 'num', 'data-field': 'weight' }, ctx.isAdmin ? weightButton(svc, b) : String(b.weight)),
      h('td', { 'data-field': 'state' }, healthBadge(b.health),
        b.draining ? badge('draining', 'warn') : b.inTable ? badge('in table', 'ok') : badge('out of table', 'muted'),
        b.healthReason ? h('span', { class: 'badge badge-bad', title: b.healthReason, 'data-field': 'held' },
          `held until ${new Date(b.heldUntil ?? 0).toLocaleTimeString()}`) : null,
        b.rampWeight !== undefined ? h('span', { class: 'badge badge-info', 'data-field': 'slow-start', title: 'slow start: weight taken now' },
          `slow start ${+b.rampWeight.toFixed(2)}/${b.weight}`) : null),
      rc.tds,
      h('td', { class: 'bar-cell' }, h('div', { class: 'share' },
        bar(b.tableShare, `${formatPercent(b.tableShare)} of ${svc.name}'s Maglev slots`),
        h('span', { class: 'share-label' }, formatPercent(b.tableShare)))),
      ctx.isAdmin ? h('td', null, backendActions(svc, b)) : null);
  });
  return h('section', { class: 'panel', 'data-service': svc.name, 'aria-label': `Service ${svc.name}` },
    h('div', { class: 'panel-head' }, h('h2', null, svc.name), addButton),
    meta,
    svc.backends.length ? table(headers, rows) : h('p', { class: 'muted' }, 'No backends: every packet to this VIP is dropped (no_backend).'));
}

function backendActions(svc: ServiceView, b: BackendView): HTMLElement {
  const path = `/services/${encodeURIComponent(svc.name)}/backends/${encodeURIComponent(b.key)}`;
  const button = (action: string, label: string, onclick: () => void, kind = '') =>
    h('button', { type: 'button', class: `btn btn-small ${kind}`, 'data-action': action, 'data-focus-key': `${action}|${svc.name}|${b.key}`,
      'aria-label': `${label} ${b.key}`, onclick }, label);
  return h('div', { class: 'actions' },
    b.draining
      ? button('undrain', 'Undrain', () => void confirmDialog({
        title: `Undrain ${b.key}?`, body: [`It takes new flows of ${svc.name} again.`], confirmLabel: 'Undrain',
        action: () => request('PATCH', path, { drain: false }),
      }))
      : button('drain', 'Drain', () => void confirmDialog({
        title: `Drain ${b.key}?`, body: [`It stops taking new flows of ${svc.name}; its Maglev slots go to the other backends.`],
        confirmLabel: 'Drain', danger: true,
        action: () => request('PATCH', path, { drain: true }),
      })),
    button('remove', 'Remove', () => void confirmDialog({
      title: `Remove ${b.key}?`, body: [`It leaves ${svc.name} for good (the desired state is saved without it).`],
      confirmLabel: 'Remove', danger: true,
      action: () => request('DELETE', path),
    }), 'btn-danger-outline'));
}

/** The weight cell itself is the control: "1 ✎" opens the weight dialog. */
function weightButton(svc: ServiceView, b: BackendView): HTMLElement {
  const path = `/services/${encodeURIComponent(svc.name)}/backends/${encodeURIComponent(b.key)}`;
  return h('button', { type: 'button', class: 'btn btn-small weight-button', 'data-action': 'weight',
    'data-focus-key': `weight|${svc.name}|${b.key}`, 'aria-label': `Change weight of ${b.key} (now ${b.weight})`,
    title: 'Change weight',
    onclick: () => void confirmDialog({
      title: `Change weight of ${b.key}`,
      body: [`Service ${svc.name}. The Maglev table is rebuilt with the new weight and swapped in at once.`],
      fields: [{ name: 'weight', label: 'Weight', type: 'number', value: String(b.weight), min: 0, max: 1000, required: true,
        hint: 'Integer 0..1000; 0 takes it out of the table.' }],
      confirmLabel: 'Set weight',
      action: (v) => request('PATCH', path, { weight: Number(v.weight) }),
    }) }, String(b.weight), h('span', { 'aria-hidden': 'true', class: 'pencil' }, ' ✎'));
}

function addBackendDialog(svc: ServiceView): Promise<boolean> {
  return confirmDialog({
    title: `Add a backend to ${svc.name}`,
    body: [`${formatEndpoint(svc.vip, svc.port, svc.protocol)}, ${svc.mode.toUpperCase()} mode.`],
    fields: [
      { name: 'address', label: `Address (IPv${svc.vip.includes(':') ? '6' : '4'}, the VIP's family)`, required: true,
        placeholder: svc.vip.includes(':') ? '2001:2::1:20' : '198.18.1.20' },
      { name: 'port', label: 'Port', type: 'number', min: 0, max: 65535, value: String(svc.backends[0]?.port ?? svc.port), hint: '0 keeps the client\'s port.' },
      { name: 'weight', label: 'Weight', type: 'number', min: 0, max: 1000, value: '1' },
    ],
    confirmLabel: 'Add backend',
    action: (v) => request('POST', `/services/${encodeURIComponent(svc.name)}/backends`,
      { address: v.address, port: Number(v.port || 0), weight: Number(v.weight || 1) }),
  });
}

/**
 * Backends typed in the add-service form, weight 1 each (see splitHostPortList).
 * @throws Error "backends: ..." naming the entry that is not address:port.
 */
function parseBackendList(text: string): Array<{ address: string; port: number; weight: number }> {
  try {
    return splitHostPortList(text).map((b) => ({ ...b, weight: 1 }));
  } catch (err) {
    throw new Error(`backends: ${(err as Error).message}`);
  }
}

function addServiceDialog(): Promise<boolean> {
  return confirmDialog({
    title: 'Add a service',
    body: ['A VIP, port and protocol, balanced over the backends below (all of the VIP\'s family: IPv4 or IPv6). ' +
      'More backends can be added to it afterwards.'],
    fields: [
      { name: 'name', label: 'Name', required: true, placeholder: 'web6' },
      { name: 'vip', label: 'VIP (IPv4 or IPv6)', required: true, placeholder: '2001:2::10' },
      { name: 'port', label: 'Port', type: 'number', min: 0, max: 65535, value: '80', hint: '0 = every port.' },
      { name: 'protocol', label: 'Protocol', options: ['tcp', 'udp'] },
      { name: 'mode', label: 'Mode', options: ['nat', 'dsr'] },
      { name: 'backends', label: 'Backends', placeholder: '[2001:2::1:20]:8080 [2001:2::1:21]:8080',
        hint: 'address:port, IPv6 as [address]:port; separated by spaces or commas. May stay empty.' },
    ],
    confirmLabel: 'Add service',
    action: async (v) => {
      const backends = parseBackendList(v.backends ?? '');
      await request('POST', '/services', {
        name: v.name, vip: v.vip, port: Number(v.port || 0), protocol: v.protocol, mode: v.mode, backends,
      });
      await store.reloadServices().catch(() => undefined); // the stream brings it too
    },
  });
}
