import { h, replaceChildren } from '../dom';
import type { MountPage } from '../page';
export const mountTrace: MountPage = (container) => { replaceChildren(container, h('h1', null, 'trace')); return () => undefined; };
