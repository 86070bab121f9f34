// What a page is: a function that fills a container and returns its clean-up.
import type { User } from './api-types';
import { describeError } from './api';
import { h } from './dom';

export interface PageContext { user: User; isAdmin: boolean }
export type Unmount = () => void;
export type MountPage = (container: HTMLElement, ctx: PageContext) => Unmount;

/**
 * Calls `load` now and every `intervalMs` until stopped; a failure shows in `errorEl` and the
 * next round retries. Rounds never overlap.
 */
export function poll(load: () => Promise<void>, intervalMs: number, errorEl: HTMLElement): Unmount {
  let stopped = false;
  let timer = 0;
  const round = async () => {
    try {
      await load();
      errorEl.hidden = true;
    } catch (err) {
      errorEl.hidden = false;
      errorEl.textContent = describeError(err);
    }
    if (!stopped) timer = window.setTimeout(round, intervalMs);
  };
  void round();
  return () => { stopped = true; window.clearTimeout(timer); };
}

/** A hidden error banner for a page. */
export function errorBanner(): HTMLElement {
  return h('div', { class: 'banner banner-error', role: 'alert', hidden: true });
}

/** The page heading with an optional note on the right. */
export function pageHeader(title: string, ...extra: Array<Node | string | null>): HTMLElement {
  return h('div', { class: 'page-header' }, h('h1', null, title), h('div', { class: 'page-header-extra' }, extra));
}

/** A small "updated 13:04:05" label; markUpdated() sets it (and data-at, which tests read). */
export function updatedLabel(testid = 'updated-at'): HTMLElement {
  return h('span', { class: 'muted small', 'data-testid': testid, 'aria-live': 'off' });
}
export function markUpdated(el: HTMLElement, at: number, prefix = 'updated'): void {
  el.dataset.at = String(at);
  el.textContent = `${prefix} ${new Date(at).toLocaleTimeString()}`;
}
