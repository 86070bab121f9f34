// A tiny DOM builder: h('button', {class: 'x', onclick}, 'text'). Strings become text nodes,
// never HTML, so nothing from the API can inject markup.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Attrs | null = null, ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value as EventListener);
      } else if (key === 'style' && typeof value === 'object') {
        Object.assign(el.style, value);
      } else if (key === 'dataset' && typeof value === 'object') {
        Object.assign(el.dataset, value);
      } else if (key === 'value' || key === 'checked' || key === 'disabled') {
        (el as unknown as Record<string, unknown>)[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all children of `el`. */
export function replaceChildren(el: Element, ...children: Child[]): void {
  el.textContent = '';
  append(el, children);
}

/** A horizontal bar for a 0..1 fraction, with its label for screen readers. */
export function bar(fraction: number, label: string, kind = ''): HTMLElement {
  const pct = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0)) * 100;
  return h('span', { class: `bar ${kind}`, role: 'img', 'aria-label': label, title: label },
    h('span', { class: 'bar-fill', style: { width: `${pct.toFixed(2)}%` } }));
}

/** A coloured pill for health and states. */
export function badge(text: string, kind: string): HTMLElement {
  return h('span', { class: `badge badge-${kind}` }, text);
}

/** A table whose wrapper scrolls sideways on narrow screens. */
export function table(headers: Array<string | { text: string; num?: boolean; cls?: string }>, rows: Node[], caption?: string): HTMLElement {
  return h('div', { class: 'table-wrap' },
    h('table', null,
      caption ? h('caption', null, caption) : null,
      h('thead', null, h('tr', null, headers.map((hd) => typeof hd === 'string'
        ? h('th', { scope: 'col' }, hd)
        : h('th', { scope: 'col', class: `${hd.num ? 'num' : ''} ${hd.cls ?? ''}`.trim() }, hd.text)))),
      h('tbody', null, rows)));
}

/**
 * Focuses the control with data-focus-key `key` under `root`, or else another control of the
 * same subject (keys are "action|subject...": drain may have become undrain). Returns whether
 * something took the focus. Re-rendered lists use it so keyboard users keep their place.
 */
export function focusByKey(root: ParentNode, key: string | undefined): boolean {
  if (!key) return false;
  const subject = key.split('|').slice(1).join('|');
  const el = root.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(key)}"]`)
    ?? (subject ? root.querySelector<HTMLElement>(`[data-focus-key$="|${CSS.escape(subject)}"]`) : null);
  el?.focus();
  return !!el;
}

/**
 * An address, endpoint or prefix (`[2001:2:0:a5a5::1]:8080`, `2001:2::10/128`) as text that may
 * break after a ':', '.' or '/' (never inside `::`) when its column or box is narrow, with the
 * full text in its title. Copying it copies the text unchanged (<wbr> adds no character).
 */
export function addr(text: string, cls = 'mono'): HTMLElement {
  const el = h('span', { class: `addr ${cls}`.trim(), title: text });
  text.split(/(?<=[:./])(?!:)/).forEach((part, i) => {
    if (i > 0) el.appendChild(document.createElement('wbr'));
    el.appendChild(document.createTextNode(part));
  });
  return el;
}

/** A table cell holding addr(text): it wraps at those points instead of widening the table. */
export function addrCell(text: string, cls = ''): HTMLElement {
  return h('td', { class: `addr-cell ${cls}`.trim() }, addr(text));
}
