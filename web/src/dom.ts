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

/** Whether `text` is IPv6 text (an address, `[addr]:port`, `addr/len`, `[addr]:port/proto`). */
function isIpv6Text(text: string): boolean {
  return (text.match(/:/g)?.length ?? 0) >= 2 && /^\[?[0-9a-fA-F:.]+(\]:(\d+|\*))?(\/\w+)*$/.test(text);
}

/** Text with a <wbr> after each ':' (never inside '::'), '.' or ']': where an IPv6 address may break. */
function breakable(el: HTMLElement, text: string): HTMLElement {
  text.split(/(?<=[:.\]])(?!:)/).forEach((part, i) => {
    if (i > 0) el.appendChild(document.createElement('wbr'));
    el.appendChild(document.createTextNode(part));
  });
  return el;
}

/**
 * An address, endpoint or prefix, with the full text in its title. IPv6 text
 * (`[2001:2:0:a5a5::1]:8080`, `2001:2::10/128`) may break after a ':' or '.' when its box is
 * narrow (style.css `.addr-v6`); IPv4 text is short and stays one unbroken text node.
 * Copying either copies exactly the address (<wbr> adds no character).
 */
export function addr(text: string, cls = 'mono'): HTMLElement {
  const el = h('span', { class: `addr ${isIpv6Text(text) ? 'addr-v6' : ''} ${cls}`.replace(/\s+/g, ' ').trim(), title: text });
  return isIpv6Text(text) ? breakable(el, text) : (el.append(text), el);
}

/**
 * A table cell holding an address (or a map key/value): IPv6 text wraps at its group
 * boundaries instead of widening the table past its box; anything else stays as it was.
 */
export function addrCell(text: string, cls = ''): HTMLElement {
  const v6 = isIpv6Text(text);
  const el = h('td', { class: `mono ${v6 ? 'addr-cell' : ''} ${cls}`.replace(/\s+/g, ' ').trim(), title: text });
  return v6 ? breakable(el, text) : (el.append(text), el);
}
